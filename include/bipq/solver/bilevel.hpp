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
#include "bipq/mask/mask_set.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/optim/sgd.hpp"
#include "bipq/solver/implicit_gradient.hpp"
#include "bipq/solver/params.hpp"
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
  /// other parameters hold their trained values; the result holds that mask. Callbacks: step_taken after every
  /// lower step, end_epoch after every upper iteration (see callbacks/callback.hpp).
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

/// Number of entries where two mask sets differ.
template <class T>
std::size_t hamming(const mask_set<T>& a, const mask_set<T>& b) {
  std::size_t d = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    const std::span<const T> x = a[j], y = b[j];
    for (std::size_t i = 0; i < x.size(); ++i) d += (x[i] != y[i]) ? 1u : 0u;
  }
  return d;
}

/// The variables of a run: θ, the scores, the upper variable m (the hard mask, or the relaxed one), the hard 0/1
/// mask, and how masks are computed from scores.
template <class T>
class bilevel_variables {
 public:
  bilevel_variables(std::span<const parameter<T>> params, const bilevel_params& bp)
      : params_(params), bp_(bp), hard_(params, bp.mask.prunable, "bilevel_solver::optimize()") {
    is_prunable_.assign(params.size(), false);
    for (std::size_t i : hard_.prunable()) is_prunable_[i] = true;
    for (const auto& p : params)
      require_finite(std::span<const T>(p.value), "bilevel_solver::optimize", ("parameter '" + p.name + "'").c_str());
    for (std::size_t i : hard_.prunable()) {
      const parameter<T>& p = params[i];
      theta_.emplace_back(p.value.begin(), p.value.end());
      scores_.emplace_back(p.value.size());
      for (std::size_t e = 0; e < p.value.size(); ++e) scores_.back()[e] = std::abs(p.value[e]);
      scratch_.emplace_back(p.value.size(), T(0));
    }
    if (bp.mask.structure == mask_structure::n_m)  // N:M runs along the last dimension: a vector is one row
      for (std::size_t j = 0; j < hard_.size(); ++j) {
        std::vector<std::size_t> shape = hard_.shape(j);
        if (shape.size() < 2) shape.insert(shape.begin(), 1);
        n_m_shapes_.push_back(std::move(shape));
      }
    const mask_spec& spec = bp.mask;
    if (spec.scope == mask_scope::global && spec.structure == mask_structure::unstructured) {
      k_ = spec.k > 0 ? spec.k : kept_count(spec.density, total());
      if (k_ > total())
        throw std::invalid_argument("bilevel_solver::optimize(): params.mask.k = " + std::to_string(spec.k) +
                                    " exceeds the number of prunable weights " + std::to_string(total()));
    }
    // The initial mask: top-k of |θ| (magnitude pruning of the starting point).
    hard_mask_from(scores_, hard_);
    masks_.reserve(hard_.size());
    for (std::size_t j = 0; j < hard_.size(); ++j) masks_.emplace_back(hard_[j].begin(), hard_[j].end());
    if (bp.parametrization == mask_parametrization::relaxed) start_relaxed();
  }

  std::size_t count() const noexcept { return hard_.size(); }
  std::size_t total() const noexcept { return hard_.total(); }
  std::size_t index(std::size_t j) const { return hard_.prunable()[j]; }
  bool is_prunable(std::size_t i) const { return is_prunable_[i]; }
  std::vector<std::vector<T>>& theta() noexcept { return theta_; }
  const std::vector<std::vector<T>>& theta() const noexcept { return theta_; }
  std::vector<std::vector<T>>& scores() noexcept { return scores_; }
  /// The upper variable: the hard mask (scores) or the relaxed m ∈ [0,1]^n.
  std::vector<std::vector<T>>& masks() noexcept { return masks_; }
  mask_set<T>& hard() noexcept { return hard_; }

