// pq_index for general (p, q) in one pass with a running scale, checked against the two-pass definition (max|w|
// first, then the sums of (|w|/max)^p and (|w|/max)^q, term by term) on random data, on data whose maximum grows
// block after block (the most rescaling), on tiny (1e-300) and huge (1e300) magnitudes, with masks and across tensors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "pq_index_accuracy.hpp"

namespace {

/// The two-pass definition: max|w| over the counted entries, then Σ(|w|/max)^e with std::pow, in long double.
template <class T>
double two_pass(const std::vector<T>& w, const std::vector<T>* mask, double p, double q) {
  long double max_abs = 0;
  std::size_t d = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (mask && (*mask)[i] == T(0)) continue;
    ++d;
    max_abs = std::max(max_abs, std::fabs(static_cast<long double>(w[i])));
  }
  if (max_abs == 0) return 0.0;
  long double sp = 0, sq = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (mask && (*mask)[i] == T(0)) continue;
    const long double y = std::fabs(static_cast<long double>(w[i])) / max_abs;
    sp += std::pow(y, static_cast<long double>(p));
    sq += std::pow(y, static_cast<long double>(q));
  }
  const long double ratio = std::pow(static_cast<long double>(d), 1.0L / q - 1.0L / p) *
                            std::pow(sp, 1.0L / p) / std::pow(sq, 1.0L / q);
  return static_cast<double>(1 - ratio);
}

template <class T>
std::vector<T> random_weights(std::size_t n, bipq::detail::rng& g, double scale) {
  std::vector<T> w(n);
  for (auto& x : w) x = static_cast<T>(scale * (g.uniform() < 0.1 ? 0.0 : g.normal()));
  return w;
}

// Exponent pairs that take the general path: integer, half-integer and arbitrary exponents (for float data, the pairs
// with both exponents in {½, 1, …, 4} take the unscaled float pass instead; `near` allows for its float roots).
const std::pair<double, double> general_pairs[] = {{1.0, 3.0}, {0.5, 1.5}, {0.3, 0.7}, {2.0, 8.0},
                                                   {1.5, 2.5}, {0.5, 2.0}, {1.0, 4.0}, {0.25, 4.5}};

/// A few ulp of the index: the sums agree to a few ulp each, and I = 1 − (a function of their ratio).
constexpr double tolerance = bipq_test::pq_rounding;

/// |got − expected| within pq_index's documented accuracy for data of type T (float data with exponents in
/// {½, 1, …, 4} take the float pass, whose square roots are float roots).
template <class T>
bool near(double got, double expected, double p, double q) {
  return std::fabs(got - expected) <= bipq_test::pq_accuracy<T>(expected, p, q);
}

}  // namespace

TEST_CASE_TEMPLATE("one pass with a running scale equals the two-pass definition", T, float, double) {
  bipq::detail::rng g(23);
  for (std::size_t n : {1u, 5u, 17u, 1000u, 1023u, 1024u, 1025u, 4096u + 13u, 100000u}) {
    const auto w = random_weights<T>(n, g, 1.0);
    for (const auto& pair : general_pairs) {
      const double p = pair.first, q = pair.second;
      CAPTURE(n);
      CAPTURE(p);
      CAPTURE(q);
      CHECK(near<T>(bipq::pq_index(w, p, q), two_pass<T>(w, nullptr, p, q), p, q));
    }
  }
}

TEST_CASE_TEMPLATE("a maximum that grows block after block: every block rescales the sums", T, float, double) {
  bipq::detail::rng g(29);
  auto w = random_weights<T>(50000, g, 1.0);
  std::sort(w.begin(), w.end(), [](T a, T b) { return std::fabs(a) < std::fabs(b); });
  auto reversed = w;
  std::reverse(reversed.begin(), reversed.end());
  for (const auto& pair : general_pairs) {
    const double p = pair.first, q = pair.second;
    const double expected = two_pass<T>(w, nullptr, p, q);
    CHECK(near<T>(bipq::pq_index(w, p, q), expected, p, q));
    CHECK(near<T>(bipq::pq_index(reversed, p, q), expected, p, q));
  }
}

