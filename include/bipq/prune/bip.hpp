#pragma once
// BiP: bi-level pruning (Zhang et al., "Advancing Model Pruning via Bi-level Optimization", NeurIPS 2022) as a
// driver: dense pretraining (or a model already trained), then the bi-level solver finds the mask and the weights
// together (solver/bilevel.hpp), then an optional short fine-tuning with the mask fixed. Its cost is that of a few
// training epochs, independent of the target density — no prune–rewind–retrain rounds.

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/solver/bilevel.hpp"

namespace bipq {

struct bip_params {
  /// Target density, scope, structure and prunable selection (copied into the solver's params), and the training
  /// runs of pretraining and fine-tuning (epochs of common.train are not used: see the fields below).
  pruning_options common{};
  /// The solver's learning rates, γ, lower steps, batch size, IG mode, parametrization. Its density, k, scope,
  /// structure, prunable selection, seed and iterations are set by this driver.
  bilevel_params bilevel = default_bilevel();
  std::size_t pretrain_epochs = 3;  ///< dense training first; 0 if the model is already trained
  /// Length of the bi-level phase in epochs of forward/backward passes: iterations =
  /// ⌈bilevel_epochs · N / (batch_size · (lower_steps + 1))⌉ (an iteration costs lower_steps + 1 passes).
  double bilevel_epochs = 6.0;
  std::size_t finetune_epochs = 3;  ///< training with the mask fixed afterwards; 0 for none

  /// Settings measured on LeNet-5 / Fashion-MNIST at 5% density (docs/results.md): scores start at |θ| (about
  /// 0.05 here) while IG = g ⊙ (θ − m⊙g/γ) is of order 1e-3, so the upper learning rate is large; γ = 1e-4 is also
  /// the lower level's weight decay. Upper rates of 0.1–10 gave the same accuracy within 0.2 point; γ = 1e-2 lost
  /// 0.3 point, γ = 1e-6 lost 0.6 point; 6 bi-level epochs and 3 fine-tuning epochs gained 1.2 points over 2 and 1.
  static bilevel_params default_bilevel() {
    bilevel_params b;
    b.lower_learning_rate = 0.03;
    b.momentum = 0.9;
    b.gamma = 1e-4;
    b.lower_steps = 1;
    b.upper_learning_rate = 1.0;
    b.batch_size = 128;
    return b;
  }

  void validate() const {
    common.validate("bip_params");
    if (!(bilevel_epochs > 0.0) || !std::isfinite(bilevel_epochs))
      throw std::invalid_argument("bip_params: 'bilevel_epochs' must be finite and > 0");
    solver_params(1000).validate();
  }

  /// The solver's params for a problem of `num_samples` training samples.
  bilevel_params solver_params(std::size_t num_samples) const {
    bilevel_params b = bilevel;
    b.density = common.target_density;
    b.k = 0;
    b.scope = common.scope;
    b.structure = common.structure;
    b.prunable = detail::effective_selection(common);
    b.seed = common.train.seed;
    const double batch = double(b.batch_size == 0 ? num_samples : b.batch_size);
    b.iterations = static_cast<std::size_t>(
        std::max(1.0, std::ceil(bilevel_epochs * double(num_samples) / (batch * double(b.lower_steps + 1)))));
    return b;
  }
};

/// Runs BiP on `problem` from its current parameter values: records "dense" (after pretraining), "bilevel" (the
/// solver's mask and weights) and "finetune" (if finetune_epochs > 0).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> bip(P& problem, const bip_params& params, Callbacks&&... callbacks) {
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  params.validate();
  check_callbacks<T, Callbacks...>();
  detail::stopwatch clock;
  const std::span<const parameter<T>> ps = problem.parameters();
  detail::mask_state<T> state(ps, params.common);

  std::vector<prune_record> history;
  bool stopped = false;
  prune_record dense = state.record(0, "dense");
  if (params.pretrain_epochs > 0) {
    train_params pretrain = params.common.train;
    pretrain.epochs = params.pretrain_epochs;
    stopped = detail::train_and_record(problem, pretrain, state, dense, clock, callbacks...);
  } else if constexpr (trainable_model<P>) {
    const evaluation e = problem.evaluate();
    dense.test_loss = e.loss;
    dense.test_accuracy = e.accuracy;
  }
  history.push_back(dense);
  if (stopped) return detail::finish<T>("bip", state, std::move(history), clock, true);

  const auto solved = bilevel_solver(params.solver_params(problem.num_samples())).optimize(problem, callbacks...);
  state.set_masks(solved.prunable, solved.masks);
  state.apply();
  stopped = solved.reason == termination::callback_stop;
  prune_record after = state.record(1, "bilevel");
  if (!solved.lower_loss.empty()) after.train_loss = solved.lower_loss.back();
  if constexpr (trainable_model<P>) {
    const evaluation e = problem.evaluate();
    after.test_loss = e.loss;
    after.test_accuracy = e.accuracy;
  }
  after.seconds = clock.seconds();
  history.push_back(after);

  if (!stopped && params.finetune_epochs > 0) {
    train_params finetune = params.common.train;
    finetune.epochs = params.finetune_epochs;
    prune_record r = state.record(2, "finetune");
    stopped = detail::train_and_record(problem, finetune, state, r, clock, callbacks...);
    history.push_back(r);
  }
  return detail::finish<T>("bip", state, std::move(history), clock, stopped);
}

}  // namespace bipq