  /// z = m⊙θ into every prunable parameter's value, m the upper variable.
  void write_effective() const { write_effective_with([&](std::size_t j) { return masks_[j].data(); }); }
  /// z = m⊙θ with the hard 0/1 mask.
  void write_hard_effective() const { write_effective_with([&](std::size_t j) { return hard_[j].data(); }); }

  /// Scores: s ← s − β IG, then the hard mask from the scores, which the upper variable becomes.
  /// Relaxed: m ← Π(m − β IG), then the hard mask from m.
  /// Weights: θ ← θ − β sign(θ)⊙IG (the IG is the gradient with respect to s = |θ|), then s = |θ| and the hard mask.
  void upper_step(sgd<T>& upper, const std::vector<std::vector<T>>& ig, double rate) {
    const double decay = bp_.upper_weight_decay;
    if (bp_.parametrization == mask_parametrization::weights) {
      for (std::size_t j = 0; j < count(); ++j) {
        std::vector<T>& th = theta_[j];
        for (std::size_t e = 0; e < th.size(); ++e)
          scratch_[j][e] = th[e] > T(0) ? ig[j][e] : th[e] < T(0) ? -ig[j][e] : T(0);
        upper.step(j, std::span<T>(th), std::span<const T>(scratch_[j]), rate, decay);
        for (std::size_t e = 0; e < th.size(); ++e) scores_[j][e] = std::abs(th[e]);
      }
      hard_mask_from(scores_, hard_);
      for (std::size_t j = 0; j < count(); ++j) std::copy(hard_[j].begin(), hard_[j].end(), masks_[j].begin());
      return;
    }
    const bool relaxed = bp_.parametrization == mask_parametrization::relaxed;
    std::vector<std::vector<T>>& variable = relaxed ? masks_ : scores_;
    for (std::size_t j = 0; j < count(); ++j)
      upper.step(j, std::span<T>(variable[j]), std::span<const T>(ig[j]), rate, decay);
    if (relaxed) project_relaxed();
    hard_mask_from(variable, hard_);
    if (!relaxed)
      for (std::size_t j = 0; j < count(); ++j) std::copy(hard_[j].begin(), hard_[j].end(), masks_[j].begin());
  }

  /// Σm / n of the upper variable.
  double density() const {
    double kept = 0.0;
    for (const auto& m : masks_)
      for (T v : m) kept += static_cast<double>(v);
    return kept / static_cast<double>(total());
  }

 private:
  template <class MaskOf>
  void write_effective_with(MaskOf mask_of) const {
    for (std::size_t j = 0; j < count(); ++j) {
      T* __restrict z = params_[index(j)].value.data();
      const T* __restrict mj = mask_of(j);
      const T* __restrict tj = theta_[j].data();
      const std::size_t n = theta_[j].size();
      for (std::size_t e = 0; e < n; ++e) z[e] = mj[e] * tj[e];
    }
  }

