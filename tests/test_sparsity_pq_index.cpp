// pq_index against its definition (Diao et al. 2023, Definition 1), Theorem 1's bounds, its scopes (mask, global,
// per tensor, per neuron), extreme magnitudes, and its preconditions.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <xtensor/xarray.hpp>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "pq_index_accuracy.hpp"

namespace {

/// The definition, term by term in long double: 1 − d^{1/q−1/p} (Σ|w|^p)^{1/p} / (Σ|w|^q)^{1/q}.
template <class T>
long double pq_definition(const std::vector<T>& w, long double p, long double q) {
  long double sp = 0, sq = 0;
  for (T x : w) {
    const long double a = std::fabs(static_cast<long double>(x));
    sp += std::pow(a, p);
    sq += std::pow(a, q);
  }
  if (sq == 0) return 0;
  const auto d = static_cast<long double>(w.size());
  return 1 - std::pow(d, 1 / q - 1 / p) * std::pow(sp, 1 / p) / std::pow(sq, 1 / q);
}

/// Random vector of the given size: normal, uniform or heavy-tailed (Cauchy-like) entries, some exact zeros.
template <class T>
std::vector<T> random_vector(std::size_t n, bipq::detail::rng& g, int kind) {
  std::vector<T> w(n);
  for (auto& x : w) {
    double v = 0;
    switch (kind % 3) {
      case 0: v = g.normal(); break;
      case 1: v = 2 * g.uniform() - 1; break;
      default: v = std::tan(3.14159265358979 * (g.uniform() - 0.5)); break;  // standard Cauchy
    }
    if (g.uniform() < 0.1) v = 0;
    x = static_cast<T>(v);
  }
  return w;
}

const std::pair<double, double> pq_pairs[] = {{0.5, 1.0}, {1.0, 2.0}, {1.0, 3.0}, {0.5, 2.0}, {0.3, 0.7}, {2.0, 8.0}};

}  // namespace

TEST_CASE_TEMPLATE("pq_index equals its definition on random vectors (fast paths and general pairs)", T, float,
                   double, long double) {
  bipq::detail::rng g(7);
  for (std::size_t n : {1u, 2u, 7u, 31u, 33u, 64u, 100u, 1000u, 4099u}) {
    for (int kind = 0; kind < 3; ++kind) {
      const auto w = random_vector<T>(n, g, kind);
      for (auto [p, q] : pq_pairs) {
        const double expected = static_cast<double>(pq_definition(w, p, q));
        // Float data take float square roots for half-integer exponents up to 4: relative error ≤ 2^-24.
        const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-12;
        CHECK(bipq::pq_index(w, p, q) == doctest::Approx(expected).epsilon(tol).scale(1.0));
      }
    }
  }
}

TEST_CASE_TEMPLATE("the fast paths agree with the scaled general path", T, float, double) {
  bipq::detail::rng g(11);
  for (std::size_t n : {5u, 48u, 1001u, 65536u}) {
    const auto w = random_vector<T>(n, g, static_cast<int>(n));
    for (auto [p, q] : {std::pair{0.5, 1.0}, std::pair{1.0, 2.0}}) {
      double max_abs = 0;
      for (T x : w) max_abs = std::max(max_abs, std::fabs(static_cast<double>(x)));
      const auto s = bipq::detail::scalar_sums<T, void>(std::span<const T>(w), nullptr, 1.0 / max_abs, 0.0, p, q);
      const double general = bipq::detail::pq_from_sums(s.sum_p, s.sum_q, s.count, p, q);
      const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
      CHECK(bipq::pq_index(w, p, q) == doctest::Approx(general).epsilon(tol).scale(1.0));
    }
  }
}

