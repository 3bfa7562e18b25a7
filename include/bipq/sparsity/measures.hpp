#pragma once
// The usual catalogue of sparsity measures besides the PQ Index, over the magnitudes c_i = |w_i| of a flat tensor
// (d = w.size()), as compared by Hurley & Rickard, "Comparing Measures of Sparsity", IEEE Trans. Inf. Theory 55(10),
// 2009. All but l1_l2_ratio grow with sparsity. An all-zero tensor is treated as a constant one (least sparse),
// as pq_index does; the empty tensor gives the same values as an all-zero one of size 0.
//
//   hoyer                (√d − ‖c‖₁/‖c‖₂) / (√d − 1) ∈ [0, 1]          Hoyer 2004; = √d·I_{1,2}/(√d − 1); 0 for d ≤ 1
//   gini_index           1 − 2 Σ_k (c_(k)/‖c‖₁) (d − k + ½)/d ∈ [0, 1)  c_(1) ≤ … ≤ c_(d) sorted; Hurley & Rickard eq. (15)
//   l0_fraction          #{i : c_i = 0} / d ∈ [0, 1]                    the fraction of zeros (sparsity of a mask)
//   l0_epsilon_fraction  #{i : c_i ≤ ε} / d ∈ [0, 1]                    the fraction of near-zeros
//   kurtosis             Σ c⁴ / (Σ c²)² ∈ [1/d, 1]                      κ₄ of Hurley & Rickard (un-centred)
//   l1_l2_ratio          ‖c‖₁/‖c‖₂ ∈ [1, √d]                            smaller is sparser; √d for all-zero
//
// Every function throws std::invalid_argument("<name>(): w contains NaN or Inf (index i)") on non-finite data.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// Hoyer's measure (Hoyer, "Non-negative Matrix Factorization with Sparseness Constraints", JMLR 2004):
/// (√d − ‖w‖₁/‖w‖₂)/(√d − 1), computed as √d·I_{1,2}(w)/(√d − 1) on pq_index's (1, 2) fast path. 0 for d ≤ 1.
template <flat_tensor W>
double hoyer(const W& w);

/// Gini index of |w| (Hurley & Rickard 2009, eq. (15); the Lorenz-curve Gini coefficient of economics):
/// with c_(1) ≤ … ≤ c_(d) the sorted magnitudes, 1 − 2 Σ_{k=1}^{d} (c_(k)/‖c‖₁)·(d − k + ½)/d. O(d log d).
template <flat_tensor W>
double gini_index(const W& w);

/// Fraction of entries that are exactly zero (ℓ⁰ of Hurley & Rickard, normalised by d). 0 for an empty tensor.
template <flat_tensor W>
double l0_fraction(const W& w);

/// Fraction of entries with |w_i| ≤ ε (ℓ⁰_ε of Hurley & Rickard, normalised by d). Throws if ε < 0 or not finite.
template <flat_tensor W>
double l0_epsilon_fraction(const W& w, double epsilon);

/// κ₄ = Σ|w_i|⁴ / (Σ w_i²)² (Hurley & Rickard 2009, "kurtosis"); 1/d for constant |w| (and all-zero), 1 for one-hot.
template <flat_tensor W>
double kurtosis(const W& w);

/// ‖w‖₁/‖w‖₂ ∈ [1, √d]; smaller is sparser (1 for one-hot, √d for constant |w| and all-zero). 0 for an empty w.
template <flat_tensor W>
double l1_l2_ratio(const W& w);

// ---------------------------------------------------------------------------------------------------------------

template <flat_tensor W>
double hoyer(const W& w) {
  const std::size_t d = as_span(w).size();
  if (d <= 1) {
    detail::require_finite(as_span(w), "hoyer", "w");
    return 0.0;
  }
  double index = 0.0;
  try {
    index = pq_index(w, 1.0, 2.0);
  } catch (const std::invalid_argument&) {  // re-attribute the message to hoyer()
    detail::require_finite(as_span(w), "hoyer", "w");
    throw;
  }
  const double root_d = std::sqrt(static_cast<double>(d));
  return std::clamp(root_d * index / (root_d - 1.0), 0.0, 1.0);
}

template <flat_tensor W>
double gini_index(const W& w) {
  const auto x = as_span(w);
  detail::require_finite(x, "gini_index", "w");
  using A = detail::accumulator_t<scalar_of_t<W>>;
  std::vector<A> c(x.size());
  A max_abs = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    c[i] = std::abs(static_cast<A>(x[i]));
    max_abs = std::max(max_abs, c[i]);
  }
  if (max_abs == 0) return 0.0;
  std::sort(c.begin(), c.end());
  const auto d = static_cast<A>(c.size());
  A l1 = 0, weighted = 0;
  for (std::size_t k = 0; k < c.size(); ++k) {
    const A y = c[k] / max_abs;  // scaled: ‖c‖₁ cannot overflow
    l1 += y;
    weighted += y * (d - static_cast<A>(k + 1) + A(0.5));
  }
  return static_cast<double>(std::max(A(0), 1 - 2 * weighted / (l1 * d)));
}

template <flat_tensor W>
double l0_fraction(const W& w) {
  const auto x = as_span(w);
  detail::require_finite(x, "l0_fraction", "w");
  if (x.empty()) return 0.0;
  std::size_t zeros = 0;
  for (auto v : x) zeros += (v == 0) ? 1u : 0u;
  return static_cast<double>(zeros) / static_cast<double>(x.size());
}

template <flat_tensor W>
double l0_epsilon_fraction(const W& w, double epsilon) {
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
    throw std::invalid_argument("l0_epsilon_fraction(): epsilon must be finite and >= 0");
  const auto x = as_span(w);
  detail::require_finite(x, "l0_epsilon_fraction", "w");
  if (x.empty()) return 0.0;
  using A = detail::accumulator_t<scalar_of_t<W>>;
  std::size_t small = 0;
  for (auto v : x) small += (std::abs(static_cast<A>(v)) <= static_cast<A>(epsilon)) ? 1u : 0u;
  return static_cast<double>(small) / static_cast<double>(x.size());
}

template <flat_tensor W>
double kurtosis(const W& w) {
  const auto x = as_span(w);
  detail::require_finite(x, "kurtosis", "w");
  if (x.empty()) return 0.0;
  using A = detail::accumulator_t<scalar_of_t<W>>;
  A max_abs = 0;
  for (auto v : x) max_abs = std::max(max_abs, std::abs(static_cast<A>(v)));
  if (max_abs == 0) return 1.0 / static_cast<double>(x.size());
  A s2 = 0, s4 = 0;
  for (auto v : x) {
    const A y = std::abs(static_cast<A>(v)) / max_abs;
    const A y2 = y * y;
    s2 += y2;
    s4 += y2 * y2;
  }
  return static_cast<double>(s4 / (s2 * s2));
}

template <flat_tensor W>
double l1_l2_ratio(const W& w) {
  const std::size_t d = as_span(w).size();
  if (d == 0) return 0.0;
  double index = 0.0;
  try {
    index = pq_index(w, 1.0, 2.0);
  } catch (const std::invalid_argument&) {
    detail::require_finite(as_span(w), "l1_l2_ratio", "w");
    throw;
  }
  // I_{1,2} = 1 − d^{−1/2} ‖w‖₁/‖w‖₂.
  return std::sqrt(static_cast<double>(d)) * (1.0 - index);
}

}  // namespace bipq
