#pragma once
// Top-k masks: keep exactly k entries of largest score, per tensor or globally across tensors.
//
// The mask is the hard-threshold projection onto S_k = {m ∈ {0,1}^n : 1ᵀm = k}: for a score vector s,
// argmax_{m ∈ S_k} sᵀm keeps the k largest scores (BiP, Zhang et al. 2022, Sec. 4, the upper-level projection;
// with s = |w| it is magnitude pruning, Han et al. 2015). Ties are broken by the lower flat index (and, across
// tensors, by the lower tensor index first), so the mask is a deterministic function of the scores.
//
// Selection is O(n) and never sorts. Scores become integer keys with the same order (IEEE bits, sign-flipped).
// A strided sample of the keys brackets the k-th largest one (Floyd & Rivest 1975); a vectorised pass writes the
// mask outside the bracket, and std::nth_element on the ≈1% of keys inside it gives the exact threshold. If the
// bracket misses, a 65 536-bucket histogram of the high 16 bits locates the threshold's bucket instead. Inputs
// below 32 768 entries use nth_element on the keys directly. Validation comes first: bad input writes nothing.

#include <algorithm>
#include <bit>
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

/// Keeps exactly `k` entries of largest score (by value): mask[i] = 1 for them, 0 elsewhere.
/// Ties go to the lower flat index. Requires mask.size() == scores.size(), k ≤ n, finite scores.
template <class T>
void top_k_mask(std::span<const T> scores, std::size_t k, std::span<T> mask);

/// Same, restricted to the entries with eligible[i] != 0 ("prune among survivors"): k of them get 1, every other
/// entry (ineligible ones included) gets 0. Requires k ≤ number of eligible entries. `mask` may be the same
/// storage as `eligible` (shrinking a mask in place).
template <class T>
void top_k_mask(std::span<const T> scores, std::size_t k, std::span<T> mask, std::span<const T> eligible);

/// Magnitude pruning: keeps the `k` entries of largest |w| (ties to the lower flat index).
template <class T>
void magnitude_mask(std::span<const T> w, std::size_t k, std::span<T> mask);

/// Magnitude pruning among the entries with eligible[i] != 0.
template <class T>
void magnitude_mask(std::span<const T> w, std::size_t k, std::span<T> mask, std::span<const T> eligible);

/// Global top-k across tensors: exactly `k` entries kept in total over all tensors, by score value.
/// Ties: lower tensor index first, then lower flat index. masks[j].size() must equal scores[j].size().
template <class T>
void top_k_mask_global(std::span<const std::span<const T>> scores, std::size_t k,
                       std::span<const std::span<T>> masks);

/// Global top-k among eligible entries (eligible[j][i] != 0); k ≤ total number of eligible entries.
template <class T>
void top_k_mask_global(std::span<const std::span<const T>> scores, std::size_t k, std::span<const std::span<T>> masks,
                       std::span<const std::span<const T>> eligible);

/// Global magnitude pruning: the `k` entries of largest |w| over all tensors.
template <class T>
void magnitude_mask_global(std::span<const std::span<const T>> w, std::size_t k, std::span<const std::span<T>> masks);

/// Global magnitude pruning among eligible entries.
template <class T>
void magnitude_mask_global(std::span<const std::span<const T>> w, std::size_t k, std::span<const std::span<T>> masks,
                           std::span<const std::span<const T>> eligible);

// ---- flat_tensor overloads (Eigen, xtensor, std::vector, ...): forward to the span versions ----

/// top_k_mask over any flat tensors of the same scalar type.
template <flat_tensor S, class M>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<S>, scalar_of_t<std::remove_cvref_t<M>>>
void top_k_mask(const S& scores, std::size_t k, M&& mask) {
  using T = scalar_of_t<S>;
  top_k_mask<T>(std::span<const T>(as_span(scores)), k, std::span<T>(as_span(mask)));
}

/// top_k_mask among eligible entries, over any flat tensors of the same scalar type.
template <flat_tensor S, class M, flat_tensor E>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<S>, scalar_of_t<std::remove_cvref_t<M>>> &&
           std::same_as<scalar_of_t<S>, scalar_of_t<E>>
void top_k_mask(const S& scores, std::size_t k, M&& mask, const E& eligible) {
  using T = scalar_of_t<S>;
  top_k_mask<T>(std::span<const T>(as_span(scores)), k, std::span<T>(as_span(mask)),
                std::span<const T>(as_span(eligible)));
}

