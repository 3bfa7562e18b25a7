#pragma once
// Settings of the bi-level pruning solver (BiP, Zhang et al., "Advancing Model Pruning via Bi-level Optimization",
// NeurIPS 2022). See docs/bilevel.md for the table of fields and how they were chosen on the toy problems.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bipq/mask/spec.hpp"

namespace bipq {

/// How the upper level differentiates through the lower level's solution θ*(m).
///   first_order: IG = g ⊙ (θ − (1/γ) m⊙g), exact when ∇²_z ℓ = 0 (the bi-linear case; BiP, Eq. 6);
///   none:        IG = θ ⊙ g, the direct term only (alternating optimisation without the implicit term);
///   exact:       IG = θ⊙g − g⊙v − θ⊙(∇²_z ℓ (m⊙v)), where v solves (diag(m) ∇²_z ℓ diag(m) + γI) v = m⊙g by
///                conjugate gradients on Hessian–vector products (problems with `hessian_vector_product`).
enum class implicit_gradient_mode { first_order, none, exact };

/// What the upper level optimises.
///   scores:  continuous scores s (initialised to |θ|); m = top_k(s) after every upper step, and the gradient with
///            respect to m is applied to s (straight-through; BiP's default);
///   relaxed: m ∈ [0,1]^n itself, projected onto {m ∈ [0,1]^n : 1ᵀm ≤ k} (capped simplex) after every upper step and
///            rounded by top_k at the end (unstructured masks only);
///   weights: the scores are the weights' magnitudes, s = |θ| (the released BiP code assigns the weights' storage to
///            the scores): m = top_k(|θ|), and the upper step moves θ itself by sign(θ) ⊙ IG, pruned weights included,
///            so a pruned weight keeps learning and can come back.
enum class mask_parametrization { scores, relaxed, weights };

/// How a learning rate changes over the T iterations of a run (t = 0..T−1).
///   constant: r_t = r;
///   cosine:   r_t = r (1 + cos(π t / T)) / 2;
///   step:     r_t = r, 0.1 r from t ≥ T/2, 0.01 r from t ≥ 3T/4 (the released BiP code's score schedule).
enum class rate_schedule { constant, cosine, step };

/// r_t of `schedule` at iteration t of T (T ≥ 1).
inline double scheduled_rate(rate_schedule schedule, double rate, std::size_t t, std::size_t T) {
  constexpr double pi = 3.14159265358979323846;
  switch (schedule) {
    case rate_schedule::cosine:
      return rate * 0.5 * (1.0 + std::cos(pi * static_cast<double>(t) / static_cast<double>(T)));
    case rate_schedule::step:
      return 4 * t >= 3 * T ? 0.01 * rate : 2 * t >= T ? 0.1 * rate : rate;
    case rate_schedule::constant:
      break;
  }
  return rate;
}

/// Where a relaxed mask starts (mask_parametrization::relaxed only).
///   magnitude: m = Π(|θ| · k / Σ|θ|), the starting weights' magnitudes scaled to the budget;
///   uniform:   m = k/n everywhere, every weight equally and partly active, whatever its starting value.
enum class relaxed_start { magnitude, uniform };

/// How the bi-level solver steps: learning rates, γ, lower steps, mini-batches, the upper variable and its gradient,
/// conjugate gradients, the stopping rule and the seed. Everything of bilevel_params but the mask and the number of
/// iterations, which the BiP driver (prune/bip.hpp) decides itself. Every field is checked by validate().
struct bilevel_settings {
  // ---- lower level: θ ← θ − α (m⊙g + γθ), SGD with momentum μ ----
  double lower_learning_rate = 0.01;  ///< α > 0
  double momentum = 0.9;              ///< μ ∈ [0, 1), lower-level SGD momentum
  double gamma = 1e-4;                ///< γ > 0: the lower problem's ridge term (γ/2)‖θ‖² (weight decay)
  std::size_t lower_steps = 1;        ///< lower SGD steps per upper step (≥ 1)
  rate_schedule lower_schedule = rate_schedule::constant;  ///< α_t over the iterations

