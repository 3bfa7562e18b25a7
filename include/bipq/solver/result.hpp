#pragma once
// What the bi-level solver returns: why it stopped, per-iteration histories, the final masks.

#include <cstddef>
#include <string_view>
#include <vector>

namespace bipq {

/// Why a bi-level run ended. Not converging is a result, never an exception.
enum class termination {
  max_iterations,  ///< all `iterations` upper iterations ran
  callback_stop,   ///< a callback hook returned true
  mask_converged,  ///< the hard mask was unchanged for `stable_mask_iterations` iterations
  diverged,        ///< a loss or the implicit gradient became NaN or Inf (learning rate too large for γ, ...);
                   ///< the masks are those of the last finite iteration; a non-finite lower loss stops before
                   ///< its step (θ stays finite), a non-finite IG after the lower steps that produced it
};

/// A readable name for a termination reason ("max_iterations", ...).
constexpr std::string_view to_string(termination t) noexcept {
  switch (t) {
    case termination::max_iterations: return "max_iterations";
    case termination::callback_stop: return "callback_stop";
    case termination::mask_converged: return "mask_converged";
    case termination::diverged: return "diverged";
  }
  return "unknown";
}

/// The result of bilevel_solver::optimize. Histories have one entry per upper iteration that ran.
template <class T>
struct bilevel_result {
  termination reason = termination::max_iterations;
  std::size_t iterations = 0;          ///< upper iterations run
  std::vector<double> upper_loss;      ///< ℓ(m⊙θ) on the upper step's mini-batch (before the mask update)
  std::vector<double> lower_loss;      ///< mean mini-batch loss of the iteration's lower steps
  std::vector<std::size_t> mask_change;  ///< Hamming distance between this iteration's hard mask and the previous one
  std::vector<double> density;         ///< Σm / n over the prunable weights (relaxed: of the continuous m)
  std::vector<std::size_t> cg_iterations;  ///< exact mode: conjugate-gradient iterations of each upper step
  /// exact mode: upper steps whose conjugate gradients stopped before ‖r‖ ≤ cg_tolerance · ‖m⊙g‖ (iteration limit,
  /// or a direction of non-positive curvature); their IG is CG's last iterate
  std::size_t cg_unconverged = 0;
  std::vector<std::size_t> prunable;   ///< indices into problem.parameters() of the masked tensors
  std::vector<std::vector<T>> masks;   ///< the final 0/1 mask of each of them (same order)
  double seconds = 0.0;                ///< wall time of the run
};

}  // namespace bipq
