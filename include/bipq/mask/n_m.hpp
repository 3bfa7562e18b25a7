#pragma once
// N:M fine-grained structured sparsity: in every group of M consecutive weights along the input (reduction)
// dimension keep the N of largest |w| (2:4 keeps 50%, the pattern of sparse tensor cores).
// Zhou et al. 2021, "Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch", ICLR;
// Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks", arXiv:2104.08378.
//
// Layout: a row-major weight of shape [out, in, ...] (linear [out, in], conv [K, C, R, S], conv1d [K, C, L]) is
// seen as [outer, C, inner]; for every (k, spatial position) the groups run along C: entries
// (k, g·M + j, s), j = 0 .. M−1. Ties between equal |w| go to the lower channel index.
// C not a multiple of M: the last group is short, of length L = C mod M, and keeps min(N, L) entries — the
// same N per group everywhere, so a short group is never pruned more than a full one.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/checks.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// N:M mask of w (row-major `shape` with at least 2 dimensions, groups along shape[1]): in every group of M
/// consecutive entries along the input dimension the N of largest |w| get 1, the others 0; the last, short group of
/// length L < M (when shape[1] is not a multiple of M) keeps min(N, L). Ties to the lower index.
/// Requires 1 ≤ M, N ≤ M, mask.size() == w.size() == product of shape, finite w.
template <class T>
void n_m_mask(std::span<const T> w, std::span<const std::size_t> shape, std::size_t n, std::size_t m,
              std::span<T> mask);

/// n_m_mask over any flat tensors of the same scalar type.
template <flat_tensor W, class M>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<W>, scalar_of_t<std::remove_cvref_t<M>>>
void n_m_mask(const W& w, std::span<const std::size_t> shape, std::size_t n, std::size_t m, M&& mask) {
  using T = scalar_of_t<W>;
  n_m_mask<T>(std::span<const T>(as_span(w)), shape, n, m, std::span<T>(as_span(mask)));
}

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// Groups up to this length are resolved by counting, for each entry, the entries that beat it (O(M) per entry,
/// branch-free); longer groups by nth_element (O(M) per group).
inline constexpr std::size_t n_m_rank_max = 32;

/// One group of `len` entries x[j·stride], j < len: writes 1 to the `keep` of largest |x| (ties to lower j).
template <class T>
inline void n_m_group(const T* x, T* out, std::size_t len, std::size_t stride, std::size_t keep,
                      std::vector<std::size_t>& order) {
  if (len <= n_m_rank_max) {
    T a[n_m_rank_max];
    for (std::size_t j = 0; j < len; ++j) a[j] = std::abs(x[j * stride]);
    for (std::size_t j = 0; j < len; ++j) {
      std::size_t rank = 0;  // entries ahead of j: larger, or equal with a lower index
      for (std::size_t l = 0; l < len; ++l) rank += (a[l] > a[j]) | ((a[l] == a[j]) & (l < j));
      out[j * stride] = rank < keep ? T(1) : T(0);
    }
    return;
  }
  order.resize(len);
  std::iota(order.begin(), order.end(), std::size_t(0));
  auto ahead = [&](std::size_t p, std::size_t q) {
    const T ap = std::abs(x[p * stride]), aq = std::abs(x[q * stride]);
    return ap > aq || (ap == aq && p < q);
  };
  if (keep > 0 && keep < len) {
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(keep - 1), order.end(), ahead);
  }
  for (std::size_t j = 0; j < len; ++j) out[j * stride] = T(0);
  for (std::size_t r = 0; r < std::min(keep, len); ++r) out[order[r] * stride] = T(1);
}

