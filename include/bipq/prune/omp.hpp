#pragma once
// One-shot magnitude pruning: train the dense model, prune it once to the target density by magnitude, rewind the
// survivors to their initial values, retrain (the one-shot baseline of Frankle & Carbin, ICLR 2019).

#include <span>
#include <vector>

#include "bipq/prune/common.hpp"

namespace bipq {

struct omp_params {
  mask_spec mask{};      ///< the mask: density (or k), scope, structure, prunable selection
  train_params train{};  ///< both training runs (dense, and after pruning): epochs, batch, SGD, seed
  bool rewind = true;  ///< rewind the survivors to initialisation before retraining (false: fine-tune in place)

  void validate() const {
    detail::validate_driver_mask(mask, "omp_params");
    train.validate();
  }
};

/// Runs OMP on `problem`, whose current parameter values are the initialisation: a dense record, then a pruned one.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> omp(P& problem, const omp_params& params, Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = detail::start_pruning<P, Callbacks...>("omp", problem, params, detail::effective_selection(params.mask));
  const std::span<const parameter<T>> ps = run.model.params;
  const detail::parameter_values<T> init = detail::snapshot(ps);

  const std::size_t total = run.model.masks.total();
  detail::check_kept_count(params.mask, total, "omp()");

  bool stopped = run.train_round(problem, params.train, run.record(0, "dense"), callbacks...);
  if (!stopped) {
    run.model.prune_to_density(params.mask.kept_fraction(total), params.mask.scope, params.mask.structure);
    if (params.rewind) detail::restore(ps, init);
    run.model.apply();
    stopped = run.train_round(problem, params.train, run.record(1, "prune"), callbacks...);
  }
  return run.finish(stopped);
}

}  // namespace bipq
