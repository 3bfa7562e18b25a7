#pragma once
// BiP: bi-level pruning (Zhang, Yao, Ram, Zhao, Chen, Hong, Wang & Liu, "Advancing Model Pruning via
// Bi-level Optimization", NeurIPS 2022). The mask m is the upper variable, the weights θ the lower one:
//
//   min_{m ∈ S} ℓ(m⊙θ*(m)),   θ*(m) = argmin_θ ℓ(m⊙θ) + (γ/2)‖θ‖²,   S = {m ∈ {0,1}^n : 1ᵀm = k}.
//
// Every problem depends on (m, θ) only through z = m⊙θ (bi-linearity), so the lower problem's Hessian in θ is γI
// under the Hessian-free assumption ∇²_z ℓ = 0 and the implicit gradient is first order (solver/implicit_gradient.hpp):
//   IG(m) = g ⊙ (θ − (1/γ) m⊙g),   g = ∇_z ℓ(m⊙θ).
// One iteration alternates, each step on its own mini-batch (BiP, Algorithm 1):
//   1. lower, `lower_steps` times:  θ ← θ − α (m⊙g + γθ)   (SGD with momentum; non-prunable parameters train too,
//      with the same γ as weight decay);
//   2. upper:  s ← s − β IG,  m = top_k(s)   (scores, straight-through), or  m ← Π_{capped simplex}(m − β IG)  (relaxed).
// Cost per iteration: lower_steps + 1 forward/backward passes, independent of the target sparsity.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/mask/capped_simplex.hpp"
#include "bipq/mask/count.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/n_m.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/optim/sgd.hpp"
#include "bipq/solver/implicit_gradient.hpp"
#include "bipq/solver/params.hpp"
#include "bipq/solver/prunable.hpp"
#include "bipq/solver/result.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// The bi-level pruning solver. Stores its parameters by value (validated at construction).
class bilevel_solver {
 public:
  /// Throws std::invalid_argument naming the first invalid field of `params`.
  explicit bilevel_solver(bilevel_params params) : params_(std::move(params)) { params_.validate(); }

  const bilevel_params& params() const noexcept { return params_; }

  /// Runs BiP on `problem`, starting from its current parameter values as θ (a pretrained model, say) with scores
  /// |θ|. On return every prunable parameter's `value` holds m⊙θ with the final 0/1 mask (the pruned model) and the
  /// other parameters hold their trained values. Callbacks: step_taken after every lower step, end_epoch after every
  /// upper iteration (see callbacks/callback.hpp).
  /// Throws std::invalid_argument if no parameter is prunable, if k exceeds the number of prunable weights, if a
  /// structure does not fit a tensor's shape, if the problem has no samples, if a value is NaN/Inf, or if
  /// `ig_mode` is exact and the problem has no `hessian_vector_product`.
  template <class P, class... Callbacks>
  bilevel_result<problem_scalar_t<P>> optimize(P& problem, Callbacks&&... callbacks);

 private:
  bilevel_params params_;
};

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// Mini-batches from a seeded permutation of 0..n-1, reshuffled when fewer than a batch remain (the tail is
/// skipped that pass); batch_size 0 or ≥ n gives the whole set in order.
class batch_sampler {
 public:
  batch_sampler(std::size_t n, std::size_t batch_size, std::uint64_t seed)
      : n_(n), batch_(batch_size == 0 || batch_size >= n ? n : batch_size), rng_(seed) {
    if (batch_ == n_) {
      order_.resize(n_);
      for (std::size_t i = 0; i < n_; ++i) order_[i] = i;
    }
  }
  std::size_t batch_size() const noexcept { return batch_; }
  std::span<const std::size_t> next() {
    if (batch_ == n_) return order_;
    if (order_.empty() || position_ + batch_ > n_) {
      order_ = permutation(n_, rng_);
      position_ = 0;
    }
    std::span<const std::size_t> b(order_.data() + position_, batch_);
    position_ += batch_;
    return b;
  }

 private:
  std::size_t n_, batch_, position_ = 0;
  rng rng_;
  std::vector<std::size_t> order_;
};

template <class T>
std::size_t hamming(const std::vector<T>& a, const std::vector<T>& b) {
  std::size_t d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += (a[i] != b[i]) ? 1u : 0u;
  return d;
}

