#pragma once
// Euclidean projection onto the capped simplex, the relaxed mask set of BiP.
//
//   P(v) = argmin_m ½‖m − v‖²  s.t.  m ∈ [0,1]^n,  1ᵀm ≤ k   (at_most)   or   1ᵀm = k   (equal).
//
// KKT (Wang & Lu 2015, "Projection onto the capped simplex", arXiv:1503.01002; BiP, Zhang et al. 2022, Appendix):
// m_i = clip(v_i − λ, 0, 1) with the multiplier λ of the sum constraint chosen so that f(λ) = Σ clip(v_i − λ, 0, 1)
// meets it: for at_most, λ = 0 if f(0) ≤ k, otherwise the λ > 0 with f(λ) = k; for equal, any real λ with f(λ) = k.
// λ is found exactly, in O(n) in practice and without a full sort, by a sampled search over the breakpoints of f
// (capped_simplex_solve below; docs/masks.md, "Capped-simplex projection").
//
// Large inputs: near 1e16 the doubles are 2 apart, so v_i − λ computed directly is off by as much as the whole box
// [0, 1] (and at DBL_MAX the sums of the search overflow). The projection only depends on v − λ, so when |λ| is
// large it is computed around a shift s taken from v itself, an entry next to λ: λ = s + λ', m_i = clip((v_i − s)
// − λ', 0, 1), where v_i − s is exact for the entries near λ (Sterbenz) and far entries clip to 0 or 1 whatever
// their rounding. That search keeps each breakpoint v_j − 1 as the pair (v_j, 1), never rounded into one double.

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "bipq/concepts.hpp"
#include "bipq/mask/checks.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// Which sum constraint the capped simplex has: 1ᵀm ≤ k or 1ᵀm = k.
enum class simplex_constraint { at_most, equal };

/// The multiplier λ of the projection of v onto the capped simplex, so that the projection is
/// m_i = clip(v_i − λ, 0, 1). at_most: λ ≥ 0, and λ = 0 when Σ clip(v_i, 0, 1) ≤ k. When f(λ) = k holds on a
/// whole interval (k = 0, k = n, or a flat piece), a point inside it is returned (its middle, or 1 past its
/// finite end); every λ in it gives the same projection. Requires finite v, finite k ≥ 0, and k ≤ n for `equal`.
/// λ is rounded to double: for |λ| large (near 1e16 and beyond) clip(v_i − λ, 0, 1) computed in double can differ
/// from the projection, which capped_simplex_projection computes around a shift (see the top of this header).
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

/// Σ_i clip(y_i − p, 0, 1) for two points p at once, with independent partial sums so that it vectorises.
template <class T>
void sum_clipped(const T* y, std::size_t n, double p1, double p2, double& f1, double& f2) {
  constexpr std::size_t lanes = 8;
  double a[lanes] = {}, b[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    for (std::size_t j = 0; j < lanes; ++j) {
      const double x = double(y[i + j]);
      a[j] += std::min(std::max(x - p1, 0.0), 1.0);
      b[j] += std::min(std::max(x - p2, 0.0), 1.0);
    }
  }
  for (; i < n; ++i) {
    const double x = double(y[i]);
    a[0] += std::min(std::max(x - p1, 0.0), 1.0);
    b[0] += std::min(std::max(x - p2, 0.0), 1.0);
  }
  f1 = 0.0;
  f2 = 0.0;
  for (std::size_t j = 0; j < lanes; ++j) {
    f1 += a[j];
    f2 += b[j];
  }
}

/// The interval of the breakpoint search: (lo, hi) with f(lo) ≥ k ≥ f(hi), and the entries without a breakpoint
/// inside it folded into counts, so that f(λ) = f_outside(λ) + Σ_open clip(v_i − λ, 0, 1) on (lo, hi).
struct simplex_interval {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  double n_one = 0.0;     ///< entries at 1 on the whole of (lo, hi)
  double n_free = 0.0;    ///< entries equal to v_i − λ on the whole of (lo, hi)
  double sum_free = 0.0;  ///< Σ v_i over those
  double f_outside(double p) const noexcept { return n_one + sum_free - n_free * p; }
};

