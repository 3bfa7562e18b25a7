#pragma once
// Settings of the bi-level pruning solver (BiP, Zhang et al., "Advancing Model Pruning via Bi-level Optimization",
// NeurIPS 2022). See docs/bilevel.md for the table of fields and how they were chosen on the toy problems.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "bipq/solver/prunable.hpp"

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
///            rounded by top_k at the end (unstructured masks only).
enum class mask_parametrization { scores, relaxed };

/// Where a relaxed mask starts (mask_parametrization::relaxed only).
///   magnitude: m = Π(|θ| · k / Σ|θ|), the starting weights' magnitudes scaled to the budget;
///   uniform:   m = k/n everywhere, every weight equally and partly active, whatever its starting value.
enum class relaxed_start { magnitude, uniform };

/// Parameters of bilevel_solver. Every field is checked by validate().
struct bilevel_params {
  // ---- lower level: θ ← θ − α (m⊙g + γθ), SGD with momentum μ ----
  double lower_learning_rate = 0.01;  ///< α > 0
  double momentum = 0.9;              ///< μ ∈ [0, 1), lower-level SGD momentum
  double gamma = 1e-4;                ///< γ > 0: the lower problem's ridge term (γ/2)‖θ‖², and the 1/γ of the IG
  std::size_t lower_steps = 1;        ///< lower SGD steps per upper step (≥ 1)

  // ---- upper level: s ← s − β IG (or m ← Π(m − β IG)) ----
  double upper_learning_rate = 0.01;  ///< β > 0
  double upper_momentum = 0.0;        ///< momentum of the upper SGD, in [0, 1)
  std::size_t iterations = 100;       ///< number of upper iterations (≥ 1); each reports one epoch to callbacks

  // ---- data ----
  std::size_t batch_size = 64;  ///< samples per step, drawn from a seeded permutation; 0 = the full training set

  // ---- the mask ----
  double density = 0.05;   ///< fraction of prunable weights kept, in (0, 1] (ignored when k > 0 or with n_m)
  std::size_t k = 0;       ///< if > 0, the exact number kept over all prunable weights (global scope only)
  mask_scope scope = mask_scope::global;  ///< global: one top-k over all prunable tensors; per_tensor: each keeps `density`
  /// unstructured, filter (rows of each tensor seen as [shape[0], rest], chosen per tensor, keeping
  /// round(density · shape[0]) filters) or n_m (n of every m consecutive weights along the last dimension).
  mask_structure structure = mask_structure::unstructured;
  std::size_t n = 2;  ///< N of N:M (structure n_m), 1 ≤ n ≤ m
  std::size_t m = 4;  ///< M of N:M (structure n_m)
  mask_parametrization parametrization = mask_parametrization::scores;
  relaxed_start start = relaxed_start::magnitude;  ///< the relaxed mask's starting point (relaxed only)
  implicit_gradient_mode ig_mode = implicit_gradient_mode::first_order;
  prunable_selection prunable{};  ///< which parameters are masked (others are trained in the lower step)

  // ---- exact mode: conjugate gradients ----
  std::size_t cg_max_iterations = 100;  ///< ≥ 1
  double cg_tolerance = 1e-10;          ///< stop when ‖r‖ ≤ tol · ‖m⊙g‖, > 0

  // ---- termination and bookkeeping ----
  /// If > 0, stop (termination::mask_converged) once the hard mask has not changed for this many upper iterations.
  std::size_t stable_mask_iterations = 0;
  /// If > 0 and the problem has `evaluate()`, evaluate on held-out data every this many iterations (test_loss).
  std::size_t evaluate_every = 0;
  std::uint64_t seed = 0;  ///< seeds the mini-batch permutations (same seed, same bits)

  /// Throws std::invalid_argument("bilevel_params: '<field>' ...") naming the first invalid field.
  void validate() const {
    auto fail = [](const std::string& what) { throw std::invalid_argument("bilevel_params: " + what); };
    auto positive = [](double x) { return std::isfinite(x) && x > 0.0; };
    if (!positive(lower_learning_rate)) fail("'lower_learning_rate' must be finite and > 0");
    if (!(momentum >= 0.0 && momentum < 1.0)) fail("'momentum' must be in [0, 1)");
    if (!positive(gamma)) fail("'gamma' must be finite and > 0");
    if (lower_steps == 0) fail("'lower_steps' must be >= 1");
    if (!positive(upper_learning_rate)) fail("'upper_learning_rate' must be finite and > 0");
    if (!(upper_momentum >= 0.0 && upper_momentum < 1.0)) fail("'upper_momentum' must be in [0, 1)");
    if (iterations == 0) fail("'iterations' must be >= 1");
    if (!(density > 0.0 && density <= 1.0)) fail("'density' must be in (0, 1]");
    if (k > 0 && scope != mask_scope::global) fail("'k' can only be given with scope global (use 'density')");
    if (k > 0 && structure != mask_structure::unstructured)
      fail("'k' can only be given with structure unstructured (use 'density')");
    if (structure == mask_structure::n_m && (n == 0 || m == 0 || n > m)) fail("'n' and 'm' must satisfy 1 <= n <= m");
    if (parametrization == mask_parametrization::relaxed && structure != mask_structure::unstructured)
      fail("'parametrization' relaxed requires structure unstructured");
    if (cg_max_iterations == 0) fail("'cg_max_iterations' must be >= 1");
    if (!positive(cg_tolerance)) fail("'cg_tolerance' must be finite and > 0");
    if (prunable.kinds.empty()) fail("'prunable.kinds' must not be empty");
  }
};

}  // namespace bipq
