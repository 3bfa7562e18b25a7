// The capped-simplex projection on large inputs, where λ is searched from a sampled bracket: checked against the
// KKT conditions (f(λ) = Σ clip(v_i − λ, 0, 1) = k, λ ≥ 0 and complementary slackness for 1ᵀm ≤ k), against an
// independent sort-based root of f, and against the breakpoint search over all entries; on ties, extremes, k near
// 0 and near n, and on data whose strided sample misrepresents them (the bracket misses and the full search runs).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/mask/capped_simplex.hpp"

namespace {

using bipq::simplex_constraint;

/// f(λ) = Σ clip(v_i − λ, 0, 1) in long double.
template <class T>
long double f_of(const std::vector<T>& v, double lambda) {
  long double f = 0;
  for (const T x : v) f += std::clamp(static_cast<long double>(x) - lambda, 0.0L, 1.0L);
  return f;
}

/// The root of f(λ) = k from the definition: the breakpoints v_i and v_i − 1 sorted, a bisection over them with f
/// evaluated directly, then the linear piece between the two around the root solved. For at_most, 0 if f(0) ≤ k.
/// Returns NaN when f = k on a whole interval (any λ there is a solution).
template <class T>
double sorted_root(const std::vector<T>& v, double k, simplex_constraint c) {
  if (c == simplex_constraint::at_most && f_of(v, 0.0) <= k) return 0.0;
  std::vector<double> b;
  for (const T x : v) {
    b.push_back(double(x));
    b.push_back(double(x) - 1.0);
  }
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  // Largest j with f(b[j]) ≥ k (f is non-increasing; f(b[0]) = n ≥ k).
  std::size_t first = 0, last = b.size();
  while (last - first > 1) {
    const std::size_t mid = first + (last - first) / 2;
    (f_of(v, b[mid]) >= k ? first : last) = mid;
  }
  const long double f1 = f_of(v, b[first]);
  if (f1 == k) {
    const bool flat = (first > 0 && f_of(v, b[first - 1]) == k) || (first + 1 < b.size() && f_of(v, b[first + 1]) == k);
    return flat ? std::numeric_limits<double>::quiet_NaN() : b[first];
  }
  if (first + 1 == b.size()) return std::numeric_limits<double>::quiet_NaN();
  const long double f2 = f_of(v, b[first + 1]);
  return static_cast<double>(b[first] + (f1 - k) / (f1 - f2) * (static_cast<long double>(b[first + 1]) - b[first]));
}

template <class T>
void check_large(const std::vector<T>& v, double k, simplex_constraint c) {
  const double lambda = bipq::capped_simplex_threshold<T>(v, k, c);
  const long double f = f_of(v, lambda);
  const double n = static_cast<double>(v.size());
  const double scale = std::max(1.0, std::abs(lambda));
  // KKT: the sum constraint holds with its multiplier λ (λ ≥ 0 and complementary slackness for at_most).
  if (c == simplex_constraint::at_most) {
    CHECK(lambda >= 0.0);
    CHECK(static_cast<double>(f) <= k + 1e-12 * n * scale);
    if (lambda > 0.0) CHECK(std::abs(static_cast<double>(f) - k) <= 1e-12 * n * scale);
  } else {
    CHECK(std::abs(static_cast<double>(f) - k) <= 1e-12 * n * scale);
  }
  // The root from the sorted breakpoints, where it is unique and well posed: beyond 2^40 the breakpoints v_i and
  // v_i − 1 are too close for the root to be resolved between them in double.
  double max_abs = 0.0;
  for (const T x : v) max_abs = std::max(max_abs, std::abs(double(x)));
  const double reference = max_abs < 0x1p40 ? sorted_root(v, k, c) : std::numeric_limits<double>::quiet_NaN();
  if (!std::isnan(reference)) CHECK(lambda == doctest::Approx(reference).epsilon(1e-12).scale(1.0));
  // Beyond 2^40, the projection is computed around a shift taken from v (capped_simplex.hpp), which clip(v_i − λ)
  // with the rounded λ need not reproduce: there the KKT check above and test_mask_capped_simplex's extreme cases
  // stand. Below, the breakpoint search over all entries (the path small inputs take) gives the same projection.
  if (!(max_abs < 0x1p40)) return;
  std::vector<T> scratch(v.size());
  const double full = bipq::detail::lambda_by_search<T>(v, k, c, scratch, "test");
  std::vector<T> m(v.size());
  bipq::capped_simplex_projection<T>(v, k, m, c);
  double worst = 0.0;
  std::size_t not_clipped = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    worst = std::max(worst, std::abs(double(m[i]) - std::clamp(double(v[i]) - full, 0.0, 1.0)));
    not_clipped += m[i] != std::clamp(T(double(v[i]) - lambda), T(0), T(1));
  }
  // out_i = clip(v_i − λ, 0, 1) with the λ capped_simplex_threshold reports, where no shift is used (|λ| ≤ 1024).
  if (std::abs(lambda) <= 1024.0) CHECK(not_clipped == 0);
  CHECK(worst <= (std::is_same_v<T, float> ? 1e-6 : 1e-12) * scale);
}

