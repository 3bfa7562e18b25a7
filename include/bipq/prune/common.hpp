#pragma once
// What every pruning driver shares: the result, the model with its masks and magnitude pruning among survivors,
// and the opening and closing of a run (validation, the clock, the records, the result).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/concepts.hpp"
#include "bipq/io/checkpoint.hpp"
#include "bipq/mask/apply.hpp"
#include "bipq/mask/count.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/mask_set.hpp"
#include "bipq/mask/spec.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/prune/record.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/termination.hpp"

namespace bipq {

/// What a driver returns.
template <class T>
struct prune_result {
  std::string method;
  termination reason = termination::completed;  ///< completed or callback_stop
  std::vector<prune_record> history;
  mask_set<T> masks;      ///< the final 0/1 masks; masks.prunable() are their parameters' indices
  double seconds = 0.0;   ///< total wall time
  const prune_record& final_record() const { return history.back(); }

  /// One line: method, why it stopped, rounds recorded, final density, test accuracy and PQ Index, time.
  std::string brief_report() const {
    char line[256];
    const prune_record none{};
    const prune_record& f = history.empty() ? none : history.back();
    std::snprintf(line, sizeof line, "%s: %s after %zu records, density %.4f, test accuracy %.2f%%, PQ Index %.4f, %.2f s",
                  method.c_str(), std::string(to_string(reason)).c_str(), history.size(), f.density,
                  100.0 * f.test_accuracy, f.pq_index, seconds);
    return line;
  }
};

namespace detail {

/// The selection a driver prunes with: the user's, except that filter pruning defaults to conv weights only (removing
/// output neurons of the last linear layer would remove classes).
inline prunable_selection effective_selection(const mask_spec& mask) {
  prunable_selection selection = mask.prunable;
  if (mask.structure == mask_structure::filter && selection.kinds == prunable_selection{}.kinds)
    selection.kinds = {parameter_kind::conv_weight};
  return selection;
}

/// The checks of a driver's mask: mask_spec's own, and no N:M (only the bi-level solver finds N:M masks).
inline void validate_driver_mask(const mask_spec& mask, std::string_view owner) {
  mask.validate(owner);
  if (mask.structure == mask_structure::n_m)
    throw std::invalid_argument(std::string(owner) + ": 'mask.structure' n_m is only supported by the bi-level solver");
}

/// Throws if `mask.k` exceeds the `total` prunable weights of the model.
inline void check_kept_count(const mask_spec& mask, std::size_t total, std::string_view owner) {
  if (mask.k > total)
    throw std::invalid_argument(std::string(owner) + ": params.mask.k = " + std::to_string(mask.k) +
                                " exceeds the number of prunable weights " + std::to_string(total));
}

template <class T>
using parameter_values = std::vector<std::vector<T>>;

/// A copy of every parameter's values (for rewinding).
template <class T>
parameter_values<T> snapshot(std::span<const parameter<T>> params) {
  parameter_values<T> s;
  s.reserve(params.size());
  for (const auto& p : params) s.emplace_back(p.value.begin(), p.value.end());
  return s;
}

/// Copies a snapshot back into the parameters.
template <class T>
void restore(std::span<const parameter<T>> params, const parameter_values<T>& s) {
  for (std::size_t i = 0; i < params.size(); ++i) std::copy(s[i].begin(), s[i].end(), params[i].value.begin());
}

/// A model's parameters with the masks of its prunable tensors, and magnitude pruning among the surviving weights.
template <class T>
struct masked_model {
  std::span<const parameter<T>> params;
  mask_set<T> masks;

  std::span<T> weights(std::size_t j) const { return params[masks.prunable()[j]].value; }

  /// One span per parameter, in parameters() order, empty for parameters that are not pruned: what train() takes.
  std::vector<std::span<const T>> train_masks() const { return masks.per_parameter(params.size()); }

  /// w ← w ⊙ m on every prunable tensor.
  void apply() const { masks.apply(params); }

  /// Keeps the `keep` largest-|w| surviving weights over all prunable tensors (unstructured, global).
  void prune_global(std::size_t keep) {
    const mask_set<T> previous = masks;
    const std::vector<std::span<T>> w = masks.weights(params);
    const std::vector<std::span<const T>> ws(w.begin(), w.end()), eligible = previous.spans();
    const std::vector<std::span<T>> out = masks.spans();
    magnitude_mask_global<T>(ws, keep, out, eligible);
  }

