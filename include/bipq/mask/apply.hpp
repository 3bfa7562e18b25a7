#pragma once
// Applying masks and reporting density.
//
// Every problem in bipq depends on the mask m and the weights θ only through z = m ⊙ θ (BiP, Zhang et al. 2022,
// Eq. 1), so applying a mask is an element-wise product. Density is the fraction of non-zero entries,
// nnz(x) / n; sparsity = 1 − density (the convention of Blalock et al. 2020, "What is the state of neural
// network pruning?"). Over several tensors the overall density is Σ nnz / Σ n, not the mean of the per-tensor ones.

#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/checks.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// w ← w ⊙ mask. Requires mask.size() == w.size() and a finite mask.
template <class T>
void apply_mask(std::span<T> w, std::span<const T> mask);

/// Number of non-zero entries of x. Requires finite x.
template <class T>
std::size_t count_nonzero(std::span<const T> x);

/// Fraction of non-zero entries, nnz(x) / n, in [0, 1]; 0 for an empty tensor. Requires finite x.
template <class T>
double density(std::span<const T> x);

/// Fraction of zero entries, 1 − density(x); 0 for an empty tensor. Requires finite x.
template <class T>
double sparsity(std::span<const T> x);

/// Densities of several tensors: each one's, and overall = Σ nnz / Σ n (0 if there are no entries at all).
struct density_report {
  std::vector<double> per_tensor;
  double overall = 0.0;
};

/// The density of every tensor of `xs` and overall. Requires finite entries.
template <class T>
density_report density(std::span<const std::span<const T>> xs);

// ---- flat_tensor overloads ----

/// apply_mask over any flat tensors of the same scalar type.
template <class W, flat_tensor M>
  requires flat_tensor<std::remove_cvref_t<W>> && std::same_as<scalar_of_t<std::remove_cvref_t<W>>, scalar_of_t<M>>
void apply_mask(W&& w, const M& mask) {
  using T = scalar_of_t<M>;
  apply_mask<T>(std::span<T>(as_span(w)), std::span<const T>(as_span(mask)));
}

/// count_nonzero of any flat tensor.
template <flat_tensor X>
std::size_t count_nonzero(const X& x) {
  using T = scalar_of_t<X>;
  return count_nonzero<T>(std::span<const T>(as_span(x)));
}

/// density of any flat tensor.
template <flat_tensor X>
double density(const X& x) {
  using T = scalar_of_t<X>;
  return density<T>(std::span<const T>(as_span(x)));
}

/// sparsity of any flat tensor.
template <flat_tensor X>
double sparsity(const X& x) {
  using T = scalar_of_t<X>;
  return sparsity<T>(std::span<const T>(as_span(x)));
}

// ---- definitions ----

template <class T>
void apply_mask(std::span<T> w, std::span<const T> mask) {
  detail::require_size(mask.size(), w.size(), "apply_mask", "mask");
  if (!detail::all_finite(mask.data(), mask.size())) detail::require_finite(mask, "apply_mask", "mask");
  for (std::size_t i = 0; i < w.size(); ++i) w[i] *= mask[i];
}

template <class T>
std::size_t count_nonzero(std::span<const T> x) {
  if (!detail::all_finite(x.data(), x.size())) detail::require_finite(x, "count_nonzero", "x");
  std::size_t nnz = 0;
  for (const T v : x) nnz += v != T(0);
  return nnz;
}

template <class T>
double density(std::span<const T> x) {
  if (!detail::all_finite(x.data(), x.size())) detail::require_finite(x, "density", "x");
  if (x.empty()) return 0.0;
  std::size_t nnz = 0;
  for (const T v : x) nnz += v != T(0);
  return double(nnz) / double(x.size());
}

template <class T>
double sparsity(std::span<const T> x) {
  if (!detail::all_finite(x.data(), x.size())) detail::require_finite(x, "sparsity", "x");
  return x.empty() ? 0.0 : 1.0 - density(x);
}

template <class T>
density_report density(std::span<const std::span<const T>> xs) {
  density_report r;
  r.per_tensor.reserve(xs.size());
  std::size_t nnz = 0, n = 0;
  for (std::size_t j = 0; j < xs.size(); ++j) {
    if (!detail::all_finite(xs[j].data(), xs[j].size())) {
      const std::string arg = "xs[" + std::to_string(j) + "]";
      detail::require_finite(xs[j], "density", arg.c_str());
    }
    std::size_t nnz_j = 0;
    for (const T v : xs[j]) nnz_j += v != T(0);
    r.per_tensor.push_back(xs[j].empty() ? 0.0 : double(nnz_j) / double(xs[j].size()));
    nnz += nnz_j;
    n += xs[j].size();
  }
  r.overall = n == 0 ? 0.0 : double(nnz) / double(n);
  return r;
}

}  // namespace bipq
