// Toy bi-level problems: gradients and Hessian–vector products against central finite differences, the closed-form
// lower-level solution against its optimality condition, and the planted instances' definition.
#include <doctest/doctest.h>

#include <cmath>
#include <span>
#include <stdexcept>
#include <vector>

#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/linear.hpp"
#include "bipq/problems/logistic.hpp"

namespace {

std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  return idx;
}

/// All parameters' values concatenated.
template <class P>
std::vector<double> values(const P& p) {
  std::vector<double> v;
  for (const auto& q : p.parameters()) v.insert(v.end(), q.value.begin(), q.value.end());
  return v;
}
template <class P>
void set_values(P& p, const std::vector<double>& v) {
  std::size_t o = 0;
  for (const auto& q : p.parameters())
    for (auto& x : q.value) x = v[o++];
}
template <class P>
std::vector<double> gradient(P& p, std::span<const std::size_t> idx) {
  p.loss_and_gradient(idx);
  std::vector<double> g;
  for (const auto& q : p.parameters()) g.insert(g.end(), q.grad.begin(), q.grad.end());
  return g;
}

/// max_i |analytic_i − central difference_i| relative to max |analytic|.
template <class P>
double gradient_error(P& p, std::span<const std::size_t> idx, const std::vector<double>& z) {
  set_values(p, z);
  const std::vector<double> g = gradient(p, idx);
  double err = 0.0, scale = 1e-300;
  const double h = 1e-6;
  for (std::size_t i = 0; i < z.size(); ++i) {
    std::vector<double> zp = z, zm = z;
    zp[i] += h;
    zm[i] -= h;
    set_values(p, zp);
    const double fp = p.loss_and_gradient(idx);
    set_values(p, zm);
    const double fm = p.loss_and_gradient(idx);
    err = std::max(err, std::abs(g[i] - (fp - fm) / (2 * h)));
    scale = std::max(scale, std::abs(g[i]));
  }
  return err / scale;
}

/// max |Hv − (∇ℓ(z + hv) − ∇ℓ(z − hv)) / 2h| relative to max |Hv|.
template <class P>
double hvp_error(P& p, std::span<const std::size_t> idx, const std::vector<double>& z, const std::vector<double>& v) {
  set_values(p, z);
  std::vector<double> hv(z.size());
  p.hessian_vector_product(idx, std::span<const double>(v), std::span<double>(hv));
  const double h = 1e-5;
  std::vector<double> zp = z, zm = z;
  for (std::size_t i = 0; i < z.size(); ++i) {
    zp[i] += h * v[i];
    zm[i] -= h * v[i];
  }
  set_values(p, zp);
  const std::vector<double> gp = gradient(p, idx);
  set_values(p, zm);
  const std::vector<double> gm = gradient(p, idx);
  double err = 0.0, scale = 1e-300;
  for (std::size_t i = 0; i < z.size(); ++i) {
    err = std::max(err, std::abs(hv[i] - (gp[i] - gm[i]) / (2 * h)));
    scale = std::max(scale, std::abs(hv[i]));
  }
  return err / scale;
}

std::vector<double> random_vector(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = g.normal();
  return v;
}

}  // namespace

TEST_CASE("least squares: gradient and Hessian–vector product match central differences on a mini-batch") {
  bipq::planted_regression_spec spec;
  spec.samples = 30;
  spec.features = 12;
  spec.nonzeros = 3;
  const auto inst = bipq::make_planted_regression<double>(spec, 7);
  bipq::least_squares_problem<double> p(inst.a, inst.b);
  const std::vector<std::size_t> batch{3, 17, 5, 29, 0};
  const std::vector<double> z = random_vector(12, 1), v = random_vector(12, 2);
  CHECK(gradient_error(p, batch, z) < 1e-7);
  CHECK(hvp_error(p, batch, z, v) < 1e-7);
}

