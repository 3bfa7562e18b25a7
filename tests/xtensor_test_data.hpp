#pragma once
// Synthetic data for the xtensor adapter tests: Gaussian clusters, one centre per class, drawn from bipq's seeded
// generator (the same seed gives the same data everywhere).

#include <cstddef>
#include <cstdint>

#include "bipq/adapters/xtensor/dataset.hpp"
#include "bipq/detail/random.hpp"

namespace bipq::testing {

/// `train_size` + `test_size` samples of `features` values in `classes` clusters (centres ~ N(0, spread²) per
/// coordinate, unit noise). Returns {train, test}, sharing the centres.
template <class T>
std::pair<xtensor_adapter::dataset<T>, xtensor_adapter::dataset<T>> gaussian_clusters(
    std::size_t features, std::size_t classes, std::size_t train_size, std::size_t test_size, std::uint64_t seed,
    double spread = 1.5) {
  detail::rng g(seed);
  std::vector<double> centres(classes * features);
  for (auto& c : centres) c = spread * g.normal();
  auto make = [&](std::size_t n) {
    xtensor_adapter::dataset<T> d;
    d.num_classes = classes;
    d.images = xt::xtensor<T, 2>::from_shape({n, features});
    d.labels = xt::xtensor<std::int32_t, 1>::from_shape({n});
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t y = static_cast<std::size_t>(g.below(classes));
      d.labels(i) = static_cast<std::int32_t>(y);
      for (std::size_t k = 0; k < features; ++k) d.images(i, k) = static_cast<T>(centres[y * features + k] + g.normal());
    }
    return d;
  };
  auto train = make(train_size);
  auto test = make(test_size);
  return {std::move(train), std::move(test)};
}

}  // namespace bipq::testing
