#pragma once
// The images of a bipq::io::image_dataset seen as an Eigen matrix, one sample per row, without a copy.

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace bipq::eigen {

/// Row-major float matrix: one image (or sample) per row.
using image_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The images of a valid `d` (see image_dataset::validate) as an [N, C·H·W] row-major matrix: a map onto d.images,
/// valid while they are not resized.
inline Eigen::Map<const image_matrix> as_matrix(const io::image_dataset& d) {
  return {d.images.data(), static_cast<Eigen::Index>(d.size()), static_cast<Eigen::Index>(d.sample_size())};
}
inline Eigen::Map<image_matrix> as_matrix(io::image_dataset& d) {
  return {d.images.data(), static_cast<Eigen::Index>(d.size()), static_cast<Eigen::Index>(d.sample_size())};
}

}  // namespace bipq::eigen