/// Search over the breakpoints of f on the open entries `open_data[0, open)`: the interval shrinks until no
/// breakpoint is left inside, entries whose both breakpoints are outside it being folded into counts (at 1, or
/// linear). `scratch` (room for `open` entries; may be `open_data` itself, never partly overlapping it) receives the
/// entries still open. `n` is the size of the whole vector (f(−∞) = n). Pivots come from a sample of 8√open (64 to
/// 4096) open entries (Floyd & Rivest 1975): the breakpoints of the sample, sorted, give the root of the sampled f,
/// and two breakpoints ±4σ around it bracket the true root with high probability; when all open entries fit in the
/// sample, the two pivots are the exact neighbouring breakpoints of the root. Correctness never depends on the
/// sample: each round moves lo or hi onto a breakpoint that was inside.
template <class T>
double search_breakpoints(simplex_interval& s, const T* open_data, std::size_t open, std::size_t n, double k,
                          T* scratch) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  constexpr std::size_t max_sample = 4096;
  double& lo = s.lo;
  double& hi = s.hi;
  std::vector<double> sample, breakpoints;
  auto f_outside = [&](double p) { return s.f_outside(p); };
  while (open > 0) {
    // Sample of the open entries (all of them when few), its breakpoints inside (lo, hi), sorted. Its size,
    // 8√open between 64 and 4096, keeps the sort and the bisection well below the O(open) passes.
    const std::size_t sample_size =
        std::clamp<std::size_t>(std::size_t(8.0 * std::sqrt(double(open))), 64, max_sample);
    const std::size_t stride = open <= sample_size ? 1 : open / sample_size;
    sample.clear();
    for (std::size_t i = 0; i < open; i += stride) sample.push_back(double(open_data[i]));
    const bool exact = stride == 1;
    const double weight = double(open) / double(sample.size());
    breakpoints.clear();
    for (const double y : sample) {
      if (y - 1.0 > lo && y - 1.0 < hi) breakpoints.push_back(y - 1.0);
      if (y > lo && y < hi) breakpoints.push_back(y);
    }

    if (!breakpoints.empty()) {
      std::sort(breakpoints.begin(), breakpoints.end());
      auto f_sample = [&](double p) {
        double f = 0.0;
        for (const double y : sample) f += std::min(std::max(y - p, 0.0), 1.0);
        return f_outside(p) + weight * f;
      };
      // Largest j with f_sample(breakpoints[j]) ≥ k (−1 if none), by bisection: f is non-increasing.
      std::ptrdiff_t first = 0, last = std::ptrdiff_t(breakpoints.size());
      while (first < last) {
        const std::ptrdiff_t mid = first + (last - first) / 2;
        if (f_sample(breakpoints[std::size_t(mid)]) >= k) {
          first = mid + 1;
        } else {
          last = mid;
        }
      }
      const std::ptrdiff_t root = first - 1, count = std::ptrdiff_t(breakpoints.size());
      const std::ptrdiff_t margin = exact ? 0 : std::ptrdiff_t(4.0 * std::sqrt(double(count))) + 1;
      // Pivots on both sides of the sampled root, clamped to the list; at least one exists.
      const double p1 = root >= 0 ? breakpoints[std::size_t(std::max<std::ptrdiff_t>(root - margin, 0))] : -inf;
      const double p2 = root + 1 < count ? breakpoints[std::size_t(std::min(root + 1 + margin, count - 1))] : inf;

      double f1 = 0.0, f2 = 0.0;
      sum_clipped(open_data, open, std::isfinite(p1) ? p1 : 0.0, std::isfinite(p2) ? p2 : 0.0, f1, f2);
      f1 = std::isfinite(p1) ? f1 + f_outside(p1) : double(n);
      f2 = std::isfinite(p2) ? f2 + f_outside(p2) : 0.0;
      if (std::isfinite(p1) && f1 == k) return p1;
      if (std::isfinite(p2) && f2 == k) return p2;
      if (std::isfinite(p2) && f2 > k) {
        lo = p2;  // root above p2
      } else if (!std::isfinite(p1) || f1 > k) {
        if (std::isfinite(p1)) lo = p1;  // root between p1 and p2
        if (std::isfinite(p2)) hi = p2;
      } else {
        hi = p1;  // root below p1
      }
    }
    // (No sampled breakpoint inside: only possible in the first round when its entries are not all open; the
    // compaction below then keeps exactly the open ones.)

    // Fold the entries with no breakpoint left inside (lo, hi) into the counts; compact the others into scratch.
    std::size_t kept = 0, ones = 0, frees = 0;
    double sums[2] = {0.0, 0.0};
    for (std::size_t i = 0; i < open; ++i) {
      const T value = open_data[i];
      const double y = double(value);
      const bool zero = y <= lo;
      const bool one = y - 1.0 >= hi;
      const bool linear = (!zero) & (!one) & (y - 1.0 <= lo) & (y >= hi);
      scratch[kept] = value;
      kept += std::size_t((!zero) & (!one) & (!linear));
      ones += one;
      frees += linear;
      sums[i & 1] += linear ? y : 0.0;
    }
    s.n_one += double(ones);
    s.n_free += double(frees);
    s.sum_free += sums[0] + sums[1];
    open = kept;
    open_data = scratch;
  }

  // No breakpoint inside (lo, hi): f(λ) = n_one + sum_free − n_free·λ there.
  if (s.n_free > 0.0) {
    const double lambda = (s.n_one + s.sum_free - k) / s.n_free;
    return std::clamp(lambda, lo, hi);
  }
  // f is constant (= k) on the interval: every λ in it gives the same projection; take one away from both ends so
  // that rounding in v_i − λ cannot move an entry off 0 or 1.
  if (std::isfinite(lo) && std::isfinite(hi)) return lo + 0.5 * (hi - lo);
  if (std::isfinite(lo)) return lo + 1.0;
  if (std::isfinite(hi)) return hi - 1.0;
  return 0.0;
}

