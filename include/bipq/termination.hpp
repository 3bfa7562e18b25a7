#pragma once
// Why a run ended: the one vocabulary of the solver (bilevel_solver), the trainer (train) and every pruning driver.

#include <string_view>

namespace bipq {

/// Why a run ended. Not converging is a result, never an exception.
enum class termination {
  completed,       ///< the run did all it was asked (every iteration, epoch or round)
  callback_stop,   ///< a callback hook returned true
  mask_converged,  ///< bi-level solver: the hard mask was unchanged for `stable_mask_iterations` iterations
  diverged,        ///< bi-level solver: a loss or the implicit gradient became NaN or Inf (learning rate too large
                   ///< for γ, ...); the masks are those of the last finite iteration; a non-finite lower loss stops
                   ///< before its step (θ stays finite), a non-finite IG after the lower steps that produced it
};

/// A readable name for a termination reason ("completed", ...).
constexpr std::string_view to_string(termination t) noexcept {
  switch (t) {
    case termination::completed: return "completed";
    case termination::callback_stop: return "callback_stop";
    case termination::mask_converged: return "mask_converged";
    case termination::diverged: return "diverged";
  }
  return "unknown";
}

}  // namespace bipq