  /// The 0/1 mask of the configured structure and scope, from scores (largest kept).
  void hard_mask_from(const std::vector<std::vector<T>>& scores, mask_set<T>& out) {
    const std::size_t J = count();
    const mask_spec& spec = bp_.mask;
    if (spec.structure == mask_structure::unstructured) {
      if (spec.scope == mask_scope::global) {
        std::vector<std::span<const T>> s(scores.begin(), scores.end());
        const std::vector<std::span<T>> o = out.spans();
        top_k_mask_global<T>(std::span<const std::span<const T>>(s), k_, std::span<const std::span<T>>(o));
      } else {
        for (std::size_t j = 0; j < J; ++j)
          top_k_mask<T>(std::span<const T>(scores[j]), kept_count(spec.density, scores[j].size()), out[j]);
      }
      return;
    }
    // Structured masks rank by magnitude; scores may be negative, so they are shifted to s − min(s) ≥ 0 first,
    // which keeps the order within a tensor (and, for equal-size groups, the order of group sums).
    for (std::size_t j = 0; j < J; ++j) {
      const auto lowest = *std::min_element(scores[j].begin(), scores[j].end());
      for (std::size_t e = 0; e < scores[j].size(); ++e) scratch_[j][e] = scores[j][e] - lowest;
      if (spec.structure == mask_structure::filter) {
        const std::vector<std::size_t>& shape = hard_.shape(j);
        group_top_k_mask<T>(std::span<const T>(scratch_[j]), std::span<const std::size_t>(shape),
                            kept_count(spec.density, shape[0]), out[j], group_axis::output, group_norm::l1);
      } else {
        n_m_mask<T>(std::span<const T>(scratch_[j]), std::span<const std::size_t>(n_m_shapes_[j]), spec.n, spec.m,
                    out[j]);
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
    if (bp_.mask.scope == mask_scope::global) {
      double sum = 0.0;
      if (!uniform)
        for (const auto& s : scores_) sum += sum_of(s);
      for (auto& m : masks_) scale(m, static_cast<double>(k_), sum, total());
    } else {
      for (auto& m : masks_)
        scale(m, static_cast<double>(kept_count(bp_.mask.density, m.size())), uniform ? 0.0 : sum_of(m), m.size());
    }
    project_relaxed();
  }

  /// Euclidean projection of the relaxed masks onto {m ∈ [0,1]^n : 1ᵀm ≤ k}, globally or per tensor.
  void project_relaxed() {
    if (bp_.mask.scope == mask_scope::global) {
      flat_.resize(total());
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
        capped_simplex_projection<T>(std::span<const T>(m), static_cast<double>(kept_count(bp_.mask.density, m.size())),
                                     std::span<T>(m));
    }
  }

  std::span<const parameter<T>> params_;
  const bilevel_params& bp_;
  mask_set<T> hard_;
  std::vector<bool> is_prunable_;
  std::vector<std::vector<T>> theta_, scores_, masks_, scratch_;
  std::vector<std::vector<std::size_t>> n_m_shapes_;
  std::vector<T> flat_;
  std::size_t k_ = 0;
};

/// The steps of one bilevel_solver::optimize run on a problem: the lower SGD step on θ (and the unmasked
/// parameters), the implicit gradient of the upper loss, and the upper step on the mask.
template <class P>
class bilevel_run {
 public:
  using T = problem_scalar_t<P>;

  bilevel_run(P& problem, const bilevel_params& bp)
      : problem_(problem), bp_(bp), params_(problem.parameters()), state_(params_, bp),
        lower_(sgd_params{bp.lower_learning_rate, bp.momentum, false, bp.gamma}, sizes_of_all()),
        upper_(sgd_params{bp.upper_learning_rate, bp.upper_momentum, false, bp.upper_weight_decay}, sizes_of_prunable()),
        grad_(state_.count()), ig_(state_.count()) {
    for (std::size_t j = 0; j < state_.count(); ++j) {
      grad_[j].resize(state_.theta()[j].size());
      ig_[j].resize(state_.theta()[j].size());
    }
  }

  bilevel_variables<T>& state() noexcept { return state_; }
  const std::vector<std::vector<T>>& implicit_gradient() const noexcept { return ig_; }

  /// θ ← θ − α (m⊙g + γθ) on the batch, and the unmasked parameters ← − α (g + γ·value); returns the loss, or a
  /// non-finite loss without stepping.
  double lower_step(std::span<const std::size_t> batch, double rate) {
    state_.write_effective();
    const double loss = static_cast<double>(problem_.loss_and_gradient(batch));
    if (!std::isfinite(loss)) return loss;  // θ keeps its last finite values
    for (std::size_t j = 0; j < state_.count(); ++j) {
      const parameter<T>& p = params_[state_.index(j)];
      const T* __restrict g = p.grad.data();
      const T* __restrict m = state_.masks()[j].data();
      T* __restrict out = grad_[j].data();
      for (std::size_t e = 0; e < grad_[j].size(); ++e) out[e] = m[e] * g[e];
      lower_.step(state_.index(j), std::span<T>(state_.theta()[j]), std::span<const T>(grad_[j]), rate, bp_.gamma);
    }
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (!state_.is_prunable(i))
        lower_.step(i, params_[i].value, std::span<const T>(params_[i].grad), rate, bp_.gamma);
    return loss;
  }

  /// The implicit gradient at z = m⊙θ on the batch (into implicit_gradient()); returns the upper loss.
  double upper_gradient(std::span<const std::size_t> batch, bilevel_result<T>& result) {
    state_.write_effective();
    if (bp_.ig_mode == implicit_gradient_mode::exact) {
      if constexpr (has_hessian_vector_product<P>) return exact_upper_gradient(batch, result);
    }
    const double loss = static_cast<double>(problem_.loss_and_gradient(batch));
    for (std::size_t j = 0; j < state_.count(); ++j) {
      const std::span<const T> g = params_[state_.index(j)].grad;
      if (bp_.ig_mode == implicit_gradient_mode::first_order && bp_.second_term_coefficient)
        detail::first_order_ig<T>(g, state_.theta()[j], state_.masks()[j],
                                  static_cast<T>(*bp_.second_term_coefficient), ig_[j]);
      else if (bp_.ig_mode == implicit_gradient_mode::first_order)
        first_order_implicit_gradient<T>(g, state_.theta()[j], state_.masks()[j], bp_.gamma, ig_[j]);
      else
        direct_gradient<T>(g, state_.theta()[j], ig_[j]);
    }
    return loss;
  }

  /// True if the implicit gradient has a NaN or Inf.
  bool implicit_gradient_finite() const {
    double sum = 0.0;
    for (const auto& v : ig_)
      for (T x : v) sum += static_cast<double>(x);
    return std::isfinite(sum);
  }

  /// The upper step at rate β_t and the new hard mask.
  void upper_step(double rate) { state_.upper_step(upper_, ig_, rate); }

 private:
  std::vector<std::size_t> sizes_of_all() const {
    std::vector<std::size_t> sizes;
    for (const auto& p : params_) sizes.push_back(p.value.size());
    return sizes;
  }
  std::vector<std::size_t> sizes_of_prunable() const {
    std::vector<std::size_t> sizes;
    for (const auto& t : state_.theta()) sizes.push_back(t.size());
    return sizes;
  }

  /// Exact mode on all parameters concatenated (m = 1 on the unmasked ones): v solves
  /// (diag(m) H diag(m) + γI) v = m⊙g by conjugate gradients on Hessian–vector products.
  double exact_upper_gradient(std::span<const std::size_t> batch, bilevel_result<T>& result) {
    std::size_t total = 0;
    for (const auto& p : params_) total += p.value.size();
    flat_theta_.resize(total);
    flat_m_.resize(total);
    flat_g_.resize(total);
    flat_ig_.resize(total);
    std::size_t off = 0, j = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const std::size_t n = params_[i].value.size();
      if (state_.is_prunable(i)) {
        std::copy(state_.theta()[j].begin(), state_.theta()[j].end(), flat_theta_.begin() + off);
        std::copy(state_.masks()[j].begin(), state_.masks()[j].end(), flat_m_.begin() + off);
        ++j;
      } else {
        std::copy(params_[i].value.begin(), params_[i].value.end(), flat_theta_.begin() + off);
        std::fill_n(flat_m_.begin() + off, n, T(1));
      }
      off += n;
    }
    const double loss = static_cast<double>(problem_.loss_and_gradient(batch));
    off = 0;
    for (const auto& p : params_) {
      std::copy(p.grad.begin(), p.grad.end(), flat_g_.begin() + off);
      off += p.grad.size();
    }
    auto hvp = [&](std::span<const T> u, std::span<T> hu) { problem_.hessian_vector_product(batch, u, hu); };
    const conjugate_gradient_result cg = exact_implicit_gradient<T>(
        hvp, std::span<const T>(flat_g_), std::span<const T>(flat_theta_), std::span<const T>(flat_m_), bp_.gamma,
        std::span<T>(flat_ig_), bp_.cg_max_iterations, bp_.cg_tolerance);
    result.cg_iterations.push_back(cg.iterations);
    if (!cg.converged) ++result.cg_unconverged;
    off = 0;
    j = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const std::size_t n = params_[i].value.size();
      if (state_.is_prunable(i)) std::copy_n(flat_ig_.begin() + off, n, ig_[j++].begin());
      off += n;
    }
    return loss;
  }

