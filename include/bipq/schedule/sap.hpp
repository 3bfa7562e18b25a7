#pragma once
// The pruning rule of Sparsity-informed Adaptive Pruning (Diao et al., ICLR 2023, "Pruning Deep Neural Networks
// from a Sparsity Perspective", Algorithm 1). With d surviving weights in a scope and their PQ Index I = I_{p,q}:
//   r = ⌈d (1 + η_r)^{−q/(q−p)} [1 − I]^{qp/(q−p)}⌉      (Theorem 2: a lower bound on the weights worth keeping)
//   c = ⌊d · min(γ (1 − r/d), β)⌋                        (the number pruned this round)
// A sparser (more compressible) scope has a larger I, a smaller r, and so loses more weights; β caps a round.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "bipq/sparsity/retained_bound.hpp"

namespace bipq {

struct sap_rule {
  double p = 0.5;      ///< PQ Index p, 0 < p < q
  double q = 1.0;      ///< PQ Index q
  double eta_r = 0.0;  ///< η_r ≥ 0: tolerated ratio of pruned to kept p-mass (larger: keep fewer)
  double gamma = 1.0;  ///< γ > 0: scales the pruning ratio 1 − r/d
  double beta = 0.9;   ///< β ∈ (0, 1]: at most this fraction of a scope is pruned in one round

  /// Throws std::invalid_argument naming the field ("sap_rule: 'q' must be finite and > p").
  void validate() const {
    if (const char* e = error()) throw std::invalid_argument(std::string("sap_rule: ") + e);
  }

  /// The first invalid field and why ("'q' must be finite and > p"), or null if every field is valid.
  const char* error() const noexcept {
    if (!(p > 0.0) || !std::isfinite(p)) return "'p' must be finite and > 0";
    if (!(q > p) || !std::isfinite(q)) return "'q' must be finite and > p";
    if (!(eta_r >= 0.0) || !std::isfinite(eta_r)) return "'eta_r' must be finite and >= 0";
    if (!(gamma > 0.0) || !std::isfinite(gamma)) return "'gamma' must be finite and > 0";
    if (!(beta > 0.0 && beta <= 1.0)) return "'beta' must be in (0, 1]";
    return nullptr;
  }
};

namespace detail {

/// The checks of sap_retained_count and sap_prune_count, made for every d (d = 0 included), naming `func`.
inline void check_sap_count(double pq, const sap_rule& rule, const char* func) {
  if (const char* e = rule.error()) throw std::invalid_argument(std::string(func) + "(): rule: " + e);
  if (!(pq >= 0.0 && pq <= 1.0))
    throw std::invalid_argument(std::string(func) + "(): pq must be in [0, 1] (pq = " + std::to_string(pq) + ")");
}

}  // namespace detail

/// r, the retained count of Algorithm 1 for d survivors with PQ Index `pq`, clipped to [0, d]. Throws
/// std::invalid_argument if pq ∉ [0, 1] or the rule is invalid (also for d = 0).
inline std::size_t sap_retained_count(std::size_t d, double pq, const sap_rule& rule) {
  detail::check_sap_count(pq, rule, "sap_retained_count");
  if (d == 0) return 0;
  const double r = std::ceil(pq_retained_bound(d, pq, rule.p, rule.q, rule.eta_r) - 1e-9);
  return static_cast<std::size_t>(std::clamp(r, 0.0, static_cast<double>(d)));
}

/// c, the number of weights Algorithm 1 prunes from a scope of d survivors with PQ Index `pq`. Throws
/// std::invalid_argument if pq ∉ [0, 1] or the rule is invalid (also for d = 0).
inline std::size_t sap_prune_count(std::size_t d, double pq, const sap_rule& rule) {
  detail::check_sap_count(pq, rule, "sap_prune_count");
  if (d == 0) return 0;
  const double r = static_cast<double>(sap_retained_count(d, pq, rule));
  const double dd = static_cast<double>(d);
  const double ratio = std::min(rule.gamma * (1.0 - r / dd), rule.beta);
  return std::min(d, static_cast<std::size_t>(std::floor(dd * ratio + 1e-9)));
}

}  // namespace bipq