/// magnitude_mask over any flat tensors of the same scalar type.
template <flat_tensor W, class M>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<W>, scalar_of_t<std::remove_cvref_t<M>>>
void magnitude_mask(const W& w, std::size_t k, M&& mask) {
  using T = scalar_of_t<W>;
  magnitude_mask<T>(std::span<const T>(as_span(w)), k, std::span<T>(as_span(mask)));
}

/// magnitude_mask among eligible entries, over any flat tensors of the same scalar type.
template <flat_tensor W, class M, flat_tensor E>
  requires flat_tensor<std::remove_cvref_t<M>> && std::same_as<scalar_of_t<W>, scalar_of_t<std::remove_cvref_t<M>>> &&
           std::same_as<scalar_of_t<W>, scalar_of_t<E>>
void magnitude_mask(const W& w, std::size_t k, M&& mask, const E& eligible) {
  using T = scalar_of_t<W>;
  magnitude_mask<T>(std::span<const T>(as_span(w)), k, std::span<T>(as_span(mask)),
                    std::span<const T>(as_span(eligible)));
}

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// An unsigned integer key whose order is the order of the floating-point values: flip all bits of negatives,
/// set the sign bit of non-negatives. −0 is mapped to +0 first, so equal values have equal keys.
template <class T>
struct ordered_key {
  static constexpr bool radix = false;
};

template <>
struct ordered_key<float> {
  static constexpr bool radix = true;
  using type = std::uint32_t;
  static constexpr int bits = 32;
  static constexpr type sign = type(1) << 31;
  static constexpr type exponent = 0x7f800000u;
};

template <>
struct ordered_key<double> {
  static constexpr bool radix = true;
  using type = std::uint64_t;
  static constexpr int bits = 64;
  static constexpr type sign = type(1) << 63;
  static constexpr type exponent = 0x7ff0000000000000ull;
};

/// Score by value, or by magnitude.
enum class score_kind { value, magnitude };

/// Key of x as a score of the given kind; `raw_abs` receives the bits of |x| (for the finiteness check).
template <score_kind kind, class T>
inline typename ordered_key<T>::type score_key(T x, typename ordered_key<T>::type& raw_abs) noexcept {
  using K = ordered_key<T>;
  using U = typename K::type;
  U b = std::bit_cast<U>(x);
  raw_abs = b & ~K::sign;
  if constexpr (kind == score_kind::magnitude) {
    return raw_abs | K::sign;
  } else {
    b &= U(0) - U(raw_abs != 0);                // −0 == +0
    const U neg = U(0) - (b >> (K::bits - 1));  // all ones if negative
    return b ^ (neg | K::sign);
  }
}

/// Strict total order used for selection when no integer key exists (long double): larger score first,
/// then lower position.
template <score_kind kind, class T>
inline T score_value(T x) noexcept {
  if constexpr (kind == score_kind::magnitude) {
    return std::abs(x);
  } else {
    return x == T(0) ? T(0) : x;
  }
}

inline std::string k_message(const char* func, std::size_t k, std::size_t n, bool eligible) {
  return std::string(func) + "(): k must be <= the number of " + (eligible ? "eligible " : "") + "entries (k = " +
         std::to_string(k) + ", " + std::to_string(n) + " available)";
}

/// Validates sizes of a list of score / mask / eligible spans (eligible may be empty = none given).
template <class T>
void check_top_k_lists(std::span<const std::span<const T>> scores, std::span<const std::span<T>> masks,
                       std::span<const std::span<const T>> eligible, bool has_eligible, const char* func) {
  if (masks.size() != scores.size()) {
    throw std::invalid_argument(std::string(func) + "(): masks has " + std::to_string(masks.size()) +
                                " tensors, expected " + std::to_string(scores.size()) + " (one per score tensor)");
  }
  if (has_eligible && eligible.size() != scores.size()) {
    throw std::invalid_argument(std::string(func) + "(): eligible has " + std::to_string(eligible.size()) +
                                " tensors, expected " + std::to_string(scores.size()) + " (one per score tensor)");
  }
  for (std::size_t j = 0; j < scores.size(); ++j) {
    if (masks[j].size() != scores[j].size()) {
      throw std::invalid_argument(std::string(func) + "(): masks[" + std::to_string(j) + "] has size " +
                                  std::to_string(masks[j].size()) + ", expected " + std::to_string(scores[j].size()));
    }
    if (has_eligible && eligible[j].size() != scores[j].size()) {
      throw std::invalid_argument(std::string(func) + "(): eligible[" + std::to_string(j) + "] has size " +
                                  std::to_string(eligible[j].size()) + ", expected " +
                                  std::to_string(scores[j].size()));
    }
  }
}