  /// Keeps the `keep` largest-|w| surviving weights of prunable tensor j.
  void prune_tensor(std::size_t j, std::size_t keep) {
    const std::vector<T> previous(masks[j].begin(), masks[j].end());
    magnitude_mask<T>(weights(j), keep, masks[j], previous);
  }

  /// Per output neuron / filter of tensor j (rows = keep.size()): row r keeps `keep[r]` of its surviving weights.
  void prune_rows(std::size_t j, const std::vector<std::size_t>& keep) {
    const std::vector<T> previous(masks[j].begin(), masks[j].end());
    const std::span<const T> w = weights(j);
    const std::size_t rows = keep.size(), cols = w.size() / rows;
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t o = r * cols;
      magnitude_mask<T>(w.subspan(o, cols), keep[r], masks[j].subspan(o, cols),
                        std::span<const T>(previous).subspan(o, cols));
    }
  }

  /// Keeps `keep_filters` whole output channels of tensor j by L2 norm (pruned filters have norm 0).
  void prune_filters(std::size_t j, std::size_t keep_filters) {
    const std::span<const T> value = weights(j);
    std::vector<T> w(value.begin(), value.end());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= masks[j][i];
    group_top_k_mask<T>(w, masks.shape(j), keep_filters, masks[j], group_axis::output, group_norm::l2);
  }

  /// Prunes, among survivors, down to `density` of the prunable weights with the given scope and structure.
  void prune_to_density(double density, mask_scope scope, mask_structure structure) {
    if (structure == mask_structure::filter) {
      for (std::size_t j = 0; j < masks.size(); ++j) prune_filters(j, kept_count(density, masks.shape(j).at(0)));
    } else if (scope == mask_scope::global) {
      prune_global(kept_count(density, masks.total()));
    } else {
      for (std::size_t j = 0; j < masks.size(); ++j) prune_tensor(j, kept_count(density, masks[j].size()));
    }
    apply();
  }