TEST_CASE("Theorem 1: I = 0 for constant |w|, I = 1 - d^(1/q-1/p) for one-hot w, and 0 <= I <= that bound") {
  bipq::detail::rng g(3);
  for (std::size_t d : {1u, 2u, 3u, 17u, 100u, 12345u}) {
    for (auto [p, q] : pq_pairs) {
      std::vector<float> constant(d, 0.37f);
      for (std::size_t i = 0; i < d; i += 2) constant[i] = -0.37f;  // signs do not matter
      // Float data with a half-integer exponent up to 4: float square roots, relative error ≤ 2^-24 each.
      CHECK(std::fabs(bipq::pq_index(constant, p, q)) <= std::max(1e-12, bipq_test::pq_accuracy<float>(0.0, p, q)));
      std::vector<double> constant_double(constant.begin(), constant.end());
      CHECK(std::fabs(bipq::pq_index(constant_double, p, q)) <= 1e-12);  // rounding of d equal terms
      std::vector<double> one_hot(d, 0.0);
      one_hot[g.below(d)] = -2.5;
      const double bound = 1.0 - std::pow(static_cast<double>(d), 1.0 / q - 1.0 / p);
      CHECK(bipq::pq_index(one_hot, p, q) == doctest::Approx(bound).epsilon(1e-12).scale(1.0));
      CHECK(bipq::pq_index_upper_bound(d, p, q) == doctest::Approx(bound).epsilon(1e-14).scale(1.0));
      const auto w = random_vector<double>(d, g, static_cast<int>(d));
      const double i = bipq::pq_index(w, p, q);
      CHECK(i >= 0.0);
      CHECK(i <= bound);
    }
  }
}

TEST_CASE("the all-zero and the empty vector have I = 0") {
  CHECK(bipq::pq_index(std::vector<float>(100, 0.0f)) == 0.0);
  CHECK(bipq::pq_index(std::vector<double>{}) == 0.0);
  CHECK(bipq::pq_index(std::vector<double>(9, -0.0), 1.0, 3.0) == 0.0);
}

