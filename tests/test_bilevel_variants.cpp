// The bi-level solver's variants of the released BiP code: the IG's second-term coefficient, the weights
// parametrization (scores = |θ|), learning-rate schedules for both levels and the upper level's weight decay — each
// checked against its definition on the linear problem, whose gradient c̄ does not depend on z, so one iteration
// can be written out by hand.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "bipq/mask/top_k.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/linear.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/solver/bilevel.hpp"

namespace {

using matrix = bipq::linear_problem<double>::matrix;

/// A linear problem with one sample, c = `c`, so g = c in every batch.
matrix one_row(const std::vector<double>& c) {
  matrix m(1, static_cast<Eigen::Index>(c.size()));
  for (std::size_t j = 0; j < c.size(); ++j) m(0, static_cast<Eigen::Index>(j)) = c[j];
  return m;
}

std::vector<double> top_k(const std::vector<double>& s, std::size_t k) {
  std::vector<double> m(s.size());
  bipq::top_k_mask<double>(std::span<const double>(s), k, std::span<double>(m));
  return m;
}

bipq::bilevel_params one_iteration(std::size_t k) {
  bipq::bilevel_params p;
  p.mask.k = k;
  p.iterations = 1;
  p.batch_size = 0;
  p.momentum = 0.0;
  p.upper_momentum = 0.0;
  return p;
}

}  // namespace

TEST_CASE("scheduled_rate: constant, cosine from r to 0, step ×0.1 at T/2 and ×0.01 at 3T/4") {
  using bipq::rate_schedule;
  const std::size_t T = 8;
  for (std::size_t t = 0; t < T; ++t) CHECK(bipq::scheduled_rate(rate_schedule::constant, 0.3, t, T) == 0.3);
  CHECK(bipq::scheduled_rate(rate_schedule::cosine, 0.3, 0, T) == 0.3);
  CHECK(bipq::scheduled_rate(rate_schedule::cosine, 0.3, 4, T) == doctest::Approx(0.15).epsilon(1e-15));
  for (std::size_t t = 1; t < T; ++t)
    CHECK(bipq::scheduled_rate(rate_schedule::cosine, 0.3, t, T) < bipq::scheduled_rate(rate_schedule::cosine, 0.3, t - 1, T));
  const std::vector<double> step{1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01};
  for (std::size_t t = 0; t < T; ++t)
    CHECK(bipq::scheduled_rate(rate_schedule::step, 2.0, t, T) == doctest::Approx(2.0 * step[t]).epsilon(1e-15));
  CHECK(bipq::scheduled_rate(rate_schedule::step, 2.0, 0, 1) == 2.0);  // one iteration: the base rate
}