/// λ by the breakpoint search over all of v from the interval (lo, hi) (−∞, +∞ when nothing is known; it must hold
/// the root), using `scratch` (size ≥ v.size(), may not overlap v) as working storage. Checks finiteness first.
template <class T>
double lambda_by_search(std::span<const T> v, double k, simplex_constraint c, std::span<T> scratch,
                        const char* func, double lo = -std::numeric_limits<double>::infinity(),
                        double hi = std::numeric_limits<double>::infinity()) {
  const std::size_t n = v.size();
  if (!all_finite(v.data(), n)) require_finite(v, func, "v");
  if (c == simplex_constraint::at_most) {
    double f0 = 0.0, unused = 0.0;
    sum_clipped(v.data(), n, 0.0, 0.0, f0, unused);
    if (f0 <= k) return 0.0;
    lo = std::max(lo, 0.0);  // f(0) > k: λ > 0
  }
  simplex_interval s;
  s.lo = lo;
  s.hi = hi;
  // The first round reads v in place; entries without a breakpoint inside (lo, hi) contribute correctly to its sums.
  return search_breakpoints<T>(s, v.data(), n, n, k, scratch.data());
}

/// The largest T ≤ x, and the smallest T ≥ x.
template <class T>
T round_down_to(double x) noexcept {
  T t = T(x);
  if (double(t) > x) t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  return t;
}
template <class T>
T round_up_to(double x) noexcept {
  T t = T(x);
  if (double(t) < x) t = std::nextafter(t, std::numeric_limits<T>::infinity());
  return t;
}

/// How an entry y stands towards a bracket (lo, hi) of λ, decided by comparisons in T against bounds rounded
/// outwards (so an entry may be called open when it is not, never the reverse): zero (y ≤ lo: 0 on the bracket),
/// one (y − 1 ≥ hi: 1), linear (y ≥ hi and y − 1 ≤ lo: y − λ), or open (a breakpoint inside).
template <class T>
struct bracket_classes {
  T zero_at_most, one_at_least, linear_from, linear_to;
  bracket_classes(double lo, double hi)
      : zero_at_most(round_down_to<T>(lo)),
        one_at_least(round_up_to<T>(std::nextafter(hi + 1.0, std::numeric_limits<double>::infinity()))),
        linear_from(round_up_to<T>(hi)),
        linear_to(round_down_to<T>(std::nextafter(lo + 1.0, -std::numeric_limits<double>::infinity()))) {
    // lo = hi: an entry at lo is zero, not linear (the classes must not overlap).
    if (linear_from <= zero_at_most) linear_from = std::nextafter(zero_at_most, std::numeric_limits<T>::infinity());
  }
  bool zero(T y) const noexcept { return y <= zero_at_most; }
  bool one(T y) const noexcept { return y >= one_at_least; }
  bool linear(T y) const noexcept { return (y >= linear_from) & (y <= linear_to); }
};

