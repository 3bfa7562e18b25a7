#pragma once
// bipq with its xtensor adapter (CMake target bipq::xtensor, needs xtensor): the core (bipq/bipq.hpp), xtensor
// containers as flat tensors (views are refused), the MLP, its classifier problem and xtensor data sets, with
// Fashion-MNIST copied into them.

#include "bipq/bipq.hpp"

#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/adapters/xtensor/dataset.hpp"
#include "bipq/adapters/xtensor/mlp.hpp"
#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/adapters/xtensor/fashion_mnist.hpp"