/// Finds the offending tensor and index and throws the finiteness error.
template <class T>
[[noreturn]] void throw_not_finite(std::span<const std::span<const T>> x, const char* func, const char* arg,
                                   bool list) {
  for (std::size_t j = 0; j < x.size(); ++j) {
    for (std::size_t i = 0; i < x[j].size(); ++i) {
      if (!std::isfinite(x[j][i])) {
        const std::string where = list ? std::string(arg) + "[" + std::to_string(j) + "]" : std::string(arg);
        throw std::invalid_argument(std::string(func) + "(): " + where + " contains NaN or Inf (index " +
                                    std::to_string(i) + ")");
      }
    }
  }
  throw std::invalid_argument(std::string(func) + "(): " + arg + " contains NaN or Inf");
}

/// True if some span of `a` shares memory with some span of `b`.
template <class T>
bool any_overlap(std::span<const std::span<T>> a, std::span<const std::span<const T>> b) {
  const std::less<const T*> before;
  for (const auto& x : a) {
    for (const auto& y : b) {
      if (!x.empty() && !y.empty() && before(x.data(), y.data() + y.size()) && before(y.data(), x.data() + x.size())) {
        return true;
      }
    }
  }
  return false;
}

/// Below this total size the histogram (65 536 buckets) costs more than it saves; nth_element on keys is used.
inline constexpr std::size_t radix_min_size = std::size_t(1) << 15;

/// Threshold key t of the `need`-th largest of `keys` (reordered) and how many entries equal to t are kept, the
/// first ones in order: keys > t are kept, and the first `ties_kept` keys equal to t.
template <class U>
struct key_threshold {
  U key;
  std::size_t ties_kept;
};

template <class U>
key_threshold<U> find_key_threshold(std::vector<U>& keys, std::size_t need) {
  std::nth_element(keys.begin(), keys.begin() + std::ptrdiff_t(need - 1), keys.end(), std::greater<U>());
  const U t = keys[need - 1];
  std::size_t above = 0;
  for (std::size_t r = 0; r + 1 < need; ++r) above += keys[r] > t;  // the first need−1 are all ≥ t
  return {t, need - above};
}

/// mask[i] = 1 where eligible and key > t_hi, else 0; counts those (`above`) and the eligible keys in
/// [t_lo, t_hi] (`inside`). Written without branches so that the compiler vectorises it.
template <score_kind kind, bool with_eligible, class T, class U>
void bracket_pass(const T* x, const T* e, T* m, std::size_t n, U t_lo, U t_hi, std::size_t& above,
                  std::size_t& inside) {
  const U width = t_hi - t_lo;
  std::size_t a = 0, b = 0;
  for (std::size_t i = 0; i < n; ++i) {
    U raw;
    const U key = score_key<kind>(x[i], raw);
    bool in = true;
    if constexpr (with_eligible) in = e[i] != T(0);
    const bool keep = in & (key > t_hi);
    m[i] = keep ? T(1) : T(0);
    a += keep;
    b += in & (U(key - t_lo) <= width);
  }
  above += a;
  inside += b;
}