/// 2^40, the range of |v_i| in which the fast search is exact (capped_simplex_solve). Its bit pattern in T: |x| ≤ 2^40
/// exactly when (bits(x) & 0x7f…f) ≤ that pattern, which also rejects NaN and Inf (an integer comparison, so the
/// passes test it branch-free).
inline constexpr double moderate_limit = 0x1p40;
template <class T, class U>
inline constexpr U moderate_limit_bits = std::bit_cast<U>(static_cast<T>(moderate_limit));

/// The census of v for a bracket: whether every |v_i| ≤ 2^40 (finite, and in the range where the fast search is
/// exact), the entries at 1 and linear on it (count, Σ v_i), the open ones.
struct bracket_census {
  std::size_t ones = 0, frees = 0, open = 0;
  double sum_free = 0.0;
  bool moderate = true;
};

#if defined(__GNUC__)
/// 32-byte vectors of the GCC / Clang vector extensions: comparisons give lane masks (−1 or 0) that the passes below
/// use arithmetically, so they run branch-free and vectorised without -ffast-math and at any optimisation level
/// (GCC's -O2 leaves the plain loops scalar); `wide` holds the same lanes converted to double (64 bytes for float:
/// one conversion instruction with AVX-512, two without). Used only inside one function (no vector crosses a call,
/// so the ABI of vector arguments does not matter).
template <class T>
struct simplex_lanes;
template <>
struct simplex_lanes<float> {
  typedef float value __attribute__((vector_size(32)));
  typedef std::int32_t mask __attribute__((vector_size(32)));
  typedef double wide __attribute__((vector_size(64)));
  static constexpr std::size_t size = 8;
  static constexpr std::int32_t magnitude = 0x7fffffff, bound = moderate_limit_bits<float, std::int32_t>;
};
template <>
struct simplex_lanes<double> {
  typedef double value __attribute__((vector_size(32)));
  typedef std::int64_t mask __attribute__((vector_size(32)));
  typedef double wide __attribute__((vector_size(32)));
  static constexpr std::size_t size = 4;
  static constexpr std::int64_t magnitude = 0x7fffffffffffffffll, bound = moderate_limit_bits<double, std::int64_t>;
};

/// out_i = min(max(T(double(v_i) − λ), 0), 1) for the first entries of v, a whole number of vectors; returns how
/// many. The same values, bit for bit, as the scalar loop of capped_simplex_projection (−0 included). out is v or
/// does not overlap it.
template <class T>
std::size_t clip_shifted_lanes(const T* v, T* out, std::size_t n, double lambda) {
  using L = simplex_lanes<T>;
  using V = typename L::value;
  using M = typename L::mask;
  using W = typename L::wide;
  const W shift = W{} + lambda;
  const V zero = {}, one = V{} + T(1);
  M one_bits;
  std::memcpy(&one_bits, &one, sizeof(V));
  std::size_t i = 0;
  for (; i + L::size <= n; i += L::size) {
    V y;
    std::memcpy(&y, v + i, sizeof(V));
    const V x = __builtin_convertvector(__builtin_convertvector(y, W) - shift, V);
    M bits;
    std::memcpy(&bits, &x, sizeof(V));
    bits &= ~M(x < zero);  // std::max(x, 0): x unless x < 0
    V r;
    std::memcpy(&r, &bits, sizeof(V));
    const M above = one < r;  // std::min(r, 1): r unless 1 < r
    bits = (bits & ~above) | (one_bits & above);
    std::memcpy(out + i, &bits, sizeof(V));
  }
  return i;
}
#endif

#if defined(__AVX2__)
/// For each 8-bit lane mask, the byte indices of its set lanes in order, then zeros: vpermps with them moves the
/// selected floats to the front of a vector (the classic AVX2 left-packing).
inline constexpr auto left_pack_indices = [] {
  std::array<std::uint64_t, 256> table{};
  for (unsigned bits = 0; bits < 256; ++bits) {
    std::uint64_t packed = 0;
    unsigned slot = 0;
    for (unsigned lane = 0; lane < 8; ++lane)
      if (bits & (1u << lane)) packed |= std::uint64_t(lane) << (8 * slot++);
    table[bits] = packed;
  }
  return table;
}();