TEST_CASE("least squares: the closed-form lower solution satisfies m⊙∇ℓ(m⊙θ) + γθ = 0 (both linear systems)") {
  for (std::size_t features : {12u, 40u}) {  // n ≥ d and n < d take different branches
    bipq::planted_regression_spec spec;
    spec.samples = 25;
    spec.features = features;
    spec.nonzeros = 4;
    const auto inst = bipq::make_planted_regression<double>(spec, 3);
    bipq::least_squares_problem<double> p(inst.a, inst.b);
    bipq::detail::rng g(5);
    std::vector<double> m(features);
    for (auto& x : m) x = g.uniform();  // a relaxed mask
    const double gamma = 0.3;
    const Eigen::VectorXd theta = p.lower_solution(m, gamma);
    std::vector<double> z(features);
    for (std::size_t j = 0; j < features; ++j) z[j] = m[j] * theta(static_cast<Eigen::Index>(j));
    set_values(p, z);
    const auto idx = all_indices(25);
    const std::vector<double> grad = gradient(p, idx);
    double residual = 0.0;
    for (std::size_t j = 0; j < features; ++j)
      residual = std::max(residual, std::abs(m[j] * grad[j] + gamma * theta(static_cast<Eigen::Index>(j))));
    CHECK(residual < 1e-12);
    CHECK(p.upper_objective(m, gamma) == doctest::Approx(p.loss(z)).epsilon(1e-14));
  }
}

TEST_CASE("least squares: the least-norm solution interpolates when n < d and is orthogonal to the null space") {
  bipq::planted_regression_spec spec;
  spec.samples = 10;
  spec.features = 30;
  spec.nonzeros = 3;
  const auto inst = bipq::make_planted_regression<double>(spec, 11);
  bipq::least_squares_problem<double> p(inst.a, inst.b);
  const Eigen::VectorXd x = p.least_norm_solution();
  CHECK((inst.a * x - inst.b).norm() < 1e-10 * inst.b.norm());
  // x lies in the row space of A: x = Aᵀy for some y.
  const Eigen::VectorXd y = (inst.a * inst.a.transpose()).ldlt().solve(inst.a * x);
  CHECK((inst.a.transpose() * y - x).norm() < 1e-10 * x.norm());
}

TEST_CASE("planted regression: support size, magnitudes, signal-to-noise ratio, determinism") {
  bipq::planted_regression_spec spec;  // n = 200, d = 1000, 20 non-zeros in [1, 2], SNR 10
  const auto a = bipq::make_planted_regression<double>(spec, 42);
  const auto b = bipq::make_planted_regression<double>(spec, 42);
  REQUIRE(a.support.size() == 20);
  for (std::size_t j = 0; j < 1000; ++j) {
    const double x = a.x_true(static_cast<Eigen::Index>(j));
    const bool in = std::binary_search(a.support.begin(), a.support.end(), j);
    if (in) {
      CHECK(std::abs(x) >= 1.0);
      CHECK(std::abs(x) <= 2.0);
    } else {
      CHECK(x == 0.0);
    }
  }
  const Eigen::VectorXd signal = a.a * a.x_true;
  CHECK(signal.squaredNorm() / (200.0 * a.noise_sd * a.noise_sd) == doctest::Approx(10.0).epsilon(1e-12));
  // The empirical noise variance is close to σ² (200 draws: within 30%).
  const double noise_var = (a.b - signal).squaredNorm() / 200.0;
  CHECK(noise_var / (a.noise_sd * a.noise_sd) == doctest::Approx(1.0).epsilon(0.3));
  CHECK(a.a == b.a);
  CHECK(a.b == b.b);
  CHECK(a.support == b.support);
  const auto c = bipq::make_planted_regression<double>(spec, 43);
  CHECK(c.support != a.support);
}