template <class T>
std::vector<T> make(std::size_t n, std::mt19937_64& rng, int kind) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double z = normal(rng);
    switch (kind) {
      case 0: v[i] = T(0.5 + 0.5 * z); break;                                  // the benchmark's scores
      case 1: v[i] = T(std::round(4.0 * z) / 4.0); break;                       // heavy ties, on breakpoints too
      case 2: v[i] = T(z < -1.0 ? -1e30 : z > 1.5 ? 1e30 : z); break;          // huge magnitudes
      case 3: v[i] = T(z < -1.0 ? -1e9 : z > 1.5 ? 1e9 + 0.5 * z : z); break;  // large magnitudes
      case 4: v[i] = T(1e-30 * z); break;                                       // tiny magnitudes
      case 5: v[i] = T(z - 3.0); break;                                         // mostly negative
      default: v[i] = T(0.25); break;                                           // all equal
    }
  }
  return v;
}

}  // namespace

TEST_CASE_TEMPLATE("large capped-simplex projections satisfy the KKT conditions and match the sorted root", T, float,
                   double) {
  std::mt19937_64 rng(12);
  for (std::size_t n : {std::size_t(1) << 15, std::size_t(40009)}) {
    for (int kind = 0; kind < 7; ++kind) {
      const auto v = make<T>(n, rng, kind);
      const double dn = double(n);
      for (double k : {1e-3, 0.5, 1.0, 3.7, 0.1 * dn, std::round(0.1 * dn), 0.5 * dn, dn - 1.0, dn - 1e-3}) {
        for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
          CAPTURE(n);
          CAPTURE(kind);
          CAPTURE(k);
          CAPTURE(int(c));
          check_large(v, k, c);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("a strided sample that misrepresents v: the bracket misses, the result is still exact", T, float,
                   double) {
  // Every sampled position (stride/2 + j·stride) holds 5 and the rest 0.5 ± noise: the sampled root is far off.
  const std::size_t n = std::size_t(1) << 17;
  const std::size_t stride = n / std::min<std::size_t>(32768, n / 16);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> noise(-0.5, 0.5);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (i % stride == stride / 2) ? T(5) : T(0.5 + noise(rng));
  for (double k : {100.0, 0.3 * double(n), 0.9 * double(n)}) {
    for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
      std::vector<T> scratch(n);
      double lambda = 0.0;
      bipq::detail::simplex_interval fallback;
      bipq::detail::range_seen range{};
      CAPTURE(k);
      CHECK_FALSE(bipq::detail::lambda_by_bracket<T>(v, k, c, scratch, lambda, fallback, range));
      CHECK(range == bipq::detail::range_seen::moderate);
      check_large(v, k, c);
    }
  }
}

TEST_CASE_TEMPLATE("one entry beyond 2^40 read by the bracket's census, sampled or not: the exact search runs", T,
                   float, double) {
  // The census pass checks the range the fast search needs (|v_i| ≤ 2^40); an entry beyond it that the strided
  // sample misses must still send the call to the exact search, and one the sample holds stops the bracket before
  // the census (the caller then reads the range itself).
  using bipq::detail::range_seen;
  const std::size_t n = std::size_t(1) << 17;
  const std::size_t stride = n / std::min<std::size_t>(32768, n / 16);
  std::mt19937_64 rng(5);
  const auto base = make<T>(n, rng, 0);
  for (const std::size_t at : {std::size_t(7777), 100 * stride + stride / 2}) {  // unsampled, sampled
    const bool sampled = at % stride == stride / 2;
    for (const double big : {0x1p41, -3e12, 0x1p40}) {
      auto v = base;
      v[at] = T(big);
      for (double k : {100.0, 0.3 * double(n)}) {
        for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
          CAPTURE(at);
          CAPTURE(big);
          CAPTURE(k);
          CAPTURE(int(c));
          std::vector<T> scratch(n);
          double lambda = 0.0;
          bipq::detail::simplex_interval fallback;
          range_seen range{};
          const bool solved = bipq::detail::lambda_by_bracket<T>(v, k, c, scratch, lambda, fallback, range);
          if (std::abs(big) > 0x1p40) {  // 2^40 itself is still moderate
            CHECK_FALSE(solved);
            CHECK(range == (sampled ? range_seen::unread : range_seen::wide));
          } else {
            CHECK(range == range_seen::moderate);
          }
          check_large(v, k, c);
          // The projection: v_i − λ clipped, the large entry at 1 (k < n − 1 leaves λ far below it) or at 0.
          std::vector<T> m(n);
          bipq::capped_simplex_projection<T>(v, k, m, c);
          CHECK(m[at] == (big > 0 ? T(1) : T(0)));
        }
      }
    }
  }
}

TEST_CASE("large capped-simplex projections: in place, deterministic, non-finite entries named by their index") {
  std::mt19937_64 rng(8);
  auto v = make<float>(200000, rng, 0);
  std::vector<float> a(v.size()), b(v.size());
  bipq::capped_simplex_projection<float>(v, 12345.6, a);
  bipq::capped_simplex_projection<float>(v, 12345.6, b);
  CHECK(a == b);
  std::vector<float> in_place = v;
  bipq::capped_simplex_projection<float>(in_place, 12345.6, in_place);
  CHECK(in_place == a);
  const std::size_t stride = v.size() / 12500;
  for (std::size_t bad : {std::size_t(0), stride / 2, std::size_t(77777)}) {  // unsampled, sampled, unsampled
    auto w = v;
    w[bad] = bad == 0 ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    std::string message;
    try {
      bipq::capped_simplex_projection<float>(w, 1000.0, a);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    CHECK(message == "capped_simplex_projection(): v contains NaN or Inf (index " + std::to_string(bad) + ")");
  }
}
