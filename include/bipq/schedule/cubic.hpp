#pragma once
// Cubic sparsity schedule of gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune", eq. 1):
//   s_t = s_f + (s_i − s_f) (1 − (t − t₀)/(n Δt))³   for t₀ ≤ t ≤ t₀ + nΔt,
// s_i before t₀ and s_f after. Prunes fast while there are many redundant weights and slowly near the end.

#include <cstddef>
#include <stdexcept>

namespace bipq {

struct cubic_schedule {
  double initial_sparsity = 0.0;  ///< s_i in [0, 1)
  double final_sparsity = 0.95;   ///< s_f in [s_i, 1)
  std::size_t begin_step = 0;     ///< t₀
  std::size_t end_step = 1000;    ///< t₀ + nΔt (> t₀)

  void validate() const {
    if (!(initial_sparsity >= 0.0 && initial_sparsity < 1.0))
      throw std::invalid_argument("cubic_schedule: 'initial_sparsity' must be in [0, 1)");
    if (!(final_sparsity >= initial_sparsity && final_sparsity < 1.0))
      throw std::invalid_argument("cubic_schedule: 'final_sparsity' must be in [initial_sparsity, 1)");
    if (end_step <= begin_step) throw std::invalid_argument("cubic_schedule: 'end_step' must be > begin_step");
  }

  /// s_t, the sparsity (fraction of zeros) at step t.
  double sparsity(std::size_t t) const {
    if (t <= begin_step) return initial_sparsity;
    if (t >= end_step) return final_sparsity;
    const double x = 1.0 - static_cast<double>(t - begin_step) / static_cast<double>(end_step - begin_step);
    return final_sparsity + (initial_sparsity - final_sparsity) * x * x * x;
  }
};

}  // namespace bipq