/// The run state: θ, scores, masks of the prunable tensors, and how masks are computed from scores.
template <class T>
class bilevel_state {
 public:
  bilevel_state(std::span<const parameter<T>> params, const bilevel_params& bp) : params_(params), bp_(bp) {
    prunable_ = prunable_indices(params, bp.prunable);
    if (prunable_.empty()) throw std::invalid_argument("bilevel_solver::optimize(): the problem has no prunable parameter");
    is_prunable_.assign(params.size(), false);
    for (std::size_t i : prunable_) is_prunable_[i] = true;
    for (const auto& p : params)
      require_finite(std::span<const T>(p.value), "bilevel_solver::optimize", ("parameter '" + p.name + "'").c_str());
    total_ = 0;
    for (std::size_t i : prunable_) {
      const parameter<T>& p = params[i];
      theta_.emplace_back(p.value.begin(), p.value.end());
      scores_.emplace_back(p.value.size());
      for (std::size_t e = 0; e < p.value.size(); ++e) scores_.back()[e] = std::abs(p.value[e]);
      masks_.emplace_back(p.value.size(), T(0));
      hard_.emplace_back(p.value.size(), T(0));
      scratch_.emplace_back(p.value.size(), T(0));
      shapes_.push_back(mask_shape(p));
      total_ += p.value.size();
    }
    if (bp.scope == mask_scope::global && bp.structure == mask_structure::unstructured) {
      k_ = bp.k > 0 ? bp.k : kept_count(bp.density, total_);
      if (k_ > total_)
        throw std::invalid_argument("bilevel_solver::optimize(): params.k = " + std::to_string(bp.k) +
                                    " exceeds the number of prunable weights " + std::to_string(total_));
    }
    // The initial mask: top-k of |θ| (magnitude pruning of the starting point).
    hard_mask_from(scores_, hard_);
    masks_ = hard_;
    if (bp.parametrization == mask_parametrization::relaxed) start_relaxed();
  }

  std::size_t count() const noexcept { return prunable_.size(); }
  std::size_t total() const noexcept { return total_; }
  const std::vector<std::size_t>& prunable() const noexcept { return prunable_; }
  bool is_prunable(std::size_t i) const { return is_prunable_[i]; }
  std::vector<std::vector<T>>& theta() noexcept { return theta_; }
  std::vector<std::vector<T>>& scores() noexcept { return scores_; }
  std::vector<std::vector<T>>& masks() noexcept { return masks_; }
  std::vector<std::vector<T>>& hard() noexcept { return hard_; }
  std::vector<std::vector<T>>& scratch() noexcept { return scratch_; }

  /// z = m⊙θ into every prunable parameter's value.
  void write_effective(const std::vector<std::vector<T>>& m) const {
    for (std::size_t j = 0; j < prunable_.size(); ++j) {
      T* __restrict z = params_[prunable_[j]].value.data();
      const T* __restrict mj = m[j].data();
      const T* __restrict tj = theta_[j].data();
      const std::size_t n = theta_[j].size();
      for (std::size_t e = 0; e < n; ++e) z[e] = mj[e] * tj[e];
    }
  }

  /// The 0/1 mask of the configured structure and scope, from scores (largest kept).
  void hard_mask_from(const std::vector<std::vector<T>>& scores, std::vector<std::vector<T>>& out) {
    const std::size_t J = prunable_.size();
    if (bp_.structure == mask_structure::unstructured) {
      if (bp_.scope == mask_scope::global) {
        std::vector<std::span<const T>> s(J);
        std::vector<std::span<T>> o(J);
        for (std::size_t j = 0; j < J; ++j) {
          s[j] = scores[j];
          o[j] = out[j];
        }
        top_k_mask_global<T>(std::span<const std::span<const T>>(s), k_, std::span<const std::span<T>>(o));
      } else {
        for (std::size_t j = 0; j < J; ++j)
          top_k_mask<T>(std::span<const T>(scores[j]), kept_count(bp_.density, scores[j].size()), std::span<T>(out[j]));
      }
      return;
    }
    // Structured masks rank by magnitude; scores may be negative, so they are shifted to s − min(s) ≥ 0 first,
    // which keeps the order within a tensor (and, for equal-size groups, the order of group sums).
    for (std::size_t j = 0; j < J; ++j) {
      const auto lowest = *std::min_element(scores[j].begin(), scores[j].end());
      for (std::size_t e = 0; e < scores[j].size(); ++e) scratch_[j][e] = scores[j][e] - lowest;
      const std::span<const std::size_t> shape(shapes_[j]);
      if (bp_.structure == mask_structure::filter) {
        group_top_k_mask<T>(std::span<const T>(scratch_[j]), shape, kept_count(bp_.density, shapes_[j][0]),
                            std::span<T>(out[j]), group_axis::output, group_norm::l1);
      } else {
        n_m_mask<T>(std::span<const T>(scratch_[j]), shape, bp_.n, bp_.m, std::span<T>(out[j]));
      }
    }
  }

