#pragma once
// The implicit gradient of BiP's upper objective F(m) = ℓ(m⊙θ*(m)), θ*(m) = argmin_θ ℓ(m⊙θ) + (γ/2)‖θ‖²
// (Zhang et al., NeurIPS 2022, Sec. 4). With g = ∇_z ℓ(z) at z = m⊙θ and H = ∇²_z ℓ(z):
//
//   dF/dm = ∇_m ℓ + (dθ*/dm)ᵀ ∇_θ ℓ,   ∇_m ℓ = θ⊙g,   ∇_θ ℓ = m⊙g,
//   dθ*/dm = −[∇²_θθ G]⁻¹ ∇²_θm G,     G(m, θ) = ℓ(m⊙θ) + (γ/2)‖θ‖²   (implicit function theorem on m⊙g + γθ = 0),
//   ∇²_θθ G = diag(m) H diag(m) + γI,  ∇²_θm G = diag(g) + diag(m) H diag(θ).
//
// Hence, with v = (diag(m) H diag(m) + γI)⁻¹ (m⊙g):
//   exact:        dF/dm = θ⊙g − g⊙v − θ⊙(H (m⊙v))
// and when H = 0 (the Hessian-free assumption, exact for a loss linear in z), v = m⊙g/γ and
//   first_order:  dF/dm = θ⊙g − (1/γ) g⊙m⊙g = g ⊙ (θ − (1/γ) m⊙g)                    (BiP, Eq. 6)
//   none:         dF/dm = θ⊙g (the second term dropped).
// These are the gradient of F only at a lower-level solution θ = θ*(m); the solver uses them at the current θ.

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/solver/conjugate_gradient.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

namespace detail {
/// out = g ⊙ (θ − c · m⊙g): the first-order implicit gradient with the second term's coefficient c (1/γ in the
/// paper; bilevel_settings::second_term_coefficient).
template <class T>
void first_order_ig(std::span<const T> g, std::span<const T> theta, std::span<const T> m, T c, std::span<T> out) {
  const std::size_t n = g.size();
  const T* __restrict gp = g.data();
  const T* __restrict tp = theta.data();
  const T* __restrict mp = m.data();
  T* __restrict op = out.data();
  for (std::size_t i = 0; i < n; ++i) op[i] = gp[i] * (tp[i] - c * mp[i] * gp[i]);
}
}  // namespace detail

/// out = g ⊙ (θ − (1/γ) m⊙g), the first-order implicit gradient (BiP, Eq. 6). Sizes must agree; γ > 0.
/// `out` may alias nothing else.
template <class T>
void first_order_implicit_gradient(std::span<const T> g, std::span<const T> theta, std::span<const T> m, double gamma,
                                   std::span<T> out) {
  detail::require_size(theta.size(), g.size(), "first_order_implicit_gradient", "theta");
  detail::require_size(m.size(), g.size(), "first_order_implicit_gradient", "m");
  detail::require_size(out.size(), g.size(), "first_order_implicit_gradient", "out");
  if (!(gamma > 0.0)) throw std::invalid_argument("first_order_implicit_gradient(): gamma must be > 0");
  detail::first_order_ig<T>(g, theta, m, static_cast<T>(1.0 / gamma), out);
}

/// out = θ ⊙ g, the direct term only (implicit_gradient_mode::none).
template <class T>
void direct_gradient(std::span<const T> g, std::span<const T> theta, std::span<T> out) {
  detail::require_size(theta.size(), g.size(), "direct_gradient", "theta");
  detail::require_size(out.size(), g.size(), "direct_gradient", "out");
  for (std::size_t i = 0; i < g.size(); ++i) out[i] = theta[i] * g[i];
}

