// N:M masks checked against the definition: for every (output, spatial position) and every run of M consecutive
// input channels, a stable sort by |w| keeps the first min(N, run length).
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

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/mask/n_m.hpp"

namespace {

template <class T>
std::vector<T> reference_n_m(const std::vector<T>& w, const std::vector<std::size_t>& shape, std::size_t n,
                             std::size_t m) {
  const std::size_t outer = shape[0], channels = shape[1];
  std::size_t inner = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  std::vector<T> mask(w.size(), T(0));
  for (std::size_t o = 0; o < outer; ++o) {
    for (std::size_t s = 0; s < inner; ++s) {
      for (std::size_t c0 = 0; c0 < channels; c0 += m) {
        std::vector<std::size_t> idx;
        for (std::size_t c = c0; c < std::min(channels, c0 + m); ++c) idx.push_back((o * channels + c) * inner + s);
        std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return std::abs(w[a]) > std::abs(w[b]); });
        for (std::size_t r = 0; r < std::min(n, idx.size()); ++r) mask[idx[r]] = T(1);
      }
    }
  }
  return mask;
}

}  // namespace

TEST_CASE_TEMPLATE("n_m_mask keeps the N largest |w| of every M along the input dimension", T, float, double) {
  std::mt19937_64 rng(8);
  const std::vector<std::vector<std::size_t>> shapes{{3, 8}, {4, 10}, {2, 7, 3, 3}, {5, 12, 1, 1}, {3, 4, 5},
                                                     {2, 80}, {2, 70, 2}, {0, 4}, {3, 0}};
  const std::vector<std::pair<std::size_t, std::size_t>> patterns{{2, 4}, {1, 4}, {0, 4}, {4, 4}, {1, 2},
                                                                  {3, 8}, {1, 1}, {5, 40}, {16, 33}};
  for (const auto& shape : shapes) {
    std::size_t size = 1;
    for (auto d : shape) size *= d;
    for (int tied = 0; tied < 2; ++tied) {
      std::vector<T> w(size);
      std::normal_distribution<double> normal(0.0, 1.0);
      for (auto& x : w) x = tied ? T(int(rng() % 5) - 2) : T(normal(rng));  // ±2, ±1, 0: many |w| ties
      for (const auto& pattern : patterns) {
        const std::size_t n = pattern.first, m = pattern.second;  // variables, for CAPTURE
        std::vector<T> mask(size, T(7));
        bipq::n_m_mask<T>(w, shape, n, m, mask);
        CAPTURE(n);
        CAPTURE(m);
        CHECK(mask == reference_n_m<T>(w, shape, n, m));
      }
    }
  }
}

TEST_CASE("n_m_mask 2:4 keeps exactly half of a linear weight, and works on Eigen and in place") {
  std::mt19937_64 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf w(16, 64);  // column-major storage seen flat as [64, 16]: groups along the 16
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  Eigen::MatrixXf mask(16, 64);
  const std::vector<std::size_t> shape{64, 16};
  bipq::n_m_mask(w, shape, 2, 4, mask);
  CHECK(mask.sum() == doctest::Approx(0.5 * double(w.size())));
  std::vector<float> flat(w.data(), w.data() + w.size());
  CHECK(std::equal(flat.begin(), flat.end(), w.data()));
  const auto expected = reference_n_m<float>(flat, shape, 2, 4);
  CHECK(std::equal(expected.begin(), expected.end(), mask.data()));
  bipq::n_m_mask<float>(flat, shape, 2, 4, flat);
  CHECK(flat == expected);
}

TEST_CASE("n_m_mask rejects bad input with the function and argument named") {
  std::vector<float> w(16, 1.0f), mask(16), short_mask(15);
  const std::vector<std::size_t> shape{4, 4}, wrong{4, 5}, rank1{16};
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { bipq::n_m_mask<float>(w, shape, 3, 2, mask); }).find("n_m_mask(): n must be <= m") == 0);
  CHECK(message([&] { bipq::n_m_mask<float>(w, shape, 0, 0, mask); }).find("n_m_mask(): m must be >= 1") == 0);
  CHECK(message([&] { bipq::n_m_mask<float>(w, wrong, 2, 4, mask); }).find("n_m_mask(): shape") == 0);
  CHECK(message([&] { bipq::n_m_mask<float>(w, rank1, 2, 4, mask); }).find("n_m_mask(): shape must have at least 2") == 0);
  CHECK(message([&] { bipq::n_m_mask<float>(w, shape, 2, 4, short_mask); }).find("n_m_mask(): mask") == 0);
  w[3] = -std::numeric_limits<float>::infinity();
  CHECK(message([&] { bipq::n_m_mask<float>(w, shape, 2, 4, mask); }).find("n_m_mask(): w contains NaN or Inf (index 3)") == 0);
}
