// toy_bilevel: the validation tables of the bi-level solver (BiP) on toy problems with known answers.
//
//   1. Implicit-gradient accuracy on masked least squares: the exact IG and the first-order IG against central
//      differences of F(m) = ℓ(m⊙θ*(m)) (closed-form θ*), as γ varies.
//   2. Planted-support recovery: n = 200, d = 1000, 20 non-zeros of magnitude 1–2 with random signs, Gaussian A,
//      SNR 10 (power), the dense start being the least-norm solution A⁺b. How often each method finds the support
//      exactly (and how many of the 20 it finds on average): one-shot magnitude pruning of A⁺b, iterative hard
//      thresholding, and BiP with each implicit-gradient mode and mask parametrisation.
//   3. When the first-order IG's second term −(1/γ) g⊙m⊙g helps or hurts: first_order against none over γ and the
//      number of lower steps.
//
// Usage: toy_bilevel [--seeds N] [--study-seeds M] [--exact-seeds E]   (defaults 100, 10, 5)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "bipq/mask/top_k.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/solver/bilevel.hpp"
#include "bipq/solver/implicit_gradient.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

/// Number of the planted support's indices that the mask keeps, and whether the mask is exactly the support.
std::pair<std::size_t, bool> score_support(const std::vector<double>& mask, const std::vector<std::size_t>& support) {
  std::size_t hit = 0, kept = 0;
  for (std::size_t j = 0; j < mask.size(); ++j) {
    if (mask[j] == 0.0) continue;
    ++kept;
    hit += std::binary_search(support.begin(), support.end(), j) ? 1u : 0u;
  }
  return {hit, hit == support.size() && kept == support.size()};
}

