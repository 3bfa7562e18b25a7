#pragma once
// Sparsity-informed Adaptive Pruning (Diao et al., ICLR 2023, Algorithm 1): after each training run, measure the
// PQ Index of the surviving weights in each scope (the whole model, a layer, or an output neuron), prune from that
// scope the number c_t that the rule of schedule/sap.hpp gives, rewind the survivors to initialisation, retrain.
// The more compressible a scope is, the more of it is pruned; no target density needs to be chosen up front.

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/schedule/sap.hpp"

namespace bipq {

/// Where SAP measures and prunes: one scope for all prunable weights, one per layer, or one per output neuron/filter.
enum class sap_scope { global, layer, neuron };

/// SAP decides how much to prune from the PQ Index, so it takes no target density: only what is prunable, a floor
/// and where it measures. Its masks are unstructured.
struct sap_params {
  prunable_selection prunable{};  ///< which parameters are pruned (default: conv and linear weights)
  double min_density = 0.05;      ///< a floor: no scope is pruned below this fraction of its weights, in (0, 1]
  train_params train{};           ///< every training run (the dense one and each retraining)
  sap_rule rule{};              ///< p, q, η_r, γ, β (defaults 0.5, 1, 0, 1, 0.9)
  std::size_t rounds = 5;       ///< pruning rounds T (each followed by rewinding and retraining)
  sap_scope scope = sap_scope::global;

  void validate() const {
    if (!(min_density > 0.0 && min_density <= 1.0))
      throw std::invalid_argument("sap_params: 'min_density' must be in (0, 1]");
    if (prunable.kinds.empty()) throw std::invalid_argument("sap_params: 'prunable.kinds' must not be empty");
    train.validate();
    rule.validate();
    if (rounds == 0) throw std::invalid_argument("sap_params: 'rounds' must be >= 1");
  }
};

namespace detail {
/// c for a scope of d survivors with PQ Index `pq`, never leaving fewer than `floor_count` survivors.
inline std::size_t sap_count_with_floor(std::size_t d, double pq, const sap_rule& rule, std::size_t floor_count) {
  const std::size_t c = sap_prune_count(d, pq, rule);
  return d <= floor_count ? 0 : std::min(c, d - floor_count);
}
}  // namespace detail

/// Every field of `p` (what a checkpoint compares before resuming).
inline void describe_settings(settings_text& d, const sap_params& p) {
  static_assert(detail::field_count<sap_params>() == 6, "describe every field of sap_params");
  static_assert(detail::field_count<sap_rule>() == 5, "describe every field of sap_rule");
  d.nested("prunable", [&] { describe_settings(d, p.prunable); });
  d("min_density", p.min_density);
  d.nested("train", [&] { describe_settings(d, p.train); });
  d("rule.p", p.rule.p);
  d("rule.q", p.rule.q);
  d("rule.eta_r", p.rule.eta_r);
  d("rule.gamma", p.rule.gamma);
  d("rule.beta", p.rule.beta);
  d("rounds", p.rounds);
  d("scope", p.scope);
}

namespace detail {
/// One SAP pruning step on `model`: measures every scope and prunes c_t of its survivors; returns the number pruned.
template <class T>
std::size_t sap_prune(masked_model<T>& model, const sap_params& params) {
  const sap_rule& rule = params.rule;
  std::size_t pruned = 0;
  if (params.scope == sap_scope::global) {
    std::vector<std::span<const T>> ws;
    for (std::size_t j = 0; j < model.masks.size(); ++j) ws.emplace_back(model.weights(j));
    const std::size_t d = model.masks.kept();
    const double pq = pq_index_global(ws, model.masks.spans(), rule.p, rule.q);
    const std::size_t floor_count = kept_count(params.min_density, model.masks.total(), count_rounding::up);
    const std::size_t c = detail::sap_count_with_floor(d, pq, rule, floor_count);
    if (c > 0) model.prune_global(d - c);
    pruned = c;
  } else {
    for (std::size_t j = 0; j < model.masks.size(); ++j) {
      const std::span<const T> w = model.weights(j);
      const std::span<const T> m = std::as_const(model.masks)[j];
      const std::size_t rows = params.scope == sap_scope::layer ? 1 : model.masks.shape(j).at(0);
      const std::size_t cols = w.size() / rows;
      const std::size_t floor_count = kept_count(params.min_density, cols, count_rounding::up);  // same for every row
      std::vector<std::size_t> keep(rows);
      for (std::size_t r = 0; r < rows; ++r) {
        const auto wr = w.subspan(r * cols, cols);
        const auto mr = m.subspan(r * cols, cols);
        const auto d = static_cast<std::size_t>(std::count(mr.begin(), mr.end(), T(1)));
        // An empty scope is skipped: nothing to measure, nothing to prune.
        const std::size_t c =
            d == 0 ? 0 : detail::sap_count_with_floor(d, pq_index(wr, mr, rule.p, rule.q), rule, floor_count);
        keep[r] = d - c;
        pruned += c;
      }
      if (rows == 1)
        model.prune_tensor(j, keep[0]);
      else
        model.prune_rows(j, keep);
    }
  }
  return pruned;
}

template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> sap_run(P& problem, const sap_params& params, checkpoint* ck,
                                          Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = start_pruning<P, Callbacks...>("sap", problem, params, params.prunable);
  masked_model<T>& model = run.model;
  parameter_values<T> init = snapshot(model.params);
  const auto saved = run.open_checkpoint(ck, problem.num_samples(), params, [&](auto& a) { a("driver.init", init); });
  if (run.finished) return run.finish(false);

  // Round t is done when the history has its record (t = 0: dense); a resumed run skips the rounds done.
  bool stopped = false;
  if (run.history.empty()) stopped = run.train_round(problem, params.train, run.record(0, "dense"), callbacks...);
  for (std::size_t t = 1; t <= params.rounds && !stopped; ++t) {
    if (run.history.size() > t) continue;
    if (!run.resuming_training()) {  // else the checkpoint was written while round t trained
      if (sap_prune(model, params) == 0) break;
      restore(model.params, init);
      model.apply();
    }
    stopped = run.train_round(problem, params.train, run.record(t, "prune"), callbacks...);
  }
  return run.finish(stopped);
}
}  // namespace detail

/// Runs SAP on `problem`, whose current parameter values are the initialisation. One record for the dense run and
/// one per round; stops early when a round prunes nothing.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> sap(P& problem, const sap_params& params, Callbacks&&... callbacks) {
  return detail::sap_run(problem, params, nullptr, callbacks...);
}

/// The same, writing `ck` after every epoch and round and continuing from it (see imp()).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> sap(P& problem, const sap_params& params, checkpoint& ck, Callbacks&&... callbacks) {
  return detail::sap_run(problem, params, &ck, callbacks...);
}

}  // namespace bipq