  /// The relaxed masks start as the magnitudes scaled to the budget, m = Π(|θ| · k / Σ|θ|) (globally or per
  /// tensor; uniform k/n when θ = 0), or uniform, m = k/n; either way every weight is partly active and receives a
  /// lower-level gradient.
  void start_relaxed() {
    // m ← |θ| · budget / Σ|θ| over `count` entries (budget / count each when Σ|θ| = 0).
    auto scale = [](std::vector<T>& m, double budget, double sum, std::size_t count) {
      for (auto& v : m)
        v = static_cast<T>(sum > 0.0 ? static_cast<double>(v) * budget / sum : budget / static_cast<double>(count));
    };
    auto sum_of = [](const std::vector<T>& s) {
      double sum = 0.0;
      for (T v : s) sum += static_cast<double>(v);
      return sum;
    };
    masks_ = scores_;
    const bool uniform = bp_.start == relaxed_start::uniform;
    if (bp_.scope == mask_scope::global) {
      double sum = 0.0;
      if (!uniform)
        for (const auto& s : scores_) sum += sum_of(s);
      for (auto& m : masks_) scale(m, static_cast<double>(k_), sum, total_);
    } else {
      for (auto& m : masks_)
        scale(m, static_cast<double>(kept_count(bp_.density, m.size())), uniform ? 0.0 : sum_of(m), m.size());
    }
    project_relaxed();
  }

  /// Euclidean projection of the relaxed masks onto {m ∈ [0,1]^n : 1ᵀm ≤ k}, globally or per tensor.
  void project_relaxed() {
    if (bp_.scope == mask_scope::global) {
      flat_.resize(total_);
      std::size_t off = 0;
      for (const auto& m : masks_) {
        std::copy(m.begin(), m.end(), flat_.begin() + static_cast<std::ptrdiff_t>(off));
        off += m.size();
      }
      capped_simplex_projection<T>(std::span<const T>(flat_), static_cast<double>(k_), std::span<T>(flat_));
      off = 0;
      for (auto& m : masks_) {
        std::copy(flat_.begin() + static_cast<std::ptrdiff_t>(off),
                  flat_.begin() + static_cast<std::ptrdiff_t>(off + m.size()), m.begin());
        off += m.size();
      }
    } else {
      for (auto& m : masks_)
        capped_simplex_projection<T>(std::span<const T>(m), static_cast<double>(kept_count(bp_.density, m.size())),
                                     std::span<T>(m));
    }
  }

 private:
  std::vector<std::size_t> mask_shape(const parameter<T>& p) const {
    std::vector<std::size_t> shape = p.shape;
    std::size_t product = 1;
    for (std::size_t s : shape) product *= s;
    if (shape.empty() || product != p.value.size()) shape = {p.value.size()};
    if (bp_.structure == mask_structure::n_m && shape.size() < 2) shape.insert(shape.begin(), 1);
    return shape;
  }

  std::span<const parameter<T>> params_;
  const bilevel_params& bp_;
  std::vector<std::size_t> prunable_;
  std::vector<bool> is_prunable_;
  std::vector<std::vector<T>> theta_, scores_, masks_, hard_, scratch_;
  std::vector<std::vector<std::size_t>> shapes_;
  std::vector<T> flat_;
  std::size_t total_ = 0, k_ = 0;
};

}  // namespace detail