/// For each 4-bit mask of double lanes, the mask of the float slots they occupy (lane j → slots 2j and 2j + 1).
inline constexpr auto pair_slots = [] {
  std::array<std::uint8_t, 16> table{};
  for (unsigned bits = 0; bits < 16; ++bits)
    for (unsigned lane = 0; lane < 4; ++lane)
      if (bits & (1u << lane)) table[bits] = std::uint8_t(table[bits] | (3u << (2 * lane)));
  return table;
}();

/// Appends the lanes of y that `open` selects to dst (a whole vector is written: dst needs room for it, the lanes
/// past the selected count are scratch); returns how many were selected. Doubles move as pairs of float slots.
template <class T>
[[gnu::always_inline]] inline std::size_t append_selected(T* dst, const typename simplex_lanes<T>::value& y,
                                                          const typename simplex_lanes<T>::mask& open) {
  __m256 y_reg, open_reg;
  std::memcpy(&y_reg, &y, sizeof(y_reg));
  std::memcpy(&open_reg, &open, sizeof(open_reg));
  unsigned bits, slots;
  if constexpr (std::is_same_v<T, float>) {
    bits = unsigned(_mm256_movemask_ps(open_reg));
    slots = bits;
  } else {
    bits = unsigned(_mm256_movemask_pd(_mm256_castps_pd(open_reg)));
    slots = pair_slots[bits];
  }
  const __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(left_pack_indices[slots])));
  const __m256 packed = _mm256_permutevar8x32_ps(y_reg, idx);
  std::memcpy(dst, &packed, sizeof(packed));
  return std::size_t(std::popcount(bits));
}
#endif

/// One pass: the census of v for the bracket of `cls` (float or double), and the open entries copied, in order, to
/// `open_to` (room for v.size()); census.open is how many. The classes and counts are computed vectorised; the few
/// vectors with an open entry are compacted by a branch-free loop.
template <class T>
bracket_census take_bracket_census(std::span<const T> v, const bracket_classes<T>& cls, T* open_to) {
  bracket_census out;
  const T* x = v.data();
  const std::size_t n = v.size();
  std::size_t i = 0;
#if defined(__GNUC__)
  using L = simplex_lanes<T>;
  using V = typename L::value;
  using M = typename L::mask;
  using W = typename L::wide;
  constexpr std::size_t lanes = L::size;
  const M magnitude = M{} + L::magnitude, bound = M{} + L::bound;
  // The bounds as local vectors: stores to open_to could alias cls, which would reload them every iteration.
  const V one_at_least = V{} + cls.one_at_least, zero_at_most = V{} + cls.zero_at_most;
  const V linear_from = V{} + cls.linear_from, linear_to = V{} + cls.linear_to;
  W sum = {};
  M bad = {};
  // Lane counts per block of at most 2^24 vectors, so that they cannot wrap.
  while (i + lanes <= n) {
    M ones = {}, frees = {};
    const std::size_t end = i + std::min<std::size_t>((n - i) / lanes, std::size_t(1) << 24) * lanes;
    for (; i < end; i += lanes) {
      V y;
      std::memcpy(&y, x + i, sizeof(V));
      M bits;
      std::memcpy(&bits, &y, sizeof(V));
      const M one = y >= one_at_least, zero = y <= zero_at_most;
      const M linear = (y >= linear_from) & (y <= linear_to);
      const M open = ~(one | zero | linear);
      ones -= one;
      frees -= linear;
      bad |= (bits & magnitude) > bound;  // |y| > 2^40, Inf or NaN
#if defined(__AVX2__)
      // Branch-free: a few percent of the entries are open, but a sixth of the vectors hold one.
      out.open += append_selected<T>(open_to + out.open, y, open);
#else
      std::uint64_t words[sizeof(M) / sizeof(std::uint64_t)];
      std::memcpy(words, &open, sizeof(M));
      std::uint64_t any = 0;
      for (std::uint64_t w : words) any |= w;
      if (any != 0) {  // most vectors have none open
        for (std::size_t b = 0; b < lanes; ++b) {
          open_to[out.open] = x[i + b];
          out.open += std::size_t(open[b] & 1);
        }
      }
#endif
      const M kept = bits & linear;  // y where linear, +0 elsewhere
      V y_linear;
      std::memcpy(&y_linear, &kept, sizeof(V));
      sum += __builtin_convertvector(y_linear, W);
    }
    for (std::size_t j = 0; j < lanes; ++j) {
      out.ones += std::size_t(ones[j]);
      out.frees += std::size_t(frees[j]);
    }
  }
  for (std::size_t j = 0; j < 4; ++j) {
    if constexpr (lanes == 8) out.sum_free += sum[j] + sum[j + 4];
    else out.sum_free += sum[j];
  }
  for (std::size_t j = 0; j < lanes; ++j) out.moderate = out.moderate && bad[j] == 0;
#endif
  for (; i < n; ++i) {
    const T y = x[i];
    const bool one = cls.one(y), zero = cls.zero(y), linear = cls.linear(y);
    out.ones += one;
    out.frees += linear;
    open_to[out.open] = y;
    out.open += !(one || zero || linear);
    if (linear) out.sum_free += double(y);
    out.moderate = out.moderate && std::abs(double(y)) <= moderate_limit;
  }
  return out;
}