/// Sampled bracket (Floyd & Rivest 1975, "Expected time bounds for selection"): the keys of a strided sample of
/// the eligible entries give t_lo ≤ t_hi that bracket the k-th largest key with overwhelming probability (±4
/// standard deviations of the sample quantile); one pass keeps keys > t_hi, drops keys < t_lo and collects the
/// keys in [t_lo, t_hi] in order, among which nth_element finds the exact threshold. Returns false, with the masks
/// in an unspecified state, if the bracket missed; the caller then runs the histogram selection.
/// Preconditions (checked by the caller): finite scores, 0 < k < n_eligible.
template <score_kind kind, class T>
bool select_top_k_sampled(std::span<const std::span<const T>> scores, std::size_t k,
                          std::span<const std::span<T>> masks, std::span<const std::span<const T>> eligible,
                          bool has_eligible, std::size_t total, std::size_t n_eligible) {
  using U = typename ordered_key<T>::type;
  // About 1/16 of the entries, at most 65 536: the bracket then holds about 8σ/s ≈ 1% of the entries.
  const std::size_t target_sample = std::min<std::size_t>(65536, std::max<std::size_t>(1, total / 16));
  const std::size_t stride = std::max<std::size_t>(1, total / target_sample);
  std::vector<U> sample;
  sample.reserve(total / stride + 1);
  {
    std::size_t offset = 0;  // flat index of scores[j][0] in the concatenation
    for (std::size_t j = 0; j < scores.size(); ++j) {
      const std::size_t first = (offset + stride - 1) / stride * stride - offset;
      for (std::size_t i = first; i < scores[j].size(); i += stride) {
        if (!has_eligible || eligible[j][i] != T(0)) {
          U raw;
          sample.push_back(score_key<kind>(scores[j][i], raw));
        }
      }
      offset += scores[j].size();
    }
  }
  const std::size_t s = sample.size();
  if (s < 1024) return false;
  const double q = double(k) / double(n_eligible);
  const double rank = q * double(s);
  const double spread = 4.0 * std::sqrt(double(s) * q * (1.0 - q)) + 8.0;
  // Descending ranks (0 = largest) of the bracket's ends in the sample.
  const double rank_hi = rank - spread, rank_lo = rank + spread;
  U t_hi = std::numeric_limits<U>::max(), t_lo = 0;
  if (rank_hi >= 0.0) {
    const auto r = std::ptrdiff_t(rank_hi);
    std::nth_element(sample.begin(), sample.begin() + r, sample.end(), std::greater<U>());
    t_hi = sample[std::size_t(r)];
  }
  if (rank_lo < double(s - 1)) {
    const auto r = std::ptrdiff_t(rank_lo);
    std::nth_element(sample.begin(), sample.begin() + r, sample.end(), std::greater<U>());
    t_lo = sample[std::size_t(r)];
  }
  const U width = t_hi - t_lo;

  // Pass A (branch-free, vectorised): keys above the bracket kept, everything else 0; count both kinds.
  std::size_t above = 0, inside = 0;
  for (std::size_t j = 0; j < scores.size(); ++j) {
    if (has_eligible) {
      bracket_pass<kind, true>(scores[j].data(), eligible[j].data(), masks[j].data(), scores[j].size(), t_lo, t_hi,
                               above, inside);
    } else {
      bracket_pass<kind, false>(scores[j].data(), static_cast<const T*>(nullptr), masks[j].data(), scores[j].size(), t_lo, t_hi, above,
                                inside);
    }
  }
  if (above > k || k > above + inside) return false;
  const std::size_t need = k - above;
  if (need == 0) return true;  // the entries inside the bracket are already 0

  // Pass B: the entries inside the bracket, in order (tensor, then index).
  std::vector<U> candidate_keys;
  std::vector<T*> candidate_masks;
  candidate_keys.reserve(inside);
  candidate_masks.reserve(inside);
  for (std::size_t j = 0; j < scores.size(); ++j) {
    const T* x = scores[j].data();
    T* m = masks[j].data();
    const T* e = has_eligible ? eligible[j].data() : nullptr;
    const std::size_t n = scores[j].size();
    // Full blocks of 32 are tested at once (vectorised); only the few with an entry inside are walked.
    constexpr std::size_t block = 32;
    for (std::size_t i = 0; i < n; i += block) {
      const std::size_t end = std::min(n, i + block);
      if (end - i == block) {
        unsigned hits = 0;
        for (std::size_t t = 0; t < block; ++t) {
          U raw;
          hits |= unsigned(U(score_key<kind>(x[i + t], raw) - t_lo) <= width);
        }
        if (hits == 0) continue;
      }
      for (std::size_t t = i; t < end; ++t) {
        U raw;
        const U key = score_key<kind>(x[t], raw);
        if (U(key - t_lo) <= width && (!e || e[t] != T(0))) {
          candidate_keys.push_back(key);
          candidate_masks.push_back(m + t);
        }
      }
    }
  }
  std::vector<U> keys = candidate_keys;
  const key_threshold<U> th = find_key_threshold(keys, need);
  std::size_t ties_left = th.ties_kept;
  for (std::size_t c = 0; c < candidate_keys.size(); ++c) {
    const U key = candidate_keys[c];
    bool keep = key > th.key;
    if (!keep && key == th.key && ties_left > 0) {
      --ties_left;
      keep = true;
    }
    *candidate_masks[c] = keep ? T(1) : T(0);
  }
  return true;
}