TEST_CASE("tiny (1e-300) and huge (1e300) magnitudes: no overflow or underflow in one pass") {
  bipq::detail::rng g(31);
  const auto base = random_weights<double>(20000, g, 1.0);
  for (double scale : {1e300, 1e-300, 1e-150, 1e150}) {
    std::vector<double> w(base.size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = base[i] * scale;
    for (const auto& pair : general_pairs) {
      const double p = pair.first, q = pair.second;
      CAPTURE(scale);
      CAPTURE(p);
      const double i = bipq::pq_index(w, p, q);
      CHECK(std::isfinite(i));
      CHECK(i == doctest::Approx(two_pass<typename std::remove_cvref_t<decltype(w)>::value_type>(w, nullptr, p, q)).epsilon(tolerance).scale(1.0));
      CHECK(i == doctest::Approx(two_pass<typename std::remove_cvref_t<decltype(base)>::value_type>(base, nullptr, p, q)).epsilon(1e-12).scale(1.0));  // scale invariance
    }
  }
  // Huge entries arriving after many small ones: the small ones' sums are rescaled towards 0 without harm.
  std::vector<double> late(30000, 1e-300);
  late.back() = 1e300;
  CHECK(bipq::pq_index(late, 1.0, 3.0) == doctest::Approx(bipq::pq_index_upper_bound(late.size(), 1.0, 3.0)));
  std::vector<float> float_max(3000, std::numeric_limits<float>::max());
  CHECK(std::fabs(bipq::pq_index(float_max, 2.0, 8.0)) <= 1e-12);
}

TEST_CASE_TEMPLATE("masked and global: one pass over the survivors of every tensor", T, float, double) {
  bipq::detail::rng g(37);
  const auto a = random_weights<T>(7001, g, 1.0), b = random_weights<T>(3000, g, 100.0);
  std::vector<T> mask_a(a.size()), mask_b(b.size());
  for (auto& m : mask_a) m = g.uniform() < 0.3 ? T(0) : T(1);
  for (auto& m : mask_b) m = g.uniform() < 0.5 ? T(0) : T(0.5);
  std::vector<T> both(a), both_mask(mask_a);
  both.insert(both.end(), b.begin(), b.end());
  both_mask.insert(both_mask.end(), mask_b.begin(), mask_b.end());
  const std::vector<std::vector<T>> ws{a, b}, masks{mask_a, mask_b};
  for (const auto& pair : general_pairs) {
    const double p = pair.first, q = pair.second;
    CHECK(near<T>(bipq::pq_index(a, mask_a, p, q), two_pass(a, &mask_a, p, q), p, q));
    // The larger tensor last: the scale grows between tensors.
    CHECK(near<T>(bipq::pq_index_global(ws, p, q), two_pass<T>(both, nullptr, p, q), p, q));
    CHECK(near<T>(bipq::pq_index_global(ws, masks, p, q), two_pass(both, &both_mask, p, q), p, q));
  }
}

TEST_CASE("the one-pass sums: maximum and count, and the cases it leaves to the two passes") {
  bipq::detail::rng g(41);
  auto w = random_weights<float>(5000, g, 1.0);
  double max_abs = 0;
  for (float x : w) max_abs = std::max(max_abs, std::fabs(double(x)));
  bipq::detail::streaming_sums<float> stream(1.0, 3.0);
  stream.add<void>(std::span<const float>(w), nullptr);
  CHECK(stream.finite());
  const auto s = stream.result();
  CHECK(s.max_abs == max_abs);
  CHECK(s.count == w.size());
  // A non-finite weight: the one pass declines, and pq_index reports the entry.
  w[4321] = std::numeric_limits<float>::infinity();
  bipq::detail::streaming_sums<float> bad(1.0, 3.0);
  bad.add<void>(std::span<const float>(w), nullptr);
  CHECK_FALSE(bad.finite());
  std::string message;
  try {
    (void)bipq::pq_index(w, 1.0, 3.0);
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  CHECK(message == "pq_index(): w contains NaN or Inf (index 4321)");
  // ... unless the mask drops it: the two passes skip masked-out entries.
  std::vector<float> mask(w.size(), 1.0f);
  mask[4321] = 0.0f;
  auto kept = w;
  kept[4321] = 0.0f;
  std::vector<float> kept_mask = mask;
  CHECK(bipq::pq_index(w, mask, 1.0, 3.0) ==
        doctest::Approx(two_pass(kept, &kept_mask, 1.0, 3.0)).epsilon(tolerance).scale(1.0));
  // A subnormal maximum (its reciprocal overflows): the two passes divide instead.
  std::vector<double> tiny(3000, 0.0);
  tiny[1234] = std::numeric_limits<double>::denorm_min();
  tiny[17] = 2 * std::numeric_limits<double>::denorm_min();
  CHECK(bipq::pq_index(tiny, 1.0, 3.0) == doctest::Approx(two_pass<typename std::remove_cvref_t<decltype(tiny)>::value_type>(tiny, nullptr, 1.0, 3.0)).epsilon(1e-12).scale(1.0));
}
