// Hoyer, Gini, ℓ⁰, ℓ⁰_ε, κ₄ and ℓ₁/ℓ₂ against their definitions (Hurley & Rickard 2009), their extreme values,
// magnitudes far from 1, and their preconditions.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/sparsity/measures.hpp"

namespace {

std::vector<double> random_magnitudes(std::size_t n, bipq::detail::rng& g) {
  std::vector<double> w(n);
  for (auto& x : w) x = g.uniform() < 0.2 ? 0.0 : g.normal() * std::exp(2 * g.normal());
  return w;
}

double norm(const std::vector<double>& w, double p) {
  long double s = 0;
  for (double x : w) s += std::pow(std::fabs(static_cast<long double>(x)), p);
  return static_cast<double>(std::pow(s, 1.0L / p));
}

}  // namespace

TEST_CASE("each measure equals its definition on random vectors") {
  bipq::detail::rng g(21);
  for (std::size_t n : {2u, 3u, 10u, 97u, 1000u}) {
    auto w = random_magnitudes(n, g);
    w[0] = 1.5;  // at least one non-zero
    const double d = static_cast<double>(n);
    const double l1 = norm(w, 1), l2 = norm(w, 2), l4 = norm(w, 4);
    CHECK(bipq::hoyer(w) == doctest::Approx((std::sqrt(d) - l1 / l2) / (std::sqrt(d) - 1)).epsilon(1e-12));
    CHECK(bipq::l1_l2_ratio(w) == doctest::Approx(l1 / l2).epsilon(1e-12));
    CHECK(bipq::kurtosis(w) == doctest::Approx(std::pow(l4, 4) / std::pow(l2, 4)).epsilon(1e-12));
    // Gini = Σ_i Σ_j |c_i − c_j| / (2 d ‖c‖₁), the mean-difference form of Hurley & Rickard's sorted formula.
    long double mean_difference = 0;
    for (double a : w)
      for (double b : w) mean_difference += std::fabs(std::fabs(static_cast<long double>(a)) - std::fabs(b));
    CHECK(bipq::gini_index(w) == doctest::Approx(static_cast<double>(mean_difference / (2 * d * l1))).epsilon(1e-12));
    std::size_t zeros = 0, small = 0;
    for (double x : w) {
      zeros += x == 0 ? 1 : 0;
      small += std::fabs(x) <= 0.3 ? 1 : 0;
    }
    CHECK(bipq::l0_fraction(w) == static_cast<double>(zeros) / d);
    CHECK(bipq::l0_epsilon_fraction(w, 0.3) == static_cast<double>(small) / d);
  }
}

TEST_CASE("extreme values: constant and one-hot vectors") {
  for (std::size_t d : {2u, 5u, 64u}) {
    const std::vector<double> constant(d, -2.0);
    std::vector<double> one_hot(d, 0.0);
    one_hot[d / 2] = 7.0;
    CHECK(bipq::hoyer(constant) == doctest::Approx(0.0));
    CHECK(bipq::hoyer(one_hot) == doctest::Approx(1.0));
    CHECK(bipq::gini_index(constant) == doctest::Approx(0.0));
    CHECK(bipq::gini_index(one_hot) == doctest::Approx(1.0 - 1.0 / static_cast<double>(d)));
    CHECK(bipq::kurtosis(constant) == doctest::Approx(1.0 / static_cast<double>(d)));
    CHECK(bipq::kurtosis(one_hot) == doctest::Approx(1.0));
    CHECK(bipq::l1_l2_ratio(constant) == doctest::Approx(std::sqrt(static_cast<double>(d))));
    CHECK(bipq::l1_l2_ratio(one_hot) == doctest::Approx(1.0));
    CHECK(bipq::l0_fraction(one_hot) == doctest::Approx(1.0 - 1.0 / static_cast<double>(d)));
    // All-zero is treated as constant.
    const std::vector<float> zero(d, 0.0f);
    CHECK(bipq::hoyer(zero) == 0.0);
    CHECK(bipq::gini_index(zero) == 0.0);
    CHECK(bipq::kurtosis(zero) == doctest::Approx(1.0 / static_cast<double>(d)));
    CHECK(bipq::l1_l2_ratio(zero) == doctest::Approx(std::sqrt(static_cast<double>(d))));
    CHECK(bipq::l0_fraction(zero) == 1.0);
  }
}

TEST_CASE("scale-invariant measures do not overflow or underflow at 1e30 and 1e-30 in float") {
  bipq::detail::rng g(23);
  const auto base = random_magnitudes(500, g);
  for (double scale : {1e30, 1e-30}) {
    Eigen::VectorXf w(500);
    for (int i = 0; i < 500; ++i) w[i] = static_cast<float>(base[static_cast<std::size_t>(i)] * scale);
    std::vector<double> rounded(w.data(), w.data() + 500);
    for (auto& x : rounded) x /= scale;
    CHECK(bipq::hoyer(w) == doctest::Approx(bipq::hoyer(rounded)).epsilon(1e-6));
    CHECK(bipq::gini_index(w) == doctest::Approx(bipq::gini_index(rounded)).epsilon(1e-6));
    CHECK(bipq::kurtosis(w) == doctest::Approx(bipq::kurtosis(rounded)).epsilon(1e-6));
    CHECK(bipq::l1_l2_ratio(w) == doctest::Approx(bipq::l1_l2_ratio(rounded)).epsilon(1e-6));
  }
}

TEST_CASE("non-finite data and a negative epsilon throw, naming the function") {
  std::vector<double> w{1.0, std::numeric_limits<double>::quiet_NaN(), 2.0};
  CHECK_THROWS_WITH_AS(bipq::hoyer(w), doctest::Contains("hoyer(): w contains NaN or Inf (index 1)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::gini_index(w), doctest::Contains("gini_index(): w"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::l0_fraction(w), doctest::Contains("l0_fraction(): w"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::l0_epsilon_fraction(w, 0.1), doctest::Contains("l0_epsilon_fraction(): w"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::kurtosis(w), doctest::Contains("kurtosis(): w"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::l1_l2_ratio(w), doctest::Contains("l1_l2_ratio(): w"), std::invalid_argument);
  w[1] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(bipq::hoyer(w), doctest::Contains("hoyer(): w"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::gini_index(w), doctest::Contains("gini_index(): w"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::l0_epsilon_fraction(std::vector<double>{1.0}, -0.1),
                       doctest::Contains("l0_epsilon_fraction(): epsilon"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::l0_epsilon_fraction(std::vector<double>{1.0}, std::nan("")),
                       doctest::Contains("l0_epsilon_fraction(): epsilon"), std::invalid_argument);
}
