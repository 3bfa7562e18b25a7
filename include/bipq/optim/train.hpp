#pragma once
// Masked mini-batch training of any bilevel_problem with SGD: the loop every pruning driver runs between pruning
// steps. It knows nothing of models beyond the problem concept.
//
// Each epoch visits the samples in a seeded random order (a fresh permutation per epoch), in mini-batches of
// `batch_size` (the last one may be smaller). Masks (0/1, one span per parameter, empty = dense) are applied as the
// product rule of z = m ⊙ θ asks: before the first step θ ← m ⊙ θ, and every step uses the gradient m ⊙ g and then
// sets θ ← m ⊙ θ and the momentum v ← m ⊙ v, so masked weights stay exactly 0 — even when a callback changes a mask
// during the run (gradual pruning). The learning rate follows the cosine schedule over all steps of the run
// (Loshchilov & Hutter 2017) or stays constant.

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/io/checkpoint.hpp"
#include "bipq/optim/sgd.hpp"
#include "bipq/termination.hpp"

namespace bipq {

/// Settings of a training run.
struct train_params {
  std::size_t epochs = 3;       ///< passes over the training set (> 0)
  std::size_t batch_size = 128;  ///< samples per step (> 0)
  sgd_params sgd{};             ///< learning rate α (the cosine schedule's base), momentum, Nesterov, weight decay λ
  bool cosine = true;           ///< α_t = α (1 + cos(π t / total_steps)) / 2; false: α_t = α
  bool decay_all = false;       ///< weight decay on every parameter; false: only on conv and linear weights
  std::uint64_t seed = 0;       ///< seed of the shuffles (epoch e uses the e-th permutation of one generator)

  /// Throws std::invalid_argument naming the field.
  void validate() const {
    if (epochs == 0) throw std::invalid_argument("train_params: 'epochs' must be > 0");
    if (batch_size == 0) throw std::invalid_argument("train_params: 'batch_size' must be > 0");
    sgd.validate();
  }
};

/// Every field of `p` as "name=value" lines (what a checkpoint compares before resuming).
inline void describe_settings(settings_text& d, const sgd_params& p) {
  static_assert(detail::field_count<sgd_params>() == 4, "describe every field of sgd_params");
  d("learning_rate", p.learning_rate);
  d("momentum", p.momentum);
  d("nesterov", p.nesterov);
  d("weight_decay", p.weight_decay);
}
inline void describe_settings(settings_text& d, const train_params& p) {
  static_assert(detail::field_count<train_params>() == 6, "describe every field of train_params");
  d("epochs", p.epochs);
  d("batch_size", p.batch_size);
  d.nested("sgd", [&] { describe_settings(d, p.sgd); });
  d("cosine", p.cosine);
  d("decay_all", p.decay_all);
  d("seed", p.seed);
}

/// What train() returns.
struct train_result {
  termination reason = termination::completed;  ///< completed or callback_stop
  std::vector<double> epoch_loss;  ///< mean mini-batch loss of every completed epoch (also the stopped one)
  double seconds = 0.0;            ///< wall time of the run
  std::size_t steps = 0;           ///< SGD steps taken

