// The compressed-sensing baselines (problems/sparse_recovery.hpp) against their definitions: each recovers every
// noiseless instance well inside its recovery region; OMP's residual is orthogonal to its columns; FISTA meets the
// Lasso's KKT conditions; HTP stops at the least-squares solution on its support; IHT at a fixed point of its map;
// the Wilson interval and McNemar's exact test against hand-computed values; the Gram cache of least_squares_problem
// against the row-wise gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <Eigen/Dense>

#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/sparse_recovery.hpp"

namespace {

struct instance {
  Eigen::MatrixXd a;
  Eigen::VectorXd b, x;
  std::vector<std::size_t> support;
  double sigma = 0.0;
};

/// A planted instance; noiseless (b = Ax) unless `noisy`.
instance make(std::size_t n, std::size_t d, std::size_t k, std::uint64_t seed, bool noisy = false) {
  bipq::planted_regression_spec spec;
  spec.samples = n;
  spec.features = d;
  spec.nonzeros = k;
  const auto p = bipq::make_planted_regression<double>(spec, seed);
  instance out{p.a, p.b, p.x_true, p.support, p.noise_sd};
  if (!noisy) out.b = out.a * out.x;
  return out;
}

/// Recovers the support on every one of 10 noiseless seeds, and the planted vector to 1e-6.
template <class Method>
void recovers_every_seed(std::size_t n, std::size_t d, std::size_t k, Method method) {
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    const instance in = make(n, d, k, seed);
    const bipq::sparse_estimate e = method(in);
    CHECK(bipq::exact_recovery(e.support, in.support));
    CHECK((e.x - in.x).norm() <= 1e-6 * in.x.norm());
  }
}

}  // namespace

TEST_CASE("every baseline recovers every noiseless instance well inside its recovery region") {
  // n = 100, d = 256, k = 5: n ≈ 3.6 k ln(d/k), well above the transitions of IHT, HTP, OMP and the Lasso.
  SUBCASE("iterative hard thresholding") {
    recovers_every_seed(100, 256, 5, [](const instance& in) {
      bipq::iht_params p;
      p.max_iterations = 2000;
      return bipq::iterative_hard_thresholding(in.a, in.b, 5, p);
    });
  }
  SUBCASE("hard thresholding pursuit") {
    recovers_every_seed(100, 256, 5, [](const instance& in) { return bipq::hard_thresholding_pursuit(in.a, in.b, 5); });
  }
  SUBCASE("orthogonal matching pursuit") {
    recovers_every_seed(100, 256, 5, [](const instance& in) { return bipq::orthogonal_matching_pursuit(in.a, in.b, 5); });
  }
  SUBCASE("Lasso by FISTA with the least-squares debias") {
    recovers_every_seed(100, 256, 5, [](const instance& in) {
      bipq::lasso_params p;
      p.lambda = 1e-3 * (in.a.transpose() * in.b / 100.0).cwiseAbs().maxCoeff();  // a small fraction of λ_max
      return bipq::debiased_lasso(in.a, in.b, 5, p);
    });
  }
  SUBCASE("magnitude pruning of the least-norm solution") {
    // A⁺b = P x, P the projection onto A's row space: it keeps (n/d) x_j on the support plus crosstalk of order
    // √(n(d − n)) / d · ‖x‖ / √d, which is small once n is close to d.
    recovers_every_seed(240, 256, 5, [](const instance& in) { return bipq::least_norm_magnitude_pruning(in.a, in.b, 5); });
  }
}

TEST_CASE("orthogonal_matching_pursuit leaves a residual orthogonal to the chosen columns") {
  const instance in = make(80, 300, 10, 3, true);
  const auto e = bipq::orthogonal_matching_pursuit(in.a, in.b, 10);
  REQUIRE(e.support.size() == 10);
  const Eigen::VectorXd r = in.b - in.a * e.x;
  for (std::size_t j : e.support)
    CHECK(std::abs(in.a.col(static_cast<Eigen::Index>(j)).dot(r)) <= 1e-9 * in.a.norm() * in.b.norm());
  for (Eigen::Index j = 0; j < e.x.size(); ++j)
    if (!std::binary_search(e.support.begin(), e.support.end(), static_cast<std::size_t>(j))) CHECK(e.x(j) == 0.0);
}

