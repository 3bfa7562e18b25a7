// The implicit gradient of BiP against its definition: conjugate gradients against a direct solve; on a loss linear
// in z the first-order IG is the exact one; on least squares the exact IG is the derivative of
// F(m) = ℓ(m⊙θ*(m)) (central differences with the closed-form θ*), and the first-order IG's error shrinks as γ grows.
#include <doctest/doctest.h>

#include <cmath>
#include <span>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/linear.hpp"
#include "bipq/solver/conjugate_gradient.hpp"
#include "bipq/solver/implicit_gradient.hpp"

namespace {

std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  return idx;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
  return e;
}
double max_abs(const std::vector<double>& a) {
  double e = 0.0;
  for (double x : a) e = std::max(e, std::abs(x));
  return e;
}

struct ls_fixture {
  bipq::planted_regression<double> inst;
  std::vector<double> m;
  explicit ls_fixture(std::uint64_t seed) {
    bipq::planted_regression_spec spec;
    spec.samples = 30;
    spec.features = 12;
    spec.nonzeros = 4;
    inst = bipq::make_planted_regression<double>(spec, seed);
    bipq::detail::rng g(seed + 100);
    m.resize(12);
    for (auto& x : m) x = 0.2 + 0.7 * g.uniform();  // relaxed, away from the box's faces
  }
};

/// Exact and first-order IG of the least-squares problem at θ = θ*(m), full batch.
void ls_implicit_gradients(const ls_fixture& f, double gamma, std::vector<double>& exact, std::vector<double>& first) {
  bipq::least_squares_problem<double> p(f.inst.a, f.inst.b);
  const Eigen::VectorXd t = p.lower_solution(f.m, gamma);
  const std::vector<double> theta(t.data(), t.data() + t.size());
  const auto idx = all_indices(p.num_samples());
  exact.assign(12, 0.0);
  double loss = 0.0;
  const auto cg = bipq::exact_implicit_gradient(p, idx, std::span<const double>(theta), std::span<const double>(f.m),
                                                gamma, std::span<double>(exact), loss, 200, 1e-14);
  REQUIRE(cg.converged);
  // g at z = m⊙θ* (written by exact_implicit_gradient)
  const std::vector<double> g(p.parameters()[0].grad.begin(), p.parameters()[0].grad.end());
  first.assign(12, 0.0);
  bipq::first_order_implicit_gradient<double>(g, theta, f.m, gamma, first);
}

}  // namespace

TEST_CASE("conjugate_gradient solves a symmetric positive definite system to the tolerance") {
  bipq::detail::rng g(3);
  Eigen::MatrixXd b(20, 20);
  for (Eigen::Index i = 0; i < 20; ++i)
    for (Eigen::Index j = 0; j < 20; ++j) b(i, j) = g.normal();
  const Eigen::MatrixXd a = b * b.transpose() + 0.5 * Eigen::MatrixXd::Identity(20, 20);
  std::vector<double> rhs(20), x(20);
  for (auto& r : rhs) r = g.normal();
  auto apply = [&](std::span<const double> p, std::span<double> out) {
    Eigen::Map<Eigen::VectorXd>(out.data(), 20) = a * Eigen::Map<const Eigen::VectorXd>(p.data(), 20);
  };
  const auto r = bipq::conjugate_gradient<double>(apply, rhs, x, 200, 1e-12);
  CHECK(r.converged);
  CHECK_FALSE(r.indefinite);
  const Eigen::VectorXd direct = a.ldlt().solve(Eigen::Map<const Eigen::VectorXd>(rhs.data(), 20));
  CHECK((Eigen::Map<const Eigen::VectorXd>(x.data(), 20) - direct).norm() < 1e-9 * direct.norm());
}

TEST_CASE("conjugate_gradient reports an indefinite operator instead of dividing by pᵀAp ≤ 0") {
  auto apply = [](std::span<const double> p, std::span<double> out) {
    out[0] = p[0];
    out[1] = -p[1];
  };
  std::vector<double> rhs{0.0, 1.0}, x(2);
  const auto r = bipq::conjugate_gradient<double>(apply, rhs, x, 10, 1e-12);
  CHECK(r.indefinite);
  CHECK_FALSE(r.converged);
}

TEST_CASE("first_order_implicit_gradient is g ⊙ (θ − (1/γ) m⊙g) and checks its arguments") {
  const std::vector<double> g{1.0, -2.0, 0.5}, theta{0.3, 0.1, -4.0}, m{1.0, 0.0, 0.25};
  std::vector<double> out(3);
  bipq::first_order_implicit_gradient<double>(g, theta, m, 0.5, out);
  for (std::size_t i = 0; i < 3; ++i) CHECK(out[i] == doctest::Approx(g[i] * (theta[i] - m[i] * g[i] / 0.5)));
  std::vector<double> short_out(2);
  CHECK_THROWS_WITH_AS(bipq::first_order_implicit_gradient<double>(g, theta, m, 0.5, short_out),
                       "first_order_implicit_gradient(): out has size 2, expected 3", std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::first_order_implicit_gradient<double>(g, theta, m, 0.0, out),
                       "first_order_implicit_gradient(): gamma must be > 0", std::invalid_argument);
}