/// The `inner` groups x[j·inner + s], j < len, side by side (conv weights: one group per spatial position s).
/// Ranks are counted for a chunk of positions at once, the position innermost, so that the loops vectorise.
/// All of a chunk's values are read before any mask entry is written, so out may alias x.
template <class T>
inline void n_m_groups_strided(const T* x, T* out, std::size_t len, std::size_t inner, std::size_t keep) {
  constexpr std::size_t chunk = 64;
  T a[n_m_rank_max][chunk];
  std::uint32_t rank[n_m_rank_max][chunk];
  for (std::size_t s0 = 0; s0 < inner; s0 += chunk) {
    const std::size_t width = std::min(chunk, inner - s0);
    for (std::size_t j = 0; j < len; ++j) {
      for (std::size_t s = 0; s < width; ++s) a[j][s] = std::abs(x[j * inner + s0 + s]);
    }
    for (std::size_t j = 0; j < len; ++j) {
      for (std::size_t s = 0; s < width; ++s) rank[j][s] = 0;
      for (std::size_t l = 0; l < len; ++l) {
        if (l < j) {
          for (std::size_t s = 0; s < width; ++s) rank[j][s] += std::uint32_t(a[l][s] >= a[j][s]);
        } else if (l > j) {
          for (std::size_t s = 0; s < width; ++s) rank[j][s] += std::uint32_t(a[l][s] > a[j][s]);
        }
      }
    }
    for (std::size_t j = 0; j < len; ++j) {
      for (std::size_t s = 0; s < width; ++s) out[j * inner + s0 + s] = rank[j][s] < keep ? T(1) : T(0);
    }
  }
}

/// 2:4 groups of contiguous entries (inner = 1, C a multiple of 4), the common case, unrolled.
template <class T>
inline void n_m_2_4_contiguous(const T* x, T* out, std::size_t groups) {
  for (std::size_t g = 0; g < groups; ++g, x += 4, out += 4) {
    const T a0 = std::abs(x[0]), a1 = std::abs(x[1]), a2 = std::abs(x[2]), a3 = std::abs(x[3]);
    // rank_j = #{l : a_l > a_j, or a_l == a_j and l < j}
    const int r0 = (a1 > a0) + (a2 > a0) + (a3 > a0);
    const int r1 = (a0 >= a1) + (a2 > a1) + (a3 > a1);
    const int r2 = (a0 >= a2) + (a1 >= a2) + (a3 > a2);
    const int r3 = (a0 >= a3) + (a1 >= a3) + (a2 >= a3);
    out[0] = r0 < 2 ? T(1) : T(0);
    out[1] = r1 < 2 ? T(1) : T(0);
    out[2] = r2 < 2 ? T(1) : T(0);
    out[3] = r3 < 2 ? T(1) : T(0);
  }
}

}  // namespace detail

// ---- definitions ----

template <class T>
void n_m_mask(std::span<const T> w, std::span<const std::size_t> shape, std::size_t n, std::size_t m,
              std::span<T> mask) {
  constexpr const char* func = "n_m_mask";
  if (m == 0) throw std::invalid_argument(std::string(func) + "(): m must be >= 1");
  if (n > m) {
    throw std::invalid_argument(std::string(func) + "(): n must be <= m (n = " + std::to_string(n) +
                                ", m = " + std::to_string(m) + ")");
  }
  detail::require_size(mask.size(), w.size(), func, "mask");
  detail::checked_shape_size(shape, w.size(), 2, func);
  if (!detail::all_finite(w.data(), w.size())) detail::require_finite(w, func, "w");

  const std::size_t outer = shape[0], channels = shape[1];
  std::size_t inner = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  const std::size_t block = channels * inner;

  if (n == 2 && m == 4 && inner == 1 && channels % 4 == 0) {
    detail::n_m_2_4_contiguous(w.data(), mask.data(), w.size() / 4);
    return;
  }
  std::vector<std::size_t> order;
  for (std::size_t o = 0; o < outer; ++o) {
    for (std::size_t c0 = 0; c0 < channels; c0 += m) {
      const std::size_t len = std::min(m, channels - c0);
      const std::size_t keep = std::min(n, len);
      const std::size_t base = o * block + c0 * inner;
      if (inner > 1 && len <= detail::n_m_rank_max) {
        detail::n_m_groups_strided(w.data() + base, mask.data() + base, len, inner, keep);
        continue;
      }
      for (std::size_t s = 0; s < inner; ++s) {
        detail::n_m_group(w.data() + base + s, mask.data() + base + s, len, inner, keep, order);
      }
    }
  }
}

}  // namespace bipq