TEST_CASE("lasso_fista meets the Lasso's KKT conditions: |A_jᵀr/n| ≤ λ, = λ sign(x_j) on the support") {
  for (std::uint64_t seed : {1u, 2u}) {
    const instance in = make(120, 400, 10, seed, true);
    bipq::lasso_params p;
    p.lambda = bipq::universal_lasso_lambda(in.sigma, 120, 400);
    p.tolerance = 1e-12;
    p.max_iterations = 100000;
    const auto e = bipq::lasso_fista(in.a, in.b, p);
    CHECK(e.converged);
    REQUIRE(!e.support.empty());
    const Eigen::VectorXd c = in.a.transpose() * (in.b - in.a * e.x) / 120.0;
    const double tol = 1e-6 * p.lambda;
    for (Eigen::Index j = 0; j < c.size(); ++j) {
      CHECK(std::abs(c(j)) <= p.lambda + tol);
      if (e.x(j) != 0.0) CHECK(c(j) == doctest::Approx(p.lambda * (e.x(j) > 0 ? 1.0 : -1.0)).epsilon(1e-6));
    }
  }
}

TEST_CASE("hard_thresholding_pursuit stops at the least-squares solution on its support") {
  const instance in = make(100, 300, 10, 4, true);
  const auto e = bipq::hard_thresholding_pursuit(in.a, in.b, 10);
  CHECK(e.converged);
  REQUIRE(e.support.size() == 10);
  const Eigen::VectorXd ls = bipq::least_squares_on_support(in.a, in.b, e.support);
  CHECK((e.x - ls).norm() <= 1e-12 * ls.norm());
  const Eigen::VectorXd r = in.b - in.a * e.x;
  for (std::size_t j : e.support)
    CHECK(std::abs(in.a.col(static_cast<Eigen::Index>(j)).dot(r)) <= 1e-9 * in.a.norm() * in.b.norm());
  // The support is the top k of its own gradient step: HTP's fixed point.
  const Eigen::VectorXd u = e.x + in.a.transpose() * r / 100.0;
  CHECK(bipq::largest_entries(u, 10) == e.support);
}

TEST_CASE("iterative_hard_thresholding stops at a fixed point x = H_k(x − μ∇ℓ(x))") {
  const instance in = make(100, 300, 10, 5, true);
  bipq::iht_params p;
  p.step = 0.5;
  p.max_iterations = 5000;
  const auto e = bipq::iterative_hard_thresholding(in.a, in.b, 10, p);
  CHECK(e.converged);
  const Eigen::VectorXd u = e.x - p.step * in.a.transpose() * (in.a * e.x - in.b) / 100.0;
  const auto s = bipq::largest_entries(u, 10);
  CHECK(s == e.support);
  Eigen::VectorXd hu = Eigen::VectorXd::Zero(u.size());
  for (std::size_t j : s) hu(static_cast<Eigen::Index>(j)) = u(static_cast<Eigen::Index>(j));
  CHECK((hu - e.x).norm() <= 1e-8 * e.x.norm());
}

TEST_CASE("largest_entries keeps the k largest magnitudes, ties to the lower index, sorted") {
  Eigen::VectorXd x(6);
  x << 1.0, -3.0, 2.0, -2.0, 0.5, 3.0;
  CHECK(bipq::largest_entries(x, 3) == std::vector<std::size_t>{1, 2, 5});
  CHECK(bipq::largest_entries(x, 0).empty());
  CHECK_THROWS_AS(bipq::largest_entries(x, 7), std::invalid_argument);
}

TEST_CASE("least_squares_on_support solves the normal equations on the support and is zero elsewhere") {
  const instance in = make(50, 120, 5, 6, true);
  const std::vector<std::size_t> s{3, 17, 40, 41, 99};
  const Eigen::VectorXd x = bipq::least_squares_on_support(in.a, in.b, s);
  const Eigen::VectorXd r = in.b - in.a * x;
  for (std::size_t j : s) CHECK(std::abs(in.a.col(static_cast<Eigen::Index>(j)).dot(r)) <= 1e-9 * in.a.norm() * in.b.norm());
  for (Eigen::Index j = 0; j < x.size(); ++j)
    if (std::find(s.begin(), s.end(), static_cast<std::size_t>(j)) == s.end()) CHECK(x(j) == 0.0);
  const std::vector<std::size_t> bad{120};
  CHECK_THROWS_AS(bipq::least_squares_on_support(in.a, in.b, bad), std::invalid_argument);
}

