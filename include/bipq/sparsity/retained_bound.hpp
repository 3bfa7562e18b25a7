#pragma once
// The PQ Index's lower bound on the number of weights worth keeping: Theorem 2 of Diao et al., "Pruning Deep Neural
// Networks from a Sparsity Perspective", ICLR 2023, used by their Algorithm 1 (SAP) to decide how much to prune.
//
// Let M_r be the indices of the r largest |w_i| and η_r the smallest η ≥ 0 with
//   Σ_{i∉M_r} |w_i|^p ≤ η Σ_{i∈M_r} |w_i|^p          (so η_r = Σ_{i∉M_r}|w_i|^p / Σ_{i∈M_r}|w_i|^p).
// Then, for 0 < p < q and I = I_{p,q}(w),
//   r ≥ d (1 + η_r)^{−q/(q−p)} [1 − I]^{qp/(q−p)}.
// SAP reads it the other way: given a tolerated η_r (default 0), r_t = ⌈bound⌉ weights must be retained.
// The bound is tight: w with exactly r equal non-zero entries has η_r = 0 and bound = r.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// d (1 + η_r)^{−q/(q−p)} [1 − pq]^{qp/(q−p)}, the real-valued right-hand side of Theorem 2 (in [0, d]).
/// `pq` is I_{p,q}(w) of a d-dimensional w. Throws std::invalid_argument naming the argument if p ≤ 0, q ≤ p,
/// pq ∉ [0, 1], or eta_r < 0 or NaN (eta_r = +∞ is allowed and gives 0).
double pq_retained_bound(std::size_t d, double pq, double p, double q, double eta_r);

/// η_r of `w` from its definition: Σ_{i∉M_r}|w_i|^p / Σ_{i∈M_r}|w_i|^p, M_r the r largest |w_i| (which of tied
/// entries are taken does not change the sums). 0 if the r largest are all zero (then so is everything).
/// Throws std::invalid_argument if r == 0 or r > w.size(), p ≤ 0, or w holds NaN or Inf. O(d) selection.
template <flat_tensor W>
double pq_retained_eta(const W& w, std::size_t r, double p);

// ---------------------------------------------------------------------------------------------------------------

inline double pq_retained_bound(std::size_t d, double pq, double p, double q, double eta_r) {
  detail::validate_pq(p, q, "pq_retained_bound");
  if (!(pq >= 0.0 && pq <= 1.0)) throw std::invalid_argument("pq_retained_bound(): pq must be in [0, 1]");
  if (!(eta_r >= 0.0)) throw std::invalid_argument("pq_retained_bound(): eta_r must be >= 0");
  if (d == 0 || pq == 1.0 || std::isinf(eta_r)) return 0.0;
  // In logs, so that d^{...} and the powers neither overflow nor underflow.
  const double log_bound = std::log(static_cast<double>(d)) - q / (q - p) * std::log1p(eta_r) +
                           q * p / (q - p) * std::log1p(-pq);
  return std::min(static_cast<double>(d), std::exp(log_bound));
}

template <flat_tensor W>
double pq_retained_eta(const W& w, std::size_t r, double p) {
  const auto x = as_span(w);
  if (!(p > 0.0) || !std::isfinite(p)) throw std::invalid_argument("pq_retained_eta(): p must be finite and > 0");
  if (r == 0 || r > x.size())
    throw std::invalid_argument("pq_retained_eta(): r must be in [1, w.size()] (w.size() = " +
                                std::to_string(x.size()) + ")");
  detail::require_finite(std::span<const scalar_of_t<W>>(x), "pq_retained_eta", "w");
  using A = detail::accumulator_t<scalar_of_t<W>>;
  std::vector<A> a(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) a[i] = std::abs(static_cast<A>(x[i]));
  std::nth_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(r - 1), a.end(), std::greater<A>());
  const A max_abs = *std::max_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(r));
  if (max_abs == 0) return 0.0;
  // Scaled by max|w| so that the powers stay in range (the ratio does not change).
  A kept = 0, dropped = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const A y = detail::power_term(a[i] / max_abs, p);
    (i < r ? kept : dropped) += y;
  }
  return static_cast<double>(dropped / kept);
}

}  // namespace bipq
