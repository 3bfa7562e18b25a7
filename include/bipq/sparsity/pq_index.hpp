#pragma once
// PQ Index (PQI), the sparsity measure of Diao, Wang, Zhang, Yang, Ding & Tarokh, "Pruning Deep Neural Networks from
// a Sparsity Perspective", ICLR 2023 (arXiv:2302.05601), Definition 1:
//
//   I_{p,q}(w) = 1 − d^{1/q − 1/p} · ‖w‖_p / ‖w‖_q,      0 < p < q,   ‖w‖_p = (Σ_i |w_i|^p)^{1/p},   d = dim(w).
//
// Larger is sparser. Theorem 1 of the paper: 0 ≤ I ≤ 1 − d^{1/q−1/p}, with 0 exactly for constant |w| and the upper
// bound exactly for one-hot w; I satisfies the six sparsity criteria of Hurley & Rickard (2009). By convention the
// all-zero vector (and the empty one) has I = 0.
//
// Scopes: one tensor; the entries of a tensor where a mask is nonzero (d = number of survivors, as the paper does
// during iterative pruning); several tensors concatenated (global); one value per tensor; one value per output
// neuron / filter (row of the tensor seen row-major as [rows, size/rows]).
//
// Accumulated in double over |w|/max|w| when scaling matters (no overflow or underflow for large q or tiny weights),
// in one vectorised pass for (0.5, 1) and (1, 2) and, for float data, for exponents in {½, 1, …, 4} (unscaled: no
// term can over- or underflow; float square roots, the data's precision), with a running scale otherwise (for float
// data with exponents that have no product/root shortcut, powers by log2/exp2 polynomials, ≤ 2^-28 + e·2^-32 per
// term), combined in log space: docs/measures.md, "Numerics and speed".

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Define BIPQ_NO_EXPERIMENTAL_SIMD to use the scalar passes only (the results agree to rounding).
#if __has_include(<experimental/simd>) && !defined(BIPQ_NO_EXPERIMENTAL_SIMD)
#include <experimental/simd>
#define BIPQ_HAS_EXPERIMENTAL_SIMD 1
#endif

#include "bipq/concepts.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// A range (std::vector, std::array, std::span, ...) whose elements are flat tensors: the argument of the functions
/// that work across tensors (global, per tensor).
template <class R>
concept flat_tensor_range = std::ranges::input_range<R> && flat_tensor<std::remove_cvref_t<std::ranges::range_reference_t<R>>>;

/// I_{p,q}(w) over all entries of `w` (d = w.size()); 0 for an all-zero or empty `w`.
/// Throws std::invalid_argument if p ≤ 0, q ≤ p, p or q is not finite ("pq_index(): q must be > p"), or `w` holds
/// NaN or Inf ("pq_index(): w contains NaN or Inf (index i)").
template <flat_tensor W>
double pq_index(const W& w, double p = 0.5, double q = 1.0);

/// I_{p,q} over the entries of `w` where `mask != 0` (d = number of survivors); entries where mask == 0 are ignored
/// entirely (they may hold anything). 0 if there is no survivor or all survivors are zero. `mask` is a flat tensor of
/// the same size (any floating type). Throws std::invalid_argument also on a size mismatch or a non-finite mask.
template <flat_tensor W, flat_tensor M>
double pq_index(const W& w, const M& mask, double p = 0.5, double q = 1.0);

/// I_{p,q} of all tensors of `ws` concatenated (the "global" scope), e.g. `std::vector<Eigen::MatrixXf>` or
/// `std::vector<std::span<const float>>`.
template <flat_tensor_range Range>
double pq_index_global(const Range& ws, double p = 0.5, double q = 1.0);

/// Global I_{p,q} over the surviving entries: `masks` is a parallel range (same number of tensors, same sizes).
template <flat_tensor_range Range, flat_tensor_range MaskRange>
double pq_index_global(const Range& ws, const MaskRange& masks, double p = 0.5, double q = 1.0);

/// One I_{p,q} per tensor of `ws` (the "layer" scope).
template <flat_tensor_range Range>
std::vector<double> pq_index_per_tensor(const Range& ws, double p = 0.5, double q = 1.0);

/// One I_{p,q} per tensor, over its surviving entries.
template <flat_tensor_range Range, flat_tensor_range MaskRange>
std::vector<double> pq_index_per_tensor(const Range& ws, const MaskRange& masks, double p = 0.5, double q = 1.0);

/// One I_{p,q} per output neuron / filter: `w` is seen row-major as [rows, w.size()/rows] (a linear weight
/// [out, in] or a conv weight [K, C, R, S] with rows = K), in storage order: an Eigen column-major MatrixXf's
/// storage rows are its columns, so use a RowMajor matrix for [out, in]. Throws if rows == 0 or rows does not
/// divide w.size().
template <flat_tensor W>
std::vector<double> pq_index_per_neuron(const W& w, std::size_t rows, double p = 0.5, double q = 1.0);

/// Per output neuron over the surviving entries of each row (d = survivors of that row); a row without survivors
/// gets 0.
template <flat_tensor W, flat_tensor M>
std::vector<double> pq_index_per_neuron(const W& w, const M& mask, std::size_t rows, double p = 0.5,
                                        double q = 1.0);

/// The upper bound of Theorem 1 for dimension d: 1 − d^{1/q − 1/p}, reached by one-hot vectors (0 for d ≤ 1).
double pq_index_upper_bound(std::size_t d, double p = 0.5, double q = 1.0);

// ---------------------------------------------------------------------------------------------------------------
namespace detail {

/// Throws std::invalid_argument("<func>(): p must be > 0" / "q must be > p") unless 0 < p < q < ∞.
inline void validate_pq(double p, double q, const char* func) {
  if (!(p > 0.0) || !std::isfinite(p)) throw std::invalid_argument(std::string(func) + "(): p must be finite and > 0");
  if (!(q > p) || !std::isfinite(q)) throw std::invalid_argument(std::string(func) + "(): q must be finite and > p");
}

/// Σ e-th powers accumulated by one pass; `max_abs` over the entries counted.
template <class A>
struct power_sums {
  A max_abs = 0;
  A sum_p = 0;
  A sum_q = 0;
  std::size_t count = 0;
  bool all_finite = true;  ///< set by the scalar pass (the vectorised pass detects non-finite data from its sums)
  void merge(const power_sums& o) {
    max_abs = std::max(max_abs, o.max_abs);
    all_finite = all_finite && o.all_finite;
    sum_p += o.sum_p;
    sum_q += o.sum_q;
    count += o.count;
  }
};

/// Accumulation type: double, or long double for long double data.
template <class T>
using accumulator_t = std::conditional_t<std::is_same_v<T, long double>, long double, double>;

enum class pq_path { half_one, one_two, general };

inline pq_path choose_path(double p, double q) noexcept {
  if (p == 0.5 && q == 1.0) return pq_path::half_one;
  if (p == 1.0 && q == 2.0) return pq_path::one_two;
  return pq_path::general;
}

/// y^e for y ≥ 0: shortcuts for e = 1, 2, 0.5, small integers (binary powering) and small integers plus ½ (times
/// √y), std::pow otherwise.
template <class A>
inline A power_term(A y, double e) noexcept {
  if (e == 1.0) return y;
  if (e == 2.0) return y * y;
  if (e == 0.5) return std::sqrt(y);
  const bool half = e - std::floor(e) == 0.5;  // y^(n+½) = y^n · √y
  if ((e == std::floor(e) || half) && e <= 64.0) {
    auto k = static_cast<unsigned>(e);
    A result = half ? std::sqrt(y) : A(1), base = y;
    while (k != 0) {
      if (k & 1u) result *= base;
      base *= base;
      k >>= 1u;
    }
    return result;
  }
  return std::pow(y, static_cast<A>(e));
}

/// Whether the mask entry marks a survivor.
template <class MT>
inline bool survives(MT m) noexcept {
  return m != MT(0);
}

/// How an error message names the data: "w", "ws[3]" (a tensor of a list) or "row 3 of w". Formatted only when
/// an error is thrown, so the passes build no strings.
struct argument_name {
  enum class kind { plain, tensor, row };
  const char* name = "w";
  kind what = kind::plain;
  std::size_t index = 0;

