#pragma once
// Fashion-MNIST for the xtensor models: the data sets of bipq::io::load_fashion_mnist (one reader for the IDX files in
// the whole library) copied into xtensor containers.

#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include <xtensor/xtensor.hpp>

#include "bipq/adapters/xtensor/dataset.hpp"
#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace bipq::xtensor_adapter {

/// The samples of an image data set as an xtensor data set: images [N, C·H·W] (same values, same order), labels and
/// class count. Throws std::invalid_argument("from_image_dataset(): data ...") if `data` is inconsistent.
template <std::floating_point T = float>
dataset<T> from_image_dataset(const io::image_dataset& data) {
  data.validate("from_image_dataset", "data");
  return make_dataset<T>(std::span<const float>(data.images), data.sample_size(),
                         std::span<const std::uint8_t>(data.labels), data.num_classes);
}

/// Fashion-MNIST's training and test sets as xtensor data sets.
template <std::floating_point T = float>
struct fashion_mnist {
  dataset<T> train, test;
};

/// Loads Fashion-MNIST through bipq::io::load_fashion_mnist(dir) (same directory rules: `dir`, else
/// $BIPQ_FASHION_MNIST, else /usr/share/datasets/fashion-mnist) and copies it into xtensor containers, pixels in
/// [0, 1]. Throws std::runtime_error naming the file when one is missing or corrupt.
template <std::floating_point T = float>
fashion_mnist<T> load_fashion_mnist(const std::string& dir = "") {
  const io::fashion_mnist f = io::load_fashion_mnist(dir);
  return {from_image_dataset<T>(f.train), from_image_dataset<T>(f.test)};
}

}  // namespace bipq::xtensor_adapter
