// Applying masks and density reports, checked against direct counts.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/mask/apply.hpp"
#include "bipq/mask/top_k.hpp"

TEST_CASE_TEMPLATE("apply_mask is the element-wise product and density counts non-zeros", T, float, double) {
  std::mt19937_64 rng(6);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<T> w(1000), mask(1000);
  for (auto& x : w) x = T(normal(rng));
  for (auto& m : mask) m = T(rng() % 4 == 0 ? 0.0 : rng() % 2 ? 1.0 : 0.25);  // relaxed masks too
  std::vector<T> z = w;
  bipq::apply_mask<T>(z, mask);
  std::size_t nnz = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    CHECK(z[i] == w[i] * mask[i]);
    nnz += mask[i] != T(0);
  }
  CHECK(bipq::count_nonzero<T>(mask) == nnz);
  CHECK(bipq::density<T>(mask) == double(nnz) / 1000.0);
  CHECK(bipq::sparsity<T>(mask) == doctest::Approx(1.0 - double(nnz) / 1000.0));
  CHECK(bipq::density<T>(z) == double(nnz) / 1000.0);  // normal weights are never exactly 0
}

TEST_CASE("a top-k mask applied to weights has density k / n") {
  std::mt19937_64 rng(10);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::VectorXf w(5000), mask(5000);
  for (Eigen::Index i = 0; i < w.size(); ++i) w[i] = normal(rng);
  bipq::magnitude_mask(w, 1234, mask);
  bipq::apply_mask(w, mask);
  CHECK(bipq::density(w) == 1234.0 / 5000.0);
  CHECK(bipq::count_nonzero(w) == 1234);
}

TEST_CASE("density_report: per tensor, and overall = total nnz / total size") {
  const std::vector<double> a{1, 0, 0, 0}, b{1, 1}, empty;
  const std::vector<std::span<const double>> xs{a, b, empty};
  const bipq::density_report r = bipq::density<double>(xs);
  CHECK(r.per_tensor == std::vector<double>{0.25, 1.0, 0.0});
  CHECK(r.overall == 0.5);  // 3 of 6, not the mean of the per-tensor densities
  CHECK(bipq::density<double>(std::span<const std::span<const double>>{}).overall == 0.0);
  CHECK(bipq::density<double>(empty) == 0.0);
}

TEST_CASE("apply_mask and density reject bad input with the function and argument named") {
  std::vector<float> w(4, 1.0f), mask(3, 1.0f);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { bipq::apply_mask<float>(w, mask); }).find("apply_mask(): mask has size 3") == 0);
  std::vector<float> nan_mask{1, 0, std::numeric_limits<float>::quiet_NaN(), 1};
  CHECK(message([&] { bipq::apply_mask<float>(w, nan_mask); }).find("apply_mask(): mask contains NaN") == 0);
  CHECK(message([&] { bipq::density<float>(nan_mask); }).find("density(): x contains NaN") == 0);
  const std::vector<std::span<const float>> xs{w, nan_mask};
  CHECK(message([&] { bipq::density<float>(xs); }).find("density(): xs[1] contains NaN") == 0);
}