/// True if every |x_i| ≤ 2^40 (false for NaN and Inf); branch-free on the bits for float and double, so that it
/// vectorises.
template <class T>
bool all_within_2_40(const T* x, std::size_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    using U = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
    constexpr U magnitude = std::numeric_limits<U>::max() >> 1;
    constexpr U bound = moderate_limit_bits<T, U>;
    U bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad |= U((std::bit_cast<U>(x[i]) & magnitude) > bound);
    return bad == 0;
  } else {
    for (std::size_t i = 0; i < n; ++i)
      if (!(std::abs(double(x[i])) <= moderate_limit)) return false;
    return true;
  }
}

/// Below this size the sampled bracket costs more than it saves.
inline constexpr std::size_t simplex_bracket_min_size = std::size_t(1) << 15;

/// What a pass over v learned of its range: nothing (not read), every |v_i| ≤ 2^40, or not (an entry beyond, Inf
/// or NaN).
enum class range_seen { unread, moderate, wide };

/// Large inputs (float or double, 0 < k < n): a strided sample of v (Floyd & Rivest 1975) gives λ_s, the root of
/// the sampled f, and a bracket (lo, hi) of λ at ±4 standard deviations of the sampled f around k. One vectorised
/// pass checks that every |v_i| ≤ 2^40 (`range`), counts the entries at 1 and linear on the bracket and compacts
/// the open ones (a few percent) into scratch, on which f(lo), f(hi) are evaluated and the breakpoint search
/// finishes. Returns false (nothing decided, only scratch written) if the sample cannot tell, v is not moderate, or
/// the bracket missed the root; the caller then runs the search over all of v, from the narrower interval `fallback`
/// when the bracket ruled out a side.
template <class T>
bool lambda_by_bracket(std::span<const T> v, double k, simplex_constraint c, std::span<T> scratch, double& lambda,
                       simplex_interval& fallback, range_seen& range) {
  range = range_seen::unread;
  const std::size_t n = v.size();
  const std::size_t target = std::min<std::size_t>(32768, n / 16);
  const std::size_t stride = n / target;
  std::vector<T> sample, sample_scratch;
  sample.reserve(n / stride + 1);
  for (std::size_t i = stride / 2; i < n; i += stride) sample.push_back(v[i]);
  if (!all_within_2_40(sample.data(), sample.size())) return false;  // the caller checks v (and names a bad entry)
  const std::size_t s = sample.size();
  sample_scratch.resize(s);
  const double ks = k * double(s) / double(n);
  const std::span<const T> sv(sample);
  const double lambda_s = lambda_by_search<T>(sv, ks, simplex_constraint::equal, sample_scratch, "");
  double mean = 0.0, var = 0.0;
  for (const T y : sample) mean += std::clamp(double(y) - lambda_s, 0.0, 1.0);
  mean /= double(s);
  for (const T y : sample) {
    const double d = std::clamp(double(y) - lambda_s, 0.0, 1.0) - mean;
    var += d * d;
  }
  const double spread = 4.0 * std::sqrt(var) + 4.0;  // in sampled entries
  double lo, hi;
  if (ks + spread < double(s)) {
    lo = lambda_by_search<T>(sv, ks + spread, simplex_constraint::equal, sample_scratch, "");
  } else {
    lo = double(*std::min_element(sample.begin(), sample.end())) - 1.0;
  }
  if (ks - spread > 0.0) {
    hi = lambda_by_search<T>(sv, ks - spread, simplex_constraint::equal, sample_scratch, "");
  } else {
    hi = double(*std::max_element(sample.begin(), sample.end()));
  }
  if (c == simplex_constraint::at_most) {
    lo = std::max(lo, 0.0);
    hi = std::max(hi, 0.0);
  }
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) return false;

  const bracket_classes<T> cls(lo, hi);
  T* open_data = scratch.data();
  const bracket_census census = take_bracket_census<T>(v, cls, open_data);
  range = census.moderate ? range_seen::moderate : range_seen::wide;
  if (!census.moderate) return false;
  const std::size_t open = census.open;
  simplex_interval bracket;
  bracket.lo = lo;
  bracket.hi = hi;
  bracket.n_one = double(census.ones);
  bracket.n_free = double(census.frees);
  bracket.sum_free = census.sum_free;
  double f_lo = 0.0, f_hi = 0.0;
  sum_clipped(open_data, open, lo, hi, f_lo, f_hi);
  f_lo += bracket.f_outside(lo);
  f_hi += bracket.f_outside(hi);
  if (c == simplex_constraint::at_most) {
    if (lo == 0.0 && f_lo <= k) {  // f(0) ≤ k
      lambda = 0.0;
      return true;
    }
    if (lo > 0.0 && f_lo == k) return false;  // λ = 0 if f is also k at 0: the full search tells
  }
  if (f_lo == k) {
    lambda = lo;
    return true;
  }
  if (f_hi == k) {
    lambda = hi;
    return true;
  }
  if (f_hi > k) {  // root above the bracket
    fallback.lo = hi;
    return false;
  }
  if (f_lo < k) {  // root below it
    fallback.hi = lo;
    return false;
  }
  lambda = search_breakpoints<T>(bracket, open_data, open, n, k, open_data);
  return true;
}

