#pragma once
// The LibTorch adapter (CMake target bipq::torch): any torch::nn::Module as a bipq::trainable_model, with the core.

#include "bipq/adapters/torch/classifier.hpp"
#include "bipq/bipq.hpp"
