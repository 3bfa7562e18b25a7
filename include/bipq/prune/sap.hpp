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

/// Runs SAP on `problem`, whose current parameter values are the initialisation. One record for the dense run and
/// one per round; stops early when a round prunes nothing.
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> sap(P& problem, const sap_params& params, Callbacks&&... callbacks) {
  using T = problem_scalar_t<P>;
  auto run = detail::start_pruning<P, Callbacks...>("sap", problem, params, params.prunable);
  detail::masked_model<T>& model = run.model;
  const detail::parameter_values<T> init = detail::snapshot(model.params);
  const sap_rule& rule = params.rule;

  bool stopped = run.train_round(problem, params.train, run.record(0, "dense"), callbacks...);
  for (std::size_t t = 1; t <= params.rounds && !stopped; ++t) {
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
    if (pruned == 0) break;
    detail::restore(model.params, init);
    model.apply();
    stopped = run.train_round(problem, params.train, run.record(t, "prune"), callbacks...);
  }
  return run.finish(stopped);
}

}  // namespace bipq
