#pragma once
// The accuracy pq_index documents (docs/measures.md, "Numerics and speed"), as the tolerance of the tests that
// compare it with the definition, and the definition itself in long double.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace bipq_test {

/// I_{p,q} by its definition over the entries where mask != 0 (all if no mask), in long double with std::pow.
inline double pq_definition(const std::vector<float>& w, const std::vector<float>* mask, double p, double q) {
  long double max_abs = 0;
  std::size_t d = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (mask && (*mask)[i] == 0.0f) continue;
    ++d;
    max_abs = std::max(max_abs, std::fabs(static_cast<long double>(w[i])));
  }
  if (max_abs == 0) return 0.0;
  long double sp = 0, sq = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (mask && (*mask)[i] == 0.0f) continue;
    const long double y = std::fabs(static_cast<long double>(w[i])) / max_abs;
    sp += std::pow(y, static_cast<long double>(p));
    sq += std::pow(y, static_cast<long double>(q));
  }
  return static_cast<double>(1 - std::pow(static_cast<long double>(d), 1.0L / q - 1.0L / p) *
                                     std::pow(sp, 1.0L / p) / std::pow(sq, 1.0L / q));
}

/// Rounding of the double sums and of the log-space combination: a few ulp of the index.
inline constexpr double pq_rounding = 1e-13;

/// Whether exponent e has a shortcut in the streaming pass (products and square roots): an integer or an integer
/// plus ½ up to 64.
inline bool has_power_shortcut(double e) {
  return (e == std::floor(e) || e - std::floor(e) == 0.5) && e <= 64.0;
}

/// Relative error per term of the float data's log2/exp2 powers (log_exp_power): 2^-28 + e·2^-32.
inline double log_exp_term_error(double e) { return 0x1p-28 + e * 0x1p-32; }

/// |pq_index(w, p, q) − I| allowed for data of type T with index I. A per-term relative error ε_e of the sum S_e
/// moves S_e by at most ε_e relatively, S_e^{1/e} by ε_e/e, so I = 1 − R moves by at most R·(ε_p/p + ε_q/q).
/// Float data take float square roots — relative error ≤ 2^-24, the data's own precision — on the (½, 1) path and
/// on the float pass (both exponents in {½, 1, …, 4}), ε = 2^-24 for an exponent that needs a root; and for a pair
/// with an exponent that has no shortcut (e.g. (0.7, 1.3)) both terms by log2/exp2 polynomials, ε_e =
/// log_exp_term_error(e). Every other case is exact to rounding.
template <class T>
double pq_accuracy(double index, double p, double q) {
  if (!std::is_same_v<T, float>) return pq_rounding;
  auto half_step = [](double e) { return 2 * e == std::floor(2 * e) && 2 * e >= 1 && 2 * e <= 8; };
  const bool float_roots = (p == 0.5 && q == 1.0) || (half_step(p) && half_step(q));
  if (float_roots) {
    auto root_error = [](double e) { return e != std::floor(e) ? 0x1p-24 : 0.0; };
    return (1 - index) * (root_error(p) / p + root_error(q) / q) * 1.001 + pq_rounding;
  }
  if (!has_power_shortcut(p) || !has_power_shortcut(q))
    return (1 - index) * (log_exp_term_error(p) / p + log_exp_term_error(q) / q) * 1.001 + pq_rounding;
  return pq_rounding;
}

/// n normal floats, each 0 with probability zero_fraction.
inline std::vector<float> normal_floats(std::size_t n, bipq::detail::rng& g, double zero_fraction) {
  std::vector<float> w(n);
  for (auto& x : w) x = g.uniform() < zero_fraction ? 0.0f : static_cast<float>(g.normal());
  return w;
}

/// pq_index(w[, mask], p, q) against pq_definition within pq_accuracy<float>, for every pair of `pairs`.
inline void check_pairs(std::span<const std::pair<double, double>> pairs, const std::vector<float>& w,
                        const std::vector<float>* mask = nullptr) {
  for (const auto& pair : pairs) {
    const double p = pair.first, q = pair.second;  // named variables: CAPTURE cannot take structured bindings (Clang)
    CAPTURE(p);
    CAPTURE(q);
    const double expected = pq_definition(w, mask, p, q);
    const double got = mask ? bipq::pq_index(w, *mask, p, q) : bipq::pq_index(w, p, q);
    CAPTURE(expected);
    CAPTURE(got);
    CHECK(std::fabs(got - expected) <= pq_accuracy<float>(expected, p, q));
  }
}

}  // namespace bipq_test
