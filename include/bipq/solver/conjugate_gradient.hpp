#pragma once
// Conjugate gradients (Hestenes & Stiefel 1952) for A x = b with A symmetric positive definite, given only as a
// product x ↦ A x. Used by the exact implicit gradient, where A = diag(m) ∇²_z ℓ diag(m) + γI.

#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/tensor.hpp"

namespace bipq {

struct conjugate_gradient_result {
  std::size_t iterations = 0;
  double residual_norm = 0.0;   ///< ‖b − A x‖ of the recursively updated residual
  bool converged = false;       ///< ‖r‖ ≤ tolerance · ‖b‖ was reached
  bool indefinite = false;      ///< a direction with pᵀAp ≤ 0 was met (A is not positive definite); x is the last iterate
};

/// Solves A x = b from x = 0: r₀ = b, p₀ = r₀; α = rᵀr / pᵀAp; x += αp; r −= αAp; p = r + (r'ᵀr'/rᵀr) p.
/// Stops when ‖r‖ ≤ tolerance · ‖b‖ or after `max_iterations`. `apply(std::span<const T> p, std::span<T> out)` writes
/// A p. Dot products are accumulated in double. Throws std::invalid_argument on a size mismatch, a tolerance that is
/// NaN, negative or infinite, or a right-hand side b holding NaN or Inf.
template <class T, class Apply>
conjugate_gradient_result conjugate_gradient(Apply&& apply, std::span<const T> b, std::span<T> x,
                                             std::size_t max_iterations, double tolerance) {
  detail::require_size(x.size(), b.size(), "conjugate_gradient", "x");
  if (!(tolerance >= 0.0) || !std::isfinite(tolerance))
    throw std::invalid_argument("conjugate_gradient(): tolerance must be finite and >= 0");
  detail::require_finite(b, "conjugate_gradient", "b");
  const std::size_t n = b.size();
  auto dot = [n](const std::vector<T>& u, const std::vector<T>& v) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(u[i]) * static_cast<double>(v[i]);
    return s;
  };
  std::vector<T> r(b.begin(), b.end()), p(r), ap(n);
  for (auto& xi : x) xi = T(0);
  double rr = dot(r, r);
  const double stop = tolerance * std::sqrt(rr);
  conjugate_gradient_result out;
  out.residual_norm = std::sqrt(rr);
  if (out.residual_norm <= stop || rr == 0.0) {
    out.converged = true;
    return out;
  }
  while (out.iterations < max_iterations) {
    apply(std::span<const T>(p), std::span<T>(ap));
    const double pap = dot(p, ap);
    ++out.iterations;
    if (!(pap > 0.0)) {
      out.indefinite = true;
      break;
    }
    const double alpha = rr / pap;
    for (std::size_t i = 0; i < n; ++i) {
      x[i] += static_cast<T>(alpha) * p[i];
      r[i] -= static_cast<T>(alpha) * ap[i];
    }
    const double rr_next = dot(r, r);
    out.residual_norm = std::sqrt(rr_next);
    if (out.residual_norm <= stop) {
      out.converged = true;
      break;
    }
    const double beta = rr_next / rr;
    rr = rr_next;
    for (std::size_t i = 0; i < n; ++i) p[i] = r[i] + static_cast<T>(beta) * p[i];
  }
  return out;
}

}  // namespace bipq