/// out = θ⊙g − g⊙v − θ⊙(H (m⊙v)) with (diag(m) H diag(m) + γI) v = m⊙g solved by conjugate gradients, the exact
/// implicit gradient over flat vectors. `hvp(std::span<const T> u, std::span<T> out)` writes H u.
/// Returns the conjugate-gradient report (H must be positive semi-definite for CG to be reliable).
template <class T, class Hvp>
conjugate_gradient_result exact_implicit_gradient(Hvp&& hvp, std::span<const T> g, std::span<const T> theta,
                                                  std::span<const T> m, double gamma, std::span<T> out,
                                                  std::size_t max_iterations = 100, double tolerance = 1e-10) {
  detail::require_size(theta.size(), g.size(), "exact_implicit_gradient", "theta");
  detail::require_size(m.size(), g.size(), "exact_implicit_gradient", "m");
  detail::require_size(out.size(), g.size(), "exact_implicit_gradient", "out");
  if (!(gamma > 0.0)) throw std::invalid_argument("exact_implicit_gradient(): gamma must be > 0");
  const std::size_t n = g.size();
  std::vector<T> rhs(n), v(n), mu(n), hu(n);
  for (std::size_t i = 0; i < n; ++i) rhs[i] = m[i] * g[i];
  const T gm = static_cast<T>(gamma);
  auto apply = [&](std::span<const T> p, std::span<T> ap) {
    for (std::size_t i = 0; i < n; ++i) mu[i] = m[i] * p[i];
    hvp(std::span<const T>(mu), std::span<T>(hu));
    for (std::size_t i = 0; i < n; ++i) ap[i] = m[i] * hu[i] + gm * p[i];
  };
  const conjugate_gradient_result cg =
      conjugate_gradient<T>(apply, std::span<const T>(rhs), std::span<T>(v), max_iterations, tolerance);
  for (std::size_t i = 0; i < n; ++i) mu[i] = m[i] * v[i];
  hvp(std::span<const T>(mu), std::span<T>(hu));
  for (std::size_t i = 0; i < n; ++i) out[i] = theta[i] * g[i] - g[i] * v[i] - theta[i] * hu[i];
  return cg;
}

/// The exact implicit gradient of a problem on the samples `indices`, at θ (all parameters concatenated in
/// parameters() order) and mask m (1 on entries that are not masked): writes z = m⊙θ into the parameters, evaluates
/// g, and calls the flat exact_implicit_gradient with the problem's Hessian–vector product. Returns the loss via
/// `loss` and the conjugate-gradient report. Requires a problem with `hessian_vector_product`.
template <class P>
conjugate_gradient_result exact_implicit_gradient(P& problem, std::span<const std::size_t> indices,
                                                  std::span<const typename P::scalar_type> theta,
                                                  std::span<const typename P::scalar_type> m, double gamma,
                                                  std::span<typename P::scalar_type> out, double& loss,
                                                  std::size_t max_iterations = 100, double tolerance = 1e-10) {
  static_assert(has_hessian_vector_product<P>,
                "bipq: the exact implicit gradient needs a problem with "
                "`void hessian_vector_product(std::span<const std::size_t>, std::span<const T> v, std::span<T> out)`");
  using T = typename P::scalar_type;
  std::span<const parameter<T>> params = problem.parameters();
  std::size_t total = 0;
  for (const auto& p : params) total += p.value.size();
  detail::require_size(theta.size(), total, "exact_implicit_gradient", "theta");
  detail::require_size(m.size(), total, "exact_implicit_gradient", "m");
  detail::require_size(out.size(), total, "exact_implicit_gradient", "out");
  std::size_t offset = 0;
  for (const auto& p : params) {
    for (std::size_t i = 0; i < p.value.size(); ++i) p.value[i] = m[offset + i] * theta[offset + i];
    offset += p.value.size();
  }
  loss = static_cast<double>(problem.loss_and_gradient(indices));
  std::vector<T> g(total);
  offset = 0;
  for (const auto& p : params) {
    std::copy(p.grad.begin(), p.grad.end(), g.begin() + static_cast<std::ptrdiff_t>(offset));
    offset += p.grad.size();
  }
  auto hvp = [&](std::span<const T> u, std::span<T> hu) { problem.hessian_vector_product(indices, u, hu); };
  return exact_implicit_gradient<T>(hvp, std::span<const T>(g), theta, m, gamma, out, max_iterations, tolerance);
}

}  // namespace bipq
