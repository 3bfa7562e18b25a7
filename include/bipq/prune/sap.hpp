#pragma once
// Sparsity-informed Adaptive Pruning (Diao et al., ICLR 2023, Algorithm 1): after each training run, measure the
// PQ Index of the surviving weights in each scope (the whole model, a layer, or an output neuron), prune from that
// scope the number c_t that the rule of schedule/sap.hpp gives, rewind the survivors to initialisation, retrain.
// The more compressible a scope is, the more of it is pruned; no target density needs to be chosen up front.

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/schedule/sap.hpp"

namespace bipq {

/// Where SAP measures and prunes: one scope for all prunable weights, one per layer, or one per output neuron/filter.
enum class sap_scope { global, layer, neuron };

struct sap_params {
  /// common.target_density is a floor: no scope is pruned below it (default 0.05); scope/structure are not used
  /// (SAP is unstructured and uses `scope` below).
  pruning_options common{};
  sap_rule rule{};              ///< p, q, η_r, γ, β (defaults 0.5, 1, 0, 1, 0.9)
  std::size_t rounds = 5;       ///< pruning rounds T (each followed by rewinding and retraining)
  sap_scope scope = sap_scope::global;

  void validate() const {
    common.validate("sap_params");
    rule.validate();
    if (common.structure != mask_structure::unstructured)
      throw std::invalid_argument("sap_params: 'common.structure' must be unstructured");
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
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  params.validate();
  check_callbacks<T, Callbacks...>();
  detail::stopwatch clock;
  const std::span<const parameter<T>> ps = problem.parameters();
  detail::mask_state<T> state(ps, params.common);
  const detail::parameter_values<T> init = detail::snapshot(ps);
  const sap_rule& rule = params.rule;
  const double floor_density = params.common.target_density;

  std::vector<prune_record> history;
  prune_record dense = state.record(0, "dense");
  bool stopped = detail::train_and_record(problem, params.common.train, state, dense, clock, callbacks...);
  history.push_back(dense);

  for (std::size_t t = 1; t <= params.rounds && !stopped; ++t) {
    std::size_t pruned = 0;
    const std::size_t prunable_count = state.prunable().size();
    if (params.scope == sap_scope::global) {
      std::vector<std::span<const T>> ws, ms;
      for (std::size_t j = 0; j < prunable_count; ++j) {
        ws.emplace_back(state.weights(j));
        ms.emplace_back(state.masks()[j]);
      }
      const std::size_t d = state.kept();
      const double pq = pq_index_global(ws, ms, rule.p, rule.q);
      const std::size_t floor_count = kept_count(floor_density, state.total(), count_rounding::up);
      const std::size_t c = detail::sap_count_with_floor(d, pq, rule, floor_count);
      if (c > 0) state.prune_global(d - c);
      pruned = c;
    } else {
      for (std::size_t j = 0; j < prunable_count; ++j) {
        const std::span<const T> w = state.weights(j);
        const std::span<const T> m = state.masks()[j];
        const std::size_t rows = params.scope == sap_scope::layer ? 1 : ps[state.prunable()[j]].shape.at(0);
        const std::size_t cols = w.size() / rows;
        const std::size_t floor_count = kept_count(floor_density, cols, count_rounding::up);  // the same for every row
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
          state.prune_tensor(j, keep[0]);
        else
          state.prune_rows(j, keep);
      }
    }
    if (pruned == 0) break;
    detail::restore(ps, init);
    state.apply();
    prune_record r = state.record(t, "prune");
    stopped = detail::train_and_record(problem, params.common.train, state, r, clock, callbacks...);
    history.push_back(r);
  }
  return detail::finish<T>("sap", state, std::move(history), clock, stopped);
}

}  // namespace bipq
