#pragma once
// Iterative magnitude pruning with rewinding (the lottery ticket procedure; Frankle & Carbin, ICLR 2019; rewinding
// to an early epoch: Frankle et al., ICML 2020): train, remove `rate` of the surviving weights by magnitude, rewind
// the survivors to their initial (or early-epoch) values, retrain; repeat until the target density.

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/schedule/geometric.hpp"

namespace bipq {

struct imp_params {
  mask_spec mask{};    ///< the final mask: density (or k), scope, structure, prunable selection
  train_params train{};  ///< every training run (the dense one and each retraining): epochs, batch, SGD, seed
  double rate = 0.2;             ///< fraction of the surviving weights removed per round, in (0, 1)
  std::size_t rewind_epoch = 0;  ///< 0: rewind to initialisation; e > 0: to the weights after e dense epochs

  void validate() const {
    detail::validate_driver_mask(mask, "imp_params");
    train.validate();
    if (!(rate > 0.0 && rate < 1.0)) throw std::invalid_argument("imp_params: 'rate' must be in (0, 1)");
    if (rewind_epoch > train.epochs)
      throw std::invalid_argument("imp_params: 'rewind_epoch' must be <= train.epochs");
  }
};

namespace detail {
/// Captures all parameter values at the end of dense epoch `epoch` (1-based), for rewinding.
template <class T>
struct capture_epoch {
  std::span<const parameter<T>> params;
  std::size_t epoch;
  parameter_values<T>* out;
  void end_epoch(const epoch_info<T>& e) {
    if (e.epoch + 1 == epoch) *out = snapshot(params);
  }
};

/// Densities after each round: (1 − rate)^t rounded to whole weights of `total`, the last one the target.
inline std::vector<double> geometric_densities(std::size_t total, double target, double rate) {
  const std::size_t target_count = kept_count(target, total);
  std::vector<double> d;
  for (std::size_t k : geometric_schedule(total, target_count, rate)) d.push_back(double(k) / double(total));
  return d;
}
}  // namespace detail

/// Every field of `p` (what a checkpoint compares before resuming).
inline void describe_settings(settings_text& d, const imp_params& p) {
  static_assert(detail::field_count<imp_params>() == 4, "describe every field of imp_params");
  d.nested("mask", [&] { describe_settings(d, p.mask); });
  d.nested("train", [&] { describe_settings(d, p.train); });
  d("rate", p.rate);
  d("rewind_epoch", p.rewind_epoch);
}

namespace detail {
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> imp_run(P& problem, const imp_params& params, checkpoint* ck,
                                          Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = start_pruning<P, Callbacks...>("imp", problem, params, effective_selection(params.mask));
  const std::span<const parameter<T>> ps = run.model.params;
  const std::size_t total = run.model.masks.total();
  check_kept_count(params.mask, total, "imp()");
  parameter_values<T> rewind_point = snapshot(ps);
  const auto saved = run.open_checkpoint(ck, problem.num_samples(), params, [&](auto& a) { a("driver.rewind_point", rewind_point); });
  if (run.finished) return run.finish(false);

  // Round r is done when the history has its record (r = 0: dense); a resumed run skips the rounds done.
  bool stopped = false;
  if (run.history.empty()) {
    if (params.rewind_epoch > 0) {
      capture_epoch<T> capture{ps, params.rewind_epoch, &rewind_point};
      stopped = run.train_round(problem, params.train, run.record(0, "dense"), capture, callbacks...);
    } else {
      stopped = run.train_round(problem, params.train, run.record(0, "dense"), callbacks...);
    }
  }

  const auto densities = geometric_densities(total, params.mask.kept_fraction(total), params.rate);
  for (std::size_t t = 0; t < densities.size() && !stopped; ++t) {
    if (run.history.size() > t + 1) continue;
    if (!run.resuming_training()) {  // else the checkpoint was written while round t + 1 trained
      run.model.prune_to_density(densities[t], params.mask.scope, params.mask.structure);
      restore(ps, rewind_point);
      run.model.apply();
    }
    stopped = run.train_round(problem, params.train, run.record(t + 1, "prune"), callbacks...);
  }
  return run.finish(stopped);
}
}  // namespace detail

/// Runs IMP on `problem`, whose current parameter values are the initialisation. One record for the dense run and
/// one per pruning round. Callbacks see every training run (step_taken, end_epoch).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> imp(P& problem, const imp_params& params, Callbacks&&... callbacks) {
  return detail::imp_run(problem, params, nullptr, callbacks...);
}

/// The same, writing `ck` after every epoch and round, and continuing from it if it holds this run (same method,
/// settings and model): the result and the weights are bit-identical to a run never interrupted.
/// Throws io::checkpoint_error if the checkpoint belongs to another run or cannot be read.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> imp(P& problem, const imp_params& params, checkpoint& ck, Callbacks&&... callbacks) {
  return detail::imp_run(problem, params, &ck, callbacks...);
}

}  // namespace bipq