/// The multiplier of the projection as shift + lambda (see the top of this header): shift = 0 and lambda = λ when
/// |λ| ≤ 1024, where v_i − λ loses at most 2^-42; otherwise shift is an entry of v next to λ and |lambda| ≤ 1
/// (except in a flat piece of f far from every entry, where any λ gives the same projection).
struct capped_simplex_multiplier {
  double shift = 0.0;
  double lambda = 0.0;
};

/// The multiplier of the projection of v (finite v checked here, naming `func`); `scratch` (size ≥ v.size(), may
/// not overlap v) is working storage.
template <class T>
capped_simplex_multiplier capped_simplex_solve(std::span<const T> v, double k, simplex_constraint c,
                                               std::span<T> scratch, const char* func) {
  // The fast search works on v in place: exact when |v_i| ≤ 2^40 (no sum can overflow, v_i − 1 loses at most 2^-12)
  // and the λ it finds is at most 1024 in magnitude (v_i − λ then loses at most 2^-42). Otherwise (rare: scores or
  // weights are small in practice) the exact O(n log n) search below. NaN and Inf throw.
  // Large float or double inputs try the sampled bracket first, whose census also reads the range; the range check
  // must come before the search over all of v, which is exact only for moderate entries.
  constexpr double exact_range = 1024.0;
  const std::size_t n = v.size();
  range_seen range = range_seen::unread;
  double lambda = 0.0;
  bool solved = false;
  simplex_interval fallback;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (n >= simplex_bracket_min_size && k > 0.0 && k < double(n))
      solved = lambda_by_bracket<T>(v, k, c, scratch, lambda, fallback, range);
  }
  if (range == range_seen::unread) range = all_within_2_40(v.data(), n) ? range_seen::moderate : range_seen::wide;
  if (range == range_seen::wide) require_finite(v, func, "v");
  if (range == range_seen::moderate) {
    if (!solved) lambda = lambda_by_search<T>(v, k, c, scratch, func, fallback.lo, fallback.hi);
    if (std::abs(lambda) <= exact_range) return {0.0, lambda};
  }
  if (c == simplex_constraint::at_most) {
    double f0 = 0.0;
    for (std::size_t i = 0; i < n; ++i) f0 += std::min(std::max(double(v[i]), 0.0), 1.0);
    if (f0 <= k) return {0.0, 0.0};
  }
  // at_most with f(0) > k: λ > 0 is the root of f(λ) = k, as for `equal`. The breakpoints of f are v_i − 1 and v_i,
  // kept as (entry, offset) pairs, never rounded into one double: b = v_j − off, and v_i − b = (v_i − v_j) + off.
  // Sorted exactly (the order of v_a − o_a and v_b − o_b is that of v_a − v_b and o_a − o_b), then bisected for the
  // last breakpoint with f ≥ k; f is linear from there to the next one, of length at most 1 when it decreases.
  struct breakpoint {
    double value;
    double offset;  // 0 or 1: the breakpoint is value − offset
  };
  std::vector<breakpoint> bp;
  bp.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    bp.push_back({double(v[i]), 1.0});
    bp.push_back({double(v[i]), 0.0});
  }
  std::sort(bp.begin(), bp.end(), [](const breakpoint& a, const breakpoint& b) {
    return a.value == b.value ? a.offset > b.offset : a.value - b.value < a.offset - b.offset;
  });
  // f at b + t, for a breakpoint b and a small t: Σ clip((v_i − v_j) + off − t, 0, 1) (an overflow clips).
  auto f_at = [&](const breakpoint& b, double t) {
    double f = 0.0;
    for (std::size_t i = 0; i < n; ++i) f += std::min(std::max((double(v[i]) - b.value) + b.offset - t, 0.0), 1.0);
    return f;
  };
  std::size_t first = 0, last = bp.size();  // largest j with f(bp[j]) ≥ k; f(bp[0]) = n ≥ k
  while (last - first > 1) {
    const std::size_t mid = first + (last - first) / 2;
    if (f_at(bp[mid], 0.0) >= k) first = mid;
    else last = mid;
  }
  const breakpoint lo = bp[first];
  const double f_lo = f_at(lo, 0.0);
  capped_simplex_multiplier m{lo.value, -lo.offset};  // λ = lo.value − lo.offset + t, t ≥ 0 below
  if (f_lo == k) return m;
  if (first + 1 == bp.size()) {  // k = 0 past the last breakpoint: any λ beyond it
    m.lambda += 1.0;
    return m;
  }
  // Linear between lo and the next breakpoint hi (f(hi) < k < f(lo)): interpolate.
  const breakpoint hi = bp[first + 1];
  const double length = (hi.value - lo.value) + lo.offset - hi.offset;
  const double f_hi = f_at(hi, 0.0);
  m.lambda += length * (f_lo - k) / (f_lo - f_hi);
  return m;
}

}  // namespace detail

