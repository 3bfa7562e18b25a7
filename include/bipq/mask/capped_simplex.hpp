#pragma once
// Euclidean projection onto the capped simplex, the relaxed mask set of BiP.
//
//   P(v) = argmin_m ½‖m − v‖²  s.t.  m ∈ [0,1]^n,  1ᵀm ≤ k   (at_most)   or   1ᵀm = k   (equal).
//
// KKT (Wang & Lu 2015, "Projection onto the capped simplex", arXiv:1503.01002; BiP, Zhang et al. 2022, Appendix):
// m_i = clip(v_i − λ, 0, 1) with the multiplier λ of the sum constraint chosen so that f(λ) = Σ clip(v_i − λ, 0, 1)
// meets it: for at_most, λ = 0 if f(0) ≤ k, otherwise the λ > 0 with f(λ) = k; for equal, any real λ with f(λ) = k.
// f is continuous, non-increasing and piecewise linear with breakpoints v_i − 1 and v_i, so λ is found exactly:
// a randomised (fixed-seed, hence deterministic) search over the breakpoints, like quickselect, narrows an interval
// (lo, hi) with f(lo) ≥ k ≥ f(hi) until no breakpoint lies inside, then solves the linear piece. Expected O(n),
// no sort.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// Which sum constraint the capped simplex has: 1ᵀm ≤ k or 1ᵀm = k.
enum class simplex_constraint { at_most, equal };

/// The multiplier λ of the projection of v onto the capped simplex, so that the projection is
/// m_i = clip(v_i − λ, 0, 1). at_most: λ ≥ 0, and λ = 0 when Σ clip(v_i, 0, 1) ≤ k. equal: when f(λ) = k holds on
/// a whole interval (k = 0, k = n, or a flat piece), a finite end of that interval is returned; every λ in it gives
/// the same projection. Requires finite v, finite k ≥ 0, and k ≤ n for `equal`.
template <class T>
double capped_simplex_threshold(std::span<const T> v, double k, simplex_constraint c = simplex_constraint::at_most);

/// out = P(v), the Euclidean projection of v onto {m ∈ [0,1]^n : 1ᵀm ≤ k} (or = k): out_i = clip(v_i − λ, 0, 1).
/// out may be the same storage as v. Requires out.size() == v.size(), finite v, finite k ≥ 0, k ≤ n for `equal`
/// (for at_most, k ≥ n is allowed and gives clip(v, 0, 1)).
template <class T>
void capped_simplex_projection(std::span<const T> v, double k, std::span<T> out,
                               simplex_constraint c = simplex_constraint::at_most);

/// capped_simplex_projection over any flat tensors of the same scalar type.
template <flat_tensor V, class O>
  requires flat_tensor<std::remove_cvref_t<O>> && std::same_as<scalar_of_t<V>, scalar_of_t<std::remove_cvref_t<O>>>
void capped_simplex_projection(const V& v, double k, O&& out, simplex_constraint c = simplex_constraint::at_most) {
  using T = scalar_of_t<V>;
  capped_simplex_projection<T>(std::span<const T>(as_span(v)), k, std::span<T>(as_span(out)), c);
}

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

inline void check_capped_simplex(std::size_t n, double k, simplex_constraint c, const char* func) {
  if (!std::isfinite(k) || k < 0.0) {
    throw std::invalid_argument(std::string(func) + "(): k must be finite and >= 0 (k = " + std::to_string(k) + ")");
  }
  if (c == simplex_constraint::equal && k > double(n)) {
    throw std::invalid_argument(std::string(func) + "(): k must be <= n for simplex_constraint::equal (k = " +
                                std::to_string(k) + ", n = " + std::to_string(n) + ")");
  }
}