TEST_CASE("linear loss: the first-order IG equals the exact IG (to 1e-10) and dF/dm = −2 m⊙c̄²/γ") {
  const auto c = bipq::make_linear_coefficients<double>(16, 30, 5);
  bipq::linear_problem<double> p(c);
  bipq::detail::rng g(6);
  const auto idx = all_indices(16);
  for (double gamma : {0.01, 1.0, 100.0}) {
    std::vector<double> m(30), theta(30), exact(30), first(30);
    for (auto& x : m) x = g.uniform() < 0.3 ? 0.0 : g.uniform();
    for (auto& x : theta) x = g.normal();  // any θ, not only θ*: the identity holds for every θ when H = 0
    double loss = 0.0;
    bipq::exact_implicit_gradient(p, idx, std::span<const double>(theta), std::span<const double>(m), gamma,
                                  std::span<double>(exact), loss);
    const std::vector<double> grad(p.parameters()[0].grad.begin(), p.parameters()[0].grad.end());
    bipq::first_order_implicit_gradient<double>(grad, theta, m, gamma, first);
    CHECK(max_abs_diff(exact, first) <= 1e-10 * std::max(1.0, max_abs(exact)));
    // At θ = θ*(m) = −m⊙c̄/γ, both equal the derivative of F(m) = −Σ m_j² c̄_j² / γ.
    for (std::size_t j = 0; j < 30; ++j) theta[j] = -m[j] * grad[j] / gamma;
    bipq::exact_implicit_gradient(p, idx, std::span<const double>(theta), std::span<const double>(m), gamma,
                                  std::span<double>(exact), loss);
    for (std::size_t j = 0; j < 30; ++j)
      CHECK(exact[j] == doctest::Approx(-2.0 * m[j] * grad[j] * grad[j] / gamma).epsilon(1e-12));
  }
}

TEST_CASE("least squares: the exact IG matches central differences of F(m) = ℓ(m⊙θ*(m)) to 1e-6") {
  for (std::uint64_t seed : {1u, 2u}) {
    const ls_fixture f(seed);
    bipq::least_squares_problem<double> p(f.inst.a, f.inst.b);
    for (double gamma : {0.01, 0.1, 1.0, 10.0}) {
      std::vector<double> exact, first;
      ls_implicit_gradients(f, gamma, exact, first);
      std::vector<double> fd(12);
      const double h = 1e-5;
      for (std::size_t j = 0; j < 12; ++j) {
        std::vector<double> mp = f.m, mm = f.m;
        mp[j] += h;
        mm[j] -= h;
        fd[j] = (p.upper_objective(mp, gamma) - p.upper_objective(mm, gamma)) / (2 * h);
      }
      const double scale = max_abs(fd);
      const double exact_error = max_abs_diff(exact, fd) / scale;
      const double first_error = max_abs_diff(first, fd) / scale;
      MESSAGE("seed " << seed << " gamma " << gamma << ": exact IG relative error " << exact_error
                      << ", first-order IG relative error " << first_error);
      CHECK(exact_error < 1e-6);
      // The first-order IG ignores ∇²_z ℓ = AᵀA/n, which is not small here: it is a different vector.
      CHECK(first_error > 10 * exact_error);
    }
  }
}

TEST_CASE("least squares: the first-order IG's relative error shrinks as γ grows (the Hessian term is O(1/γ²))") {
  const ls_fixture f(4);
  bipq::least_squares_problem<double> p(f.inst.a, f.inst.b);
  std::vector<double> errors;
  for (double gamma : {1.0, 10.0, 100.0, 1000.0}) {
    std::vector<double> exact, first;
    ls_implicit_gradients(f, gamma, exact, first);
    errors.push_back(max_abs_diff(exact, first) / max_abs(exact));
  }
  for (std::size_t i = 1; i < errors.size(); ++i) CHECK(errors[i] < errors[i - 1]);
  CHECK(errors.back() < 0.05);
}

TEST_CASE("least squares: the first-order IG's error depends on ‖∇²ℓ‖/γ alone and is O(‖∇²ℓ‖/γ) when that is small") {
  // Scaling A by s and γ by s² leaves F(m) unchanged (θ ↦ θ/s), so the relative error of the first-order IG is a
  // function of ‖H‖/γ = s² λ_max(AᵀA/n)/γ.
  const ls_fixture f(5);
  const Eigen::MatrixXd a0 = f.inst.a;
  const double h = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(a0.transpose() * a0 / 30.0).eigenvalues().maxCoeff();
  auto error_at = [&](double gamma, double ratio) {
    ls_fixture g = f;
    g.inst.a = f.inst.a * std::sqrt(ratio * gamma / h);
    std::vector<double> exact, first;
    ls_implicit_gradients(g, gamma, exact, first);
    double e = 0.0, r = 0.0;
    for (std::size_t j = 0; j < exact.size(); ++j) {
      e += (first[j] - exact[j]) * (first[j] - exact[j]);
      r += exact[j] * exact[j];
    }
    return std::sqrt(e / r);
  };
  for (double ratio : {0.01, 0.1, 1.0, 10.0}) {
    const double reference = error_at(1.0, ratio);
    for (double gamma : {0.01, 100.0}) CHECK(error_at(gamma, ratio) == doctest::Approx(reference).epsilon(1e-6));
    if (ratio <= 0.1) CHECK(reference <= ratio);  // safe: an error below ‖H‖/γ
    else CHECK(reference >= 0.05 * ratio);         // not safe: the error grows with ‖H‖/γ
  }
}