TEST_CASE("least_norm_solution is A⁺b: it solves Ax = b and lies in A's row space") {
  const instance in = make(40, 100, 5, 7, true);
  const Eigen::VectorXd x = bipq::least_norm_solution(in.a, in.b);
  CHECK((in.a * x - in.b).norm() <= 1e-10 * in.b.norm());
  const Eigen::VectorXd reference = in.a.completeOrthogonalDecomposition().solve(in.b);
  CHECK((x - reference).norm() <= 1e-10 * reference.norm());
}

TEST_CASE("the baselines name the argument they reject") {
  const instance in = make(20, 50, 3, 8);
  CHECK_THROWS_WITH_AS(bipq::orthogonal_matching_pursuit(in.a, in.b, 0), "orthogonal_matching_pursuit(): k must be in [1, 50]",
                       std::invalid_argument);
  const Eigen::VectorXd short_b = in.b.head(10);
  CHECK_THROWS_WITH_AS(bipq::hard_thresholding_pursuit(in.a, short_b, 3), "hard_thresholding_pursuit(): b has size 10, expected 20",
                       std::invalid_argument);
  bipq::lasso_params p;
  p.lambda = 0.0;
  CHECK_THROWS_WITH_AS(bipq::lasso_fista(in.a, in.b, p), "lasso_fista(): lambda must be > 0", std::invalid_argument);
}

TEST_CASE("wilson_interval matches hand-computed values") {
  const auto w = bipq::wilson_interval(73, 100);
  CHECK(w.low == doctest::Approx(0.63574).epsilon(1e-4));
  CHECK(w.high == doctest::Approx(0.80731).epsilon(1e-4));
  const auto zero = bipq::wilson_interval(0, 10);
  CHECK(zero.low == 0.0);
  CHECK(zero.high == doctest::Approx(3.8414588 / 13.8414588).epsilon(1e-6));  // z²/(n + z²)
  const auto all = bipq::wilson_interval(10, 10);
  CHECK(all.high == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(all.low == doctest::Approx(10.0 / 13.8414588).epsilon(1e-6));
}

TEST_CASE("mcnemar_exact_p is the two-sided binomial test of the discordant pairs") {
  CHECK(bipq::mcnemar_exact_p(0, 5) == doctest::Approx(2.0 / 32.0));
  CHECK(bipq::mcnemar_exact_p(9, 1) == doctest::Approx(22.0 / 1024.0));
  CHECK(bipq::mcnemar_exact_p(4, 4) == 1.0);
  CHECK(bipq::mcnemar_exact_p(0, 0) == 1.0);
  // against the exact sum for m = 30, b = 8: 2 Σ_{i ≤ 8} C(30, i) / 2³⁰
  double tail = 0.0, c = 1.0;
  for (int i = 0; i <= 8; ++i) {
    tail += c;
    c = c * (30 - i) / (i + 1);
  }
  CHECK(bipq::mcnemar_exact_p(8, 22) == doctest::Approx(2.0 * tail / std::pow(2.0, 30)).epsilon(1e-10));
}

TEST_CASE("least_squares_problem's Gram cache gives the row-wise loss and gradient (full batch, sparse z)") {
  const instance in = make(60, 150, 5, 9, true);
  using matrix = bipq::least_squares_problem<double>::matrix;
  bipq::least_squares_problem<double> rows(matrix(in.a), in.b), gram(matrix(in.a), in.b);
  gram.cache_gram();
  CHECK(gram.has_gram());
  std::vector<std::size_t> all(60);
  std::iota(all.begin(), all.end(), std::size_t{0});
  const std::vector<std::size_t> part{0, 5, 7, 30};
  bipq::detail::rng g(11);
  for (std::size_t nnz : {0u, 1u, 10u, 150u}) {  // 150 > 2n: the row-wise path
    for (std::size_t j = 0; j < 150; ++j) {
      const double v = j < nnz ? g.normal() : 0.0;
      rows.parameters()[0].value[j] = v;
      gram.parameters()[0].value[j] = v;
    }
    for (const std::vector<std::size_t>* batch : {static_cast<const std::vector<std::size_t>*>(&all), &part}) {
      const double lr = rows.loss_and_gradient(*batch), lg = gram.loss_and_gradient(*batch);
      CHECK(lg == doctest::Approx(lr).epsilon(1e-10));
      double err = 0.0, scale = 0.0;
      for (std::size_t j = 0; j < 150; ++j) {
        err = std::max(err, std::abs(rows.parameters()[0].grad[j] - gram.parameters()[0].grad[j]));
        scale = std::max(scale, std::abs(rows.parameters()[0].grad[j]));
      }
      CHECK(err <= 1e-10 * scale);
    }
  }
}
