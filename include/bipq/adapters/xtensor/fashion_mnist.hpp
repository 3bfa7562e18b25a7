#pragma once
// Fashion-MNIST for the xtensor models: the data sets of the Eigen adapter's loader (bipq::eigen::load_fashion_mnist,
// one reader for the IDX files in the whole library) copied into xtensor containers.

#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include <xtensor/xtensor.hpp>

#include "bipq/adapters/eigen/data.hpp"
#include "bipq/adapters/xtensor/dataset.hpp"

namespace bipq::xtensor_adapter {

/// The samples of an Eigen-adapter data set as an xtensor data set: images [N, C·H·W] (same values, same order),
/// labels and class count. Throws std::invalid_argument("from_eigen(): data ...") if `data` is inconsistent.
template <std::floating_point T = float>
dataset<T> from_eigen(const bipq::eigen::dataset& data) {
  data.validate("from_eigen", "data");
  return make_dataset<T>(std::span<const float>(data.images.data(), static_cast<std::size_t>(data.images.size())),
                         data.sample_size(), std::span<const std::uint8_t>(data.labels), data.num_classes);
}

/// Fashion-MNIST's training and test sets as xtensor data sets.
template <std::floating_point T = float>
struct fashion_mnist {
  dataset<T> train, test;
};

/// Loads Fashion-MNIST through bipq::eigen::load_fashion_mnist(dir) (same directory rules: `dir`, else
/// $BIPQ_FASHION_MNIST, else /usr/share/datasets/fashion-mnist) and copies it into xtensor containers, pixels in
/// [0, 1]. Throws std::runtime_error naming the file when one is missing or corrupt.
template <std::floating_point T = float>
fashion_mnist<T> load_fashion_mnist(const std::string& dir = "") {
  const bipq::eigen::fashion_mnist f = bipq::eigen::load_fashion_mnist(dir);
  return {from_eigen<T>(f.train), from_eigen<T>(f.test)};
}

}  // namespace bipq::xtensor_adapter