// ---- definitions ----

template <class T>
double capped_simplex_threshold(std::span<const T> v, double k, simplex_constraint c) {
  detail::check_capped_simplex(v.size(), k, c, "capped_simplex_threshold");
  std::vector<T> scratch(v.size());
  const auto m = detail::capped_simplex_solve<T>(v, k, c, scratch, "capped_simplex_threshold");
  return m.shift + m.lambda;
}

template <class T>
void capped_simplex_projection(std::span<const T> v, double k, std::span<T> out, simplex_constraint c) {
  constexpr const char* func = "capped_simplex_projection";
  detail::require_size(out.size(), v.size(), func, "out");
  detail::check_capped_simplex(v.size(), k, c, func);
  const std::less<const T*> before;
  const bool overlap = !v.empty() && before(v.data(), out.data() + out.size()) &&
                       before(out.data(), v.data() + v.size());
  detail::capped_simplex_multiplier m;
  if (overlap) {
    std::vector<T> scratch(v.size());
    m = detail::capped_simplex_solve<T>(v, k, c, scratch, func);
  } else {
    m = detail::capped_simplex_solve<T>(v, k, c, out, func);
  }
  // Rounding to T before clipping gives the same values as after (0 and 1 are exact, rounding is monotone),
  // and lets the loop vectorise.
  if (m.shift == 0.0) {
    std::size_t i = 0;
#if defined(__GNUC__)
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      i = detail::clip_shifted_lanes<T>(v.data(), out.data(), v.size(), m.lambda);
#endif
    for (; i < v.size(); ++i) {
      const T x = T(double(v[i]) - m.lambda);
      out[i] = std::min(std::max(x, T(0)), T(1));
    }
  } else {
    for (std::size_t i = 0; i < v.size(); ++i) {  // v_i − shift may overflow to ±inf, which clips to 0 or 1
      const double x = (double(v[i]) - m.shift) - m.lambda;
      out[i] = T(std::min(std::max(x, 0.0), 1.0));
    }
  }
}

}  // namespace bipq
