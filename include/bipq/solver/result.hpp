#pragma once
// What the bi-level solver returns: why it stopped, per-iteration histories, the final masks.

#include <cstddef>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bipq/mask/mask_set.hpp"
#include "bipq/termination.hpp"

namespace bipq {

/// The result of bilevel_solver::optimize. Histories have one entry per upper iteration that ran.
template <class T>
struct bilevel_result {
  termination reason = termination::completed;
  std::size_t iterations = 0;          ///< upper iterations run
  std::vector<double> upper_loss;      ///< ℓ(m⊙θ) on the upper step's mini-batch (before the mask update)
  std::vector<double> lower_loss;      ///< mean mini-batch loss of the iteration's lower steps
  std::vector<std::size_t> mask_change;  ///< Hamming distance between this iteration's hard mask and the previous one
  std::vector<double> density;         ///< Σm / n over the prunable weights (relaxed: of the continuous m)
  std::vector<std::size_t> cg_iterations;  ///< exact mode: conjugate-gradient iterations of each upper step
  /// exact mode: upper steps whose conjugate gradients stopped before ‖r‖ ≤ cg_tolerance · ‖m⊙g‖ (iteration limit,
  /// or a direction of non-positive curvature); their IG is CG's last iterate
  std::size_t cg_unconverged = 0;
  mask_set<T> masks;                   ///< the final 0/1 masks; masks.prunable() are their parameters' indices
  double seconds = 0.0;                ///< wall time of the run

  /// One line: why it stopped, iterations, the last losses, density and mask change, time (as Ceres's BriefReport).
  std::string brief_report() const {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    char line[256];
    const auto last = [](const auto& v, double none) { return v.empty() ? none : static_cast<double>(v.back()); };
    std::snprintf(line, sizeof line,
                  "bilevel_solver: %s after %zu iterations, lower loss %.6g, upper loss %.6g, density %.4f, "
                  "last mask change %.0f, %.2f s",
                  std::string(to_string(reason)).c_str(), iterations, last(lower_loss, nan),
                  last(upper_loss, nan), last(density, nan), last(mask_change, 0.0), seconds);
    return line;
  }
};

}  // namespace bipq