TEST_CASE("extreme magnitudes: q = 8 on weights of 1e30 and 1e-30 (float), 1e300 and 1e-310 (double)") {
  bipq::detail::rng g(5);
  const auto base = random_vector<double>(1000, g, 0);
  for (auto [p, q] : {std::pair{0.5, 1.0}, std::pair{1.0, 2.0}, std::pair{1.0, 8.0}, std::pair{0.5, 8.0},
                      std::pair{4.0, 8.0}}) {
    const double reference = static_cast<double>(pq_definition(base, p, q));
    // Powers of two scale exactly, so the index must not move beyond rounding.
    for (double scale : {0x1p100, 0x1p-100, 0x1p126, 0x1p-140}) {
      std::vector<float> w(base.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(base[i] * scale);
      if (scale == 0x1p-140) {  // subnormal floats lose bits: compare with the definition of the rounded values
        std::vector<double> rounded(w.begin(), w.end());
        for (auto& x : rounded) x *= 0x1p140;
        CHECK(bipq::pq_index(w, p, q) == doctest::Approx(static_cast<double>(pq_definition(rounded, p, q)))
                                             .epsilon(1e-5)
                                             .scale(1.0));
      } else {
        std::vector<double> rounded(w.begin(), w.end());
        for (auto& x : rounded) x /= scale;
        CHECK(bipq::pq_index(w, p, q) == doctest::Approx(static_cast<double>(pq_definition(rounded, p, q)))
                                             .epsilon(1e-6)
                                             .scale(1.0));
      }
    }
    for (double scale : {1e30, 1e-30}) {
      std::vector<float> w(base.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(base[i] * scale);
      const double i = bipq::pq_index(w, p, q);
      CHECK(std::isfinite(i));
      CHECK(i == doctest::Approx(reference).epsilon(1e-5).scale(1.0));
    }
    for (double scale : {1e300, 1e-300, 0x1p-1060}) {
      std::vector<double> w(base.size());
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = base[i] * scale;
      const double i = bipq::pq_index(w, p, q);
      CHECK(std::isfinite(i));
      // 2^-1060 leaves 14 significant bits (subnormal doubles).
      CHECK(i == doctest::Approx(reference).epsilon(scale == 0x1p-1060 ? 1e-3 : 1e-12).scale(1.0));
    }
  }
  // A single denormal double as the maximum (its reciprocal overflows): one-hot, the upper bound.
  std::vector<double> tiny(10, 0.0);
  tiny[3] = std::numeric_limits<double>::denorm_min();
  CHECK(bipq::pq_index(tiny, 1.0, 8.0) == doctest::Approx(bipq::pq_index_upper_bound(10, 1.0, 8.0)));
  std::vector<float> huge(10, std::numeric_limits<float>::max());
  CHECK(std::fabs(bipq::pq_index(huge, 2.0, 8.0)) <= 1e-12);
}

TEST_CASE("the masked index is the index of the survivors") {
  bipq::detail::rng g(13);
  for (std::size_t n : {1u, 10u, 37u, 1000u}) {
    const auto w = random_vector<float>(n, g, static_cast<int>(n));
    std::vector<double> mask(n);
    std::vector<float> survivors;
    for (std::size_t i = 0; i < n; ++i) {
      mask[i] = g.uniform() < 0.6 ? 1.0 : 0.0;
      if (mask[i] != 0) survivors.push_back(w[i]);
    }
    for (auto [p, q] : pq_pairs) {
      CHECK(bipq::pq_index(w, mask, p, q) == doctest::Approx(bipq::pq_index(survivors, p, q)).epsilon(1e-12));
    }
  }
  // A masked-out entry may hold anything, NaN included; no survivor gives 0.
  std::vector<float> w{1.0f, std::nanf(""), 3.0f, 0.0f};
  std::vector<float> m{1.0f, 0.0f, 1.0f, 1.0f};
  CHECK(bipq::pq_index(w, m) == doctest::Approx(bipq::pq_index(std::vector<float>{1.0f, 3.0f, 0.0f})));
  CHECK(bipq::pq_index(w, std::vector<float>(4, 0.0f)) == 0.0);
  // The same in the vectorised passes, for every path, with double and long double masks on float weights.
  std::vector<float> big(203);
  std::vector<double> big_mask(big.size(), 1.0);
  std::vector<long double> long_mask(big.size(), 1.0L);
  std::vector<float> big_survivors;
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<float>(g.normal());
    if (i % 7 == 3) {
      big[i] = (i % 2) ? std::numeric_limits<float>::infinity() : std::nanf("");
      big_mask[i] = 0.0;
      long_mask[i] = 0.0L;
    } else if (i % 5 == 1) {
      big_mask[i] = 1e-300;  // tiny but non-zero: a survivor
      long_mask[i] = 1e-4000L;
      big_survivors.push_back(big[i]);
    } else {
      big_survivors.push_back(big[i]);
    }
  }
  for (auto [p, q] : pq_pairs) {
    // Non-finite masked-out entries send the (0.5, 1) pass to the scalar one (double square roots): 2^-24 apart.
    const double expected = bipq::pq_index(big_survivors, p, q);
    CHECK(bipq::pq_index(big, big_mask, p, q) == doctest::Approx(expected).epsilon(1e-6));
    CHECK(bipq::pq_index(big, long_mask, p, q) == doctest::Approx(expected).epsilon(1e-6));
  }
}

TEST_CASE("global, per-tensor and per-neuron scopes equal the index of the corresponding slices") {
  bipq::detail::rng g(17);
  std::vector<Eigen::MatrixXf> layers;
  layers.emplace_back(Eigen::MatrixXf::Random(8, 3));
  layers.emplace_back(Eigen::MatrixXf::Random(20, 50));
  layers.emplace_back(Eigen::MatrixXf::Zero(4, 4));
  layers[1](3, 7) = 40.0f;
  std::vector<float> all;
  for (const auto& l : layers) all.insert(all.end(), l.data(), l.data() + l.size());
  std::vector<std::vector<float>> masks;
  std::vector<float> all_survivors;
  for (const auto& l : layers) {
    masks.emplace_back(static_cast<std::size_t>(l.size()));
    for (Eigen::Index i = 0; i < l.size(); ++i) {
      masks.back()[static_cast<std::size_t>(i)] = g.uniform() < 0.5 ? 1.0f : 0.0f;
      if (masks.back()[static_cast<std::size_t>(i)] != 0) all_survivors.push_back(l.data()[i]);
    }
  }
  for (auto [p, q] : pq_pairs) {
    CHECK(bipq::pq_index_global(layers, p, q) == doctest::Approx(bipq::pq_index(all, p, q)).epsilon(1e-12));
    CHECK(bipq::pq_index_global(layers, masks, p, q) ==
          doctest::Approx(bipq::pq_index(all_survivors, p, q)).epsilon(1e-12));
    const auto per_tensor = bipq::pq_index_per_tensor(layers, p, q);
    const auto per_tensor_masked = bipq::pq_index_per_tensor(layers, masks, p, q);
    REQUIRE(per_tensor.size() == layers.size());
    for (std::size_t t = 0; t < layers.size(); ++t) {
      CHECK(per_tensor[t] == bipq::pq_index(layers[t], p, q));
      CHECK(per_tensor_masked[t] == bipq::pq_index(layers[t], masks[t], p, q));
    }
  }
  // Per neuron: rows of the row-major [rows, cols] view.
  const auto w = random_vector<double>(6 * 35, g, 2);
  std::vector<double> mask(w.size(), 1.0);
  for (std::size_t j = 0; j < 35; ++j) mask[2 * 35 + j] = 0.0;  // row 2 has no survivor
  mask[0] = 0.0;
  const auto rows = bipq::pq_index_per_neuron(w, 6, 1.0, 3.0);
  const auto rows_masked = bipq::pq_index_per_neuron(w, mask, 6, 1.0, 3.0);
  REQUIRE(rows.size() == 6);
  for (std::size_t r = 0; r < 6; ++r) {
    std::vector<double> row(w.begin() + static_cast<std::ptrdiff_t>(r * 35),
                            w.begin() + static_cast<std::ptrdiff_t>((r + 1) * 35));
    CHECK(rows[r] == doctest::Approx(bipq::pq_index(row, 1.0, 3.0)).epsilon(1e-14));
    std::vector<double> row_mask(mask.begin() + static_cast<std::ptrdiff_t>(r * 35),
                                 mask.begin() + static_cast<std::ptrdiff_t>((r + 1) * 35));
    CHECK(rows_masked[r] == doctest::Approx(bipq::pq_index(row, row_mask, 1.0, 3.0)).epsilon(1e-14));
  }
  CHECK(rows_masked[2] == 0.0);
  // xtensor and spans work the same.
  xt::xarray<double> xw = xt::xarray<double>::from_shape({6, 35});
  std::copy(w.begin(), w.end(), xw.begin());
  CHECK(bipq::pq_index(xw) == bipq::pq_index(w));
  std::vector<std::span<const double>> spans{std::span<const double>(w).first(10), std::span<const double>(w)};
  std::vector<double> concatenated(w.begin(), w.begin() + 10);
  concatenated.insert(concatenated.end(), w.begin(), w.end());
  CHECK(bipq::pq_index_global(spans) == doctest::Approx(bipq::pq_index(concatenated)).epsilon(1e-13));
}

TEST_CASE("bad input throws std::invalid_argument naming the function and the argument") {
  const std::vector<float> w{1.0f, 2.0f, 3.0f};
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, 0.0, 1.0), doctest::Contains("pq_index(): p"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, -1.0, 1.0), doctest::Contains("pq_index(): p"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, 1.0, 1.0), doctest::Contains("pq_index(): q must be"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, 2.0, 1.0), doctest::Contains("pq_index(): q must be"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, std::nan(""), 1.0), doctest::Contains("pq_index(): p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, 0.5, HUGE_VAL), doctest::Contains("pq_index(): q"), std::invalid_argument);
  for (auto [p, q] : pq_pairs) {
    for (std::size_t n : {3u, 100u}) {
      for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()}) {
        std::vector<float> x(n, 1.0f);
        x[n - 2] = bad;
        const std::string message = "pq_index(): w contains NaN or Inf (index " + std::to_string(n - 2) + ")";
        CHECK_THROWS_WITH_AS(bipq::pq_index(x, p, q), doctest::Contains(message.c_str()), std::invalid_argument);
        std::vector<double> xd(x.begin(), x.end());
        CHECK_THROWS_WITH_AS(bipq::pq_index(xd, p, q), doctest::Contains("pq_index(): w contains NaN or Inf"),
                             std::invalid_argument);
        std::vector<float> mask(n, 1.0f);
        CHECK_THROWS_WITH_AS(bipq::pq_index(x, mask, p, q), doctest::Contains("pq_index(): w contains NaN or Inf"),
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(bipq::pq_index(std::vector<float>(n, 1.0f), x, p, q),
                             doctest::Contains("pq_index(): mask contains NaN or Inf"), std::invalid_argument);
        CHECK_THROWS_WITH_AS(bipq::pq_index_global(std::vector<std::vector<float>>{w, x}, p, q),
                             doctest::Contains("pq_index_global(): ws[1] contains NaN or Inf"), std::invalid_argument);
        CHECK_THROWS_WITH_AS(bipq::pq_index_per_tensor(std::vector<std::vector<float>>{w, x}, p, q),
                             doctest::Contains("pq_index_per_tensor(): ws[1] contains NaN or Inf"),
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(bipq::pq_index_per_neuron(x, 1, p, q),
                             doctest::Contains("pq_index_per_neuron(): row 0 of w contains NaN or Inf"),
                             std::invalid_argument);
      }
    }
  }
  CHECK_THROWS_WITH_AS(bipq::pq_index(w, std::vector<float>(2, 1.0f)), doctest::Contains("pq_index(): mask has size"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index_global(std::vector<std::vector<float>>{w, w},
                                             std::vector<std::vector<float>>{w}),
                       doctest::Contains("pq_index_global(): masks"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index_per_tensor(std::vector<std::vector<float>>{w},
                                                 std::vector<std::vector<float>>{{1.0f}}),
                       doctest::Contains("pq_index_per_tensor(): masks[0] has size"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index_per_neuron(w, 2), doctest::Contains("pq_index_per_neuron(): rows"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index_per_neuron(w, 0), doctest::Contains("pq_index_per_neuron(): rows"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_index_per_neuron(w, std::vector<float>(2), 1),
                       doctest::Contains("pq_index_per_neuron(): mask has size"), std::invalid_argument);
}

TEST_CASE_TEMPLATE("a mask of ones gives the unmasked index, in every scope", T, float, double) {
  // The masked and unmasked functions share one implementation; a survivor's mask factor of 1 changes no term and
  // no count, so the two agree on the vectorised blocks, the tails and the scaled passes alike — to rounding, since
  // the compiler may contract a·b + c into a fused multiply-add differently in the two instantiations (it does at
  // -O2 with FMA). Tiny weights (1e-200 in double) take the scaled second pass also on the fast paths.
  const double tol = 16.0 * double(std::numeric_limits<T>::epsilon());
  auto same = [tol](double a, double b) { return a == doctest::Approx(b).epsilon(tol); };
  auto same_all = [&](const auto& a, const auto& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same(double(a[i]), double(b[i]))) return false;
    return true;
  };
  bipq::detail::rng g(19);
  const T tiny = std::is_same_v<T, double> ? T(1e-200) : T(1e-30);
  for (std::size_t n : {1u, 15u, 64u, 203u, 4099u}) {
    for (const T scale : {T(1), tiny}) {
      auto w = random_vector<T>(n * 3, g, static_cast<int>(n));
      for (auto& x : w) x *= scale;
      const std::vector<T> ones(w.size(), T(1));
      const std::vector<std::vector<T>> ws{std::vector<T>(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n)), w};
      const std::vector<std::vector<T>> masks{std::vector<T>(n, T(1)), ones};
      for (const auto& [p_value, q_value] : pq_pairs) {
        const double p = p_value, q = q_value;  // CAPTURE needs variables, not structured bindings (clang 14)
        CAPTURE(n);
        CAPTURE(scale);
        CAPTURE(p);
        CAPTURE(q);
        CHECK(same(bipq::pq_index(w, ones, p, q), bipq::pq_index(w, p, q)));
        CHECK(same(bipq::pq_index_global(ws, masks, p, q), bipq::pq_index_global(ws, p, q)));
        CHECK(same_all(bipq::pq_index_per_tensor(ws, masks, p, q), bipq::pq_index_per_tensor(ws, p, q)));
        CHECK(same_all(bipq::pq_index_per_neuron(w, ones, 3, p, q), bipq::pq_index_per_neuron(w, 3, p, q)));
      }
    }
  }
}