TEST_CASE("weights parametrization: the upper step moves θ itself, and a pruned weight comes back") {
  // θ0 = (3, 2.5, 2, 0.5, 0.4, 0.3), k = 3: m0 keeps the first three. g = c.
  //   lower:  θ1 = θ0 − α (m0⊙g + γ θ0)
  //   upper:  IG = g ⊙ (θ1 − c2 · m0⊙g),  θ2 = θ1 − β (sign(θ1)⊙IG + λ θ1),  m1 = top_k(|θ2|).
  // g_3 = −10 makes the pruned θ_3 grow about elevenfold: it re-enters the mask, and θ_2 (g = 0.4) leaves it.
  const std::vector<double> theta0{3, 2.5, 2, 0.5, 0.4, 0.3}, c{0.1, 0.2, 0.4, -10, 0.0, 0.3};
  bipq::linear_problem<double> problem(one_row(c));
  std::copy(theta0.begin(), theta0.end(), problem.parameters()[0].value.begin());
  bipq::bilevel_params p = one_iteration(3);
  p.parametrization = bipq::mask_parametrization::weights;
  p.lower_learning_rate = 0.01;
  p.gamma = 1e-2;
  p.upper_learning_rate = 1.0;
  p.upper_weight_decay = 0.05;
  p.second_term_coefficient = 0.5;

  const double alpha = p.lower_learning_rate, gamma = p.gamma, beta = p.upper_learning_rate;
  const double lambda = p.upper_weight_decay, c2 = *p.second_term_coefficient;
  const std::vector<double> m0 = top_k(theta0, 3);
  std::vector<double> theta1(6), theta2(6), magnitude(6);
  for (std::size_t i = 0; i < 6; ++i) {
    theta1[i] = theta0[i] - alpha * (m0[i] * c[i] + gamma * theta0[i]);
    const double ig = c[i] * (theta1[i] - c2 * m0[i] * c[i]);
    const double sign = theta1[i] > 0 ? 1.0 : theta1[i] < 0 ? -1.0 : 0.0;
    theta2[i] = theta1[i] - beta * (sign * ig + lambda * theta1[i]);
    magnitude[i] = std::abs(theta2[i]);
  }
  const std::vector<double> m1 = top_k(magnitude, 3);
  REQUIRE(m0 == std::vector<double>{1, 1, 1, 0, 0, 0});
  REQUIRE(m1[3] == 1.0);  // the hand computation itself revives the weight
  REQUIRE(m1[2] == 0.0);

  const auto r = bipq::bilevel_solver(p).optimize(problem);
  CHECK(r.masks[0] == m1);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(problem.parameters()[0].value[i] == doctest::Approx(m1[i] * theta2[i]).epsilon(1e-14));
}

TEST_CASE("scores parametrization with upper weight decay and a constant second-term coefficient, by definition") {
  //   s0 = |θ0|, lower as above, IG = g ⊙ (θ1 − c2 · m0⊙g), s1 = s0 − β (IG + λ s0), m1 = top_k(s1); θ keeps θ1.
  const std::vector<double> theta0{-3, 2.5, 2, 0.5, -0.4, 0.3}, c{0.1, 0.2, 0.4, -10, 0.0, 0.3};
  bipq::linear_problem<double> problem(one_row(c));
  std::copy(theta0.begin(), theta0.end(), problem.parameters()[0].value.begin());
  bipq::bilevel_params p = one_iteration(3);
  p.lower_learning_rate = 0.01;
  p.gamma = 1e-2;
  p.upper_learning_rate = 1.0;
  p.upper_weight_decay = 0.5;
  p.second_term_coefficient = 2.0;

  const std::vector<double> m0 = top_k({3, 2.5, 2, 0.5, 0.4, 0.3}, 3);
  std::vector<double> theta1(6), s1(6);
  for (std::size_t i = 0; i < 6; ++i) {
    theta1[i] = theta0[i] - p.lower_learning_rate * (m0[i] * c[i] + p.gamma * theta0[i]);
    const double ig = c[i] * (theta1[i] - *p.second_term_coefficient * m0[i] * c[i]);
    s1[i] = std::abs(theta0[i]) - p.upper_learning_rate * (ig + p.upper_weight_decay * std::abs(theta0[i]));
  }
  const std::vector<double> m1 = top_k(s1, 3);
  REQUIRE(m1 != m0);  // the step changes the mask, so the test can tell a wrong formula

  const auto r = bipq::bilevel_solver(p).optimize(problem);
  CHECK(r.masks[0] == m1);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(problem.parameters()[0].value[i] == doctest::Approx(m1[i] * theta1[i]).epsilon(1e-14));
}

