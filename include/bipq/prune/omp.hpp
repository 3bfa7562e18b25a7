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

/// Every field of `p` (what a checkpoint compares before resuming).
inline void describe_settings(settings_text& d, const omp_params& p) {
  static_assert(detail::field_count<omp_params>() == 3, "describe every field of omp_params");
  d.nested("mask", [&] { describe_settings(d, p.mask); });
  d.nested("train", [&] { describe_settings(d, p.train); });
  d("rewind", p.rewind);
}

namespace detail {
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> omp_run(P& problem, const omp_params& params, checkpoint* ck,
                                          Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = start_pruning<P, Callbacks...>("omp", problem, params, effective_selection(params.mask));
  const std::span<const parameter<T>> ps = run.model.params;
  const std::size_t total = run.model.masks.total();
  check_kept_count(params.mask, total, "omp()");
  parameter_values<T> init = snapshot(ps);
  const auto saved = run.open_checkpoint(ck, problem.num_samples(), params, [&](auto& a) { a("driver.init", init); });
  if (run.finished) return run.finish(false);

  bool stopped = false;
  if (run.history.empty()) stopped = run.train_round(problem, params.train, run.record(0, "dense"), callbacks...);
  if (!stopped) {
    if (!run.resuming_training()) {  // else the checkpoint was written while the pruned model trained
      run.model.prune_to_density(params.mask.kept_fraction(total), params.mask.scope, params.mask.structure);
      if (params.rewind) restore(ps, init);
      run.model.apply();
    }
    stopped = run.train_round(problem, params.train, run.record(1, "prune"), callbacks...);
  }
  return run.finish(stopped);
}
}  // namespace detail

/// Runs OMP on `problem`, whose current parameter values are the initialisation: a dense record, then a pruned one.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> omp(P& problem, const omp_params& params, Callbacks&&... callbacks) {
  return detail::omp_run(problem, params, nullptr, callbacks...);
}

/// The same, writing `ck` after every epoch and round and continuing from it (see imp()).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> omp(P& problem, const omp_params& params, checkpoint& ck, Callbacks&&... callbacks) {
  return detail::omp_run(problem, params, &ck, callbacks...);
}

}  // namespace bipq
