// pq_index of float data for exponent pairs without a product/root shortcut ((0.7, 1.3), (0.05, 0.9), ...): the
// streaming pass computes (|w|/M)^e as 2^{e·log2(|w|/M)} by vectorised polynomials (log_exp_power), relative error
// ≤ 2^-28 + e·2^-32 per term. Checked directly against long-double std::pow over every binade of float (subnormals
// included), and through pq_index against the two-pass definition in long double, with zeros, subnormals, huge and
// tiny magnitudes, masks, and lengths around the vector width and the pass's block of 1024 entries.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "pq_index_accuracy.hpp"

namespace {

// Pairs with an exponent that has no shortcut (not an integer or integer + ½ up to 64), so that float data take the
// log/exp terms; (0.7, 2) mixes one with an integer exponent, which then goes through log/exp too.
const std::pair<double, double> pairs[] = {{0.7, 1.3},  {0.3, 2.7}, {1.2, 5.5},  {0.05, 0.9},
                                           {2.5, 7.25}, {0.3, 0.7}, {0.7, 2.0}, {1.1, 30.3}};

void check_all_pairs(const std::vector<float>& w, const std::vector<float>* mask = nullptr) {
  bipq_test::check_pairs(pairs, w, mask);
}

[[maybe_unused]] float float_from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

TEST_CASE("every pair of the list takes the log/exp terms for float data, and only for float data") {
  for (const auto& [p, q] : pairs) {
    CHECK(!(bipq_test::has_power_shortcut(p) && bipq_test::has_power_shortcut(q)));
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
    CHECK(bipq::detail::streaming_sums<float>(p, q).log_exp);
    CHECK_FALSE(bipq::detail::streaming_sums<double>(p, q).log_exp);
#endif
  }
#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
  CHECK_FALSE(bipq::detail::streaming_sums<float>(1.0, 3.0).log_exp);
  CHECK_FALSE(bipq::detail::streaming_sums<float>(0.5, 4.5).log_exp);
  CHECK_FALSE(bipq::detail::streaming_sums<float>(0.7, 240.5).log_exp);  // beyond 240: std::pow
#endif
}

TEST_CASE("general float pairs: the index does not depend on the entries' order, on masked-out padding or on a split "
          "into tensors") {
  // Every term is 2^f·2^{n−N} with N moved by exact powers of two: where the running maximum grows does not matter,
  // up to the rounding of the sums.
  bipq::detail::rng g(83);
  std::vector<float> w(20011);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<float>(g.normal() * std::ldexp(1.0, static_cast<int>(i / 2000) * 7 - 40));  // growing
  const std::vector<float> reversed(w.rbegin(), w.rend());
  std::vector<float> padded, mask;
  for (float x : w) {
    padded.push_back(x);
    mask.push_back(1.0f);
    if (g.uniform() < 0.3) {
      padded.push_back(1e30f);  // masked out: larger than every survivor
      mask.push_back(0.0f);
    }
  }
  const std::vector<std::vector<float>> parts{std::vector<float>(w.begin(), w.begin() + 777),
                                              std::vector<float>(w.begin() + 777, w.begin() + 9000),
                                              std::vector<float>(w.begin() + 9000, w.end())};
  for (const auto& [p, q] : pairs) {
    const double base = bipq::pq_index(w, p, q);
    CHECK(bipq::pq_index(reversed, p, q) == doctest::Approx(base).epsilon(1e-12));
    CHECK(bipq::pq_index(padded, mask, p, q) == doctest::Approx(base).epsilon(1e-12));
    CHECK(bipq::pq_index_global(parts, p, q) == doctest::Approx(base).epsilon(1e-12));
  }
}

#ifdef BIPQ_HAS_EXPERIMENTAL_SIMD
TEST_CASE("log_exp_power: log2 within 2^-32.5, exp2 within 2^-29, a^e 2^-N within 2^-28 + e*2^-32 of long-double pow") {
  namespace stdx = std::experimental;
  using vd = stdx::native_simd<double>;
  using lep = bipq::detail::log_exp_power;
  constexpr std::size_t lanes = vd::size();
  bipq::detail::rng g(61);

  // Inputs: random bit patterns of positive finite floats (uniform over the binades, subnormals included), and the
  // edges: the smallest subnormal, the largest subnormal, the smallest normal, 1, powers of two and their neighbours,
  // mantissas at the ends of the polynomial's interval (m = 1 and m just below 2), the largest float.
  std::vector<float> inputs;
  for (int i = 0; i < 200000; ++i) {
    const float a = float_from_bits(static_cast<std::uint32_t>(g.uniform() * 0x7f800000u));
    if (a > 0 && std::isfinite(a)) inputs.push_back(a);
  }
  const float fmin = std::numeric_limits<float>::min(), fmax = std::numeric_limits<float>::max();
  const float denorm = std::numeric_limits<float>::denorm_min();
  for (float a : {denorm, 2 * denorm, 3 * denorm, fmin - denorm, fmin, std::nextafter(fmin, 1.0f), 1.0f,
                  std::nextafter(1.0f, 0.0f), std::nextafter(1.0f, 2.0f), 1.5f, 0.75f, fmax,
                  std::nextafter(fmax, 0.0f)})
    inputs.push_back(a);
  for (int k = -149; k <= 127; ++k) {
    const float two_k = std::ldexp(1.0f, k);
    for (float a : {std::nextafter(two_k, 0.0f), two_k, std::nextafter(two_k, fmax)})
      if (a > 0) inputs.push_back(a);
  }
  while (inputs.size() % lanes != 0) inputs.push_back(1.0f);

  // log2 a: absolute error.
  double worst_log = 0;
  for (std::size_t i = 0; i < inputs.size(); i += lanes) {
    const vd lg = lep::log2(vd([&](auto j) { return static_cast<double>(inputs[i + j]); }));
    for (std::size_t j = 0; j < lanes; ++j) {
      const long double exact = std::log2(static_cast<long double>(inputs[i + j]));
      worst_log = std::max(worst_log, static_cast<double>(std::fabs(static_cast<long double>(lg[j]) - exact)));
    }
  }
  const double log2_worst_log = std::log2(worst_log);
  CAPTURE(log2_worst_log);
  CHECK(worst_log <= 0x1.6a1p-33);  // 2^-32.5: the Remez fit's 2^-32.54 and the rounding of k + polynomial

  // 2^{t − N}: relative error, for t − N in [-1000, 2] (the pass's range), N = 0 and N far from 0; below -1000
  // clamped to at most 2^-998.
  double worst_exp = 0;
  std::vector<std::pair<double, double>> args;  // (t, N)
  for (int i = 0; i < 100000; ++i) {
    const double spread = i % 3 == 0 ? 1000.0 : (i % 3 == 1 ? 8.0 : 0.5);
    const double offset = i % 2 == 0 ? 0.0 : std::round((g.uniform() - 0.5) * 40000.0);
    args.emplace_back(offset + 2.0 - g.uniform() * (spread + 2.0), offset);
  }
  for (double t : {0.0, -0.5, -0.5000001, -0.4999999, 0.5, 1.5, 2.0, -1.0, -1.5, -999.5, -1000.0})
    args.emplace_back(t, 0.0);
  while (args.size() % lanes != 0) args.emplace_back(0.0, 0.0);
  for (std::size_t i = 0; i < args.size(); i += lanes) {
    const vd e = lep::exp2_minus(vd([&](auto j) { return args[i + j].first; }),
                                 vd([&](auto j) { return args[i + j].second; }));
    for (std::size_t j = 0; j < lanes; ++j) {
      const long double exact = std::exp2(static_cast<long double>(args[i + j].first) - args[i + j].second);
      worst_exp = std::max(worst_exp, static_cast<double>(std::fabs((e[j] - exact) / exact)));
    }
  }
  const double log2_worst_exp = std::log2(worst_exp);
  CAPTURE(log2_worst_exp);
  CHECK(worst_exp <= 0x1.02p-29);
  for (double t : {-1000.5, -5000.0, -5000.3, -1e6}) {
    const vd clamped = lep::exp2_minus(vd(t), vd(0.0));
    for (std::size_t j = 0; j < lanes; ++j) CHECK((clamped[j] > 0 && clamped[j] <= 0x1p-998));
  }

  // a^e·2^-N with N = round(e·log2 M), the term the pass sums: relative error ≤ 2^-28 + e·2^-32 wherever the exact
  // term is at least 2^-1000; below, at most 2^-998 (the clamp). Scales M: the largest float, 1, 1.7, the smallest
  // normal float, a subnormal; inputs above M are taken as M (the largest term, ≤ 2^½ up to the bound).
  const double exponents[] = {0.05, 0.3, 0.7, 0.9, 1.1, 1.3, 2.0, 2.7, 5.5, 7.25, 30.3, 100.0, 240.0};
  const double scales[] = {static_cast<double>(fmax), 1.0, 1.7, static_cast<double>(fmin),
                           static_cast<double>(64 * denorm)};
  for (double e : exponents) {
    CAPTURE(e);
    double worst = 0;
    std::size_t clamp_violations = 0;
    for (double scale : scales) {
      const double offset = lep::offset_for(e, scale);
      for (std::size_t i = 0; i < inputs.size(); i += lanes) {
        const vd a([&](auto j) { return std::min(static_cast<double>(inputs[i + j]), scale); });
        const vd got = lep::power(a, e, offset);
        for (std::size_t j = 0; j < lanes; ++j) {
          // In the log domain: a^e alone underflows long double for e = 240 and a subnormal a.
          const long double exact = std::exp2(static_cast<long double>(e) * std::log2(static_cast<long double>(a[j])) -
                                              static_cast<long double>(offset));
          if (exact >= 0x1p-1000L) {
            worst = std::max(worst, static_cast<double>(std::fabs((got[j] - exact) / exact)));
          } else if (!(got[j] <= 0x1p-998)) {
            ++clamp_violations;
          }
        }
      }
      // a = M: the largest term, at most 2^½ to within the bound (so the sums cannot overflow).
      const vd largest = lep::power(vd(scale), e, offset);
      CHECK(largest[0] <= std::sqrt(2.0) * (1 + bipq_test::log_exp_term_error(e)));
    }
    const double log2_worst = std::log2(worst);
    CAPTURE(log2_worst);
    CHECK(worst <= bipq_test::log_exp_term_error(e));
    CHECK(clamp_violations == 0);
  }
  // Zero (a zero weight, or a masked-out one): exactly 0 for every exponent and scale.
  for (double e : exponents)
    for (double scale : scales) {
      const vd zero = lep::power(vd(0.0), e, lep::offset_for(e, scale));
      for (std::size_t j = 0; j < lanes; ++j) CHECK(zero[j] == 0.0);
    }
}

TEST_CASE("log/exp sums equal the long-double sums over |w|/max|w| within the per-term bound") {
  bipq::detail::rng g(67);
  auto w = bipq_test::normal_floats(50003, g, 0.2);
  for (std::size_t i = 0; i < w.size(); i += 11) w[i] *= 1e-25f;
  for (const auto& [p, q] : pairs) {
    bipq::detail::streaming_sums<float> stream(p, q);
    stream.add<void>(std::span<const float>(w), nullptr);
    REQUIRE(stream.finite());
    const auto s = stream.result();
    long double max_abs = 0, sp = 0, sq = 0;
    for (float x : w) max_abs = std::max(max_abs, std::fabs(static_cast<long double>(x)));
    for (float x : w) {
      sp += std::pow(std::fabs(static_cast<long double>(x)) / max_abs, static_cast<long double>(p));
      sq += std::pow(std::fabs(static_cast<long double>(x)) / max_abs, static_cast<long double>(q));
    }
    CHECK(s.count == w.size());
    CHECK(s.max_abs == static_cast<double>(max_abs));
    CHECK(std::fabs(s.sum_p - static_cast<double>(sp)) <= (bipq_test::log_exp_term_error(p) + 1e-13) * sp);
    CHECK(std::fabs(s.sum_q - static_cast<double>(sq)) <= (bipq_test::log_exp_term_error(q) + 1e-13) * sq);
  }
}
#endif

TEST_CASE("general float pairs equal the definition on random data with zeros, at every length around the vector width "
          "and the block") {
  bipq::detail::rng g(71);
  for (std::size_t n : {1u, 2u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 32u, 33u, 63u, 64u, 65u, 1000u, 1023u, 1024u, 1025u,
                        4097u, 65537u}) {
    CAPTURE(n);
    check_all_pairs(bipq_test::normal_floats(n, g, 0.3));
  }
}

TEST_CASE("general float pairs: 1e-30 next to 1, a range of 1e-38 to 1e38, subnormals, the largest float, equal data") {
  bipq::detail::rng g(73);
  auto w = bipq_test::normal_floats(20000, g, 0.2);
  for (std::size_t i = 0; i < w.size(); i += 3) w[i] *= 1e-30f;
  check_all_pairs(w);
  std::vector<float> range(20000);
  for (std::size_t i = 0; i < range.size(); ++i)
    range[i] = std::pow(10.0f, -38.0f + 76.0f * static_cast<float>(i % 997) / 996.0f);  // 1e-38 … 1e38
  check_all_pairs(range);
  // Subnormal floats among normal ones, and data made of subnormals only (the maximum a subnormal: still one pass).
  auto sub = bipq_test::normal_floats(5000, g, 0.1);
  sub[77] = std::numeric_limits<float>::denorm_min();
  sub[2001] = -3 * std::numeric_limits<float>::denorm_min();
  for (std::size_t i = 3000; i < 3100; ++i) sub[i] = static_cast<float>(i) * std::numeric_limits<float>::denorm_min();
  check_all_pairs(sub);
  std::vector<float> only_subnormal(3000, 0.0f);
  for (std::size_t i = 0; i < only_subnormal.size(); i += 7)
    only_subnormal[i] = static_cast<float>(1 + i % 5) * std::numeric_limits<float>::denorm_min();
  check_all_pairs(only_subnormal);
  // Huge magnitudes: the largest float (its powers overflow float and, for large exponents, double) and 1e38 entries
  // mixed with ordinary ones.
  std::vector<float> huge(3001, std::numeric_limits<float>::max());
  for (std::size_t i = 0; i < huge.size(); i += 2) huge[i] = static_cast<float>(g.normal());
  check_all_pairs(huge);
  // A maximum that grows block after block: every block of 1024 raises the scale.
  std::vector<float> growing(10 * 1024 + 5);
  for (std::size_t i = 0; i < growing.size(); ++i)
    growing[i] = static_cast<float>(std::ldexp(0.5 + 0.5 * g.uniform(), static_cast<int>(i / 1024) * 24 - 120));
  check_all_pairs(growing);
  // Equal data: I = 0 to within the bound; all zeros: exactly 0.
  const std::vector<float> equal(10001, -0.37f);
  for (const auto& [p, q] : pairs)
    CHECK(std::fabs(bipq::pq_index(equal, p, q)) <= bipq_test::pq_accuracy<float>(0.0, p, q));
  const std::vector<float> zeros(1000, 0.0f);
  for (const auto& [p, q] : pairs) CHECK(bipq::pq_index(zeros, p, q) == 0.0);
  // One-hot: the upper bound (zeros add nothing, the one term is 1 to within the bound).
  std::vector<float> one_hot(4099, 0.0f);
  one_hot[1234] = -2.5e-20f;
  for (const auto& [p, q] : pairs) {
    const double upper = bipq::pq_index_upper_bound(one_hot.size(), p, q);
    CHECK(std::fabs(bipq::pq_index(one_hot, p, q) - upper) <= bipq_test::pq_accuracy<float>(upper, p, q));
  }
}

TEST_CASE("general float pairs, masked: the survivors only, also in the global and per-neuron scopes") {
  bipq::detail::rng g(79);
  auto w = bipq_test::normal_floats(30011, g, 0.1);
  std::vector<float> mask(w.size());
  for (auto& m : mask) m = g.uniform() < 0.4 ? 0.0f : (g.uniform() < 0.5 ? 1.0f : 0.25f);
  check_all_pairs(w, &mask);
  for (std::size_t i = 0; i < w.size(); i += 5) w[i] *= 1e-30f;
  mask[17] = 1.0f;
  w[17] = std::numeric_limits<float>::denorm_min();
  check_all_pairs(w, &mask);
  // The largest entries masked out: the scale is the largest survivor.
  for (std::size_t i = 0; i < w.size(); i += 97) {
    w[i] = 1e30f;
    mask[i] = 0.0f;
  }
  check_all_pairs(w, &mask);
  // A NaN where the mask is 0: ignored (the two passes take it).
  auto dropped = w;
  dropped[100] = std::numeric_limits<float>::quiet_NaN();
  mask[100] = 0.0f;
  check_all_pairs(w, &mask);
  for (const auto& [p, q] : pairs) {
    const double expected = bipq_test::pq_definition(w, &mask, p, q);
    CHECK(std::fabs(bipq::pq_index(dropped, mask, p, q) - expected) <= bipq_test::pq_accuracy<float>(expected, p, q));
  }
  // Global over two tensors with masks, and per neuron, against the definition of the concatenation / each row.
  const std::size_t half = 15000;
  const std::vector<float> w0(w.begin(), w.begin() + half), w1(w.begin() + half, w.end());
  const std::vector<float> m0(mask.begin(), mask.begin() + half), m1(mask.begin() + half, mask.end());
  const std::vector<std::vector<float>> ws{w0, w1}, ms{m0, m1};
  for (const auto& [p, q] : pairs) {
    const double expected = bipq_test::pq_definition(w, &mask, p, q);
    CHECK(std::fabs(bipq::pq_index_global(ws, ms, p, q) - expected) <= bipq_test::pq_accuracy<float>(expected, p, q));
  }
  const std::size_t rows = 10, cols = 3001;
  const std::vector<float> wr(w.begin(), w.begin() + rows * cols), mr(mask.begin(), mask.begin() + rows * cols);
  for (const auto& [p, q] : pairs) {
    const auto per_row = bipq::pq_index_per_neuron(wr, mr, rows, p, q);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::vector<float> wrow(wr.begin() + r * cols, wr.begin() + (r + 1) * cols);
      const std::vector<float> mrow(mr.begin() + r * cols, mr.begin() + (r + 1) * cols);
      const double expected = bipq_test::pq_definition(wrow, &mrow, p, q);
      CHECK(std::fabs(per_row[r] - expected) <= bipq_test::pq_accuracy<float>(expected, p, q));
    }
  }
  // A non-finite survivor or mask entry: reported.
  dropped[100] = 1.0f;
  mask[100] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS((void)bipq::pq_index(dropped, mask, 0.7, 1.3), std::invalid_argument);
  mask[100] = 1.0f;
  dropped[100] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS((void)bipq::pq_index(dropped, mask, 0.7, 1.3),
                       "pq_index(): w contains NaN or Inf (index 100)", std::invalid_argument);
}