TEST_CASE("second_term_coefficient: 1/γ is the paper's default bit for bit, 0 is ig_mode none bit for bit") {
  bipq::detail::rng g(7);
  const std::size_t n = 40, d = 30;
  matrix a(n, d);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = g.normal();
  Eigen::VectorXd b(n);
  for (Eigen::Index i = 0; i < b.size(); ++i) b[i] = g.normal();
  std::vector<double> start(d);
  for (auto& x : start) x = g.normal();

  auto run = [&](bipq::bilevel_params p) {
    bipq::least_squares_problem<double> problem(a, b);
    std::copy(start.begin(), start.end(), problem.parameters()[0].value.begin());
    const auto r = bipq::bilevel_solver(p).optimize(problem);
    std::vector<double> out = r.masks[0];
    out.insert(out.end(), problem.parameters()[0].value.begin(), problem.parameters()[0].value.end());
    return out;
  };
  bipq::bilevel_params p;
  p.mask.k = 6;
  p.iterations = 30;
  p.batch_size = 8;
  p.gamma = 0.5;
  p.lower_learning_rate = 0.02;
  p.upper_learning_rate = 0.05;
  const auto paper = run(p);
  bipq::bilevel_params explicit_inverse = p;
  explicit_inverse.second_term_coefficient = 1.0 / p.gamma;
  CHECK(run(explicit_inverse) == paper);

  bipq::bilevel_params zero = p, none = p;
  zero.second_term_coefficient = 0.0;
  none.ig_mode = bipq::implicit_gradient_mode::none;
  const auto direct = run(none);
  CHECK(run(zero) == direct);
  CHECK(direct != paper);  // the second term matters here, so the two checks above can fail
}

TEST_CASE("the lower rate follows its schedule: θ_T written out with cosine rates, the mask held fixed") {
  // ig_mode none with β = 1e-9 keeps the order of the scores, hence the mask; θ_{t+1} = θ_t − α_t (m⊙g + γθ_t).
  const std::vector<double> theta0{3, 2.5, 2, 0.5, 0.4, 0.3}, c{0.1, 0.2, 0.4, -1, 0.5, 0.3};
  bipq::linear_problem<double> problem(one_row(c));
  std::copy(theta0.begin(), theta0.end(), problem.parameters()[0].value.begin());
  bipq::bilevel_params p = one_iteration(3);
  p.iterations = 10;
  p.ig_mode = bipq::implicit_gradient_mode::none;
  p.upper_learning_rate = 1e-9;
  p.lower_learning_rate = 0.2;
  p.gamma = 0.1;
  p.lower_schedule = bipq::rate_schedule::cosine;
  p.upper_schedule = bipq::rate_schedule::step;

  const std::vector<double> m = top_k(theta0, 3);
  std::vector<double> theta = theta0, constant_rate = theta0;
  for (std::size_t t = 0; t < p.iterations; ++t) {
    const double a = bipq::scheduled_rate(p.lower_schedule, p.lower_learning_rate, t, p.iterations);
    for (std::size_t i = 0; i < 6; ++i) {
      theta[i] -= a * (m[i] * c[i] + p.gamma * theta[i]);
      constant_rate[i] -= p.lower_learning_rate * (m[i] * c[i] + p.gamma * constant_rate[i]);
    }
  }
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  REQUIRE(r.masks[0] == m);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(problem.parameters()[0].value[i] == doctest::Approx(theta[i]).epsilon(1e-13));
    CHECK(std::abs(theta[i] - constant_rate[i]) > 1e-3);  // a constant rate would give another θ
  }
}

TEST_CASE("the released code's preset and its validation") {
  const bipq::bilevel_settings b = bipq::bip_params::released_code_bilevel(0.05);
  CHECK(b.parametrization == bipq::mask_parametrization::weights);
  CHECK(b.lower_learning_rate == 0.05);
  CHECK(b.upper_learning_rate == 0.05);
  CHECK(b.lower_schedule == bipq::rate_schedule::cosine);
  CHECK(b.upper_schedule == bipq::rate_schedule::step);
  CHECK(b.second_term_coefficient.value() == 1e-4);
  CHECK_NOTHROW(b.validate("bip_params"));

  bipq::bilevel_settings bad = b;
  bad.upper_weight_decay = -1.0;
  CHECK_THROWS_WITH_AS(bad.validate("bip_params"), "bip_params: 'upper_weight_decay' must be finite and >= 0",
                       std::invalid_argument);
  bad = b;
  bad.second_term_coefficient = std::nan("");
  CHECK_THROWS_WITH_AS(bad.validate("bip_params"), "bip_params: 'second_term_coefficient' must be finite and >= 0",
                       std::invalid_argument);
}
