#pragma once
// bipq with its Eigen adapter (CMake target bipq::eigen, needs Eigen 3.3 or later): the core (bipq/bipq.hpp), Eigen
// dense types as flat tensors, the CNN layers, models and classifier, and the toy bi-level problems of
// bipq/problems/, whose data are Eigen matrices.

#include "bipq/bipq.hpp"

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/data.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/linear.hpp"
#include "bipq/problems/logistic.hpp"