  /// One line: why it stopped, epochs, the last epoch's loss, steps, time.
  std::string brief_report() const {
    char line[192];
    std::snprintf(line, sizeof line, "train: %s after %zu epochs (%zu steps), last epoch loss %.6g, %.2f s",
                  std::string(to_string(reason)).c_str(), epoch_loss.size(), steps,
                  epoch_loss.empty() ? std::numeric_limits<double>::quiet_NaN() : epoch_loss.back(), seconds);
    return line;
  }
};

/// Trains `problem` from its current parameter values.
///
/// `masks`: empty (dense; pass `{}`), or one span per parameter in parameters() order, each empty (dense) or of the
/// parameter's size with values 0 or 1. The spans are read at every step, so a callback may change the values
/// they point to. Callbacks (see callbacks/callback.hpp): begin, step_taken after every step, end_epoch with the
/// epoch's mean loss (and the test loss and accuracy from evaluate() when the problem is a trainable_model; its
/// `weights` are the conv and linear weights, `masks` their masks when every one of them has a mask), end.
/// Throws std::invalid_argument on invalid params, a problem without samples, a mask of the wrong size, or a
/// non-finite loss (naming the step).
template <class P, class... Callbacks>
train_result train(P& problem, const train_params& params,
                   std::span<const std::span<const problem_scalar_t<P>>> masks, Callbacks&&... callbacks);

/// The same, writing `ck` after every epoch, and continuing from it if it holds a run of the same settings and
/// model (train() alone: method "train"; inside a driver: the driver's run). The result and the parameter values are
/// bit-identical to those of a run never interrupted. Throws io::checkpoint_error if the checkpoint belongs to
/// another run or cannot be read.
template <class P, class... Callbacks>
train_result train(P& problem, const train_params& params,
                   std::span<const std::span<const problem_scalar_t<P>>> masks, checkpoint& ck,
                   Callbacks&&... callbacks);

namespace detail {
template <class P, class... Callbacks>
train_result train_run(P& problem, const train_params& params,
                       std::span<const std::span<const problem_scalar_t<P>>> masks, checkpoint* ck,
                       Callbacks&&... callbacks);
}  // namespace detail

template <class P, class... Callbacks>
train_result train(P& problem, const train_params& params,
                   std::span<const std::span<const problem_scalar_t<P>>> masks, Callbacks&&... callbacks) {
  return detail::train_run(problem, params, masks, nullptr, callbacks...);
}

template <class P, class... Callbacks>
train_result train(P& problem, const train_params& params,
                   std::span<const std::span<const problem_scalar_t<P>>> masks, checkpoint& ck,
                   Callbacks&&... callbacks) {
  return detail::train_run(problem, params, masks, &ck, callbacks...);
}

template <class P, class... Callbacks>
train_result detail::train_run(P& problem, const train_params& params,
                               std::span<const std::span<const problem_scalar_t<P>>> masks, checkpoint* ck,
                               Callbacks&&... callbacks) {
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  params.validate();
  check_callbacks<T, Callbacks...>();
  const auto start = std::chrono::steady_clock::now();
  double earlier_seconds = 0.0;  // wall time before a resume
  auto elapsed = [&] {
    return earlier_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  const std::span<const parameter<T>> ps = problem.parameters();
  const std::size_t n = problem.num_samples();
  if (n == 0) throw std::invalid_argument("train(): the problem has no training samples");
  if (!masks.empty() && masks.size() != ps.size())
    throw std::invalid_argument("train(): masks has " + std::to_string(masks.size()) + " spans, expected 0 or " +
                                std::to_string(ps.size()) + " (one per parameter)");
  for (std::size_t i = 0; i < masks.size(); ++i)
    if (!masks[i].empty() && masks[i].size() != ps[i].value.size())
      throw std::invalid_argument("train(): masks[" + std::to_string(i) + "] (" + ps[i].name + ") has size " +
                                  std::to_string(masks[i].size()) + ", expected " + std::to_string(ps[i].value.size()));
  auto mask_of = [&](std::size_t i) { return i < masks.size() ? masks[i] : std::span<const T>{}; };

  std::vector<std::size_t> sizes;
  for (const auto& p : ps) sizes.push_back(p.value.size());
  sgd<T> opt(params.sgd, sizes);
  auto apply_mask = [](std::span<T> x, std::span<const T> m) {
    for (std::size_t j = 0; j < m.size(); ++j) x[j] *= m[j];
  };
  for (std::size_t i = 0; i < ps.size(); ++i) apply_mask(ps[i].value, mask_of(i));

  // What end_epoch shows: the conv and linear weights and, when all of them are masked, their masks.
  std::vector<std::span<const T>> shown_weights, shown_masks;
  bool all_masked = true;
  for (std::size_t i = 0; i < ps.size(); ++i)
    if (prunable_by_default(ps[i].kind)) {
      shown_weights.emplace_back(ps[i].value);
      shown_masks.push_back(mask_of(i));
      all_masked = all_masked && !mask_of(i).empty();
    }
  if (!all_masked) shown_masks.clear();

  const std::size_t steps_per_epoch = (n + params.batch_size - 1) / params.batch_size;
  const std::size_t total_steps = steps_per_epoch * params.epochs;
  train_result result;
  detail::rng gen(params.seed);
  std::size_t epochs_done = 0;
  double saved_seconds = 0.0;
  settings_text settings;
  settings("samples", n);
  describe_settings(settings, params);
  const detail::checkpoint_run owner(ck, "train", settings.str(), ps);
  detail::checkpoint_layer layer(ck, "train.", [&](auto& a) {
    a("train.epochs_done", epochs_done);
    a("train.steps", result.steps);
    a("train.epoch_loss", result.epoch_loss);
    a("train.rng", gen);
    a("train.velocity", opt.velocity());
    if constexpr (!std::remove_cvref_t<decltype(a)>::reading) saved_seconds = elapsed();
    a("train.seconds", saved_seconds);
  });
  if (layer.restore()) earlier_seconds = saved_seconds;

  const run_info run{"train", params.epochs, steps_per_epoch};
  notify_begin(run, callbacks...);

  std::vector<std::size_t> order(n);
  std::vector<T> masked_grad;
  bool stop = false;
  for (std::size_t epoch = epochs_done; epoch < params.epochs && !stop; ++epoch) {
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    detail::shuffle(std::span<std::size_t>(order), gen);
    double loss_sum = 0.0;
    std::size_t batches = 0;
    for (std::size_t b0 = 0; b0 < n && !stop; b0 += params.batch_size) {
      const std::size_t b1 = std::min(n, b0 + params.batch_size);
      const double loss = problem.loss_and_gradient(std::span<const std::size_t>(order).subspan(b0, b1 - b0));
      if (!std::isfinite(loss))
        throw std::invalid_argument("train(): the loss is not finite at step " + std::to_string(result.steps) +
                                    " (learning rate too large?)");
      const double lr = params.cosine ? cosine_learning_rate(params.sgd.learning_rate, result.steps, total_steps)
                                      : params.sgd.learning_rate;
      for (std::size_t i = 0; i < ps.size(); ++i) {
        const double wd = (params.decay_all || prunable_by_default(ps[i].kind)) ? params.sgd.weight_decay : 0.0;
        const std::span<const T> m = mask_of(i);
        if (m.empty()) {
          opt.step(i, ps[i].value, ps[i].grad, lr, wd);
        } else {
          masked_grad.resize(m.size());
          for (std::size_t j = 0; j < m.size(); ++j) masked_grad[j] = m[j] * ps[i].grad[j];
          opt.step(i, ps[i].value, masked_grad, lr, wd);
          apply_mask(ps[i].value, m);
          opt.mask_velocity(i, m);
        }
      }
      loss_sum += loss;
      ++batches;
      stop = notify_step(step_info{epoch, result.steps, loss}, callbacks...);
      ++result.steps;
    }
    result.epoch_loss.push_back(loss_sum / static_cast<double>(batches));
    epoch_info<T> info;
    info.epoch = epoch;
    info.train_loss = result.epoch_loss.back();
    if constexpr (trainable_model<P>) {
      const evaluation e = problem.evaluate();
      info.test_loss = e.loss;
      info.test_accuracy = e.accuracy;
    }
    info.seconds = elapsed();
    info.weights = shown_weights;
    info.masks = shown_masks;
    if (!all_masked || shown_masks.empty()) {
      info.density = std::numeric_limits<double>::quiet_NaN();
    } else {
      double kept = 0.0, total = 0.0;
      for (const auto& m : shown_masks)
        for (T v : m) kept += static_cast<double>(v), total += 1.0;
      info.density = total > 0.0 ? kept / total : 1.0;
    }
    stop = notify_epoch(info, callbacks...) || stop;
    epochs_done = epoch + 1;
    if (!stop) layer.save();  // a stopped epoch is partial: the checkpoint keeps the last whole one
  }
  result.reason = stop ? termination::callback_stop : termination::completed;
  result.seconds = elapsed();
  notify_end(run, callbacks...);
  return result;
}

}  // namespace bipq
