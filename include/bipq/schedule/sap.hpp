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

#include "bipq/sparsity/retained_bound.hpp"

namespace bipq {

struct sap_rule {
  double p = 0.5;      ///< PQ Index p, 0 < p < q
  double q = 1.0;      ///< PQ Index q
  double eta_r = 0.0;  ///< η_r ≥ 0: tolerated ratio of pruned to kept p-mass (larger: keep fewer)
  double gamma = 1.0;  ///< γ > 0: scales the pruning ratio 1 − r/d
  double beta = 0.9;   ///< β ∈ (0, 1]: at most this fraction of a scope is pruned in one round

  /// Throws std::invalid_argument naming the field.
  void validate() const {
    if (!(p > 0.0)) throw std::invalid_argument("sap_rule: 'p' must be > 0");
    if (!(q > p)) throw std::invalid_argument("sap_rule: 'q' must be > p");
    if (!(eta_r >= 0.0) || !std::isfinite(eta_r)) throw std::invalid_argument("sap_rule: 'eta_r' must be >= 0");
    if (!(gamma > 0.0) || !std::isfinite(gamma)) throw std::invalid_argument("sap_rule: 'gamma' must be > 0");
    if (!(beta > 0.0 && beta <= 1.0)) throw std::invalid_argument("sap_rule: 'beta' must be in (0, 1]");
  }
};

/// r, the retained count of Algorithm 1 for d survivors with PQ Index `pq`, clipped to [0, d].
inline std::size_t sap_retained_count(std::size_t d, double pq, const sap_rule& rule) {
  rule.validate();
  if (d == 0) return 0;
  const double r = std::ceil(pq_retained_bound(d, pq, rule.p, rule.q, rule.eta_r) - 1e-9);
  return static_cast<std::size_t>(std::clamp(r, 0.0, static_cast<double>(d)));
}

/// c, the number of weights Algorithm 1 prunes from a scope of d survivors with PQ Index `pq`.
inline std::size_t sap_prune_count(std::size_t d, double pq, const sap_rule& rule) {
  if (d == 0) return 0;
  const double r = static_cast<double>(sap_retained_count(d, pq, rule));
  const double dd = static_cast<double>(d);
  const double ratio = std::min(rule.gamma * (1.0 - r / dd), rule.beta);
  return std::min(d, static_cast<std::size_t>(std::floor(dd * ratio + 1e-9)));
}

}  // namespace bipq
