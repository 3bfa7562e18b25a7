// pq_index of float data for exponents in {½, 1, 1½, …, 4} (one unscaled pass; square roots are the float roots of
// the float weights, products and sums in double), checked against the two-pass definition in long double on data
// with zeros, tiny entries next to large ones, a huge dynamic range, subnormal floats, all-equal data and masks, to
// the documented accuracy: exact to rounding for integer exponents, within the float roots' 2^-24 otherwise.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "pq_index_accuracy.hpp"

namespace {

const std::pair<double, double> pairs[] = {{0.5, 1.5}, {1.5, 2.5}, {0.5, 2.5}, {1.0, 3.0}, {2.5, 4.0}, {0.5, 4.0}};

constexpr double tolerance = 1e-13;

/// The float pass's accuracy (its exponents are all in {½, 1, …, 4}).
double float_pass_bound(double index, double p, double q) { return bipq_test::pq_accuracy<float>(index, p, q); }

void check_all_pairs(const std::vector<float>& w, const std::vector<float>* mask = nullptr) {
  bipq_test::check_pairs(pairs, w, mask);
}

}  // namespace

TEST_CASE("float pass equals the definition on random data with zeros, at every length around the vector width") {
  bipq::detail::rng g(43);
  for (std::size_t n : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 1000u, 65537u}) {
    CAPTURE(n);
    check_all_pairs(bipq_test::normal_floats(n, g, 0.3));
  }
}

TEST_CASE("float pass: entries of 1e-30 next to 1, a dynamic range of 1e-38 to 1e38, all-equal and all-zero data") {
  bipq::detail::rng g(47);
  auto w = bipq_test::normal_floats(20000, g, 0.2);
  for (std::size_t i = 0; i < w.size(); i += 3) w[i] *= 1e-30f;  // far below float's normal range once scaled by max
  check_all_pairs(w);
  std::vector<float> range(20000);
  for (std::size_t i = 0; i < range.size(); ++i)
    range[i] = std::pow(10.0f, -38.0f + 76.0f * static_cast<float>(i % 997) / 996.0f);  // 1e-38 … 1e38
  check_all_pairs(range);
  const std::vector<float> equal(10001, 0.37f);
  for (const auto& [p, q] : pairs) CHECK(std::fabs(bipq::pq_index(equal, p, q)) <= float_pass_bound(0, p, q));  // I = 0
  const std::vector<float> zeros(1000, 0.0f);
  for (const auto& [p, q] : pairs) CHECK(bipq::pq_index(zeros, p, q) == 0.0);
}

TEST_CASE("float pass: subnormal floats are left to the scaled passes, and still give the definition") {
  bipq::detail::rng g(53);
  auto w = bipq_test::normal_floats(5000, g, 0.1);
  w[77] = std::numeric_limits<float>::denorm_min();
  w[2001] = -3 * std::numeric_limits<float>::denorm_min();
  check_all_pairs(w);
  std::vector<float> only_subnormal(3000, 0.0f);
  for (std::size_t i = 0; i < only_subnormal.size(); i += 7)
    only_subnormal[i] = static_cast<float>(1 + i % 5) * std::numeric_limits<float>::denorm_min();
  check_all_pairs(only_subnormal);
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
  // Subnormal floats need no other pass: the float root of a subnormal is correctly rounded too.
  bipq::detail::power_sums<double> s;
  REQUIRE(bipq::detail::float_half_pass<void>(1, 3, std::span<const float>(w), nullptr, s));
  long double sp = 0, sq = 0;
  for (float x : w) {
    sp += std::sqrt(std::fabs(static_cast<long double>(x)));
    sq += std::pow(std::fabs(static_cast<long double>(x)), 1.5L);
  }
  CHECK(s.count == w.size());
  CHECK(std::fabs(s.sum_p - static_cast<double>(sp)) <= 0x1p-24 * static_cast<double>(sp));
  CHECK(std::fabs(s.sum_q - static_cast<double>(sq)) <= 0x1p-24 * static_cast<double>(sq));
  // Non-finite data: the pass declines, and pq_index reports the entry.
  w[10] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(bipq::detail::float_half_pass<void>(1, 3, std::span<const float>(w), nullptr, s));
  CHECK_THROWS_WITH_AS((void)bipq::pq_index(w, 0.5, 1.5), "pq_index(): w contains NaN or Inf (index 10)",
                       std::invalid_argument);
#endif
}

TEST_CASE("float pass, masked: the survivors only; non-finite masked-out weights and masks are handled") {
  bipq::detail::rng g(59);
  auto w = bipq_test::normal_floats(30011, g, 0.1);
  std::vector<float> mask(w.size());
  for (auto& m : mask) m = g.uniform() < 0.4 ? 0.0f : (g.uniform() < 0.5 ? 1.0f : 0.25f);
  check_all_pairs(w, &mask);
  for (std::size_t i = 0; i < w.size(); i += 5) w[i] *= 1e-30f;
  check_all_pairs(w, &mask);
  // A NaN where the mask is 0: ignored.
  auto dropped = w;
  dropped[100] = std::numeric_limits<float>::quiet_NaN();
  mask[100] = 0.0f;
  check_all_pairs(w, &mask);
  for (const auto& [p, q] : pairs) {  // the scaled passes take it (double roots): equal within the float pass's bound
    const double exact = bipq::pq_index(dropped, mask, p, q);
    CHECK(std::fabs(exact - bipq::pq_index(w, mask, p, q)) <= float_pass_bound(exact, p, q));
  }
  // A NaN survivor or mask entry: reported.
  dropped[100] = 1.0f;
  mask[100] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS((void)bipq::pq_index(dropped, mask, 0.5, 1.5), std::invalid_argument);
  mask[100] = 1.0f;
  dropped[100] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS((void)bipq::pq_index(dropped, mask, 0.5, 1.5), std::invalid_argument);
}