  /// A record with the densities and PQ Index of the current weights.
  prune_record record(std::size_t round, std::string phase) const {
    prune_record r;
    r.round = round;
    r.phase = std::move(phase);
    std::vector<std::span<const T>> ws;
    for (std::size_t j = 0; j < masks.size(); ++j) {
      ws.emplace_back(weights(j));
      r.density_per_tensor.push_back(bipq::density(std::span<const T>(masks[j])));
    }
    r.density = masks.density();
    r.pq_index = pq_index_global(ws, masks.spans(), 0.5, 1.0);
    return r;
  }
};

/// Wall-clock seconds since construction (plus those of the run before a resume).
class stopwatch {
 public:
  double seconds() const {
    return earlier_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  /// Continues from `seconds` (a resumed run).
  void resume_at(double seconds) {
    earlier_ = seconds;
    start_ = std::chrono::steady_clock::now();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double earlier_ = 0.0;
};

template <class T>
struct pruning_run;

/// The state a driver's checkpoint holds: the records, masks, clock and whether it finished, and the driver's own
/// fields (`extra`, a generic function of state_writer or state_reader).
template <class T, class Extra>
auto driver_state(pruning_run<T>& run, Extra extra) {
  return [&run, extra = std::move(extra)](auto& a) {
    if constexpr (!std::remove_cvref_t<decltype(a)>::reading) run.saved_seconds = run.clock.seconds();
    a("driver.seconds", run.saved_seconds);
    a("driver.history", run.history);
    a("driver.masks", run.model.masks.spans());
    a("driver.finished", run.finished);
    extra(a);
  };
}

/// A driver's checkpoint for the duration of its run: opens it (method, settings, model; the parameter values are
/// restored then), registers the driver's state and restores it on resume.
template <class T, class Extra>
class driver_checkpoint {
 public:
  driver_checkpoint(pruning_run<T>& run, checkpoint* ck, const std::string& settings, Extra extra)
      : owner_(ck, run.method, settings, run.model.params),
        layer_(owner_.owner() ? ck : nullptr, "driver.", driver_state(run, std::move(extra))) {
    if (!layer_.active()) return;
    run.ck = ck;
    if (layer_.restore()) run.clock.resume_at(run.saved_seconds);
  }

 private:
  checkpoint_run owner_;
  checkpoint_layer<decltype(driver_state(std::declval<pruning_run<T>&>(), std::declval<Extra>()))> layer_;
};

/// One driver run: its clock, the model with its masks, and the records so far.
template <class T>
struct pruning_run {
  std::string method;
  stopwatch clock{};
  masked_model<T> model;
  std::vector<prune_record> history{};
  checkpoint* ck = nullptr;    ///< the open checkpoint of the run, if any
  double saved_seconds = 0.0;  ///< the clock at the last checkpoint (read back on resume)
  bool finished = false;       ///< the run had ended when the checkpoint was written

  /// Opens `ck` for this run with the settings of `params` and the number of training samples and the driver's own state `extra` (a generic function
  /// of state_writer / state_reader), restoring everything if it resumes. Keep the returned object for the run.
  template <class Params, class Extra>
  driver_checkpoint<T, Extra> open_checkpoint(checkpoint* c, std::size_t samples, const Params& params, Extra extra) {
    settings_text d;
    d("samples", samples);  // another training set is another run
    describe_settings(d, params);
    return driver_checkpoint<T, Extra>(*this, c, d.str(), std::move(extra));
  }
  /// Writes the checkpoint, if any.
  void save() {
    if (ck) ck->save();
  }
  /// True if the run resumes inside a training run (its trainer state is still to be restored).
  bool resuming_training() const { return ck && ck->pending("train."); }
  /// True if the run resumes inside the bi-level solver.
  bool resuming_solver() const { return ck && ck->pending("solver."); }

  prune_record record(std::size_t round, std::string phase) const { return model.record(round, std::move(phase)); }

  /// Fills r's test loss and accuracy from evaluate() (for a trainable_model) and its time.
  template <class P>
  void evaluate(P& problem, prune_record& r) const {
    if constexpr (trainable_model<P>) {
      const evaluation e = problem.evaluate();
      r.test_loss = e.loss;
      r.test_accuracy = e.accuracy;
    }
    r.seconds = clock.seconds();
  }

  /// Trains with the masks, then fills r's losses, PQ Index and accuracy and appends it; true if a callback asked
  /// to stop.
  template <bilevel_problem P, class... Callbacks>
  bool train_round(P& problem, const train_params& params, prune_record r, Callbacks&... callbacks) {
    const std::vector<std::span<const T>> masks = model.train_masks();
    const auto trained = train_run(problem, params, std::span<const std::span<const T>>(masks), ck, callbacks...);
    if (!trained.epoch_loss.empty()) r.train_loss = trained.epoch_loss.back();
    r.pq_index = model.record(r.round, r.phase).pq_index;  // weights changed during training
    evaluate(problem, r);
    history.push_back(std::move(r));
    const bool stopped = trained.reason == termination::callback_stop;
    if (!stopped) save();  // a stopped round is partial: the checkpoint keeps the last whole epoch
    return stopped;
  }

  /// The result, taking the masks and the records. A run that resumed a finished checkpoint keeps its time.
  prune_result<T> finish(bool stopped) {
    prune_result<T> result;
    result.method = method;
    result.reason = stopped ? termination::callback_stop : termination::completed;
    if (!finished && !stopped) {
      finished = true;
      saved_seconds = clock.seconds();
      save();
    }
    result.seconds = finished && !stopped ? saved_seconds : clock.seconds();
    result.history = std::move(history);
    result.masks = std::move(model.masks);
    return result;
  }
};

/// The opening of every driver: checks the problem, the params and the callbacks, and starts the run with
/// all-ones masks on the parameters `selection` picks.
template <class P, class... Callbacks, class Params>
pruning_run<problem_scalar_t<P>> start_pruning(std::string method, P& problem, const Params& params,
                                               const prunable_selection& selection) {
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  params.validate();
  check_callbacks<T, Callbacks...>();
  const std::span<const parameter<T>> ps = problem.parameters();
  mask_set<T> masks(ps, selection, method + "()");
  return pruning_run<T>{std::move(method), stopwatch{}, masked_model<T>{ps, std::move(masks)}};
}

}  // namespace detail
}  // namespace bipq