  // ---- upper level: s ← s − β IG (or m ← Π(m − β IG), or θ ← θ − β sign(θ)⊙IG), SGD with momentum ----
  double upper_learning_rate = 0.01;  ///< β > 0
  double upper_momentum = 0.0;        ///< momentum of the upper SGD, in [0, 1)
  double upper_weight_decay = 0.0;    ///< weight decay of the upper SGD on its variable, ≥ 0
  rate_schedule upper_schedule = rate_schedule::constant;  ///< β_t over the iterations

  // ---- data ----
  std::size_t batch_size = 64;  ///< samples per step, drawn from a seeded permutation; 0 = the full training set

  // ---- the upper variable and its gradient ----
  mask_parametrization parametrization = mask_parametrization::scores;
  relaxed_start start = relaxed_start::magnitude;  ///< the relaxed mask's starting point (relaxed only)
  implicit_gradient_mode ig_mode = implicit_gradient_mode::first_order;
  /// first_order only: the coefficient c of the IG's second term, IG = g ⊙ (θ − c · m⊙g). std::nullopt: c = 1/γ, the
  /// paper's Eq. 6 (derived in docs/bilevel.md). The released BiP code uses a constant (its `lr2` = 1e-4).
  std::optional<double> second_term_coefficient{};

  // ---- exact mode: conjugate gradients ----
  std::size_t cg_max_iterations = 100;  ///< ≥ 1
  double cg_tolerance = 1e-10;          ///< stop when ‖r‖ ≤ tol · ‖m⊙g‖, > 0

  // ---- termination and bookkeeping ----
  /// If > 0, stop (termination::mask_converged) once the hard mask has not changed for this many upper iterations.
  std::size_t stable_mask_iterations = 0;
  /// If > 0 and the problem has `evaluate()`, evaluate on held-out data every this many iterations (test_loss).
  std::size_t evaluate_every = 0;
  std::uint64_t seed = 0;  ///< seeds the mini-batch permutations (same seed, same bits)

  /// Throws std::invalid_argument("<owner>: '<field>' ...") naming the first invalid field.
  void validate(std::string_view owner = "bilevel_params") const {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(owner) + ": " + what); };
    auto positive = [](double x) { return std::isfinite(x) && x > 0.0; };
    if (!positive(lower_learning_rate)) fail("'lower_learning_rate' must be finite and > 0");
    if (!(momentum >= 0.0 && momentum < 1.0)) fail("'momentum' must be in [0, 1)");
    if (!positive(gamma)) fail("'gamma' must be finite and > 0");
    if (lower_steps == 0) fail("'lower_steps' must be >= 1");
    if (!positive(upper_learning_rate)) fail("'upper_learning_rate' must be finite and > 0");
    if (!(upper_momentum >= 0.0 && upper_momentum < 1.0)) fail("'upper_momentum' must be in [0, 1)");
    if (!(std::isfinite(upper_weight_decay) && upper_weight_decay >= 0.0))
      fail("'upper_weight_decay' must be finite and >= 0");
    if (second_term_coefficient && !(std::isfinite(*second_term_coefficient) && *second_term_coefficient >= 0.0))
      fail("'second_term_coefficient' must be finite and >= 0");
    if (cg_max_iterations == 0) fail("'cg_max_iterations' must be >= 1");
    if (!positive(cg_tolerance)) fail("'cg_tolerance' must be finite and > 0");
  }

  /// Throws if these settings cannot find `mask` (a relaxed mask must be unstructured).
  void validate_with(const mask_spec& mask, std::string_view owner) const {
    if (parametrization == mask_parametrization::relaxed && mask.structure != mask_structure::unstructured)
      throw std::invalid_argument(std::string(owner) + ": 'parametrization' relaxed requires mask.structure unstructured");
  }
};

/// Parameters of bilevel_solver: the settings, the mask to find and the number of upper iterations.
struct bilevel_params : bilevel_settings {
  mask_spec mask{};              ///< density or k, scope, structure, N:M, prunable selection (mask/spec.hpp)
  std::size_t iterations = 100;  ///< number of upper iterations (≥ 1); each reports one epoch to callbacks

  /// Throws std::invalid_argument("bilevel_params: '<field>' ...") naming the first invalid field.
  void validate() const {
    bilevel_settings::validate("bilevel_params");
    if (iterations == 0) throw std::invalid_argument("bilevel_params: 'iterations' must be >= 1");
    mask.validate("bilevel_params");
    validate_with(mask, "bilevel_params");
  }
};

}  // namespace bipq
