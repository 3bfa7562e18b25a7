#pragma once
// Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"): one training run during which the
// sparsity follows the cubic schedule s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(nΔt))³, pruning the smallest-magnitude
// surviving weights every Δt steps. No rewinding, no retraining: the cheapest of the baselines.

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/schedule/cubic.hpp"

namespace bipq {

struct gmp_params {
  mask_spec mask{};      ///< the final mask: density = 1 − s_f (or k kept), scope, structure, prunable selection
  train_params train{};  ///< the single training run; train.epochs is its length
  double initial_sparsity = 0.0;  ///< s_i
  double begin_fraction = 0.0;    ///< t₀ as a fraction of the run's steps, in [0, 1)
  double end_fraction = 0.75;     ///< t₀ + nΔt as a fraction of the run's steps, in (begin_fraction, 1]
  std::size_t frequency = 50;     ///< Δt: steps between two pruning events (> 0)

  void validate() const {
    detail::validate_driver_mask(mask, "gmp_params");
    train.validate();
    if (!(initial_sparsity >= 0.0 && initial_sparsity < 1.0 - mask.density + 1e-12))
      throw std::invalid_argument("gmp_params: 'initial_sparsity' must be in [0, 1 - mask.density]");
    if (!(begin_fraction >= 0.0 && begin_fraction < 1.0))
      throw std::invalid_argument("gmp_params: 'begin_fraction' must be in [0, 1)");
    if (!(end_fraction > begin_fraction && end_fraction <= 1.0))
      throw std::invalid_argument("gmp_params: 'end_fraction' must be in (begin_fraction, 1]");
    if (frequency == 0) throw std::invalid_argument("gmp_params: 'frequency' must be > 0");
  }
};

namespace detail {
/// Prunes on the cubic schedule from inside the training run, and records every epoch.
template <class T>
struct gmp_pruner {
  const gmp_params& params;
  pruning_run<T>& driver;
  cubic_schedule schedule{};
  double current_sparsity = -1.0;

  void begin(const run_info& run) {
    const std::size_t steps = run.total_epochs * run.steps_per_epoch;
    schedule.initial_sparsity = params.initial_sparsity;
    schedule.final_sparsity = 1.0 - params.mask.kept_fraction(driver.model.masks.total());
    schedule.begin_step = static_cast<std::size_t>(params.begin_fraction * double(steps));
    schedule.end_step = std::max(schedule.begin_step + 1, static_cast<std::size_t>(params.end_fraction * double(steps)));
    prune_at(0);
  }
  void step_taken(const step_info& s) {
    const std::size_t t = s.step + 1;  // steps taken so far
    if (t >= schedule.begin_step && ((t - schedule.begin_step) % params.frequency == 0 || t == schedule.end_step))
      prune_at(t);
  }
  void end_epoch(const epoch_info<T>& e) {
    prune_record r = driver.record(e.epoch + 1, "train");
    r.train_loss = e.train_loss;
    r.test_loss = e.test_loss;
    r.test_accuracy = e.test_accuracy;
    r.seconds = driver.clock.seconds();
    driver.history.push_back(std::move(r));
  }
  void prune_at(std::size_t t) {
    const double s = schedule.sparsity(t);
    if (s <= current_sparsity) return;
    current_sparsity = s;
    driver.model.prune_to_density(1.0 - s, params.mask.scope, params.mask.structure);
  }
};
}  // namespace detail

/// Every field of `p` (what a checkpoint compares before resuming).
inline void describe_settings(settings_text& d, const gmp_params& p) {
  static_assert(detail::field_count<gmp_params>() == 6, "describe every field of gmp_params");
  d.nested("mask", [&] { describe_settings(d, p.mask); });
  d.nested("train", [&] { describe_settings(d, p.train); });
  d("initial_sparsity", p.initial_sparsity);
  d("begin_fraction", p.begin_fraction);
  d("end_fraction", p.end_fraction);
  d("frequency", p.frequency);
}

namespace detail {
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> gmp_run(P& problem, const gmp_params& params, checkpoint* ck,
                                          Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = start_pruning<P, Callbacks...>("gmp", problem, params, effective_selection(params.mask));
  const std::size_t total = run.model.masks.total();
  check_kept_count(params.mask, total, "gmp()");
  if (params.initial_sparsity > 1.0 - params.mask.kept_fraction(total) + 1e-12)
    throw std::invalid_argument("gmp(): 'initial_sparsity' must be <= 1 - mask.k / prunable weights");
  gmp_pruner<T> pruner{params, run};
  const auto saved = run.open_checkpoint(ck, problem.num_samples(), params, [&](auto& a) { a("driver.sparsity", pruner.current_sparsity); });
  if (run.finished) return run.finish(false);

  if (run.history.empty()) run.history.push_back(run.record(0, "dense"));
  // The masks change during the run: train() reads them at every step and keeps masked weights at zero.
  const std::vector<std::span<const T>> masks = run.model.train_masks();
  const auto trained =
      train_run(problem, params.train, std::span<const std::span<const T>>(masks), run.ck, pruner, callbacks...);
  return run.finish(trained.reason == termination::callback_stop);
}
}  // namespace detail

/// Runs GMP on `problem` from its current parameter values: one record before training, one per epoch.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> gmp(P& problem, const gmp_params& params, Callbacks&&... callbacks) {
  return detail::gmp_run(problem, params, nullptr, callbacks...);
}

/// The same, writing `ck` after every epoch and continuing from it (see imp()).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> gmp(P& problem, const gmp_params& params, checkpoint& ck, Callbacks&&... callbacks) {
  return detail::gmp_run(problem, params, &ck, callbacks...);
}

}  // namespace bipq