  std::string str() const {
    switch (what) {
      case kind::tensor: return std::string(name) + "[" + std::to_string(index) + "]";
      case kind::row: return "row " + std::to_string(index) + " of " + name;
      case kind::plain: break;
    }
    return name;
  }
};

/// Throws "<func>(): <arg> contains NaN or Inf (index i)" for the first non-finite entry counted (all entries, or
/// the survivors of the mask), and "<func>(): mask contains NaN or Inf" for a non-finite mask entry.
template <class T, class MT>
void require_finite_counted(std::span<const T> x, const MT* mask, const char* func, const argument_name& arg) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    if constexpr (!std::is_void_v<MT>) {
      if (!std::isfinite(mask[i]))
        throw std::invalid_argument(std::string(func) + "(): mask contains NaN or Inf (index " + std::to_string(i) +
                                    ")");
      if (!survives(mask[i])) continue;
    }
    if (!std::isfinite(x[i]))
      throw std::invalid_argument(std::string(func) + "(): " + arg.str() + " contains NaN or Inf (index " +
                                  std::to_string(i) + ")");
  }
}

/// Scalar pass: max|w| over the counted entries and S_p, S_q of y = |w|·scale (scale > 0) or y = |w|/divisor
/// (divisor > 0, for a max|w| whose reciprocal overflows); both 0: max only. Also the reference the vectorised
/// passes are tested against.
template <class T, class MT>
power_sums<accumulator_t<T>> scalar_sums(std::span<const T> x, const MT* mask, accumulator_t<T> scale,
                                         accumulator_t<T> divisor, double p, double q) {
  using A = accumulator_t<T>;
  power_sums<A> s;
  const bool powers = scale > 0 || divisor > 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if constexpr (!std::is_void_v<MT>) {
      if (!survives(mask[i])) continue;
    }
    ++s.count;
    const A a = std::abs(static_cast<A>(x[i]));
    if (!std::isfinite(a)) s.all_finite = false;
    if (a > s.max_abs) s.max_abs = a;
    if (powers) {
      const A y = divisor > 0 ? a / divisor : a * scale;
      s.sum_p += power_term(y, p);
      s.sum_q += power_term(y, q);
    }
  }
  return s;
}

#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
// GCC 12's AVX-512 intrinsics behind std::experimental::simd trigger false -Wmaybe-uninitialized reports.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace stdx = std::experimental;

/// 1 where the mask entry is non-zero, 0 where it is zero (finite entries), as a vector of the mask's type: |m| is
/// scaled up twice by 2^k, with 2^{2k} above 1/denorm_min, and clipped at 1. Arithmetic instead of simd_mask, whose
/// masked assignment Clang 14 miscompiles with libstdc++'s AVX-512 simd.
template <class MT>
constexpr MT keep_scale() {
  constexpr int k = (std::numeric_limits<MT>::digits - std::numeric_limits<MT>::min_exponent) / 2 + 2;
  MT up = 1;
  for (int i = 0; i < k; ++i) up *= 2;
  return up;
}

template <class VM>
struct keep_factor {
  using MT = typename VM::value_type;
  VM up = VM(keep_scale<MT>());  // broadcast once, outside the loops
  VM one = VM(MT(1));
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  VM operator()(const VM& m) const {
    return stdx::min(stdx::min(stdx::abs(m) * up, one) * up, one);
  }
};

/// One vectorised, unscaled pass for float/double data: max|w|, S_p, S_q over the counted entries, for the fast
/// paths (0.5, 1) and (1, 2) (`Path`), or max|w| only (`Path == general`). Non-finite data shows as a NaN/Inf sum
/// or max; a non-finite mask entry as a NaN `mask_check`.
template <pq_path Path, class T, class MT>
power_sums<double> simd_sums(std::span<const T> x, const MT* mask, double& mask_check) {
  using vt = stdx::native_simd<T>;
  using vd = stdx::rebind_simd_t<double, vt>;
  constexpr std::size_t lanes = vt::size();
  constexpr int unroll = 4;
  const std::size_t n = x.size();
  const T* data = x.data();
  vt max_acc = 0;
  vt check_acc = 0;
  [[maybe_unused]] vd count_acc = 0;
  using vm = stdx::rebind_simd_t<std::conditional_t<std::is_void_v<MT>, T, MT>, vt>;
  [[maybe_unused]] const keep_factor<vm> keep_of;
  vd sp[unroll], sq[unroll];
  for (int u = 0; u < unroll; ++u) sp[u] = sq[u] = vd(0);
  std::size_t count = 0;
  std::size_t i = 0;
  for (; i + unroll * lanes <= n; i += unroll * lanes) {
    for (int u = 0; u < unroll; ++u) {
      vt a(data + i + u * lanes, stdx::element_aligned);
      a = stdx::abs(a);
      if constexpr (!std::is_void_v<MT>) {
        const vm mk(mask + i + u * lanes, stdx::element_aligned);
        const vt keep = stdx::static_simd_cast<vt>(keep_of(mk));
        check_acc += stdx::static_simd_cast<vt>(mk - mk) + a * T(0);  // NaN iff a mask or weight entry is NaN/Inf
        a *= keep;
        count_acc += stdx::static_simd_cast<vd>(keep);
      }
      max_acc = stdx::max(max_acc, a);
      if constexpr (Path == pq_path::half_one) {
        if constexpr (std::is_same_v<T, float>) {
          sp[u] += stdx::static_simd_cast<vd>(stdx::sqrt(a));
          sq[u] += stdx::static_simd_cast<vd>(a);
        } else {
          sp[u] += stdx::sqrt(a);
          sq[u] += a;
        }
      } else if constexpr (Path == pq_path::one_two) {
        const vd ad = stdx::static_simd_cast<vd>(a);
        sp[u] += ad;
        sq[u] += ad * ad;
      } else {
        sp[u] += stdx::static_simd_cast<vd>(a);  // Σ|w|: NaN or Inf in the data shows here
      }
    }
  }
  power_sums<double> s;
  s.max_abs = static_cast<double>(stdx::hmax(max_acc));
  for (int u = 0; u < unroll; ++u) {
    s.sum_p += stdx::reduce(sp[u]);
    s.sum_q += stdx::reduce(sq[u]);
  }
  mask_check = static_cast<double>(stdx::reduce(check_acc));
  if constexpr (std::is_void_v<MT>) {
    count = i;
  } else {
    count = static_cast<std::size_t>(stdx::reduce(count_acc));
  }
  for (; i < n; ++i) {
    if constexpr (!std::is_void_v<MT>) {
      mask_check += static_cast<double>(mask[i]) - static_cast<double>(mask[i]);
      if (!survives(mask[i])) continue;
    }
    ++count;
    const T a = std::abs(data[i]);
    if (!(a <= static_cast<T>(s.max_abs))) s.max_abs = static_cast<double>(a);
    if constexpr (Path == pq_path::half_one) {
      s.sum_p += static_cast<double>(std::sqrt(a));
      s.sum_q += static_cast<double>(a);
    } else if constexpr (Path == pq_path::one_two) {
      s.sum_p += static_cast<double>(a);
      s.sum_q += static_cast<double>(a) * static_cast<double>(a);
    } else {
      s.sum_p += static_cast<double>(a);
    }
  }
  s.count = count;
  return s;
}

