#pragma once
// CNN layers on Eigen, one header per layer or family; this header includes them all. The layout of activations
// and the threading model are described in layers/layer.hpp.
//
//   layers/layer.hpp       shape3, activation, team, thread_context, layer_parameter, layer (the interface)
//   layers/conv2d.hpp      conv2d (im2col + GEMM, direct kernels), conv_algorithm
//   layers/linear.hpp      linear
//   layers/relu.hpp        relu
//   layers/pool.hpp        max_pool2d, global_avg_pool
//   layers/flatten.hpp     flatten
//   layers/batch_norm.hpp  batch_norm2d

#include "bipq/adapters/eigen/layers/layer.hpp"
#include "bipq/adapters/eigen/layers/conv2d.hpp"
#include "bipq/adapters/eigen/layers/linear.hpp"
#include "bipq/adapters/eigen/layers/relu.hpp"
#include "bipq/adapters/eigen/layers/pool.hpp"
#include "bipq/adapters/eigen/layers/flatten.hpp"
#include "bipq/adapters/eigen/layers/batch_norm.hpp"