/// λ of the projection, using `scratch` (size ≥ v.size(), may not overlap v) as working storage.
template <class T>
double capped_simplex_lambda(std::span<const T> v, double k, simplex_constraint c, std::span<T> scratch,
                             const char* func) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const std::size_t n = v.size();
  double lo = -inf, hi = inf;  // invariant: f(lo) ≥ k ≥ f(hi), with f(−∞) = n, f(+∞) = 0
  double n_one = 0.0;          // entries at 1 on the whole of (lo, hi)
  double n_free = 0.0;         // entries equal to v_i − λ on the whole of (lo, hi)
  double sum_free = 0.0;       // Σ v_i over those
  std::size_t open = 0;        // entries with a breakpoint inside (lo, hi), kept in scratch[0 .. open)

  if (c == simplex_constraint::at_most) {
    double f0 = 0.0;
    bool finite = true;
    for (std::size_t i = 0; i < n; ++i) {
      finite &= std::isfinite(v[i]);
      f0 += std::clamp(double(v[i]), 0.0, 1.0);
    }
    if (!finite) require_finite(v, func, "v");
    if (f0 <= k) return 0.0;
    lo = 0.0;  // f(0) > k: λ > 0
    // Entries with v_i ≤ 0 are 0 on (0, ∞); every other one has its breakpoint v_i inside (0, ∞).
    for (std::size_t i = 0; i < n; ++i) {
      if (double(v[i]) > lo) scratch[open++] = v[i];
    }
  } else {
    bool finite = true;
    for (std::size_t i = 0; i < n; ++i) {
      finite &= std::isfinite(v[i]);
      scratch[i] = v[i];
    }
    if (!finite) require_finite(v, func, "v");
    open = n;
  }

  // splitmix64 with a fixed seed: deterministic pivots, expected linear time on any input order.
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state]() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };

  while (open > 0) {
    const std::uint64_t r = next();
    const double x = double(scratch[r % open]);
    const bool a_inside = x - 1.0 > lo && x - 1.0 < hi;
    const bool b_inside = x > lo && x < hi;
    const double p = (a_inside && (!b_inside || (r >> 63))) ? x - 1.0 : x;

    double f = n_one + sum_free - n_free * p;
    for (std::size_t i = 0; i < open; ++i) f += std::clamp(double(scratch[i]) - p, 0.0, 1.0);
    if (f == k) return p;
    if (f > k) {
      lo = p;
    } else {
      hi = p;
    }

    std::size_t kept = 0;
    for (std::size_t i = 0; i < open; ++i) {
      const double y = double(scratch[i]);
      if (y <= lo) continue;  // 0 on the interval
      if (y - 1.0 >= hi) {    // 1 on the interval
        n_one += 1.0;
      } else if (y - 1.0 <= lo && y >= hi) {  // linear on the interval
        n_free += 1.0;
        sum_free += y;
      } else {
        scratch[kept++] = scratch[i];
      }
    }
    open = kept;
  }

  // No breakpoint inside (lo, hi): f(λ) = n_one + sum_free − n_free·λ there.
  if (n_free > 0.0) {
    const double lambda = (n_one + sum_free - k) / n_free;
    return std::clamp(lambda, lo, hi);
  }
  if (std::isfinite(lo)) return lo;
  if (std::isfinite(hi)) return hi;
  return 0.0;
}

}  // namespace detail

// ---- definitions ----

template <class T>
double capped_simplex_threshold(std::span<const T> v, double k, simplex_constraint c) {
  detail::check_capped_simplex(v.size(), k, c, "capped_simplex_threshold");
  std::vector<T> scratch(v.size());
  return detail::capped_simplex_lambda<T>(v, k, c, scratch, "capped_simplex_threshold");
}

template <class T>
void capped_simplex_projection(std::span<const T> v, double k, std::span<T> out, simplex_constraint c) {
  constexpr const char* func = "capped_simplex_projection";
  detail::require_size(out.size(), v.size(), func, "out");
  detail::check_capped_simplex(v.size(), k, c, func);
  const std::less<const T*> before;
  const bool overlap = !v.empty() && before(v.data(), out.data() + out.size()) &&
                       before(out.data(), v.data() + v.size());
  double lambda;
  if (overlap) {
    std::vector<T> scratch(v.size());
    lambda = detail::capped_simplex_lambda<T>(v, k, c, scratch, func);
  } else {
    lambda = detail::capped_simplex_lambda<T>(v, k, c, out, func);
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    out[i] = T(std::clamp(double(v[i]) - lambda, 0.0, 1.0));
  }
}

}  // namespace bipq