/// y ↦ y^e on vectors of y ≥ 0 with power_term's shortcuts, the exponent classified once (outside the loop).
struct simd_power {
  enum class kind { one, two, half, integer, half_integer, other } k;
  unsigned n = 0;  // the integer part of the exponent, for kind::integer and kind::half_integer
  double e = 0;
  explicit simd_power(double exponent) : k(kind::other), e(exponent) {
    if (e == 1.0) k = kind::one;
    else if (e == 2.0) k = kind::two;
    else if (e == 0.5) k = kind::half;
    else if (e == std::floor(e) && e <= 64.0) {
      k = kind::integer;
      n = static_cast<unsigned>(e);
    } else if (e - std::floor(e) == 0.5 && e <= 64.0) {
      k = kind::half_integer;
      n = static_cast<unsigned>(e);
    }
  }
  template <class V>
#if defined(__GNUC__)
  [[gnu::always_inline]]  // a call per vector would pass 16 doubles through memory
#endif
  V operator()(V y) const {
    return (*this)(y, needs_root() ? V(stdx::sqrt(y)) : y);
  }
  /// Whether the power uses √y.
  bool needs_root() const noexcept { return k == kind::half || k == kind::half_integer; }
  /// y^e given root = √y (when needs_root(); anything otherwise), so that two powers can share one square root.
  template <class V>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  V operator()(V y, V root) const {
    switch (k) {
      case kind::one: return y;
      case kind::two: return y * y;
      case kind::half: return root;
      case kind::integer:
      case kind::half_integer: {
        V result = k == kind::half_integer ? root : V(1), base = y;
        for (unsigned m = n; m != 0; m >>= 1u) {
          if (m & 1u) result *= base;
          base *= base;
        }
        return result;
      }
      case kind::other: break;
    }
    return stdx::pow(y, V(e));
  }
};

/// Vectorised scaled pass for float/double data: S_p, S_q of y = |w|·scale (in double) over the counted entries.
template <class T, class MT>
power_sums<double> simd_scaled_sums(std::span<const T> x, const MT* mask, double scale, double p, double q) {
  using vt = stdx::native_simd<T>;
  using vd = stdx::rebind_simd_t<double, vt>;
  constexpr std::size_t lanes = vt::size();
  const std::size_t n = x.size();
  const T* data = x.data();
  const simd_power power_p(p), power_q(q);
  vd sp = 0, sq = 0;
  [[maybe_unused]] vd count_acc = 0;
  using vm = stdx::rebind_simd_t<std::conditional_t<std::is_void_v<MT>, T, MT>, vt>;
  [[maybe_unused]] const keep_factor<vm> keep_of;
  std::size_t count = 0;
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    vt a(data + i, stdx::element_aligned);
    a = stdx::abs(a);
    if constexpr (!std::is_void_v<MT>) {
      const vt keep = stdx::static_simd_cast<vt>(keep_of(vm(mask + i, stdx::element_aligned)));
      a *= keep;  // NaN for a non-finite masked-out weight: the caller then takes the scalar pass
      count_acc += stdx::static_simd_cast<vd>(keep);
    }
    const vd y = stdx::static_simd_cast<vd>(a) * scale;
    sp += power_p(y);
    sq += power_q(y);
  }
  if constexpr (std::is_void_v<MT>) {
    count = i;
  } else {
    count = static_cast<std::size_t>(stdx::reduce(count_acc));
  }
  power_sums<double> s;
  s.sum_p = stdx::reduce(sp);
  s.sum_q = stdx::reduce(sq);
  for (; i < n; ++i) {
    if constexpr (!std::is_void_v<MT>) {
      if (!survives(mask[i])) continue;
    }
    ++count;
    const double y = std::abs(static_cast<double>(data[i])) * scale;
    s.sum_p += power_term(y, p);
    s.sum_q += power_term(y, q);
  }
  s.count = count;
  return s;
}

/// y^(N2/2) given s = √y (used only when N2 is odd): straight-line products.
template <unsigned N2, class V>
#if defined(__GNUC__)
[[gnu::always_inline]]
#endif
inline V half_power(V y, [[maybe_unused]] V s) {
  V result = s;  // y^0 · √y when N2 is odd; replaced by the first factor otherwise (no multiplication by 1)
  bool first = !(N2 & 1u);
  V base = y;
  for (unsigned m = N2 / 2; m != 0; m >>= 1u) {
    if (m & 1u) {
      result = first ? base : V(result * base);
      first = false;
    }
    if (m > 1u) base *= base;
  }
  return result;
}

/// Vectorised a^e·2^-N = 2^{e·log2 a − N} for the float data's general exponents (e outside simd_power's shortcuts),
/// on double lanes holding float values a ≥ 0 (subnormal floats are normal doubles), N an integer offset (the
/// streaming pass takes N = round(e·log2 M), M the running maximum, so that every term is at most 2^½ to rounding):
/// one log2 per entry, shared by both exponents, and one exp2 per exponent. With t = e·log2 a = n + f, n = round(t),
/// the term is 2^f by a polynomial times 2^{n−N} exactly (added to the exponent bits), so its computed value depends
/// on a and on N only through an exact power of two: the sums do not depend on where the running maximum grew (the
/// order of the entries, the tensors of a global scope, the masked-out entries), and a rescale is an exact power of
/// two.
/// Relative error per term, against a^e·2^-N:
///
///   |δ_e| ≤ ε_exp + ln 2 · e · (ε_log + 2^-45) ≤ 2^-28 + e · 2^-32    (≤ 2^-24, the data's precision, for e ≤ 240)
///
/// where ε_log = 2^-32.5 is log2's absolute error and ε_exp = 2^-29 exp2's relative one (minimax polynomials, Remez
/// on [-1/3, 1/3] and [-1/2, 1/2], evaluated in double: rounding adds ≤ 2^-50 to either); 2^-45 is the rounding of
/// log2 a = k + log2 m (|log2 a| ≤ 150, so ≤ 2^-45.8) and of t = e·log2 a (≤ 2^-53·|t| ≤ e·2^-45.8). e·k needs no
/// error-free product: in double it is exact to 2^-53 relatively, where float arithmetic would lose |e·k|·2^-24.
/// The shift n − N is clamped at -1000, so a term below 2^-1000 (relative to the largest, ≈ 1) becomes at most
/// 2^-998 (the sums move by at most d·2^-998 relatively), and a zero a (also a masked-out entry) gives an exact 0
/// through nonzero_factor.
struct log_exp_power {
  template <class V>
  using bits_of = stdx::rebind_simd_t<std::uint64_t, V>;

