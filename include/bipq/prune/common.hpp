#pragma once
// What every pruning driver shares: the options (target, scope, structure, what is prunable, how each training run
// goes), the per-round record, the result, and the mask state that prunes by magnitude among survivors.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/apply.hpp"
#include "bipq/mask/count.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/prune/record.hpp"
#include "bipq/solver/prunable.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/termination.hpp"

namespace bipq {

/// Settings shared by the drivers (imp, omp, gmp, sap, bip).
struct pruning_options {
  /// Fraction of prunable weights kept at the end, in (0, 1]. (SAP decides its own densities and ignores it.)
  double target_density = 0.05;
  /// global: one magnitude threshold over all prunable tensors; per_tensor: every tensor keeps the same fraction.
  mask_scope scope = mask_scope::global;
  /// unstructured: single weights; filter: whole output channels / neurons, each tensor keeping the same fraction of
  /// its filters (always per tensor). With filter, only conv weights are pruned unless `prunable` says otherwise.
  mask_structure structure = mask_structure::unstructured;
  /// Which parameters are pruned (default: conv and linear weights; biases and norms never).
  prunable_selection prunable{};
  /// Every training run (dense pretraining, retraining after a pruning round): epochs, batch, SGD, shuffle seed.
  train_params train{};

  /// Throws std::invalid_argument naming `owner` and the field.
  void validate(const std::string& owner) const {
    if (!(target_density > 0.0 && target_density <= 1.0))
      throw std::invalid_argument(owner + ": 'target_density' must be in (0, 1]");
    if (structure == mask_structure::n_m)
      throw std::invalid_argument(owner + ": 'structure' n_m is only supported by the bi-level solver");
    train.validate();
  }
};

/// What a driver returns.
template <class T>
struct prune_result {
  std::string method;
  termination reason = termination::completed;  ///< completed or callback_stop
  std::vector<prune_record> history;
  std::vector<std::size_t> prunable;    ///< indices into parameters() of the pruned tensors
  std::vector<std::vector<T>> masks;    ///< one 0/1 mask per prunable tensor
  double seconds = 0.0;                 ///< total wall time
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
inline prunable_selection effective_selection(const pruning_options& options) {
  prunable_selection selection = options.prunable;
  if (options.structure == mask_structure::filter && selection.kinds == prunable_selection{}.kinds)
    selection.kinds = {parameter_kind::conv_weight};
  return selection;
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

/// The masks of a model's prunable tensors and magnitude pruning among the surviving weights.
template <class T>
class mask_state {
 public:
  mask_state(std::span<const parameter<T>> params, const pruning_options& options) : params_(params) {
    prunable_ = prunable_indices(params, effective_selection(options));
    if (prunable_.empty()) throw std::invalid_argument("pruning driver: the model has no prunable parameter");
    for (std::size_t i : prunable_) masks_.emplace_back(params[i].value.size(), T(1));
  }

  const std::vector<std::size_t>& prunable() const noexcept { return prunable_; }
  const std::vector<std::vector<T>>& masks() const noexcept { return masks_; }
  std::span<T> weights(std::size_t j) const { return params_[prunable_[j]].value; }

  std::size_t total() const {
    std::size_t n = 0;
    for (const auto& m : masks_) n += m.size();
    return n;
  }
  std::size_t kept() const {
    std::size_t n = 0;
    for (const auto& m : masks_) n += static_cast<std::size_t>(std::count(m.begin(), m.end(), T(1)));
    return n;
  }

  /// Replaces the masks by ones computed elsewhere (the bi-level solver), for the same prunable tensors.
  void set_masks(const std::vector<std::size_t>& prunable, const std::vector<std::vector<T>>& masks) {
    if (prunable != prunable_ || masks.size() != masks_.size())
      throw std::invalid_argument("mask_state::set_masks(): the masks are for other tensors");
    for (std::size_t j = 0; j < masks.size(); ++j) {
      if (masks[j].size() != masks_[j].size()) throw std::invalid_argument("mask_state::set_masks(): mask size differs");
      masks_[j] = masks[j];
    }
  }

  /// One span per parameter, in parameters() order, empty for parameters that are not pruned: what train() takes.
  std::vector<std::span<const T>> train_masks() const {
    std::vector<std::span<const T>> spans(params_.size());
    for (std::size_t j = 0; j < prunable_.size(); ++j) spans[prunable_[j]] = masks_[j];
    return spans;
  }

  /// w ← w ⊙ m on every prunable tensor.
  void apply() const {
    for (std::size_t j = 0; j < prunable_.size(); ++j) apply_mask(weights(j), std::span<const T>(masks_[j]));
  }

  /// Keeps the `keep` largest-|w| surviving weights over all prunable tensors (unstructured, global).
  void prune_global(std::size_t keep) {
    const std::vector<std::vector<T>> previous = masks_;
    std::vector<std::span<const T>> ws, eligible;
    std::vector<std::span<T>> mask_spans;
    for (std::size_t j = 0; j < prunable_.size(); ++j) {
      ws.emplace_back(weights(j));
      eligible.emplace_back(previous[j]);
      mask_spans.emplace_back(masks_[j]);
    }
    magnitude_mask_global<T>(ws, keep, mask_spans, eligible);
  }

  /// Keeps the `keep` largest-|w| surviving weights of prunable tensor j.
  void prune_tensor(std::size_t j, std::size_t keep) {
    const std::vector<T> previous = masks_[j];
    magnitude_mask<T>(weights(j), keep, masks_[j], previous);
  }

  /// Per output neuron / filter of tensor j (rows = keep.size()): row r keeps `keep[r]` of its surviving weights.
  void prune_rows(std::size_t j, const std::vector<std::size_t>& keep) {
    const std::vector<T> previous = masks_[j];
    const std::span<const T> w = weights(j);
    const std::size_t rows = keep.size(), cols = w.size() / rows;
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t o = r * cols;
      magnitude_mask<T>(w.subspan(o, cols), keep[r], std::span<T>(masks_[j]).subspan(o, cols),
                        std::span<const T>(previous).subspan(o, cols));
    }
  }

  /// Keeps `keep_filters` whole output channels of tensor j by L2 norm (pruned filters have norm 0).
  void prune_filters(std::size_t j, std::size_t keep_filters) {
    const auto& p = params_[prunable_[j]];
    std::vector<T> w(p.value.begin(), p.value.end());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= masks_[j][i];
    group_top_k_mask<T>(w, p.shape, keep_filters, masks_[j], group_axis::output, group_norm::l2);
  }

  /// Prunes, among survivors, down to `density` of the prunable weights with the given scope and structure.
  void prune_to_density(double density, mask_scope scope, mask_structure structure) {
    if (structure == mask_structure::filter) {
      for (std::size_t j = 0; j < prunable_.size(); ++j) {
        const std::size_t filters = params_[prunable_[j]].shape.at(0);
        prune_filters(j, kept_count(density, filters));
      }
    } else if (scope == mask_scope::global) {
      prune_global(kept_count(density, total()));
    } else {
      for (std::size_t j = 0; j < prunable_.size(); ++j) {
        prune_tensor(j, kept_count(density, masks_[j].size()));
      }
    }
    apply();
  }

  /// A record with the densities and PQ Index of the current weights.
  prune_record record(std::size_t round, std::string phase) const {
    prune_record r;
    r.round = round;
    r.phase = std::move(phase);
    std::vector<std::span<const T>> ws, ms;
    for (std::size_t j = 0; j < prunable_.size(); ++j) {
      ws.emplace_back(weights(j));
      ms.emplace_back(masks_[j]);
      r.density_per_tensor.push_back(density(std::span<const T>(masks_[j])));
    }
    r.density = double(kept()) / double(total());
    r.pq_index = pq_index_global(ws, ms, 0.5, 1.0);
    return r;
  }

 private:
  std::span<const parameter<T>> params_;
  std::vector<std::size_t> prunable_;
  std::vector<std::vector<T>> masks_;
};

/// Wall-clock seconds since construction.
class stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// Trains with the masks, then fills the record's losses and accuracy; true if a callback asked to stop.
template <bilevel_problem P, class... Callbacks>
bool train_and_record(P& problem, const train_params& params, const mask_state<typename P::scalar_type>& state,
                      prune_record& r, const stopwatch& clock, Callbacks&... callbacks) {
  using T = typename P::scalar_type;
  const std::vector<std::span<const T>> masks = state.train_masks();
  const auto trained = train(problem, params, std::span<const std::span<const T>>(masks), callbacks...);
  if (!trained.epoch_loss.empty()) r.train_loss = trained.epoch_loss.back();
  r.pq_index = state.record(r.round, r.phase).pq_index;  // weights changed during training
  if constexpr (trainable_model<P>) {
    const evaluation e = problem.evaluate();
    r.test_loss = e.loss;
    r.test_accuracy = e.accuracy;
  }
  r.seconds = clock.seconds();
  return trained.reason == termination::callback_stop;
}

template <class T>
prune_result<T> finish(std::string method, const mask_state<T>& state, std::vector<prune_record> history,
                       const stopwatch& clock, bool stopped) {
  prune_result<T> result;
  result.method = std::move(method);
  result.reason = stopped ? termination::callback_stop : termination::completed;
  result.history = std::move(history);
  result.prunable = state.prunable();
  result.masks = state.masks();
  result.seconds = clock.seconds();
  return result;
}

}  // namespace detail
}  // namespace bipq