/// The selection shared by all top-k entry points. Writes 1 to the k selected entries and 0 elsewhere.
template <score_kind kind, class T>
void select_top_k(std::span<const std::span<const T>> scores, std::size_t k, std::span<const std::span<T>> masks,
                  std::span<const std::span<const T>> eligible, bool has_eligible, const char* func) {
  check_top_k_lists<T>(scores, masks, eligible, has_eligible, func);
  // Masks may share storage with the scores or the eligibility (shrinking a mask in place): the inputs are then
  // read from private copies, since the masks are written before the selection is final.
  std::vector<std::vector<T>> copies;
  std::vector<std::span<const T>> copied_scores, copied_eligible;
  if (any_overlap<T>(masks, scores) || (has_eligible && any_overlap<T>(masks, eligible))) {
    for (const auto& x : scores) copied_scores.emplace_back(copies.emplace_back(x.begin(), x.end()));
    scores = copied_scores;
    if (has_eligible) {
      for (const auto& x : eligible) copied_eligible.emplace_back(copies.emplace_back(x.begin(), x.end()));
      eligible = copied_eligible;
    }
  }
  const bool list = scores.size() != 1;
  const char* arg = kind == score_kind::magnitude ? "w" : "scores";
  std::size_t total = 0;
  for (const auto& s : scores) total += s.size();
  auto is_eligible = [&](std::size_t j, std::size_t i) { return !has_eligible || eligible[j][i] != T(0); };

  if constexpr (!ordered_key<T>::radix) {
    // Generic path: positions ordered by (larger score, lower tensor, lower index), nth_element on them.
    struct entry {
      T value;
      std::size_t tensor, index;
    };
    std::vector<entry> entries;
    entries.reserve(total);
    for (std::size_t j = 0; j < scores.size(); ++j) {
      for (std::size_t i = 0; i < scores[j].size(); ++i) {
        if (!std::isfinite(scores[j][i])) throw_not_finite<T>(scores, func, arg, list);
        if (is_eligible(j, i)) entries.push_back({score_value<kind>(scores[j][i]), j, i});
      }
    }
    if (k > entries.size()) throw std::invalid_argument(k_message(func, k, entries.size(), has_eligible));
    for (const auto& m : masks) std::fill(m.begin(), m.end(), T(0));
    if (k == 0) return;
    auto before = [](const entry& a, const entry& b) {
      if (a.value != b.value) return a.value > b.value;
      if (a.tensor != b.tensor) return a.tensor < b.tensor;
      return a.index < b.index;
    };
    std::nth_element(entries.begin(), entries.begin() + std::ptrdiff_t(k - 1), entries.end(), before);
    for (std::size_t r = 0; r < k; ++r) masks[entries[r].tensor][entries[r].index] = T(1);
  } else {
    using K = ordered_key<T>;
    using U = typename K::type;

    using threshold = key_threshold<U>;
    auto find_threshold = [](std::vector<U>& keys, std::size_t need) { return find_key_threshold(keys, need); };
    // Final pass over one entry: key > t kept; key == t kept while ties remain.
    auto write_final = [](U key, const threshold& th, std::size_t& ties_left) {
      if (key > th.key) return T(1);
      if (key == th.key && ties_left > 0) {
        --ties_left;
        return T(1);
      }
      return T(0);
    };

    if (total < radix_min_size || total > std::numeric_limits<std::uint32_t>::max()) {
      std::vector<U> keys;
      U bad = 0;
      if (!has_eligible) {
        keys.resize(total);
        std::size_t at = 0;
        for (const auto& x : scores) {
          for (std::size_t i = 0; i < x.size(); ++i) {
            U raw;
            keys[at + i] = score_key<kind>(x[i], raw);
            bad |= U(raw >= K::exponent);
          }
          at += x.size();
        }
      } else {
        keys.reserve(total);
        for (std::size_t j = 0; j < scores.size(); ++j) {
          for (std::size_t i = 0; i < scores[j].size(); ++i) {
            U raw;
            const U key = score_key<kind>(scores[j][i], raw);
            bad |= U(raw >= K::exponent);
            if (eligible[j][i] != T(0)) keys.push_back(key);
          }
        }
      }
      if (bad) throw_not_finite<T>(scores, func, arg, list);
      if (k > keys.size()) throw std::invalid_argument(k_message(func, k, keys.size(), has_eligible));
      if (k == 0) {
        for (const auto& m : masks) std::fill(m.begin(), m.end(), T(0));
        return;
      }
      const threshold th = find_threshold(keys, k);
      std::size_t ties_left = th.ties_kept;
      for (std::size_t j = 0; j < scores.size(); ++j) {
        const T* x = scores[j].data();
        const T* e = has_eligible ? eligible[j].data() : nullptr;
        T* m = masks[j].data();
        for (std::size_t i = 0; i < scores[j].size(); ++i) {
          U raw;
          const U key = score_key<kind>(x[i], raw);
          const bool in = !e || e[i] != T(0);
          if (key == th.key && in) [[unlikely]] {
            m[i] = ties_left > 0 ? T(1) : T(0);
            ties_left -= ties_left > 0;
          } else {
            m[i] = (in && key > th.key) ? T(1) : T(0);
          }
        }
      }
      return;
    }

    // Validation first, so that bad input leaves the masks untouched: finiteness and the number of eligible
    // entries, in one vectorisable pass.
    {
      U bad = 0;
      std::size_t n_eligible = 0;
      for (std::size_t j = 0; j < scores.size(); ++j) {
        const T* s = scores[j].data();
        const std::size_t n = scores[j].size();
        for (std::size_t i = 0; i < n; ++i) bad |= U(std::bit_cast<U>(s[i]) & ~K::sign) >= K::exponent;
        if (has_eligible) {
          const T* e = eligible[j].data();
          for (std::size_t i = 0; i < n; ++i) n_eligible += e[i] != T(0);
        } else {
          n_eligible += n;
        }
      }
      if (bad) throw_not_finite<T>(scores, func, arg, list);
      if (k > n_eligible) throw std::invalid_argument(k_message(func, k, n_eligible, has_eligible));
      if (k == 0 || k == n_eligible) {
        for (std::size_t j = 0; j < scores.size(); ++j) {
          for (std::size_t i = 0; i < scores[j].size(); ++i) masks[j][i] = (k > 0 && is_eligible(j, i)) ? T(1) : T(0);
        }
        return;
      }
      if (select_top_k_sampled<kind, T>(scores, k, masks, eligible, has_eligible, total, n_eligible)) return;
    }

    // Fallback when the sampled bracket missed (adversarial or heavily tied data): exact histogram selection.
    // Pass 1: histogram of the high 16 bits of the keys of eligible entries, and the finiteness check.
    constexpr int shift = K::bits - 16;
    std::vector<std::uint32_t> histogram(std::size_t(1) << 16, 0);
    U bad = 0;
    std::size_t n_eligible = 0;
    for (std::size_t j = 0; j < scores.size(); ++j) {
      const T* s = scores[j].data();
      const std::size_t n = scores[j].size();
      if (!has_eligible) {
        for (std::size_t i = 0; i < n; ++i) {
          U raw;
          const U key = score_key<kind>(s[i], raw);
          bad |= (raw >= K::exponent);
          ++histogram[std::size_t(key >> shift)];
        }
        n_eligible += n;
      } else {
        const T* e = eligible[j].data();
        for (std::size_t i = 0; i < n; ++i) {
          U raw;
          const U key = score_key<kind>(s[i], raw);
          bad |= (raw >= K::exponent);
          const bool in = e[i] != T(0);
          histogram[std::size_t(key >> shift)] += in;
          n_eligible += in;
        }
      }
    }
    if (bad) throw_not_finite<T>(scores, func, arg, list);
    if (k > n_eligible) throw std::invalid_argument(k_message(func, k, n_eligible, has_eligible));
    if (k == 0) {
      for (const auto& m : masks) std::fill(m.begin(), m.end(), T(0));
      return;
    }

    // The bucket b holding the k-th largest key; `above` entries lie in higher buckets.
    std::size_t b = histogram.size() - 1, above = 0;
    while (above + histogram[b] < k) above += histogram[b--];
    const std::size_t need = k - above;  // 1 ≤ need ≤ histogram[b]
    const bool whole_bucket = need == histogram[b];

    // Pass 2: higher buckets kept, lower ones dropped; bucket b is kept whole, or its entries are collected
    // (in order: tensor, then index) to be resolved exactly.
    std::vector<U> candidate_keys;
    std::vector<T*> candidate_masks;
    if (!whole_bucket) {
      candidate_keys.reserve(histogram[b]);
      candidate_masks.reserve(histogram[b]);
    }
    const U bucket = U(b);
    for (std::size_t j = 0; j < scores.size(); ++j) {
      const T* s = scores[j].data();
      T* m = masks[j].data();
      const std::size_t n = scores[j].size();
      const T* e = has_eligible ? eligible[j].data() : nullptr;
      if (whole_bucket) {
        for (std::size_t i = 0; i < n; ++i) {
          U raw;
          const bool keep = (score_key<kind>(s[i], raw) >> shift) >= bucket;
          m[i] = (keep && (!e || e[i] != T(0))) ? T(1) : T(0);
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) {
          U raw;
          const U key = score_key<kind>(s[i], raw);
          const U high = key >> shift;
          const bool in = !e || e[i] != T(0);
          m[i] = (in && high > bucket) ? T(1) : T(0);
          if (high == bucket && in) [[unlikely]] {
            candidate_keys.push_back(key);
            candidate_masks.push_back(m + i);
          }
        }
      }
    }
    if (whole_bucket) return;

    std::vector<U> keys = candidate_keys;
    const threshold th = find_threshold(keys, need);
    std::size_t ties_left = th.ties_kept;
    for (std::size_t c = 0; c < candidate_keys.size(); ++c) {
      *candidate_masks[c] = write_final(candidate_keys[c], th, ties_left);
    }
  }
}

}  // namespace detail

