// Group top-k checked against a direct computation over multi-indices: group norms from their definition, the
// k groups of largest norm by a stable sort (ties to the lower group index), whole groups kept.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/mask/group.hpp"

namespace {

using bipq::group_axis;
using bipq::group_norm;

/// Group of the flat index i of a row-major shape: its index along dimension 0 (output) or 1 (input).
std::size_t group_of(std::size_t i, const std::vector<std::size_t>& shape, group_axis axis) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return axis == group_axis::output ? idx[0] : idx[1];
}

template <class T>
std::vector<T> reference_group_mask(const std::vector<T>& w, const std::vector<std::size_t>& shape, std::size_t k,
                                    group_axis axis, group_norm norm) {
  const std::size_t groups = axis == group_axis::output ? shape[0] : shape[1];
  std::vector<double> value(groups, 0.0);
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double x = double(w[i]);
    value[group_of(i, shape, axis)] += norm == group_norm::l1 ? std::abs(x) : x * x;
  }
  std::vector<std::size_t> order(groups);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return value[a] > value[b]; });
  std::vector<bool> kept(groups, false);
  for (std::size_t r = 0; r < k; ++r) kept[order[r]] = true;
  std::vector<T> mask(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) mask[i] = kept[group_of(i, shape, axis)] ? T(1) : T(0);
  return mask;
}

}  // namespace

TEST_CASE_TEMPLATE("group_top_k_mask keeps the k groups of largest norm", T, float, double) {
  std::mt19937_64 rng(4);
  const std::vector<std::vector<std::size_t>> shapes{{7}, {6, 5}, {8, 3, 3, 3}, {4, 6, 2}, {5, 1, 1, 1}, {3, 4, 0, 2}};
  for (const auto& shape : shapes) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    for (int tied = 0; tied < 2; ++tied) {
      std::vector<T> w(n);
      // Tied data: entries in {−1, 0, 1}, so equal group norms are common.
      std::normal_distribution<double> normal(0.0, 1.0);
      for (auto& x : w) x = tied ? T(int(rng() % 3) - 1) : T(normal(rng));
      for (auto axis : {group_axis::output, group_axis::input}) {
        if (axis == group_axis::input && shape.size() < 2) continue;
        const std::size_t groups = axis == group_axis::output ? shape[0] : shape[1];
        for (auto norm : {group_norm::l1, group_norm::l2}) {
          for (std::size_t k = 0; k <= groups; ++k) {
            std::vector<T> mask(n, T(3));
            bipq::group_top_k_mask<T>(w, shape, k, mask, axis, norm);
            CAPTURE(k);
            CHECK(mask == reference_group_mask<T>(w, shape, k, axis, norm));
          }
        }
      }
    }
  }
}

TEST_CASE("group_norms match their definition and do not overflow") {
  const std::vector<std::size_t> shape{2, 3};
  const std::vector<double> w{3, -4, 0, 1, 2, -2};
  const auto l2 = bipq::group_norms<double>(w, shape, group_axis::output, group_norm::l2);
  CHECK(l2[0] == doctest::Approx(5.0));
  CHECK(l2[1] == doctest::Approx(3.0));
  const auto l1 = bipq::group_norms<double>(w, shape, group_axis::input, group_norm::l1);
  CHECK(l1 == std::vector<double>{4, 6, 2});
  // Scaled accumulation: squares of 1e200 or 1e-200 would overflow / underflow.
  for (double scale : {1e200, 1e-200}) {
    std::vector<double> s = w;
    for (auto& x : s) x *= scale;
    const auto n = bipq::group_norms<double>(s, shape, group_axis::output, group_norm::l2);
    CHECK(n[0] / scale == doctest::Approx(5.0));
    CHECK(n[1] / scale == doctest::Approx(3.0));
  }
}

TEST_CASE("group_top_k_mask ranks groups whose norms exceed double's range by their true norms") {
  // Rows as groups: L1 norms 4e308, 1.7e308, 2e308 and L2 norms 2e308, 1.7e308, 1.41e308 all overflow or come
  // close; the ranking must still follow the true norms.
  const std::vector<std::size_t> shape{3, 4};
  const std::vector<double> w{1e308, 1e308, -1e308, 1e308, 1.7e308, 0, 0, 0, 1e308, -1e308, 0, 0};
  std::vector<double> mask(w.size());
  auto kept_rows = [&] {
    std::vector<int> rows;
    for (std::size_t r = 0; r < 3; ++r) {
      if (mask[4 * r] == 1.0) rows.push_back(int(r));
      for (std::size_t c = 1; c < 4; ++c) CHECK(mask[4 * r + c] == mask[4 * r]);
    }
    return rows;
  };
  bipq::group_top_k_mask<double>(w, shape, 2, mask, group_axis::output, group_norm::l1);
  CHECK(kept_rows() == std::vector<int>{0, 2});
  bipq::group_top_k_mask<double>(w, shape, 2, mask, group_axis::output, group_norm::l2);
  CHECK(kept_rows() == std::vector<int>{0, 1});
  const auto l2 = bipq::group_norms<double>(w, shape, group_axis::output, group_norm::l2);
  CHECK(std::isinf(l2[0]));  // 2e308 is beyond double's range: reported as +Inf, ranked correctly above
  CHECK(l2[1] == doctest::Approx(1.7e308));
}

TEST_CASE("group_top_k_mask rejects bad input with the function and argument named") {
  std::vector<float> w(12, 1.0f), mask(12), short_mask(11);
  const std::vector<std::size_t> shape{3, 4}, wrong{3, 5}, rank1{12};
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { bipq::group_top_k_mask<float>(w, shape, 4, mask); }).find("group_top_k_mask(): k_groups") == 0);
  CHECK(message([&] { bipq::group_top_k_mask<float>(w, wrong, 1, mask); }).find("group_top_k_mask(): shape") == 0);
  CHECK(message([&] { bipq::group_top_k_mask<float>(w, shape, 1, short_mask); }).find("group_top_k_mask(): mask") == 0);
  CHECK(message([&] {
          bipq::group_top_k_mask<float>(w, rank1, 1, mask, group_axis::input);
        }).find("group_top_k_mask(): shape must have at least 2") == 0);
  w[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(message([&] { bipq::group_top_k_mask<float>(w, shape, 1, mask); }).find("group_top_k_mask(): w contains NaN") == 0);
}