  /// log2(1.5 (1 + u)) ≈ Σ c_i u^i on u ∈ [-1/3, 1/3], absolute error ≤ 2^-32.5 (degree 11).
  static constexpr double log2_coefficients[12] = {
      0x1.2b8034754753dp-1,  0x1.7154764b1594dp+0, -0x1.7154799cc8887p-1, 0x1.ec70b79fad61ap-2,
      -0x1.7151cc13eb727p-2, 0x1.277068fc535cbp-2, -0x1.ed398c73a8ae8p-3, 0x1.a7718cc7336b1p-3,
      -0x1.641dbb10fead9p-3, 0x1.366ec70ef38ffp-3, -0x1.8aea8bb2cfff2p-3, 0x1.7b06fa02c9a1ap-3};
  /// 2^f ≈ Σ c_i f^i on f ∈ [-1/2, 1/2], relative error ≤ 2^-29 (degree 6).
  static constexpr double exp2_coefficients[7] = {0x1.0000000261500p+0, 0x1.62e430c7e9234p-1,
                                                  0x1.ebfbdadcb0beep-3, 0x1.c6aed4b951235p-5,
                                                  0x1.3b2dbbc0fe0bap-7, 0x1.5f456a8ab62dap-10,
                                                  0x1.41d3336a6ed46p-13};
  /// Added to t to round it to an integer n held in the low bits: 1.5·2^52 (|t| < 2^51).
  static constexpr double round_shift = 0x1.8p52;
  /// Exponents up to this take these terms (within 2^-24 per term); larger ones std::pow.
  static constexpr double max_exponent = 240;

  /// log2 a for positive normal doubles a: a = 2^k m, m ∈ [1, 2), the exponent k read from the bits (as a double:
  /// 2^52 + k + 1023 − (2^52 + 1023), exact), log2 m by the polynomial in u = 2m/3 − 1. A zero a gives a finite
  /// -1023 + log2 1.5 (nonzero_factor removes its term).
  template <class V>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  static V log2(V a) {
    using U = bits_of<V>;
    const U bits = std::bit_cast<U>(a);
    const V k = std::bit_cast<V>((bits >> 52) | U(0x4330000000000000ull)) - V(0x1p52 + 1023.0);
    const V m = std::bit_cast<V>((bits & U(0x000fffffffffffffull)) | U(0x3ff0000000000000ull));
    const V u = m * V(2.0 / 3.0) - V(1.0);
    V h = V(log2_coefficients[11]);
    for (int i = 10; i >= 0; --i) h = h * u + V(log2_coefficients[i]);
    return k + h;
  }

  /// 2^{t − N} for |t| < 2^50 and t − N ≤ 2 (`offset` = N, an integer): t = n + f with n = round(t) (by adding and
  /// subtracting round_shift), |f| ≤ ½, 2^f by the polynomial, times 2^{n−N}, n − N clamped at -1000, by adding it
  /// to the exponent bits.
  template <class V>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  static V exp2_minus(V t, V offset) {
    using U = bits_of<V>;
    const V shifted = t + V(round_shift);
    const V f = t - (shifted - V(round_shift));
    V h = V(exp2_coefficients[6]);
    for (int i = 5; i >= 0; --i) h = h * f + V(exp2_coefficients[i]);
    const V shift = stdx::max(shifted - offset, V(round_shift - 1000.0));  // round_shift + n − N, exact
    return std::bit_cast<V>(std::bit_cast<U>(h) + (std::bit_cast<U>(shift) << 52));
  }

  /// 1 for a > 0 (a ≥ 2^-149, the smallest float), 0 for a = 0.
  template <class V>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  static V nonzero_factor(V a) {
    return stdx::min(a * V(0x1p200), V(1.0));
  }

  /// The offset N for exponent e and maximum M: terms a^e·2^-N ≤ M^e·2^-N ≤ 2^½ (to rounding).
  static double offset_for(double e, double max_abs) { return std::round(e * std::log2(max_abs)); }

  /// a^e·2^-N as the pass computes it (log2, exp2_minus, nonzero_factor), for the tests.
  template <class V>
  static V power(V a, double e, double offset) {
    return exp2_minus(V(e) * log2(a), V(offset)) * nonzero_factor(a);
  }
};

/// One pass with a running scale, as LAPACK's dnrm2 keeps one (Hammarling's update of Blue's algorithm; Anderson,
/// "Algorithm 978: Safe scaling in the Level 1 BLAS", ACM TOMS 2017): S_p, S_q of y = |w|/M with M the largest |w| so
/// far, so every term is ≤ 1 and neither sum can overflow; when a block of entries brings a larger maximum M', the
/// sums so far are multiplied by (M/M')^p and (M/M')^q. Blocks of 1024 entries: the block's maximum is taken first
/// (the one read from memory), then its terms from cache, vectorised with the exponent shortcuts of simd_power; for
/// float data with an exponent outside them (e.g. (0.7, 1.3)), both terms by log_exp_power instead of std::pow
/// (float precision, the data's own: relative error ≤ 2^-28 + e·2^-32 per term), as a^e·2^-N with integer offsets
/// N_e ≈ e·log2 M, which a larger M moves by exact powers of two.
/// `ok` is false if the data or a mask entry is not finite (also a masked-out weight) or 1/M overflows (a
/// subnormal maximum): the caller then takes the two-pass route, which reports or handles those cases.
template <class T>
struct streaming_sums {
  // Native double vectors throughout, loaded from T directly (a converting load): libstdc++'s fixed_size vectors
  // (the double rebind of a float vector) pass √ and pow through memory.
  using vd = stdx::native_simd<double>;
  static constexpr std::size_t lanes = vd::size();
  static constexpr std::size_t unroll = 4;
  static constexpr std::size_t block = 1024;

  simd_power power_p, power_q;
  double p, q;
  /// Float data with an exponent that has no shortcut: both terms by log_exp_power (one log2, two exp2 per entry).
  bool log_exp;
  double scale = 0;     ///< M
  double inverse = 0;   ///< 1/M
  double offset_p = 0;  ///< N_p = round(p·log2 M): with log_exp, the sums hold Σ a^p·2^-N_p and Σ a^q·2^-N_q
  double offset_q = 0;
  vd sp[unroll], sq[unroll];
  double tail_p = 0, tail_q = 0;  ///< terms of the entries outside full vectors
  vd check = vd(0);               ///< NaN iff a counted weight or a mask entry is not finite
  vd count_acc = vd(0);
  double mask_check = 0;  ///< NaN iff a mask entry outside full vectors is not finite
  std::size_t count = 0;
  bool ok = true;

  streaming_sums(double p_, double q_)
      : power_p(p_), power_q(q_), p(p_), q(q_),
        log_exp(std::is_same_v<T, float> &&
                (power_p.k == simd_power::kind::other || power_q.k == simd_power::kind::other) &&
                q_ <= log_exp_power::max_exponent) {
    for (std::size_t u = 0; u < unroll; ++u) sp[u] = sq[u] = vd(0);
  }