struct tally {
  std::string name;
  std::size_t exact = 0, runs = 0;
  double overlap = 0.0, seconds = 0.0;
  void add(std::pair<std::size_t, bool> s, double t) {
    exact += s.second ? 1u : 0u;
    overlap += static_cast<double>(s.first);
    seconds += t;
    ++runs;
  }
  void print() const {
    std::printf("| %-44s | %3zu / %-3zu | %6.2f | %8.3f |\n", name.c_str(), exact, runs,
                runs ? overlap / static_cast<double>(runs) : 0.0, runs ? seconds / static_cast<double>(runs) : 0.0);
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Table 1

void implicit_gradient_table() {
  std::printf("## 1. Implicit gradient vs central differences of F(m) = l(m*theta*(m)) (least squares, n = 30, d = 12)\n\n");
  std::printf("| gamma | exact IG rel. error | first-order IG rel. error | none (theta*g) rel. error |\n");
  std::printf("|------:|--------------------:|--------------------------:|--------------------------:|\n");
  bipq::planted_regression_spec spec;
  spec.samples = 30;
  spec.features = 12;
  spec.nonzeros = 4;
  const auto inst = bipq::make_planted_regression<double>(spec, 1);
  bipq::least_squares_problem<double> p(inst.a, inst.b);
  bipq::detail::rng g(101);
  std::vector<double> m(12);
  for (auto& x : m) x = 0.2 + 0.7 * g.uniform();
  std::vector<std::size_t> all(30);
  for (std::size_t i = 0; i < 30; ++i) all[i] = i;
  for (double gamma : {0.01, 0.1, 1.0, 10.0, 100.0}) {
    const Eigen::VectorXd t = p.lower_solution(m, gamma);
    const std::vector<double> theta(t.data(), t.data() + t.size());
    std::vector<double> exact(12), first(12), direct(12), fd(12);
    double loss = 0.0;
    bipq::exact_implicit_gradient(p, all, std::span<const double>(theta), std::span<const double>(m), gamma,
                                  std::span<double>(exact), loss, 200, 1e-14);
    const std::vector<double> grad(p.parameters()[0].grad.begin(), p.parameters()[0].grad.end());
    bipq::first_order_implicit_gradient<double>(grad, theta, m, gamma, first);
    bipq::direct_gradient<double>(grad, theta, direct);
    const double h = 1e-5;
    double scale = 0.0;
    for (std::size_t j = 0; j < 12; ++j) {
      std::vector<double> mp = m, mm = m;
      mp[j] += h;
      mm[j] -= h;
      fd[j] = (p.upper_objective(mp, gamma) - p.upper_objective(mm, gamma)) / (2 * h);
      scale = std::max(scale, std::abs(fd[j]));
    }
    auto error = [&](const std::vector<double>& v) {
      double e = 0.0;
      for (std::size_t j = 0; j < 12; ++j) e = std::max(e, std::abs(v[j] - fd[j]));
      return e / scale;
    };
    std::printf("| %5g | %19.2e | %25.3g | %25.3g |\n", gamma, error(exact), error(first), error(direct));
  }
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Table 2

/// Iterative hard thresholding (Blumensath & Davies 2009): x ← H_k(x − μ Aᵀ(Ax − b)/n) from x = 0, with
/// μ = 7 / λ_max(AᵀA/n) ≈ 0.67 (λ_max ≈ 10.5; the best of a sweep over μ·λ_max ∈ {1, 2, 3, 5, 7, 9, 10, 12} on
/// 20 seeds), 500 iterations.
std::vector<double> iterative_hard_thresholding(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k) {
  const double n = static_cast<double>(a.rows());
  const Eigen::MatrixXd gram = a.transpose() * a / n;
  const double lmax = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(gram, Eigen::EigenvaluesOnly).eigenvalues().maxCoeff();
  const double mu = 7.0 / lmax;
  const auto d = static_cast<std::size_t>(a.cols());
  Eigen::VectorXd x = Eigen::VectorXd::Zero(a.cols());
  std::vector<double> mask(d), values(d);
  for (int it = 0; it < 500; ++it) {
    x -= mu * (a.transpose() * (a * x - b)) / n;
    for (std::size_t j = 0; j < d; ++j) values[j] = x(static_cast<Eigen::Index>(j));
    bipq::magnitude_mask<double>(values, k, mask);
    for (std::size_t j = 0; j < d; ++j) x(static_cast<Eigen::Index>(j)) *= mask[j];
  }
  return mask;
}

/// The BiP settings of the recovery study (docs/bilevel.md explains the choice).
bipq::bilevel_params scores_settings(bipq::implicit_gradient_mode mode) {
  bipq::bilevel_params p;
  p.mask.k = 20;
  p.parametrization = bipq::mask_parametrization::scores;
  p.ig_mode = mode;
  p.gamma = 0.01;
  p.lower_steps = 10;
  p.lower_learning_rate = 0.5;
  p.momentum = 0.0;
  p.upper_learning_rate = 3.0;
  p.iterations = 100;
  p.batch_size = 0;  // full batch
  return p;
}

bipq::bilevel_params relaxed_settings(bipq::implicit_gradient_mode mode) {
  bipq::bilevel_params p = scores_settings(mode);
  p.parametrization = bipq::mask_parametrization::relaxed;
  p.gamma = 0.01;
  p.upper_learning_rate = 0.03;
  p.iterations = 300;
  return p;
}

/// The best setting found (docs/bilevel.md): relaxed masks started uniformly at k/n, no second IG term, 40 lower
/// steps per upper step (θ close to θ*(m)), 600 iterations.
bipq::bilevel_params best_settings() {
  bipq::bilevel_params p = relaxed_settings(bipq::implicit_gradient_mode::none);
  p.start = bipq::relaxed_start::uniform;
  p.lower_steps = 40;
  p.iterations = 600;
  return p;
}

std::pair<std::size_t, bool> run_bip(const bipq::planted_regression<double>& inst, const Eigen::VectorXd& dense,
                                     bipq::bilevel_params p, std::uint64_t seed) {
  bipq::least_squares_problem<double> problem(inst.a, inst.b);
  for (std::size_t j = 0; j < problem.dimension(); ++j) problem.parameters()[0].value[j] = dense(static_cast<Eigen::Index>(j));
  p.seed = seed;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  return score_support(r.masks[0], inst.support);
}

void recovery_table(std::size_t seeds, std::size_t exact_seeds) {
  using mode = bipq::implicit_gradient_mode;
  std::printf("## 2. Planted-support recovery (n = 200, d = 1000, k = 20, SNR 10), %zu seeds\n\n", seeds);
  std::printf("| method                                       | exact     | mean hits of 20 | s / run |\n");
  std::printf("|----------------------------------------------|-----------|--------:|---------:|\n");
  tally magnitude{"one-shot magnitude pruning of A+b"}, iht{"iterative hard thresholding"};
  tally s_first{"BiP scores, first_order"}, s_none{"BiP scores, none"};
  tally r_first{"BiP relaxed, first_order"}, r_none{"BiP relaxed, none"};
  tally r_exact{"BiP relaxed, exact (first " + std::to_string(exact_seeds) + " seeds)"};
  tally r_best{"BiP relaxed uniform, 40 lower steps, none"};
  for (std::size_t seed = 0; seed < seeds; ++seed) {
    const auto inst = bipq::make_planted_regression<double>(bipq::planted_regression_spec{}, seed);
    bipq::least_squares_problem<double> problem(inst.a, inst.b);
    auto t = clock_type::now();
    const Eigen::VectorXd dense = problem.least_norm_solution();
    std::vector<double> values(dense.data(), dense.data() + dense.size()), mask(values.size());
    bipq::magnitude_mask<double>(values, 20, mask);
    magnitude.add(score_support(mask, inst.support), seconds_since(t));
    t = clock_type::now();
    const auto iht_mask = iterative_hard_thresholding(inst.a, inst.b, 20);
    iht.add(score_support(iht_mask, inst.support), seconds_since(t));
    auto bip = [&](tally& row, bipq::bilevel_params p) {
      const auto start = clock_type::now();
      const auto s = run_bip(inst, dense, p, seed);
      row.add(s, seconds_since(start));
    };
    bip(s_first, scores_settings(mode::first_order));
    bip(s_none, scores_settings(mode::none));
    bip(r_first, relaxed_settings(mode::first_order));
    bip(r_none, relaxed_settings(mode::none));
    if (seed < exact_seeds) bip(r_exact, relaxed_settings(mode::exact));
    bip(r_best, best_settings());
  }
  for (const tally* t : {&magnitude, &iht, &s_first, &s_none, &r_first, &r_none, &r_exact, &r_best}) t->print();
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Table 3

void second_term_table(std::size_t seeds) {
  using mode = bipq::implicit_gradient_mode;
  std::printf("## 3. The 1/gamma term: first_order vs none (relaxed masks, 300 iterations, beta = 0.03), %zu seeds\n\n",
              seeds);
  std::printf("| gamma | lower steps | first_order exact | first_order hits | none exact | none hits |\n");
  std::printf("|------:|------------:|------------------:|-----------------:|-----------:|----------:|\n");
  std::vector<bipq::planted_regression<double>> instances;
  std::vector<Eigen::VectorXd> dense;
  for (std::size_t seed = 0; seed < seeds; ++seed) {
    instances.push_back(bipq::make_planted_regression<double>(bipq::planted_regression_spec{}, seed));
    bipq::least_squares_problem<double> problem(instances.back().a, instances.back().b);
    dense.push_back(problem.least_norm_solution());
  }
  for (double gamma : {0.001, 0.01, 0.1, 1.0}) {
    for (std::size_t steps : {1u, 10u}) {
      tally first{"first"}, none{"none"};
      for (std::size_t seed = 0; seed < seeds; ++seed) {
        for (auto [row, m] : {std::pair<tally*, mode>{&first, mode::first_order}, {&none, mode::none}}) {
          bipq::bilevel_params p = relaxed_settings(m);
          p.gamma = gamma;
          p.lower_steps = steps;
          p.iterations = 300;
          p.upper_learning_rate = 0.03;
          row->add(run_bip(instances[seed], dense[seed], p, seed), 0.0);
        }
      }
      std::printf("| %5g | %11zu | %12zu / %-3zu | %16.2f | %5zu / %-3zu | %9.2f |\n", gamma, steps, first.exact, first.runs,
                  first.overlap / static_cast<double>(seeds), none.exact, none.runs,
                  none.overlap / static_cast<double>(seeds));
    }
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear row by row also when redirected to a file
  std::size_t seeds = 100, study_seeds = 10, exact_seeds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::size_t v = static_cast<std::size_t>(std::strtoull(argv[i + 1], nullptr, 10));
    if (std::strcmp(argv[i], "--seeds") == 0) seeds = v;
    else if (std::strcmp(argv[i], "--study-seeds") == 0) study_seeds = v;
    else if (std::strcmp(argv[i], "--exact-seeds") == 0) exact_seeds = v;
    else {
      std::fprintf(stderr, "usage: %s [--seeds N] [--study-seeds M] [--exact-seeds E]\n", argv[0]);
      return 2;
    }
  }
  implicit_gradient_table();
  recovery_table(seeds, exact_seeds);
  second_term_table(study_seeds);
  return 0;
}
