#pragma once
// Top-k masks: keep exactly k entries of largest score, per tensor or globally across tensors.
//
// The mask is the hard-threshold projection onto S_k = {m ∈ {0,1}^n : 1ᵀm = k}: for a score vector s,
// argmax_{m ∈ S_k} sᵀm keeps the k largest scores (BiP, Zhang et al. 2022, Sec. 4, the upper-level projection;
// with s = |w| it is magnitude pruning, Han et al. 2015). Ties are broken by the lower flat index (and, across
// tensors, by the lower tensor index first), so the mask is a deterministic function of the scores.
//
// Selection is O(n) and never sorts (integer keys, a sampled bracket, a histogram fallback): docs/masks.md,
// "Algorithm and speed". Validation comes first: bad input writes nothing.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/checks.hpp"
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

/// Key of x as a score of the given kind.
template <score_kind kind, class T>
inline typename ordered_key<T>::type score_key(T x) noexcept {
  using K = ordered_key<T>;
  using U = typename K::type;
  U b = std::bit_cast<U>(x);
  const U raw_abs = b & ~K::sign;
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

/// One selection's arguments: score tensors, their masks and (if `has_eligible`) their eligibility, sizes checked.
template <class T>
struct top_k_lists {
  std::span<const std::span<const T>> scores;
  std::span<const std::span<T>> masks;
  std::span<const std::span<const T>> eligible;
  bool has_eligible = false;
  std::size_t total = 0;  ///< entries over all tensors

  /// Eligibility of tensor j, or null when every entry is eligible.
  const T* eligible_of(std::size_t j) const noexcept { return has_eligible ? eligible[j].data() : nullptr; }
};

/// Whether entry i is eligible, with `e` from top_k_lists::eligible_of.
template <class T>
inline bool is_eligible(const T* e, std::size_t i) noexcept {
  return e == nullptr || e[i] != T(0);
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

/// Private copies of the scores and eligibility when a mask shares storage with them (shrinking a mask in place):
/// the masks are written before the selection is final, so the inputs must not change under it.
template <class T>
struct detached_inputs {
  std::vector<std::vector<T>> copies;
  std::vector<std::span<const T>> scores, eligible;
};

/// Points `lists` at private copies of its inputs if a mask overlaps them; `storage` then owns the copies.
template <class T>
void detach_inputs_from_masks(top_k_lists<T>& lists, detached_inputs<T>& storage) {
  if (!any_overlap<T>(lists.masks, lists.scores) &&
      !(lists.has_eligible && any_overlap<T>(lists.masks, lists.eligible)))
    return;
  for (const auto& x : lists.scores) storage.scores.emplace_back(storage.copies.emplace_back(x.begin(), x.end()));
  lists.scores = storage.scores;
  if (lists.has_eligible) {
    for (const auto& x : lists.eligible)
      storage.eligible.emplace_back(storage.copies.emplace_back(x.begin(), x.end()));
    lists.eligible = storage.eligible;
  }
}

/// The checks shared by every selection path, made before anything is written: every score finite (eligible or
/// not), every eligibility entry finite (a NaN is neither 0 nor 1: refused, as apply_mask and pq_index do), and
/// k ≤ the number of eligible entries, which is returned. One vectorisable pass.
template <score_kind kind, class T>
std::size_t check_scores_and_k(const top_k_lists<T>& lists, std::size_t k, const char* func) {
  bool finite = true, eligible_finite = true;
  std::size_t n_eligible = 0;
  for (std::size_t j = 0; j < lists.scores.size(); ++j) {
    const T* s = lists.scores[j].data();
    const std::size_t n = lists.scores[j].size();
    if constexpr (ordered_key<T>::radix) {
      using K = ordered_key<T>;
      using U = typename K::type;
      U bad = 0;
      for (std::size_t i = 0; i < n; ++i) bad |= U(std::bit_cast<U>(s[i]) & ~K::sign) >= K::exponent;
      finite = finite && bad == 0;
    } else {
      for (std::size_t i = 0; i < n; ++i) finite = finite && std::isfinite(s[i]);
    }
    if (const T* e = lists.eligible_of(j)) {
      for (std::size_t i = 0; i < n; ++i) n_eligible += e[i] != T(0);
      eligible_finite = eligible_finite && all_finite(e, n);
    } else {
      n_eligible += n;
    }
  }
  if (!finite)
    throw_not_finite<T>(lists.scores, func, kind == score_kind::magnitude ? "w" : "scores", lists.scores.size() != 1);
  if (!eligible_finite) throw_not_finite<T>(lists.eligible, func, "eligible", lists.eligible.size() != 1);
  if (k > n_eligible) throw std::invalid_argument(k_message(func, k, n_eligible, lists.has_eligible));
  return n_eligible;
}

/// k = 0 (keep none) or k = number of eligible entries (keep every eligible entry): no selection to make.
template <class T>
void keep_none_or_all_eligible(const top_k_lists<T>& lists, bool all) {
  for (std::size_t j = 0; j < lists.masks.size(); ++j) {
    const T* e = lists.eligible_of(j);
    T* m = lists.masks[j].data();
    for (std::size_t i = 0; i < lists.masks[j].size(); ++i) m[i] = (all && is_eligible(e, i)) ? T(1) : T(0);
  }
}

/// The tie rule, in one place. With t the key of the `need`-th largest candidate: a key above t is kept, a key equal
/// to t is kept while ties remain, the rest are dropped. Applied in order (tensor, then flat index), so the ties
/// kept are those of lowest position.
template <class U>
struct threshold_rule {
  U key;
  std::size_t ties_left;

  /// The rule selecting the `need` largest of `keys` (0 < need ≤ keys.size(); `keys` is reordered).
  static threshold_rule of(std::vector<U>& keys, std::size_t need) {
    std::nth_element(keys.begin(), keys.begin() + std::ptrdiff_t(need - 1), keys.end(), std::greater<U>());
    const U t = keys[need - 1];
    std::size_t above = 0;
    for (std::size_t r = 0; r + 1 < need; ++r) above += keys[r] > t;  // the first need−1 are all ≥ t
    return {t, need - above};
  }

  /// 1 if the next entry in order, of key `k`, is kept, else 0.
  template <class T>
  T keep(U k) noexcept {
    if (k == key) [[unlikely]] {
      const bool take = ties_left > 0;
      ties_left -= take;
      return take ? T(1) : T(0);
    }
    return k > key ? T(1) : T(0);
  }
};

/// Entries left undecided by a bracketing pass, in order (tensor, then index): their keys and their mask entries.
template <class T, class U>
struct undecided_entries {
  std::vector<U> keys;
  std::vector<T*> masks;

  void reserve(std::size_t n) {
    keys.reserve(n);
    masks.reserve(n);
  }
  void add(U key, T* mask) {
    keys.push_back(key);
    masks.push_back(mask);
  }
  /// Keeps the `need` largest of them (threshold_rule), writing 1 or 0 to each.
  void keep_largest(std::size_t need) {
    std::vector<U> work = keys;
    threshold_rule<U> rule = threshold_rule<U>::of(work, need);
    for (std::size_t c = 0; c < keys.size(); ++c) *masks[c] = rule.template keep<T>(keys[c]);
  }
};

/// Below this total size the histogram (65 536 buckets) costs more than it saves; nth_element on keys is used.
inline constexpr std::size_t radix_min_size = std::size_t(1) << 15;

// The selection paths. Preconditions (check_scores_and_k, keep_none_or_all_eligible): finite scores,
// 0 < k < n_eligible. Each writes 1 to the k selected entries and 0 to every other.

/// Long double (no integer key): nth_element on the eligible positions ordered by (larger score, lower tensor,
/// lower index).
template <score_kind kind, class T>
void select_by_position_order(const top_k_lists<T>& lists, std::size_t k, std::size_t n_eligible) {
  struct entry {
    T value;
    std::size_t tensor, index;
  };
  std::vector<entry> entries;
  entries.reserve(n_eligible);
  for (std::size_t j = 0; j < lists.scores.size(); ++j) {
    const T* e = lists.eligible_of(j);
    for (std::size_t i = 0; i < lists.scores[j].size(); ++i)
      if (is_eligible(e, i)) entries.push_back({score_value<kind>(lists.scores[j][i]), j, i});
  }
  for (const auto& m : lists.masks) std::fill(m.begin(), m.end(), T(0));
  auto before = [](const entry& a, const entry& b) {
    if (a.value != b.value) return a.value > b.value;
    if (a.tensor != b.tensor) return a.tensor < b.tensor;
    return a.index < b.index;
  };
  std::nth_element(entries.begin(), entries.begin() + std::ptrdiff_t(k - 1), entries.end(), before);
  for (std::size_t r = 0; r < k; ++r) lists.masks[entries[r].tensor][entries[r].index] = T(1);
}

/// Small inputs: nth_element on the keys of the eligible entries gives the threshold; one pass writes the masks.
template <score_kind kind, class T>
void select_by_keys(const top_k_lists<T>& lists, std::size_t k, std::size_t n_eligible) {
  using U = typename ordered_key<T>::type;
  std::vector<U> keys;
  if (!lists.has_eligible) {
    keys.resize(lists.total);
    std::size_t at = 0;
    for (const auto& x : lists.scores) {
      for (std::size_t i = 0; i < x.size(); ++i) keys[at + i] = score_key<kind>(x[i]);
      at += x.size();
    }
  } else {
    keys.reserve(n_eligible);
    for (std::size_t j = 0; j < lists.scores.size(); ++j) {
      const T* e = lists.eligible_of(j);
      for (std::size_t i = 0; i < lists.scores[j].size(); ++i)
        if (e[i] != T(0)) keys.push_back(score_key<kind>(lists.scores[j][i]));
    }
  }
  threshold_rule<U> rule = threshold_rule<U>::of(keys, k);
  for (std::size_t j = 0; j < lists.scores.size(); ++j) {
    const T* x = lists.scores[j].data();
    const T* e = lists.eligible_of(j);
    T* m = lists.masks[j].data();
    for (std::size_t i = 0; i < lists.scores[j].size(); ++i)
      m[i] = is_eligible(e, i) ? rule.template keep<T>(score_key<kind>(x[i])) : T(0);
  }
}

/// Keys in [lo, hi], the range that holds the k-th largest key with overwhelming probability.
template <class U>
struct key_bracket {
  U lo, hi;
  /// Whether `key` is in [lo, hi] (one unsigned comparison, so that the tests vectorise).
  bool holds(U key) const noexcept { return U(key - lo) <= U(hi - lo); }
};

/// Floyd & Rivest 1975, "Expected time bounds for selection": the keys of a strided sample of the eligible entries
/// (about 1/16 of the entries, at most 65 536) give a bracket of ±4 standard deviations of the sample quantile around
/// the k-th largest key; it then holds about 8σ/s ≈ 1% of the entries. Nothing if the sample is too small to tell.
template <score_kind kind, class T>
std::optional<key_bracket<typename ordered_key<T>::type>> sample_bracket(const top_k_lists<T>& lists, std::size_t k,
                                                                        std::size_t n_eligible) {
  using U = typename ordered_key<T>::type;
  const auto& scores = lists.scores;
  const std::size_t total = lists.total;
  const std::size_t target_sample = std::min<std::size_t>(65536, std::max<std::size_t>(1, total / 16));
  const std::size_t stride = std::max<std::size_t>(1, total / target_sample);
  std::vector<U> sample;
  sample.reserve(total / stride + 1);
  std::size_t offset = 0;  // flat index of scores[j][0] in the concatenation
  for (std::size_t j = 0; j < scores.size(); ++j) {
    const T* e = lists.eligible_of(j);
    const std::size_t first = (offset + stride - 1) / stride * stride - offset;
    for (std::size_t i = first; i < scores[j].size(); i += stride)
      if (is_eligible(e, i)) sample.push_back(score_key<kind>(scores[j][i]));
    offset += scores[j].size();
  }
  const std::size_t s = sample.size();
  if (s < 1024) return std::nullopt;
  const double q = double(k) / double(n_eligible);
  const double rank = q * double(s);
  const double spread = 4.0 * std::sqrt(double(s) * q * (1.0 - q)) + 8.0;
  // Descending ranks (0 = largest) of the bracket's ends in the sample.
  const double rank_hi = rank - spread, rank_lo = rank + spread;
  key_bracket<U> bracket{0, std::numeric_limits<U>::max()};
  if (rank_hi >= 0.0) {
    const auto r = std::ptrdiff_t(rank_hi);
    std::nth_element(sample.begin(), sample.begin() + r, sample.end(), std::greater<U>());
    bracket.hi = sample[std::size_t(r)];
  }
  if (rank_lo < double(s - 1)) {
    const auto r = std::ptrdiff_t(rank_lo);
    std::nth_element(sample.begin(), sample.begin() + r, sample.end(), std::greater<U>());
    bracket.lo = sample[std::size_t(r)];
  }
  return bracket;
}

/// mask[i] = 1 where eligible and key > bracket.hi, else 0; counts those (`above`) and collects the eligible keys
/// inside the bracket, in order. Blocks of 32: the masks and a bit mask of the block's entries inside are computed
/// without branches (vectorised); the set bits then give the entries to collect.
template <score_kind kind, bool with_eligible, class T, class U>
void bracket_pass(const T* x, const T* e, T* m, std::size_t n, key_bracket<U> bracket, std::size_t& above,
                  undecided_entries<T, U>& undecided) {
  constexpr std::size_t block = 32;
  std::size_t a = 0, i = 0;
  for (; i + block <= n; i += block) {
    std::uint32_t hits = 0;  // bit t: entry i + t is inside the bracket
    for (std::size_t t = 0; t < block; ++t) {
      const U key = score_key<kind>(x[i + t]);
      bool in = true;
      if constexpr (with_eligible) in = e[i + t] != T(0);
      const bool keep = in & (key > bracket.hi);
      m[i + t] = keep ? T(1) : T(0);
      a += keep;
      hits |= std::uint32_t(in & bracket.holds(key)) << t;
    }
    for (; hits != 0; hits &= hits - 1) {
      const std::size_t t = i + std::size_t(std::countr_zero(hits));
      undecided.add(score_key<kind>(x[t]), m + t);
    }
  }
  for (; i < n; ++i) {
    const U key = score_key<kind>(x[i]);
    bool in = true;
    if constexpr (with_eligible) in = e[i] != T(0);
    const bool keep = in & (key > bracket.hi);
    m[i] = keep ? T(1) : T(0);
    a += keep;
    if (in && bracket.holds(key)) undecided.add(key, m + i);
  }
  above += a;
}

/// Large inputs: one pass keeps the keys above a sampled bracket, drops the others and collects the few inside it
/// (vectorised, see bracket_pass), among which nth_element finds the exact threshold. Returns false, with the masks
/// in an unspecified state, if the bracket missed; the caller then runs the histogram selection.
template <score_kind kind, class T>
bool select_by_sampled_bracket(const top_k_lists<T>& lists, std::size_t k, std::size_t n_eligible) {
  using U = typename ordered_key<T>::type;
  const auto bracket = sample_bracket<kind>(lists, k, n_eligible);
  if (!bracket) return false;
  std::size_t above = 0;
  undecided_entries<T, U> undecided;
  // About 1% of the entries fall inside (sample_bracket); reserve for 2% so that the vectors rarely grow.
  undecided.reserve(lists.total / 50 + 64);
  for (std::size_t j = 0; j < lists.scores.size(); ++j) {
    const T* x = lists.scores[j].data();
    T* m = lists.masks[j].data();
    const std::size_t n = lists.scores[j].size();
    if (lists.has_eligible) {
      bracket_pass<kind, true>(x, lists.eligible[j].data(), m, n, *bracket, above, undecided);
    } else {
      bracket_pass<kind, false>(x, static_cast<const T*>(nullptr), m, n, *bracket, above, undecided);
    }
  }
  const std::size_t inside = undecided.keys.size();
  if (above > k || k > above + inside) return false;
  const std::size_t need = k - above;
  if (need == 0) return true;  // the entries inside the bracket are already 0
  undecided.keep_largest(need);
  return true;
}

/// Exact fallback when the sampled bracket missed (adversarial or heavily tied data): a histogram of the high 16
/// bits of the eligible keys locates the bucket of the k-th largest key; higher buckets are kept, lower ones
/// dropped, and the bucket itself is kept whole or resolved exactly.
template <score_kind kind, class T>
void select_by_histogram(const top_k_lists<T>& lists, std::size_t k) {
  using K = ordered_key<T>;
  using U = typename K::type;
  const auto& scores = lists.scores;
  constexpr int shift = K::bits - 16;
  std::vector<std::uint32_t> histogram(std::size_t(1) << 16, 0);
  for (std::size_t j = 0; j < scores.size(); ++j) {
    const T* s = scores[j].data();
    const std::size_t n = scores[j].size();
    if (const T* e = lists.eligible_of(j)) {
      for (std::size_t i = 0; i < n; ++i) histogram[std::size_t(score_key<kind>(s[i]) >> shift)] += e[i] != T(0);
    } else {
      for (std::size_t i = 0; i < n; ++i) ++histogram[std::size_t(score_key<kind>(s[i]) >> shift)];
    }
  }

  // The bucket b holding the k-th largest key; `above` entries lie in higher buckets.
  std::size_t b = histogram.size() - 1, above = 0;
  while (above + histogram[b] < k) above += histogram[b--];
  const std::size_t need = k - above;  // 1 ≤ need ≤ histogram[b]
  const bool whole_bucket = need == histogram[b];

  // Higher buckets kept, lower ones dropped; bucket b is kept whole, or its entries are collected (in order: tensor,
  // then index) to be resolved exactly.
  undecided_entries<T, U> undecided;
  if (!whole_bucket) undecided.reserve(histogram[b]);
  const U bucket = U(b);
  for (std::size_t j = 0; j < scores.size(); ++j) {
    const T* s = scores[j].data();
    T* m = lists.masks[j].data();
    const std::size_t n = scores[j].size();
    const T* e = lists.eligible_of(j);
    if (whole_bucket) {
      for (std::size_t i = 0; i < n; ++i) {
        const bool keep = (score_key<kind>(s[i]) >> shift) >= bucket;
        m[i] = (keep && is_eligible(e, i)) ? T(1) : T(0);
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const U key = score_key<kind>(s[i]);
        const U high = key >> shift;
        const bool in = is_eligible(e, i);
        m[i] = (in && high > bucket) ? T(1) : T(0);
        if (high == bucket && in) [[unlikely]] undecided.add(key, m + i);
      }
    }
  }
  if (!whole_bucket) undecided.keep_largest(need);
}

/// The selection shared by all top-k entry points: checks, then the path for the type and size. Writes 1 to the k
/// selected entries and 0 elsewhere; bad input throws before anything is written.
template <score_kind kind, class T>
void select_top_k(std::span<const std::span<const T>> scores, std::size_t k, std::span<const std::span<T>> masks,
                  std::span<const std::span<const T>> eligible, bool has_eligible, const char* func) {
  check_top_k_lists<T>(scores, masks, eligible, has_eligible, func);
  top_k_lists<T> lists{scores, masks, eligible, has_eligible, 0};
  for (const auto& s : scores) lists.total += s.size();
  detached_inputs<T> copies;
  detach_inputs_from_masks(lists, copies);
  const std::size_t n_eligible = check_scores_and_k<kind>(lists, k, func);
  if (k == 0 || k == n_eligible) return keep_none_or_all_eligible(lists, k > 0);
  if constexpr (!ordered_key<T>::radix) {
    select_by_position_order<kind>(lists, k, n_eligible);
  } else if (lists.total < radix_min_size || lists.total > std::numeric_limits<std::uint32_t>::max()) {
    select_by_keys<kind>(lists, k, n_eligible);
  } else if (!select_by_sampled_bracket<kind>(lists, k, n_eligible)) {
    select_by_histogram<kind>(lists, k);
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