  /// Moves the scale up to `m` > M: the sums so far are rescaled.
  void raise_scale(double m) {
    if (log_exp) {
      const double np = log_exp_power::offset_for(p, m), nq = log_exp_power::offset_for(q, m);
      if (scale > 0) {  // exact powers of two (or 0 where the old sums fall below 2^-1074 of the new terms)
        const double fp = std::exp2(offset_p - np), fq = std::exp2(offset_q - nq);
        for (std::size_t u = 0; u < unroll; ++u) {
          sp[u] *= fp;
          sq[u] *= fq;
        }
        tail_p *= fp;
        tail_q *= fq;
      }
      offset_p = np;
      offset_q = nq;
    } else if (scale > 0) {
      const double r = scale / m, fp = std::pow(r, p), fq = std::pow(r, q);
      for (std::size_t u = 0; u < unroll; ++u) {
        sp[u] *= fp;
        sq[u] *= fq;
      }
      tail_p *= fp;
      tail_q *= fq;
    }
    scale = m;
    inverse = 1.0 / m;
    ok = ok && std::isfinite(inverse);
  }

  /// |w| of the vector at `at` (as doubles), times the keep factor of its mask entries (checked and counted).
  template <class MT>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  static vd masked_abs(const T* data, const MT* mask, std::size_t at, const keep_factor<vd>& keep_of, vd& check_acc,
                       vd& count) {
    vd a = stdx::abs(vd(data + at, stdx::element_aligned));
    if constexpr (!std::is_void_v<MT>) {
      const vd mk(mask + at, stdx::element_aligned);
      const vd keep = keep_of(mk);
      check_acc += mk - mk;
      count += keep;
      a *= keep;  // NaN for a non-finite masked-out weight: the caller then takes the two passes
    } else {
      (void)mask;
      (void)keep_of;
      (void)count;
    }
    check_acc += a * 0.0;
    return a;
  }

  /// acc[u] += f(y, √y) over a block of y = buf·inv (len a multiple of unroll · lanes); roots[] holds √y when the
  /// power needs it.
  template <class F>
#if defined(__GNUC__)
  [[gnu::always_inline]]
#endif
  static void power_loop(const double* buf, const double* roots, std::size_t len, double inverse, vd* acc, F f) {
    const vd inv(inverse);
    vd a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // in registers (acc may alias nothing, but the compiler cannot know)
    static_assert(unroll == 4);
    auto term = [&](std::size_t at) {
      const vd y = vd(buf + at, stdx::element_aligned) * inv;
      return f(y, roots != nullptr ? vd(roots + at, stdx::element_aligned) : y);
    };
    for (std::size_t j = 0; j < len; j += unroll * lanes) {
      a0 += term(j);
      a1 += term(j + lanes);
      a2 += term(j + 2 * lanes);
      a3 += term(j + 3 * lanes);
    }
    acc[0] += a0;
    acc[1] += a1;
    acc[2] += a2;
    acc[3] += a3;
  }

  /// Σ (buf·inv)^e over a block into acc, the exponent's kind (and a small integer part) dispatched once, outside
  /// the loop, so that the loop is straight-line vector code.
  static void add_powers(const double* buf, const double* roots, std::size_t len, double inverse,
                         const simd_power& pw, vd* acc) {
    using kind = simd_power::kind;
    auto run = [&](auto f) { power_loop(buf, roots, len, inverse, acc, f); };
    switch (pw.k) {
      case kind::one: return run([](vd y, vd) { return y; });
      case kind::two: return run([](vd y, vd) { return y * y; });
      case kind::half: return run([](vd, vd r) { return r; });
      case kind::integer:
      case kind::half_integer: {
        const bool half = pw.k == kind::half_integer;
        switch (pw.n * 2 + unsigned(half)) {
          case 3: return run([](vd y, vd r) { return half_power<3>(y, r); });
          case 5: return run([](vd y, vd r) { return half_power<5>(y, r); });
          case 6: return run([](vd y, vd r) { return half_power<6>(y, r); });
          case 7: return run([](vd y, vd r) { return half_power<7>(y, r); });
          case 8: return run([](vd y, vd r) { return half_power<8>(y, r); });
          case 16: return run([](vd y, vd r) { return half_power<16>(y, r); });
          default: break;
        }
        break;
      }
      case kind::other: break;
    }
    run([&pw](vd y, vd r) { return pw(y, r); });
  }

  /// Σ a^p·2^-N_p and Σ a^q·2^-N_q over a block of a = buf (len a multiple of unroll · lanes) by log_exp_power: one
  /// log2 per entry, shared, and an exp2 per exponent; zeros (and masked-out entries, zeroed) add exactly 0.
  void add_log_exp_powers(const double* buf, std::size_t len) {
    using lep = log_exp_power;
    const vd pe(p), qe(q), np(offset_p), nq(offset_q);
    vd p0 = 0, p1 = 0, q0 = 0, q1 = 0;
    auto term = [&](std::size_t at, vd& acc_p, vd& acc_q) {
      const vd a(buf + at, stdx::element_aligned);
      const vd lg = lep::log2(a);
      const vd nz = lep::nonzero_factor(a);
      acc_p += lep::exp2_minus(pe * lg, np) * nz;
      acc_q += lep::exp2_minus(qe * lg, nq) * nz;
    };
    for (std::size_t j = 0; j < len; j += 2 * lanes) {
      term(j, p0, q0);
      term(j + lanes, p1, q1);
    }
    sp[0] += p0;
    sp[1] += p1;
    sq[0] += q0;
    sq[1] += q1;
  }

  template <class MT>
  void add(std::span<const T> x, const MT* mask) {
    const keep_factor<vd> keep_of;
    const T* data = x.data();
    const std::size_t n = x.size();
    constexpr std::size_t step = unroll * lanes;
    const bool roots = !log_exp && (power_p.needs_root() || power_q.needs_root());
    alignas(64) double buf[block], root_buf[block];
    std::size_t i = 0;
    // Per block: |w| (masked, checked, counted) into a buffer with its maximum, the scale raised if that exceeds
    // it, then the two sums from the buffer in cache.
    while (i + step <= n && ok) {
      const std::size_t len = std::min(block, (n - i) / step * step);
      vd block_max = vd(0);
      for (std::size_t j = 0; j < len; j += lanes) {
        const vd a = masked_abs<MT>(data, mask, i + j, keep_of, check, count_acc);
        block_max = stdx::max(block_max, a);
        a.copy_to(buf + j, stdx::element_aligned);
      }
      const double m = stdx::hmax(block_max);
      if (m > scale) raise_scale(m);
      if (!ok) break;
      if (log_exp) {
        add_log_exp_powers(buf, len);
        i += len;
        continue;
      }
      if (roots) {
        const vd inv(inverse);
        for (std::size_t j = 0; j < len; j += lanes)
          stdx::sqrt(vd(buf + j, stdx::element_aligned) * inv).copy_to(root_buf + j, stdx::element_aligned);
      }
      add_powers(buf, roots ? root_buf : nullptr, len, inverse, power_p, sp);
      add_powers(buf, roots ? root_buf : nullptr, len, inverse, power_q, sq);
      i += len;
    }
    if constexpr (std::is_void_v<MT>) count += i;
    for (; i < n && ok; ++i) {
      if constexpr (!std::is_void_v<MT>) {
        mask_check += static_cast<double>(mask[i]) - static_cast<double>(mask[i]);
        if (!survives(mask[i])) continue;
      }
      ++count;
      const double a = std::abs(static_cast<double>(data[i]));
      if (!std::isfinite(a)) ok = false;
      if (a > scale) raise_scale(a);
      if (log_exp) {  // the same terms as in full vectors, so that the result does not depend on the entries' places
        using lep = log_exp_power;
        const vd va(a), lg = lep::log2(va), nz = lep::nonzero_factor(va);
        tail_p += (lep::exp2_minus(vd(p) * lg, vd(offset_p)) * nz)[0];
        tail_q += (lep::exp2_minus(vd(q) * lg, vd(offset_q)) * nz)[0];
        continue;
      }
      tail_p += power_term(a * inverse, p);
      tail_q += power_term(a * inverse, q);
    }
  }

