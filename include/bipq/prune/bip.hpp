#pragma once
// BiP: bi-level pruning (Zhang et al., "Advancing Model Pruning via Bi-level Optimization", NeurIPS 2022) as a
// driver: dense pretraining (or a model already trained), then the bi-level solver finds the mask and the weights
// together (solver/bilevel.hpp), then an optional short fine-tuning with the mask fixed. Its cost is that of a few
// training epochs, independent of the target density — no prune–rewind–retrain rounds.

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/solver/bilevel.hpp"

namespace bipq {

struct bip_params {
  /// The mask to find: density (or k), scope, structure (unstructured, filter or N:M), prunable selection.
  mask_spec mask{};
  /// Dense training first; std::nullopt if the model is already trained.
  std::optional<train_params> pretrain = train_params{};
  /// The solver's settings: learning rates, γ, lower steps, batch size, IG mode, parametrization, seed. The mask and
  /// the number of iterations come from `mask` and `bilevel_epochs`.
  bilevel_settings bilevel = default_bilevel();
  /// Length of the bi-level phase in epochs of forward/backward passes: iterations =
  /// ⌈bilevel_epochs · N / (batch_size · (lower_steps + 1))⌉ (an iteration costs lower_steps + 1 passes).
  double bilevel_epochs = 6.0;
  /// Training with the mask fixed afterwards; std::nullopt for none.
  std::optional<train_params> finetune = train_params{};

  /// The settings chosen on LeNet-5 / Fashion-MNIST at 5% density (the study is in docs/results.md, "5% density"):
  /// α = 0.03, μ = 0.9, γ = 1e-4, one lower step, β = 1, batches of 128.
  static bilevel_settings default_bilevel() {
    bilevel_settings b;
    b.lower_learning_rate = 0.03;
    b.momentum = 0.9;
    b.gamma = 1e-4;
    b.lower_steps = 1;
    b.upper_learning_rate = 1.0;
    b.batch_size = 128;
    return b;
  }

  /// The released BiP code's settings (OPTML-Group/BiP, trainer/bilevel.py, configs/*/bip.yml), for a training rate
  /// `learning_rate`: the scores are the weights' magnitudes (mask_parametrization::weights); lower level SGD at the
  /// training rate with momentum 0.9, a cosine schedule and weight decay γ = 1e-4; upper level SGD at the same rate
  /// with momentum 0.9, weight decay 1e-4 and a step decay (×0.1 at half the run, ×0.01 at three quarters); the IG's
  /// second term with the constant coefficient 1e-4 (its `lr2`), not 1/γ; one lower step per upper step; batches of
  /// 128. docs/bilevel.md, "The paper and the released code", lists how this differs from the paper.
  static bilevel_settings released_code_bilevel(double learning_rate = sgd_params{}.learning_rate) {
    bilevel_settings b;
    b.lower_learning_rate = learning_rate;
    b.momentum = 0.9;
    b.gamma = 1e-4;
    b.lower_steps = 1;
    b.lower_schedule = rate_schedule::cosine;
    b.upper_learning_rate = learning_rate;
    b.upper_momentum = 0.9;
    b.upper_weight_decay = 1e-4;
    b.upper_schedule = rate_schedule::step;
    b.batch_size = 128;
    b.parametrization = mask_parametrization::weights;
    b.ig_mode = implicit_gradient_mode::first_order;
    b.second_term_coefficient = 1e-4;
    return b;
  }

  /// Throws std::invalid_argument("bip_params: '<field>' ...") naming the first invalid field.
  void validate() const {
    mask.validate("bip_params");
    if (pretrain) pretrain->validate();
    bilevel.validate("bip_params");
    bilevel.validate_with(mask, "bip_params");
    if (!(bilevel_epochs > 0.0) || !std::isfinite(bilevel_epochs))
      throw std::invalid_argument("bip_params: 'bilevel_epochs' must be finite and > 0");
    if (finetune) finetune->validate();
  }

  /// The solver's params for a problem of `num_samples` training samples.
  bilevel_params solver_params(std::size_t num_samples) const {
    bilevel_params b;
    static_cast<bilevel_settings&>(b) = bilevel;
    b.mask = mask;
    b.mask.prunable = detail::effective_selection(mask);
    const double batch = double(b.batch_size == 0 ? num_samples : b.batch_size);
    b.iterations = static_cast<std::size_t>(
        std::max(1.0, std::ceil(bilevel_epochs * double(num_samples) / (batch * double(b.lower_steps + 1)))));
    return b;
  }
};

/// Runs BiP on `problem` from its current parameter values: records "dense" (after pretraining), "bilevel" (the
/// solver's mask and weights) and "finetune" (if any).
template <class P, class... Callbacks>
prune_result<problem_scalar_t<P>> bip(P& problem, const bip_params& params, Callbacks&&... callbacks) {
  auto run = detail::start_pruning<P, Callbacks...>("bip", problem, params, detail::effective_selection(params.mask));
  bool stopped = false;
  if (params.pretrain) {
    stopped = run.train_round(problem, *params.pretrain, run.record(0, "dense"), callbacks...);
  } else {
    prune_record dense = run.record(0, "dense");
    run.evaluate(problem, dense);
    run.history.push_back(std::move(dense));
  }
  if (stopped) return run.finish(true);

  auto solved = bilevel_solver(params.solver_params(problem.num_samples())).optimize(problem, callbacks...);
  run.model.masks = std::move(solved.masks);
  run.model.apply();
  stopped = solved.reason == termination::callback_stop;
  prune_record after = run.record(1, "bilevel");
  if (!solved.lower_loss.empty()) after.train_loss = solved.lower_loss.back();
  run.evaluate(problem, after);
  run.history.push_back(std::move(after));

  if (!stopped && params.finetune)
    stopped = run.train_round(problem, *params.finetune, run.record(2, "finetune"), callbacks...);
  return run.finish(stopped);
}

}  // namespace bipq
