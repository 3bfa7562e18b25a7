#pragma once
// A labelled classification data set held in xtensor containers: images as an [N, features] row-major
// xt::xtensor, labels as an [N] xt::xtensor of class indices. The models of bipq::xtensor_adapter train on it.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xoperation.hpp>
#include <xtensor/xtensor.hpp>

#include "bipq/adapters/xtensor/tensor.hpp"

namespace bipq::xtensor_adapter {

/// N samples of `features()` values each, with labels in [0, num_classes).
template <std::floating_point T = float>
struct dataset {
  xt::xtensor<T, 2> images;              ///< [N, features], one sample per row
  xt::xtensor<std::int32_t, 1> labels;   ///< [N], class indices
  std::size_t num_classes = 10;

  std::size_t size() const noexcept { return labels.size(); }
  std::size_t features() const noexcept { return images.shape()[1]; }

  /// Throws std::invalid_argument("<func>(): ...") unless images has one row per label, num_classes > 0, every label
  /// is in [0, num_classes) and every pixel is finite.
  void validate(const char* func) const {
    const std::string f = std::string(func) + "(): ";
    if (images.shape()[0] != labels.size())
      throw std::invalid_argument(f + "data has " + std::to_string(images.shape()[0]) + " image rows but " +
                                  std::to_string(labels.size()) + " labels");
    if (num_classes == 0) throw std::invalid_argument(f + "data.num_classes must be > 0");
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels(i) < 0 || static_cast<std::size_t>(labels(i)) >= num_classes)
        throw std::invalid_argument(f + "data.labels(" + std::to_string(i) + ") = " + std::to_string(labels(i)) +
                                    " is not in [0, num_classes)");
    }
    if (!std::all_of(images.begin(), images.end(), [](T v) { return std::isfinite(v); }))
      throw std::invalid_argument(f + "data.images contains NaN or Inf");
  }
};

/// Copies flat row-major pixels (`images.size() == labels.size() * features`) and labels into a dataset, converting
/// the pixel type (e.g. the float pixels of another adapter's data set to double for gradient checks).
/// Throws std::invalid_argument("make_dataset(): ...") on a size mismatch or a label outside [0, num_classes).
template <std::floating_point T = float, class Pixel, class Label>
dataset<T> make_dataset(std::span<const Pixel> images, std::size_t features, std::span<const Label> labels,
                        std::size_t num_classes) {
  if (features == 0) throw std::invalid_argument("make_dataset(): features must be > 0");
  if (images.size() != labels.size() * features)
    throw std::invalid_argument("make_dataset(): images has size " + std::to_string(images.size()) + ", expected " +
                                std::to_string(labels.size() * features) + " (labels.size() * features)");
  dataset<T> d;
  d.num_classes = num_classes;
  d.images = xt::xtensor<T, 2>::from_shape({labels.size(), features});
  d.labels = xt::xtensor<std::int32_t, 1>::from_shape({labels.size()});
  std::transform(images.begin(), images.end(), d.images.begin(), [](Pixel v) { return static_cast<T>(v); });
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < Label(0) || static_cast<std::size_t>(labels[i]) >= num_classes)
      throw std::invalid_argument("make_dataset(): labels[" + std::to_string(i) + "] is not in [0, num_classes)");
    d.labels(i) = static_cast<std::int32_t>(labels[i]);
  }
  d.validate("make_dataset");
  return d;
}

/// The samples `indices` of `d`, in that order (a training slice, a class-balanced subset, ...).
/// Throws std::invalid_argument("subset(): indices[i] is out of range").
template <std::floating_point T>
dataset<T> subset(const dataset<T>& d, std::span<const std::size_t> indices) {
  const std::size_t f = d.features();
  dataset<T> s;
  s.num_classes = d.num_classes;
  s.images = xt::xtensor<T, 2>::from_shape({indices.size(), f});
  s.labels = xt::xtensor<std::int32_t, 1>::from_shape({indices.size()});
  for (std::size_t r = 0; r < indices.size(); ++r) {
    if (indices[r] >= d.size())
      throw std::invalid_argument("subset(): indices[" + std::to_string(r) + "] is out of range");
    std::copy_n(d.images.data() + indices[r] * f, f, s.images.data() + r * f);
    s.labels(r) = d.labels(indices[r]);
  }
  return s;
}

/// x ← (x − mean) / stddev for every pixel (an xtensor expression). For Fashion-MNIST's training set, pixels in
/// [0, 1] have mean ≈ 0.2860 and standard deviation ≈ 0.3530. Throws std::invalid_argument("standardize(): stddev
/// must be finite and > 0").
template <std::floating_point T>
void standardize(dataset<T>& d, T mean, T stddev) {
  if (!(stddev > T(0)) || !std::isfinite(stddev) || !std::isfinite(mean))
    throw std::invalid_argument("standardize(): stddev must be finite and > 0 (and mean finite)");
  d.images = (d.images - mean) / stddev;
}

/// The first `n` samples of `d` (all of them if n ≥ d.size()).
template <std::floating_point T>
dataset<T> head(const dataset<T>& d, std::size_t n) {
  n = std::min(n, d.size());
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  return subset(d, std::span<const std::size_t>(idx));
}

}  // namespace bipq::xtensor_adapter