  power_sums<double> result() const {
    power_sums<double> s;
    s.max_abs = scale;
    for (std::size_t u = 0; u < unroll; ++u) {
      s.sum_p += stdx::reduce(sp[u]);
      s.sum_q += stdx::reduce(sq[u]);
    }
    s.sum_p += tail_p;
    s.sum_q += tail_q;
    if (log_exp && scale > 0) {  // Σ a^e·2^-N_e → Σ (a/M)^e: one factor 2^{N_e − e·log2 M} ∈ [2^-½, 2^½] per sum
      s.sum_p *= std::exp2(offset_p - p * std::log2(scale));
      s.sum_q *= std::exp2(offset_q - q * std::log2(scale));
    }
    s.count = count + static_cast<std::size_t>(stdx::reduce(count_acc));
    return s;
  }

  /// Whether every counted weight and every mask entry was finite and the scale invertible.
  bool finite() const { return ok && stdx::reduce(check) == 0.0 && mask_check == 0; }
};

/// Exponents that the float pass takes, as e = n2/2 with n2 = 1 … 8 (½, 1, 1½, …, 4); 0 otherwise.
inline unsigned half_exponent(double e) noexcept {
  const double n2 = 2 * e;
  return n2 == std::floor(n2) && n2 >= 1 && n2 <= 8 ? static_cast<unsigned>(n2) : 0u;
}

/// Unscaled S_p, S_q (p = P2/2, q = Q2/2) and max|w| of float data in one vectorised pass, the mask turned into a
/// 0/1 factor per lane as the other passes do. Unscaled is exact to rounding: every term |w|^e with e ≤ 4 lies in
/// [2⁻⁵⁹⁶, 2⁵¹²], far inside double's normal range, subnormal floats included. A square root, when an exponent needs
/// one, is the correctly rounded float root of |w| (relative error ≤ 2⁻²⁴, the precision of the float data); the
/// products and sums are in double. `ok` is false when a sum or the max is not finite (non-finite data, also a
/// masked-out weight, or a non-finite mask entry): the caller then takes another pass.
template <unsigned P2, unsigned Q2, class MT>
power_sums<double> float_half_sums(std::span<const float> x, const MT* mask, bool& ok) {
  using vt = stdx::native_simd<float>;
  using vd = stdx::rebind_simd_t<double, vt>;
  constexpr std::size_t lanes = vt::size();
  constexpr int unroll = 4;
  constexpr bool root = (P2 & 1u) || (Q2 & 1u);
  const std::size_t n = x.size();
  const float* data = x.data();
  vt max_acc = 0;
  vt check_acc = 0;
  [[maybe_unused]] vd count_acc = 0;
  using vm = stdx::rebind_simd_t<std::conditional_t<std::is_void_v<MT>, float, MT>, vt>;
  [[maybe_unused]] const keep_factor<vm> keep_of;
  vd sp[unroll], sq[unroll];
  for (int u = 0; u < unroll; ++u) sp[u] = sq[u] = vd(0);
  std::size_t i = 0;
  for (; i + unroll * lanes <= n; i += unroll * lanes) {
    for (int u = 0; u < unroll; ++u) {
      vt a = stdx::abs(vt(data + i + u * lanes, stdx::element_aligned));
      if constexpr (!std::is_void_v<MT>) {
        const vm mk(mask + i + u * lanes, stdx::element_aligned);
        const vt keep = stdx::static_simd_cast<vt>(keep_of(mk));
        check_acc += stdx::static_simd_cast<vt>(mk - mk);  // NaN iff a mask entry is NaN or Inf
        a *= keep;                                          // NaN for a non-finite masked-out weight
        count_acc += stdx::static_simd_cast<vd>(keep);
      }
      max_acc = stdx::max(max_acc, a);
      const vd y = stdx::static_simd_cast<vd>(a);
      const vd s = root ? stdx::static_simd_cast<vd>(stdx::sqrt(a)) : y;
      sp[u] += half_power<P2>(y, s);
      sq[u] += half_power<Q2>(y, s);
    }
  }
  power_sums<double> s;
  s.max_abs = static_cast<double>(stdx::hmax(max_acc));
  for (int u = 0; u < unroll; ++u) {
    s.sum_p += stdx::reduce(sp[u]);
    s.sum_q += stdx::reduce(sq[u]);
  }
  double mask_check = static_cast<double>(stdx::reduce(check_acc));
  if constexpr (std::is_void_v<MT>) {
    s.count = i;
  } else {
    s.count = static_cast<std::size_t>(stdx::reduce(count_acc));
  }
  for (; i < n; ++i) {
    if constexpr (!std::is_void_v<MT>) {
      mask_check += static_cast<double>(mask[i]) - static_cast<double>(mask[i]);
      if (!survives(mask[i])) continue;
    }
    ++s.count;
    const float a = std::abs(data[i]);
    const double y = static_cast<double>(a), r = static_cast<double>(std::sqrt(a));
    if (!(y <= s.max_abs)) s.max_abs = y;  // NaN shows in the sums
    s.sum_p += half_power<P2>(y, r);
    s.sum_q += half_power<Q2>(y, r);
  }
  ok = mask_check == 0 && std::isfinite(s.max_abs) && std::isfinite(s.sum_p) && std::isfinite(s.sum_q);
  return s;
}

