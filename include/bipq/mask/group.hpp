#pragma once
// Group (structured) top-k: keep whole filters or whole input channels.
//
// A weight of row-major shape [out, in, ...] (linear [out, in], conv [K, C, R, S]) is split into groups along one
// axis: group_axis::output gives the out filters w[o, :, ...], group_axis::input the in channels w[:, c, ...].
// The k groups of largest norm ‖w_g‖₁ or ‖w_g‖₂ keep all their entries, the others are zeroed (structured
// filter / channel pruning, Li et al. 2017, "Pruning Filters for Efficient ConvNets", which ranks filters by L1 norm).
// Ties between equal norms go to the lower group index. L2 norms are computed scaled by the group's max |w|
// and accumulated in double, so they neither overflow nor underflow.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/checks.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// Which groups: output channels (filters, rows of a linear weight) or input channels (columns).
enum class group_axis { output, input };

/// Group norm: ‖w_g‖₁ = Σ|w_i| or ‖w_g‖₂ = (Σ w_i²)^{1/2}.
enum class group_norm { l1, l2 };

/// The norm of every group of w (row-major `shape`, at least 1 dimension for output, 2 for input), in group order.
template <class T>
std::vector<double> group_norms(std::span<const T> w, std::span<const std::size_t> shape,
                                group_axis axis = group_axis::output, group_norm norm = group_norm::l2);

/// Keeps the `k_groups` groups of largest norm: mask = 1 on their entries, 0 elsewhere. Ties to the lower group
/// index. Requires mask.size() == w.size() == product of shape, k_groups ≤ number of groups, finite w.
template <class T>
void group_top_k_mask(std::span<const T> w, std::span<const std::size_t> shape, std::size_t k_groups,
                      std::span<T> mask, group_axis axis = group_axis::output, group_norm norm = group_norm::l2);

/// group_top_k_mask over any flat tensors of the same scalar type.
template <flat_tensor W, class M>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<W>, scalar_of_t<std::remove_cvref_t<M>>>
void group_top_k_mask(const W& w, std::span<const std::size_t> shape, std::size_t k_groups, M&& mask,
                      group_axis axis = group_axis::output, group_norm norm = group_norm::l2) {
  using T = scalar_of_t<W>;
  group_top_k_mask<T>(std::span<const T>(as_span(w)), shape, k_groups, std::span<T>(as_span(mask)), axis, norm);
}

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// Layout of the groups: entry (o, c, s) of the shape seen as [outer, C, inner] belongs to group o (output) or c
/// (input).
struct group_layout {
  std::size_t outer, channels, inner, groups;
};

inline group_layout make_group_layout(std::span<const std::size_t> shape, std::size_t size, group_axis axis,
                                      const char* func) {
  checked_shape_size(shape, size, axis == group_axis::input ? 2 : 1, func);
  group_layout g{};
  g.outer = shape[0];
  g.channels = shape.size() > 1 ? shape[1] : 1;
  g.inner = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) g.inner *= shape[d];
  g.groups = axis == group_axis::output ? g.outer : g.channels;
  return g;
}

/// Group norms divided by `unit` = max|w| over the whole tensor (returned in `unit`), so that they are finite
/// whatever the data: each group is accumulated in double scaled by its own max|w|_g (no overflow or underflow
/// inside a group), then ‖w_g‖ / unit = (max|w|_g / unit) · ‖w_g / max|w|_g‖ ≤ √size or size. The order of the
/// groups is that of the true norms.
template <class T>
std::vector<double> relative_group_norms(std::span<const T> w, const group_layout& g, group_axis axis,
                                         group_norm norm, double& unit) {
  std::vector<double> scale(g.groups, 0.0), sum(g.groups, 0.0);
  const std::size_t block = g.channels * g.inner;
  auto group_of = [&](std::size_t o, std::size_t c) { return axis == group_axis::output ? o : c; };
  for (std::size_t o = 0; o < g.outer; ++o) {
    for (std::size_t c = 0; c < g.channels; ++c) {
      double& m = scale[group_of(o, c)];
      const T* x = w.data() + o * block + c * g.inner;
      for (std::size_t s = 0; s < g.inner; ++s) m = std::max(m, double(std::abs(x[s])));
    }
  }
  unit = 0.0;
  for (double m : scale) unit = std::max(unit, m);
  for (std::size_t o = 0; o < g.outer; ++o) {
    for (std::size_t c = 0; c < g.channels; ++c) {
      const std::size_t j = group_of(o, c);
      if (scale[j] == 0.0) continue;
      const T* x = w.data() + o * block + c * g.inner;
      // y = |x| / max|w|_g ∈ [0, 1], by the reciprocal unless it overflows (a subnormal max); the choices are made
      // once per block so that the loops stay branch-free.
      const double inv = 1.0 / scale[j];
      double acc = 0.0;
      if (!std::isfinite(inv)) {
        for (std::size_t s = 0; s < g.inner; ++s) {
          const double y = double(std::abs(x[s])) / scale[j];
          acc += norm == group_norm::l1 ? y : y * y;
        }
      } else if (norm == group_norm::l1) {
        for (std::size_t s = 0; s < g.inner; ++s) acc += double(std::abs(x[s])) * inv;
      } else {
        for (std::size_t s = 0; s < g.inner; ++s) {
          const double y = double(std::abs(x[s])) * inv;
          acc += y * y;
        }
      }
      sum[j] += acc;
    }
  }
  for (std::size_t j = 0; j < g.groups; ++j) {
    if (scale[j] == 0.0) continue;
    sum[j] = (scale[j] / unit) * (norm == group_norm::l2 ? std::sqrt(sum[j]) : sum[j]);
  }
  return sum;
}

}  // namespace detail

// ---- definitions ----

template <class T>
std::vector<double> group_norms(std::span<const T> w, std::span<const std::size_t> shape, group_axis axis,
                                group_norm norm) {
  const detail::group_layout g = detail::make_group_layout(shape, w.size(), axis, "group_norms");
  if (!detail::all_finite(w.data(), w.size())) detail::require_finite(w, "group_norms", "w");
  double unit = 0.0;
  std::vector<double> norms = detail::relative_group_norms(w, g, axis, norm, unit);
  for (double& v : norms) v *= unit;  // may overflow to +Inf for norms beyond double's range
  return norms;
}

template <class T>
void group_top_k_mask(std::span<const T> w, std::span<const std::size_t> shape, std::size_t k_groups,
                      std::span<T> mask, group_axis axis, group_norm norm) {
  constexpr const char* func = "group_top_k_mask";
  detail::require_size(mask.size(), w.size(), func, "mask");
  const detail::group_layout g = detail::make_group_layout(shape, w.size(), axis, func);
  if (k_groups > g.groups) {
    throw std::invalid_argument(std::string(func) + "(): k_groups must be <= the number of groups (k_groups = " +
                                std::to_string(k_groups) + ", " + std::to_string(g.groups) + " groups)");
  }
  if (!detail::all_finite(w.data(), w.size())) detail::require_finite(w, func, "w");
  double unit = 0.0;
  const std::vector<double> norms = detail::relative_group_norms(w, g, axis, norm, unit);
  std::vector<double> keep(g.groups);
  top_k_mask<double>(norms, k_groups, keep);
  const std::size_t block = g.channels * g.inner;
  for (std::size_t o = 0; o < g.outer; ++o) {
    for (std::size_t c = 0; c < g.channels; ++c) {
      const T value = T(keep[axis == group_axis::output ? o : c]);
      std::fill_n(mask.data() + o * block + c * g.inner, g.inner, value);
    }
  }
}

}  // namespace bipq