template <class P, class... Callbacks>
bilevel_result<problem_scalar_t<P>> bilevel_solver::optimize(P& problem, Callbacks&&... callbacks) {
  static_assert(check_bilevel_problem<P>());
  using T = problem_scalar_t<P>;
  check_callbacks<T, Callbacks...>();
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const bilevel_params& bp = params_;

  if (bp.ig_mode == implicit_gradient_mode::exact && !has_hessian_vector_product<P>)
    throw std::invalid_argument(
        "bilevel_solver::optimize(): params.ig_mode exact needs a problem with hessian_vector_product(indices, v, out)");
  const std::size_t num_samples = static_cast<std::size_t>(problem.num_samples());
  if (num_samples == 0) throw std::invalid_argument("bilevel_solver::optimize(): the problem has no samples");

  const std::span<const parameter<T>> params = problem.parameters();
  detail::bilevel_state<T> state(params, bp);
  const std::size_t J = state.count();
  const bool relaxed = bp.parametrization == mask_parametrization::relaxed;

  std::vector<std::size_t> sizes;
  for (const auto& p : params) sizes.push_back(p.value.size());
  sgd_params lower_sgd{bp.lower_learning_rate, bp.momentum, false, bp.gamma};
  sgd<T> lower(lower_sgd, sizes);
  std::vector<std::size_t> prunable_sizes;
  for (const auto& t : state.theta()) prunable_sizes.push_back(t.size());
  sgd<T> upper(sgd_params{bp.upper_learning_rate, bp.upper_momentum, false, 0.0}, prunable_sizes);

  detail::batch_sampler sampler(num_samples, bp.batch_size, bp.seed);
  std::vector<std::vector<T>> grad(J), ig(J);
  for (std::size_t j = 0; j < J; ++j) {
    grad[j].resize(prunable_sizes[j]);
    ig[j].resize(prunable_sizes[j]);
  }
  // Exact mode works on all parameters concatenated (m = 1 on the unmasked ones).
  std::vector<T> flat_theta, flat_m, flat_g, flat_ig;

  std::vector<std::span<const T>> weight_spans(J), mask_spans(J);
  for (std::size_t j = 0; j < J; ++j) {
    weight_spans[j] = params[state.prunable()[j]].value;
    mask_spans[j] = state.hard()[j];
  }

  bilevel_result<T> result;
  result.prunable = state.prunable();
  const run_info info{"bip", bp.iterations, bp.lower_steps};
  notify_begin(info, callbacks...);

  std::vector<std::vector<T>> previous_hard = state.hard();
  std::size_t step = 0, unchanged = 0;
  bool stop = false;
  for (std::size_t it = 0; it < bp.iterations && !stop; ++it) {
    // ---- lower level: θ ← θ − α (m⊙g + γθ) ----
    double lower_sum = 0.0;
    std::size_t lower_done = 0;
    for (std::size_t s = 0; s < bp.lower_steps; ++s) {
      state.write_effective(state.masks());
      const double loss = static_cast<double>(problem.loss_and_gradient(sampler.next()));
      if (!std::isfinite(loss)) {  // before the step: θ keeps its last finite values
        stop = true;
        result.reason = termination::diverged;
        break;
      }
      for (std::size_t j = 0; j < J; ++j) {
        const parameter<T>& p = params[state.prunable()[j]];
        const T* __restrict g = p.grad.data();
        const T* __restrict m = state.masks()[j].data();
        T* __restrict out = grad[j].data();
        for (std::size_t e = 0; e < grad[j].size(); ++e) out[e] = m[e] * g[e];
        lower.step(state.prunable()[j], std::span<T>(state.theta()[j]), std::span<const T>(grad[j]),
                   bp.lower_learning_rate, bp.gamma);
      }
      for (std::size_t i = 0; i < params.size(); ++i)
        if (!state.is_prunable(i))
          lower.step(i, params[i].value, std::span<const T>(params[i].grad), bp.lower_learning_rate, bp.gamma);
      lower_sum += loss;
      ++lower_done;
      if (notify_step(step_info{it, step++, loss}, callbacks...)) {
        stop = true;
        result.reason = termination::callback_stop;
        break;
      }
    }
    if (stop) break;

    // ---- upper level: IG at z = m⊙θ on a fresh mini-batch ----
    state.write_effective(state.masks());
    const std::span<const std::size_t> batch = sampler.next();
    double upper_loss = 0.0;
    if (bp.ig_mode == implicit_gradient_mode::exact) {
      if constexpr (has_hessian_vector_product<P>) {
        std::size_t total = 0;
        for (const auto& p : params) total += p.value.size();
        flat_theta.resize(total);
        flat_m.resize(total);
        flat_g.resize(total);
        flat_ig.resize(total);
        std::size_t off = 0, j = 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
          const std::size_t n = params[i].value.size();
          if (state.is_prunable(i)) {
            std::copy(state.theta()[j].begin(), state.theta()[j].end(), flat_theta.begin() + off);
            std::copy(state.masks()[j].begin(), state.masks()[j].end(), flat_m.begin() + off);
            ++j;
          } else {
            std::copy(params[i].value.begin(), params[i].value.end(), flat_theta.begin() + off);
            std::fill_n(flat_m.begin() + off, n, T(1));
          }
          off += n;
        }
        upper_loss = static_cast<double>(problem.loss_and_gradient(batch));
        off = 0;
        for (const auto& p : params) {
          std::copy(p.grad.begin(), p.grad.end(), flat_g.begin() + off);
          off += p.grad.size();
        }
        auto hvp = [&](std::span<const T> u, std::span<T> hu) { problem.hessian_vector_product(batch, u, hu); };
        const conjugate_gradient_result cg = exact_implicit_gradient<T>(
            hvp, std::span<const T>(flat_g), std::span<const T>(flat_theta), std::span<const T>(flat_m), bp.gamma,
            std::span<T>(flat_ig), bp.cg_max_iterations, bp.cg_tolerance);
        result.cg_iterations.push_back(cg.iterations);
        if (!cg.converged) ++result.cg_unconverged;
        off = 0;
        j = 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
          const std::size_t n = params[i].value.size();
          if (state.is_prunable(i)) std::copy_n(flat_ig.begin() + off, n, ig[j++].begin());
          off += n;
        }
      }
    } else {
      upper_loss = static_cast<double>(problem.loss_and_gradient(batch));
      for (std::size_t j = 0; j < J; ++j) {
        const std::span<const T> g = params[state.prunable()[j]].grad;
        if (bp.ig_mode == implicit_gradient_mode::first_order)
          first_order_implicit_gradient<T>(g, state.theta()[j], state.masks()[j], bp.gamma, ig[j]);
        else
          direct_gradient<T>(g, state.theta()[j], ig[j]);
      }
    }

    // A non-finite loss or IG would poison the scores or the projection: stop with the last finite masks.
    {
      double ig_sum = 0.0;
      for (const auto& v : ig)
        for (T x : v) ig_sum += static_cast<double>(x);
      if (!std::isfinite(upper_loss) || !std::isfinite(ig_sum)) {
        result.reason = termination::diverged;
        break;
      }
    }

    // ---- upper update and projection ----
    if (!relaxed) {
      for (std::size_t j = 0; j < J; ++j)
        upper.step(j, std::span<T>(state.scores()[j]), std::span<const T>(ig[j]), bp.upper_learning_rate, 0.0);
      state.hard_mask_from(state.scores(), state.hard());
      state.masks() = state.hard();
    } else {
      for (std::size_t j = 0; j < J; ++j)
        upper.step(j, std::span<T>(state.masks()[j]), std::span<const T>(ig[j]), bp.upper_learning_rate, 0.0);
      state.project_relaxed();
      state.hard_mask_from(state.masks(), state.hard());
    }
    std::size_t change = 0;
    for (std::size_t j = 0; j < J; ++j) change += detail::hamming(previous_hard[j], state.hard()[j]);
    previous_hard = state.hard();
    double kept = 0.0;
    for (const auto& m : state.masks())
      for (T v : m) kept += static_cast<double>(v);
    const double density = kept / static_cast<double>(state.total());

    result.upper_loss.push_back(upper_loss);
    result.lower_loss.push_back(lower_sum / static_cast<double>(lower_done));
    result.mask_change.push_back(change);
    result.density.push_back(density);
    result.iterations = it + 1;

    state.write_effective(state.masks());
    epoch_info<T> e;
    e.epoch = it;
    e.train_loss = result.lower_loss.back();
    e.upper_loss = upper_loss;
    e.density = density;
    e.mask_change = change;
    e.seconds = std::chrono::duration<double>(clock::now() - start).count();
    e.weights = weight_spans;
    e.masks = mask_spans;
    if constexpr (trainable_model<P>) {
      if (bp.evaluate_every > 0 && (it + 1) % bp.evaluate_every == 0) {
        const evaluation ev = problem.evaluate();
        e.test_loss = ev.loss;
        e.test_accuracy = ev.accuracy;
      }
    }
    if (notify_epoch(e, callbacks...)) {
      stop = true;
      result.reason = termination::callback_stop;
      break;
    }
    unchanged = change == 0 ? unchanged + 1 : 0;
    if (bp.stable_mask_iterations > 0 && unchanged >= bp.stable_mask_iterations) {
      result.reason = termination::mask_converged;
      break;
    }
  }

  // The pruned model: z = m⊙θ with the final 0/1 mask.
  state.write_effective(state.hard());
  result.masks = state.hard();
  result.seconds = std::chrono::duration<double>(clock::now() - start).count();
  notify_end(info, callbacks...);
  return result;
}

}  // namespace bipq