/// S_p, S_q of float data by float_half_sums for p = p2/2 < q = q2/2 (half_exponent), the exponents dispatched once
/// to a straight-line loop. False if p ≥ q or the pass left the case to another (non-finite data or mask).
template <class MT>
bool float_half_pass(unsigned p2, unsigned q2, std::span<const float> x, const MT* mask, power_sums<double>& out) {
  bool ok = false;
  auto try_pair = [&]<unsigned P2, unsigned Q2>() {
    if constexpr (P2 < Q2) {
      if (p2 == P2 && q2 == Q2) out = float_half_sums<P2, Q2, MT>(x, mask, ok);
    }
  };
  [&]<unsigned... I>(std::integer_sequence<unsigned, I...>) {
    (try_pair.template operator()<I / 8 + 1, I % 8 + 1>(), ...);
  }(std::make_integer_sequence<unsigned, 64>{});
  return ok;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

/// True if T's unscaled pass is vectorised.
template <class T>
inline constexpr bool has_simd_pass =
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
    std::is_same_v<T, float> || std::is_same_v<T, double>;
#else
    false;
#endif

/// First pass over one tensor. For the fast paths: max|w|, S_p, S_q unscaled; for the general path: max|w| only.
/// Throws on non-finite counted data or mask.
template <class T, class MT>
power_sums<accumulator_t<T>> first_pass(std::span<const T> x, const MT* mask, [[maybe_unused]] pq_path path, double p, double q,
                                        const char* func, const argument_name& arg) {
  using A = accumulator_t<T>;
  power_sums<A> s;
  bool finite = true;
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
  if constexpr (has_simd_pass<T>) {
    double mask_check = 0;
    switch (path) {
      case pq_path::half_one: s = simd_sums<pq_path::half_one>(x, mask, mask_check); break;
      case pq_path::one_two: s = simd_sums<pq_path::one_two>(x, mask, mask_check); break;
      case pq_path::general: s = simd_sums<pq_path::general>(x, mask, mask_check); break;
    }
    // Finite data give finite max and non-NaN sums (sums of non-negative terms may overflow to +Inf, never NaN).
    finite = std::isfinite(s.max_abs) && !std::isnan(s.sum_p) && !std::isnan(s.sum_q) && mask_check == 0;
    if (path == pq_path::general) s.sum_p = 0;
  }
#endif
  if constexpr (!has_simd_pass<T>) {
    s = scalar_sums<T, MT>(x, mask, A(0), A(0), p, q);  // max|w| only: without a vectorised pass every pair is scaled
    finite = s.all_finite;
    if constexpr (!std::is_void_v<MT>) {
      for (std::size_t i = 0; i < x.size() && finite; ++i) finite = std::isfinite(mask[i]);
    }
  }
  if (!finite) {
    require_finite_counted<T, MT>(x, mask, func, arg);
    // Non-finite values only where the mask is zero: the scalar pass skips those entries.
    s = scalar_sums<T, MT>(x, mask, A(path == pq_path::general ? 0 : 1), A(0), p, q);
  }
  return s;
}

/// Whether unscaled sums with largest entry `max_abs` are exact to rounding: finite, and max^q (the largest term of
/// the smaller sum when max < 1) at least 2^-900, far above double's subnormal range, so that underflowed terms
/// (each < 2^-1022) change the sums by less than d · 2^-122 relatively.
template <class A>
bool unscaled_is_accurate(const power_sums<A>& s, double q) {
  if (!std::isfinite(s.sum_p) || !std::isfinite(s.sum_q)) return false;
  if (s.max_abs == 0) return true;
  return q * std::log2(static_cast<double>(s.max_abs)) >= -900.0;
}

/// I from the sums over d counted entries (any common scale of the entries cancels).
template <class A>
double pq_from_sums(A sum_p, A sum_q, std::size_t d, double p, double q) {
  if (d == 0 || !(sum_q > 0)) return 0.0;
  const double log_d = std::log(static_cast<double>(d));
  const double log_ratio = (1.0 / q - 1.0 / p) * log_d + static_cast<double>(std::log(sum_p)) / p -
                           static_cast<double>(std::log(sum_q)) / q;
  const double index = -std::expm1(log_ratio);
  // Theorem 1: 0 ≤ I ≤ 1 − d^{1/q−1/p}; clamp the rounding error of the last bits.
  const double upper = -std::expm1((1.0 / q - 1.0 / p) * log_d);
  return std::clamp(index, 0.0, upper);
}

/// A tensor (as a span) with its optional mask, for the multi-tensor functions.
template <class T, class MT>
struct counted_view {
  std::span<const T> x;
  const MT* mask = nullptr;

  /// Entries [offset, offset + len) with their mask.
  counted_view slice(std::size_t offset, std::size_t len) const {
    if constexpr (std::is_void_v<MT>) {
      return {x.subspan(offset, len), nullptr};
    } else {
      return {x.subspan(offset, len), mask + offset};
    }
  }
};

/// Sums over several tensors (global scope): one unscaled pass; a second, scaled pass if needed. Errors name the
/// data as `arg`; for a tensor or row, views[j] is number arg.index + j.
template <class T, class MT>
power_sums<accumulator_t<T>> sums_over(std::span<const counted_view<T, MT>> views, double p, double q,
                                       const char* func, argument_name arg = {}) {
  using A = accumulator_t<T>;
  const pq_path path = has_simd_pass<T> ? choose_path(p, q) : pq_path::general;
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
  if constexpr (std::is_same_v<T, float>) {
    const unsigned p2 = half_exponent(p), q2 = half_exponent(q);
    if (path == pq_path::general && p2 != 0 && q2 != 0) {  // (½, 1) and (1, 2) have their own pass
      power_sums<double> total;
      bool ok = true;
      for (std::size_t j = 0; j < views.size() && ok; ++j) {
        power_sums<double> part;
        ok = float_half_pass<MT>(p2, q2, views[j].x, views[j].mask, part);
        total.merge(part);
      }
      if (ok) return total;
      // Non-finite data or mask: the passes below report it or skip masked-out entries.
    }
  }
  if constexpr (has_simd_pass<T>) {
    if (path == pq_path::general) {
      streaming_sums<T> stream(p, q);
      for (const auto& v : views) stream.template add<MT>(v.x, v.mask);
      if (stream.finite()) return stream.result();
      // Not finite (or a subnormal maximum): the two passes below report the entry or handle the case.
    }
  }
#endif
  power_sums<A> total;
  const std::size_t first_index = arg.index;
  for (std::size_t j = 0; j < views.size(); ++j) {
    arg.index = first_index + j;
    total.merge(first_pass<T, MT>(views[j].x, views[j].mask, path, p, q, func, arg));
  }
  if (path != pq_path::general && unscaled_is_accurate(total, q)) return total;
  if (total.max_abs == 0) return total;
  // Scaled pass: y = |w| / max|w| ∈ [0, 1]; multiply by the reciprocal when it is finite (it is for float data).
  const A inverse = A(1) / total.max_abs;
  const bool use_inverse = std::isfinite(inverse);
  power_sums<A> scaled;
  for (const auto& v : views) {
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
    if constexpr (has_simd_pass<T>) {
      if (use_inverse) {
        const auto part = simd_scaled_sums<T, MT>(v.x, v.mask, inverse, p, q);
        if (!std::isnan(part.sum_p) && !std::isnan(part.sum_q)) {  // NaN: non-finite masked-out weights
          scaled.merge(part);
          continue;
        }
      }
    }
#endif
    scaled.merge(scalar_sums<T, MT>(v.x, v.mask, use_inverse ? inverse : A(0), use_inverse ? A(0) : total.max_abs,
                                    p, q));
  }
  scaled.max_abs = total.max_abs;
  return scaled;
}

template <class Range>
using range_scalar_t = scalar_of_t<std::remove_cvref_t<std::ranges::range_reference_t<const Range>>>;

template <flat_tensor W>
std::span<const scalar_of_t<W>> const_span(const W& w) {
  return as_span(w);
}

/// Stands for "no mask" where the masked functions take a mask (or a range of masks): every entry counts. The
/// passes are then instantiated with no mask type (MT = void), so the unmasked path has no mask loads or tests.
struct all_entries {};

/// The scalar type of a mask (of each mask of a range, if `range`); void for all_entries (no mask).
template <class M, bool range>
auto mask_scalar_of() {
  if constexpr (std::is_same_v<M, all_entries>) {
    return std::type_identity<void>{};
  } else if constexpr (range) {
    return std::type_identity<range_scalar_t<M>>{};
  } else {
    return std::type_identity<scalar_of_t<M>>{};
  }
}
template <class M>
using mask_scalar_t = typename decltype(mask_scalar_of<M, false>())::type;
template <class MaskRange>
using range_mask_scalar_t = typename decltype(mask_scalar_of<MaskRange, true>())::type;

/// `x` with the entries `mask` counts; throws "<func>(): <mask_name> has size .., expected .." on a size mismatch.
template <class T, class M>
counted_view<T, mask_scalar_t<M>> counted(std::span<const T> x, const M& mask, const char* func,
                                          const char* mask_name) {
  if constexpr (std::is_same_v<M, all_entries>) {
    return {x, nullptr};
  } else {
    const auto m = const_span(mask);
    require_size(m.size(), x.size(), func, mask_name);
    return {x, m.data()};
  }
}

/// Calls visit(view, j) for the j-th tensor of `ws` with its mask (the j-th of `masks`, or all_entries), in order.
/// Throws "<func>(): masks has fewer/more tensors than ws" when the ranges differ in length, and
/// "<func>(): masks[j] has size .., expected .." when a mask differs from its tensor.
template <class T, class Range, class MaskRange, class Visit>
void for_each_counted(const Range& ws, const MaskRange& masks, const char* func, Visit&& visit) {
  std::size_t j = 0;
  if constexpr (std::is_same_v<MaskRange, all_entries>) {
    for (const auto& w : ws) visit(counted<T>(const_span(w), masks, func, "masks"), j++);
  } else {
    auto mask_it = std::ranges::begin(masks);
    const auto mask_end = std::ranges::end(masks);
    for (const auto& w : ws) {
      if (mask_it == mask_end) throw std::invalid_argument(std::string(func) + "(): masks has fewer tensors than ws");
      const auto w_span = const_span(w);
      if (const_span(*mask_it).size() != w_span.size()) {
        const std::string name = "masks[" + std::to_string(j) + "]";
        require_size(const_span(*mask_it).size(), w_span.size(), func, name.c_str());
      }
      visit(counted<T>(w_span, *mask_it, func, "masks"), j++);
      ++mask_it;
    }
    if (mask_it != mask_end) throw std::invalid_argument(std::string(func) + "(): masks has more tensors than ws");
  }
}

template <class T, class MT>
double pq_index_of_view(const counted_view<T, MT>& view, double p, double q, const char* func,
                        argument_name arg = {}) {
  const auto s = sums_over<T, MT>(std::span(&view, 1), p, q, func, arg);
  return pq_from_sums(s.sum_p, s.sum_q, s.count, p, q);
}

// One implementation per scope; `mask` / `masks` is all_entries for the unmasked overloads.

template <class W, class M>
double pq_index_of(const W& w, const M& mask, double p, double q) {
  validate_pq(p, q, "pq_index");
  return pq_index_of_view(counted(const_span(w), mask, "pq_index", "mask"), p, q, "pq_index");
}

template <class Range, class MaskRange>
double pq_index_global_of(const Range& ws, const MaskRange& masks, double p, double q) {
  constexpr const char* func = "pq_index_global";
  validate_pq(p, q, func);
  using T = range_scalar_t<Range>;
  using MT = range_mask_scalar_t<MaskRange>;
  std::vector<counted_view<T, MT>> views;
  for_each_counted<T>(ws, masks, func, [&](const counted_view<T, MT>& v, std::size_t) { views.push_back(v); });
  const auto s = sums_over<T, MT>(std::span<const counted_view<T, MT>>(views), p, q, func,
                                  {"ws", argument_name::kind::tensor});
  return pq_from_sums(s.sum_p, s.sum_q, s.count, p, q);
}

template <class Range, class MaskRange>
std::vector<double> pq_index_per_tensor_of(const Range& ws, const MaskRange& masks, double p, double q) {
  constexpr const char* func = "pq_index_per_tensor";
  validate_pq(p, q, func);
  using T = range_scalar_t<Range>;
  using MT = range_mask_scalar_t<MaskRange>;
  std::vector<double> out;
  for_each_counted<T>(ws, masks, func, [&](const counted_view<T, MT>& v, std::size_t j) {
    out.push_back(pq_index_of_view(v, p, q, func, {"ws", argument_name::kind::tensor, j}));
  });
  return out;
}

template <class W, class M>
std::vector<double> pq_index_per_neuron_of(const W& w, const M& mask, std::size_t rows, double p, double q) {
  constexpr const char* func = "pq_index_per_neuron";
  validate_pq(p, q, func);
  const auto whole = counted(const_span(w), mask, func, "mask");
  if (rows == 0 || whole.x.size() % rows != 0)
    throw std::invalid_argument("pq_index_per_neuron(): rows must be > 0 and divide w.size() (" +
                                std::to_string(whole.x.size()) + ")");
  const std::size_t cols = whole.x.size() / rows;
  std::vector<double> out(rows);
  for (std::size_t r = 0; r < rows; ++r)
    out[r] = pq_index_of_view(whole.slice(r * cols, cols), p, q, func, {"w", argument_name::kind::row, r});
  return out;
}

}  // namespace detail
// ---------------------------------------------------------------------------------------------------------------