TEST_CASE("logistic: gradient (w and bias) and Hessian–vector product match central differences") {
  const auto inst = bipq::make_planted_classification<double>(40, 8, 3, 2.0, 9);
  bipq::logistic_problem<double> p(inst.x, inst.y);
  REQUIRE(p.parameters().size() == 2);
  CHECK(p.parameters()[1].kind == bipq::parameter_kind::bias);
  const std::vector<std::size_t> batch{1, 4, 9, 16, 25, 36, 39};
  std::vector<double> z = random_vector(9, 4), v = random_vector(9, 5);
  for (auto& x : z) x *= 0.5;
  CHECK(gradient_error(p, batch, z) < 1e-7);
  CHECK(hvp_error(p, batch, z, v) < 1e-7);
}

TEST_CASE("logistic: the loss is stable for huge margins (no overflow) and labels are validated") {
  bipq::logistic_problem<double>::matrix x(2, 1);
  x << 1000.0, -1000.0;
  bipq::logistic_problem<double>::vector y(2);
  y << 1.0, 1.0;
  bipq::logistic_problem<double> p(x, y);
  p.parameters()[0].value[0] = 1.0;
  const std::vector<std::size_t> idx{0, 1};
  const double loss = p.loss_and_gradient(idx);
  CHECK(std::isfinite(loss));
  CHECK(loss == doctest::Approx(500.0).epsilon(1e-12));  // (log(1+e^-1000) + log(1+e^1000)) / 2 ≈ 1000/2
  y << 1.0, 0.5;
  CHECK_THROWS_WITH_AS(bipq::logistic_problem<double>(x, y), "logistic_problem(): y must hold 0 or 1 (index 1)",
                       std::invalid_argument);
}

TEST_CASE("linear: the gradient is the mean coefficient row and the Hessian is zero") {
  const auto c = bipq::make_linear_coefficients<double>(6, 5, 2);
  bipq::linear_problem<double> p(c);
  const std::vector<std::size_t> batch{0, 2, 5};
  const std::vector<double> z = random_vector(5, 8);
  set_values(p, z);
  const double loss = p.loss_and_gradient(batch);
  double expected = 0.0;
  for (std::size_t j = 0; j < 5; ++j) {
    const double mean = (c(0, j) + c(2, j) + c(5, j)) / 3.0;
    CHECK(p.parameters()[0].grad[j] == doctest::Approx(mean).epsilon(1e-14));
    expected += mean * z[j];
  }
  CHECK(loss == doctest::Approx(expected).epsilon(1e-14));
  std::vector<double> out(5, 1.0);
  p.hessian_vector_product(batch, std::span<const double>(z), std::span<double>(out));
  for (double o : out) CHECK(o == 0.0);
}

TEST_CASE("problems reject bad input with messages naming the function and argument") {
  bipq::least_squares_problem<double>::matrix a(3, 2);
  a.setOnes();
  bipq::least_squares_problem<double>::vector b(2);
  b.setZero();
  CHECK_THROWS_WITH_AS(bipq::least_squares_problem<double>(a, b), "least_squares_problem(): b has size 2, expected 3",
                       std::invalid_argument);
  bipq::least_squares_problem<double>::vector b3(3);
  b3 << 0.0, std::nan(""), 1.0;
  CHECK_THROWS_WITH_AS(bipq::least_squares_problem<double>(a, b3),
                       "least_squares_problem(): b contains NaN or Inf (index 1)", std::invalid_argument);
  b3.setZero();
  bipq::least_squares_problem<double> p(a, b3);
  const std::vector<std::size_t> bad{0, 3};
  CHECK_THROWS_WITH_AS(p.loss_and_gradient(bad), "least_squares_problem::loss_and_gradient(): index 3 out of range",
                       std::invalid_argument);
  CHECK_THROWS_AS(p.loss_and_gradient({}), std::invalid_argument);
  bipq::planted_regression_spec spec;
  spec.nonzeros = 2000;
  CHECK_THROWS_WITH_AS(bipq::make_planted_regression<double>(spec, 0),
                       "make_planted_regression(): nonzeros must be <= features", std::invalid_argument);
  spec = {};
  spec.snr = 0.0;
  CHECK_THROWS_AS(bipq::make_planted_regression<double>(spec, 0), std::invalid_argument);
}
