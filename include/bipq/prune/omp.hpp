#pragma once
// One-shot magnitude pruning: train the dense model, prune it once to the target density by magnitude, rewind the
// survivors to their initial values, retrain (the one-shot baseline of Frankle & Carbin, ICLR 2019).

#include <span>
#include <vector>

#include "bipq/prune/common.hpp"

namespace bipq {

struct omp_params {
  pruning_options common{};
  bool rewind = true;  ///< rewind the survivors to initialisation before retraining (false: fine-tune in place)

  void validate() const { common.validate("omp_params"); }
};

/// Runs OMP on `problem`, whose current parameter values are the initialisation: a dense record, then a pruned one.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> omp(P& problem, const omp_params& params, Callbacks&&... callbacks) {
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  params.validate();
  check_callbacks<T, Callbacks...>();
  detail::stopwatch clock;
  const std::span<const parameter<T>> ps = problem.parameters();
  detail::mask_state<T> state(ps, params.common);
  const detail::parameter_values<T> init = detail::snapshot(ps);

  std::vector<prune_record> history;
  prune_record dense = state.record(0, "dense");
  bool stopped = detail::train_and_record(problem, params.common.train, state, dense, clock, callbacks...);
  history.push_back(dense);
  if (!stopped) {
    state.prune_to_density(params.common.target_density, params.common.scope, params.common.structure);
    if (params.rewind) detail::restore(ps, init);
    state.apply();
    prune_record r = state.record(1, "prune");
    stopped = detail::train_and_record(problem, params.common.train, state, r, clock, callbacks...);
    history.push_back(r);
  }
  return detail::finish<T>("omp", state, std::move(history), clock, stopped);
}

}  // namespace bipq