template <flat_tensor W>
double pq_index(const W& w, double p, double q) {
  return detail::pq_index_of(w, detail::all_entries{}, p, q);
}

template <flat_tensor W, flat_tensor M>
double pq_index(const W& w, const M& mask, double p, double q) {
  return detail::pq_index_of(w, mask, p, q);
}

template <flat_tensor_range Range>
double pq_index_global(const Range& ws, double p, double q) {
  return detail::pq_index_global_of(ws, detail::all_entries{}, p, q);
}

template <flat_tensor_range Range, flat_tensor_range MaskRange>
double pq_index_global(const Range& ws, const MaskRange& masks, double p, double q) {
  return detail::pq_index_global_of(ws, masks, p, q);
}

template <flat_tensor_range Range>
std::vector<double> pq_index_per_tensor(const Range& ws, double p, double q) {
  return detail::pq_index_per_tensor_of(ws, detail::all_entries{}, p, q);
}

template <flat_tensor_range Range, flat_tensor_range MaskRange>
std::vector<double> pq_index_per_tensor(const Range& ws, const MaskRange& masks, double p, double q) {
  return detail::pq_index_per_tensor_of(ws, masks, p, q);
}

template <flat_tensor W>
std::vector<double> pq_index_per_neuron(const W& w, std::size_t rows, double p, double q) {
  return detail::pq_index_per_neuron_of(w, detail::all_entries{}, rows, p, q);
}

template <flat_tensor W, flat_tensor M>
std::vector<double> pq_index_per_neuron(const W& w, const M& mask, std::size_t rows, double p, double q) {
  return detail::pq_index_per_neuron_of(w, mask, rows, p, q);
}

inline double pq_index_upper_bound(std::size_t d, double p, double q) {
  detail::validate_pq(p, q, "pq_index_upper_bound");
  if (d <= 1) return 0.0;
  return -std::expm1((1.0 / q - 1.0 / p) * std::log(static_cast<double>(d)));
}

}  // namespace bipq