  P& problem_;
  const bilevel_params& bp_;
  std::span<const parameter<T>> params_;
  bilevel_variables<T> state_;
  sgd<T> lower_, upper_;
  std::vector<std::vector<T>> grad_, ig_;
  std::vector<T> flat_theta_, flat_m_, flat_g_, flat_ig_;
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

  detail::bilevel_run<P> run(problem, bp);
  detail::bilevel_variables<T>& state = run.state();
  detail::batch_sampler sampler(num_samples, bp.batch_size, bp.seed);
  const std::span<const parameter<T>> params = problem.parameters();
  const std::vector<std::span<const T>> mask_spans = std::as_const(state.hard()).spans();
  std::vector<std::span<const T>> weight_spans;
  for (std::size_t j = 0; j < state.count(); ++j) weight_spans.push_back(params[state.index(j)].value);

  bilevel_result<T> result;
  const run_info info{"bip", bp.iterations, bp.lower_steps};
  notify_begin(info, callbacks...);

  mask_set<T> previous_hard = state.hard();
  std::size_t step = 0, unchanged = 0;
  for (std::size_t it = 0; it < bp.iterations; ++it) {
    const double lower_rate = scheduled_rate(bp.lower_schedule, bp.lower_learning_rate, it, bp.iterations);
    const double upper_rate = scheduled_rate(bp.upper_schedule, bp.upper_learning_rate, it, bp.iterations);
    double lower_sum = 0.0;
    bool stop = false;
    for (std::size_t s = 0; s < bp.lower_steps && !stop; ++s) {
      const double loss = run.lower_step(sampler.next(), lower_rate);
      if (!std::isfinite(loss)) {
        result.reason = termination::diverged;
        stop = true;
      } else {
        lower_sum += loss;
        if (notify_step(step_info{it, step++, loss}, callbacks...)) {
          result.reason = termination::callback_stop;
          stop = true;
        }
      }
    }
    if (stop) break;

    // A non-finite loss or IG would poison the scores or the projection: stop with the last finite masks.
    const double upper_loss = run.upper_gradient(sampler.next(), result);
    if (!std::isfinite(upper_loss) || !run.implicit_gradient_finite()) {
      result.reason = termination::diverged;
      break;
    }
    run.upper_step(upper_rate);

    const std::size_t change = detail::hamming(previous_hard, state.hard());
    previous_hard = state.hard();
    result.upper_loss.push_back(upper_loss);
    result.lower_loss.push_back(lower_sum / static_cast<double>(bp.lower_steps));
    result.mask_change.push_back(change);
    result.density.push_back(state.density());
    result.iterations = it + 1;

    state.write_effective();
    epoch_info<T> e;
    e.epoch = it;
    e.train_loss = result.lower_loss.back();
    e.upper_loss = upper_loss;
    e.density = result.density.back();
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
      result.reason = termination::callback_stop;
      break;
    }
    unchanged = change == 0 ? unchanged + 1 : 0;
    if (bp.stable_mask_iterations > 0 && unchanged >= bp.stable_mask_iterations) {
      result.reason = termination::mask_converged;
      break;
    }
  }

  // The pruned model: z = m⊙θ with the final 0/1 mask, which the result takes.
  state.write_hard_effective();
  result.masks = std::move(state.hard());
  result.seconds = std::chrono::duration<double>(clock::now() - start).count();
  notify_end(info, callbacks...);
  return result;
}

}  // namespace bipq
