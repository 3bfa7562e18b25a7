#pragma once
// Top-k masks: keep exactly k entries of largest score, per tensor or globally across tensors.
//
// The mask is the hard-threshold projection onto S_k = {m ∈ {0,1}^n : 1ᵀm = k}: for a score vector s,
// argmax_{m ∈ S_k} sᵀm keeps the k largest scores (BiP, Zhang et al. 2022, Sec. 4, the upper-level projection;
// with s = |w| it is magnitude pruning, Han et al. 2015). Ties are broken by the lower flat index (and, across
// tensors, by the lower tensor index first), so the mask is a deterministic function of the scores.
//
// Selection is O(n) and never sorts: a 65 536-bucket histogram of the high 16 bits of an order-preserving integer
// key locates the bucket holding the k-th largest score; a second pass writes the mask and collects the entries of
// that bucket, among which std::nth_element finds the exact threshold. Small inputs use nth_element directly.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
    if (raw_abs == 0) b = 0;  // −0 == +0
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

/// Below this total size the histogram (65 536 buckets) costs more than it saves; nth_element on keys is used.
inline constexpr std::size_t radix_min_size = std::size_t(1) << 15;

/// The selection shared by all top-k entry points. Writes 1 to the k selected entries and 0 elsewhere.
template <score_kind kind, class T>
void select_top_k(std::span<const std::span<const T>> scores, std::size_t k, std::span<const std::span<T>> masks,
                  std::span<const std::span<const T>> eligible, bool has_eligible, const char* func) {
  check_top_k_lists<T>(scores, masks, eligible, has_eligible, func);
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
        masks[j][i] = T(0);  // after reading eligible[j][i]: the mask may alias it
      }
    }
    if (k > entries.size()) throw std::invalid_argument(k_message(func, k, entries.size(), has_eligible));
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

    // Finds the threshold key t and how many entries equal to t (the first ones in order) are kept, from the
    // keys of the candidate entries; `need` ≥ 1 of the candidates are kept.
    struct threshold {
      U key;
      std::size_t ties_kept;
    };
    auto find_threshold = [](std::vector<U>& keys, std::size_t need) {
      std::nth_element(keys.begin(), keys.begin() + std::ptrdiff_t(need - 1), keys.end(), std::greater<U>());
      const U t = keys[need - 1];
      std::size_t above = 0;
      for (std::size_t r = 0; r < need - 1; ++r) above += keys[r] > t;  // the first need−1 are all ≥ t
      return threshold{t, need - above};
    };
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
      keys.reserve(total);
      U bad = 0;
      for (std::size_t j = 0; j < scores.size(); ++j) {
        for (std::size_t i = 0; i < scores[j].size(); ++i) {
          U raw;
          const U key = score_key<kind>(scores[j][i], raw);
          bad |= (raw >= K::exponent);
          if (is_eligible(j, i)) keys.push_back(key);
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
        for (std::size_t i = 0; i < scores[j].size(); ++i) {
          U raw;
          const U key = score_key<kind>(scores[j][i], raw);
          masks[j][i] = is_eligible(j, i) ? write_final(key, th, ties_left) : T(0);
        }
      }
      return;
    }

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