// ---- definitions ----

template <class T>
void top_k_mask(std::span<const T> scores, std::size_t k, std::span<T> mask) {
  const std::span<const T> s[1] = {scores};
  const std::span<T> m[1] = {mask};
  detail::select_top_k<detail::score_kind::value, T>(s, k, m, {}, false, "top_k_mask");
}

template <class T>
void top_k_mask(std::span<const T> scores, std::size_t k, std::span<T> mask, std::span<const T> eligible) {
  const std::span<const T> s[1] = {scores};
  const std::span<T> m[1] = {mask};
  const std::span<const T> e[1] = {eligible};
  detail::select_top_k<detail::score_kind::value, T>(s, k, m, e, true, "top_k_mask");
}

template <class T>
void magnitude_mask(std::span<const T> w, std::size_t k, std::span<T> mask) {
  const std::span<const T> s[1] = {w};
  const std::span<T> m[1] = {mask};
  detail::select_top_k<detail::score_kind::magnitude, T>(s, k, m, {}, false, "magnitude_mask");
}

template <class T>
void magnitude_mask(std::span<const T> w, std::size_t k, std::span<T> mask, std::span<const T> eligible) {
  const std::span<const T> s[1] = {w};
  const std::span<T> m[1] = {mask};
  const std::span<const T> e[1] = {eligible};
  detail::select_top_k<detail::score_kind::magnitude, T>(s, k, m, e, true, "magnitude_mask");
}

template <class T>
void top_k_mask_global(std::span<const std::span<const T>> scores, std::size_t k,
                       std::span<const std::span<T>> masks) {
  detail::select_top_k<detail::score_kind::value, T>(scores, k, masks, {}, false, "top_k_mask_global");
}

template <class T>
void top_k_mask_global(std::span<const std::span<const T>> scores, std::size_t k, std::span<const std::span<T>> masks,
                       std::span<const std::span<const T>> eligible) {
  detail::select_top_k<detail::score_kind::value, T>(scores, k, masks, eligible, true, "top_k_mask_global");
}

template <class T>
void magnitude_mask_global(std::span<const std::span<const T>> w, std::size_t k, std::span<const std::span<T>> masks) {
  detail::select_top_k<detail::score_kind::magnitude, T>(w, k, masks, {}, false, "magnitude_mask_global");
}

template <class T>
void magnitude_mask_global(std::span<const std::span<const T>> w, std::size_t k, std::span<const std::span<T>> masks,
                           std::span<const std::span<const T>> eligible) {
  detail::select_top_k<detail::score_kind::magnitude, T>(w, k, masks, eligible, true, "magnitude_mask_global");
}

}  // namespace bipq
