// toy_bilevel: the validation studies of the bi-level solver (BiP) on toy problems with known answers.
//
//   --study ig           1. the exact and first-order implicit gradients against central differences of
//                           F(m) = ℓ(m⊙θ*(m)) (closed-form θ*), as γ varies; 2. where the Hessian-free assumption
//                           holds: the first-order IG's relative error against the exact IG as a function of γ and
//                           of ‖∇²ℓ‖/γ on the planted least-squares problem.
//   --study phase        exact support recovery against the number of samples n (d = 1000, k = 20, magnitudes 1–2
//                           with random signs, Gaussian A, SNR 10): BiP (the paper's scores with the first-order IG,
//                           and the best documented mode) and the compressed-sensing baselines
//                           (problems/sparse_recovery.hpp), with Wilson 95% intervals, the 50% points and
//                           McNemar's exact test at n = 200; one CSV row per method, n and seed (--csv).
//   --study second-term  when the first-order IG's second term −(1/γ) g⊙m⊙g helps or hurts (first_order against
//                           none over γ and the number of lower steps).
//   --study tune         the baselines' steps and λ constant, chosen on seeds 1000–1049;
//   --study tune-bip     variants of BiP's best mode (slower upper steps), on seeds 1000–1029; tune-weights,
//                           tune-anneal and tune-gamma: the released code's parametrisation, the annealed kept
//                           count and the ridge weight γ with the upper rate β, on the same seeds.
//   --study failures     each method's failures at n = 150 and 200 split into optimisation failures (the planted
//                           support fits the data better than the found one) and statistical ones.
//
// Usage: toy_bilevel [--study ig|phase|second-term|tune|tune-bip|tune-weights|tune-anneal|tune-gamma|failures|all] [--seeds N] [--samples 100,125,...] [--threads T]
//                    [--csv FILE] [--study-seeds M]
// Results depend on the seed only, not on the number of threads.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <Eigen/Dense>

#include "bipq/mask/top_k.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/sparse_recovery.hpp"
#include "bipq/solver/bilevel.hpp"
#include "bipq/solver/implicit_gradient.hpp"

#include "command_line.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

/// Number of the planted support's indices found, and whether the found set is exactly the support.
std::pair<std::size_t, bool> score_support(const std::vector<std::size_t>& found, const std::vector<std::size_t>& support) {
  std::size_t hit = 0;
  for (std::size_t j : found) hit += std::binary_search(support.begin(), support.end(), j) ? 1u : 0u;
  return {hit, bipq::exact_recovery(found, support)};
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
};

/// Runs f(0), ..., f(count − 1) on `threads` threads (each index once; the results go where f puts them).
void parallel_for(std::size_t count, std::size_t threads, const std::function<void(std::size_t)>& f) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < count; i = next++) f(i);
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < std::max<std::size_t>(threads, 1); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

// ---------------------------------------------------------------------------------------------------------------
// Methods

/// The paper's BiP on this problem: scores (straight-through top-k), first-order IG, full batch.
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

/// BiP's best documented mode (docs/bilevel.md): relaxed masks started uniformly at k/d, no second IG term, 40 lower
/// steps per upper step (θ close to θ*(m)), 600 iterations.
bipq::bilevel_params best_settings() {
  bipq::bilevel_params p = relaxed_settings(bipq::implicit_gradient_mode::none);
  p.start = bipq::relaxed_start::uniform;
  p.lower_steps = 40;
  p.iterations = 600;
  return p;
}

/// The baselines' settings, chosen by `--study tune` on seeds 1000–1049 (docs/bilevel.md).
constexpr double iht_step = 0.7;         // μ of IHT, in units of the 1/n-scaled gradient
constexpr double htp_step = 1.0;         // Foucart's μ = 1
constexpr double lasso_constant = 0.75;  // λ = c σ √(2 ln d / n), σ the instance's noise level

/// One drawn instance with what every method starts from.
struct recovery_case {
  bipq::planted_regression<double> inst;
  Eigen::MatrixXd a;      // column-major copy for the baselines
  Eigen::VectorXd dense;  // A⁺b, the dense start of BiP
  recovery_case(std::size_t n, std::uint64_t seed) {
    bipq::planted_regression_spec spec;
    spec.samples = n;
    inst = bipq::make_planted_regression<double>(spec, seed);
    a = inst.a;
    dense = bipq::least_norm_solution(a, inst.b);
  }
};

/// BiP from the dense start A⁺b on a problem with the Gram cache; the support of the final mask.
std::vector<std::size_t> run_bip(bipq::least_squares_problem<double>& problem, const Eigen::VectorXd& dense,
                                 bipq::bilevel_params p, std::uint64_t seed) {
  for (std::size_t j = 0; j < problem.dimension(); ++j) problem.parameters()[0].value[j] = dense(static_cast<Eigen::Index>(j));
  p.seed = seed;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  std::vector<std::size_t> s;
  for (std::size_t j = 0; j < r.masks[0].size(); ++j)
    if (r.masks[0][j] != 0.0) s.push_back(j);
  return s;
}

/// A method of the phase study: a name and what it finds on a case (the Gram-cached problem is shared by the BiP runs).
struct recovery_method {
  std::string name;  // as printed
  std::string key;   // as in the CSV
  bool is_bip;
  std::function<std::vector<std::size_t>(const recovery_case&, bipq::least_squares_problem<double>&, std::uint64_t)> run;
};

std::vector<recovery_method> baseline_methods(double iht_mu = iht_step, double htp_mu = htp_step,
                                              double lasso_c = lasso_constant) {
  constexpr std::size_t k = 20;  // the planted support size (a constant: lambdas use it without capturing it)
  std::vector<recovery_method> m;
  m.push_back({"magnitude pruning of A+b", "magnitude", false, [](const recovery_case& c, auto&, std::uint64_t) {
                 return bipq::least_norm_magnitude_pruning(c.a, c.inst.b, k).support;
               }});
  m.push_back({"IHT (mu " + std::to_string(iht_mu).substr(0, 4) + ")", "iht", false,
               [iht_mu](const recovery_case& c, auto&, std::uint64_t) {
                 bipq::iht_params p;
                 p.step = iht_mu;
                 return bipq::iterative_hard_thresholding(c.a, c.inst.b, k, p).support;
               }});
  m.push_back({"HTP (mu " + std::to_string(htp_mu).substr(0, 4) + ")", "htp", false,
               [htp_mu](const recovery_case& c, auto&, std::uint64_t) {
                 bipq::htp_params p;
                 p.step = htp_mu;
                 return bipq::hard_thresholding_pursuit(c.a, c.inst.b, k, p).support;
               }});
  m.push_back({"OMP", "omp", false, [](const recovery_case& c, auto&, std::uint64_t) {
                 return bipq::orthogonal_matching_pursuit(c.a, c.inst.b, k).support;
               }});
  m.push_back({"Lasso (FISTA) + LS debias", "lasso", false, [lasso_c](const recovery_case& c, auto&, std::uint64_t) {
                 bipq::lasso_params p;
                 p.lambda = bipq::universal_lasso_lambda(c.inst.noise_sd, c.inst.b.size(), c.a.cols(), lasso_c);
                 return bipq::debiased_lasso(c.a, c.inst.b, k, p).support;
               }});
  return m;
}

/// BiP with the kept count annealed: one solver run per k of `ks` (the last being the target), each started from the
/// previous run's pruned weights, `p.iterations` each. The support of the final mask.
recovery_method bip_annealed_method(std::string name, std::string key, bipq::bilevel_params p,
                                    std::vector<std::size_t> ks) {
  return {std::move(name), std::move(key), true,
          [p, ks](const recovery_case& c, bipq::least_squares_problem<double>& problem, std::uint64_t seed) {
            Eigen::VectorXd start = c.dense;
            std::vector<std::size_t> support;
            for (std::size_t k : ks) {
              bipq::bilevel_params q = p;
              q.mask.k = k;
              support = run_bip(problem, start, q, seed);
              for (std::size_t j = 0; j < problem.dimension(); ++j)
                start(static_cast<Eigen::Index>(j)) = problem.parameters()[0].value[j];
            }
            return support;
          }};
}

recovery_method bip_method(std::string name, std::string key, bipq::bilevel_params p) {
  return {std::move(name), std::move(key), true,
          [p](const recovery_case& c, bipq::least_squares_problem<double>& problem, std::uint64_t seed) {
            return run_bip(problem, c.dense, p, seed);
          }};
}

struct outcome {
  std::size_t hits = 0;
  bool exact = false;
  double seconds = 0.0;
  /// ‖b − A x_S‖² on the found support minus that on the planted one (x_S: least squares on S); > 0 when the planted
  /// support fits the training data better.
  double excess_residual = 0.0;
};

/// ‖b − A x‖² with x = least squares on `support`.
double support_residual(const recovery_case& c, const std::vector<std::size_t>& support) {
  return (c.inst.b - c.a * bipq::least_squares_on_support(c.a, c.inst.b, support)).squaredNorm();
}

/// outcomes[method][sample index][seed]: every method on every (n, seed), on `threads` threads.
std::vector<std::vector<std::vector<outcome>>> run_recovery(const std::vector<recovery_method>& methods,
                                                            const std::vector<std::size_t>& samples,
                                                            std::uint64_t first_seed, std::size_t seeds,
                                                            std::size_t threads) {
  std::vector<std::vector<std::vector<outcome>>> out(
      methods.size(), std::vector<std::vector<outcome>>(samples.size(), std::vector<outcome>(seeds)));
  bool any_bip = false;
  for (const auto& m : methods) any_bip |= m.is_bip;
  // Largest n first: the slowest tasks start early and the threads finish together.
  std::vector<std::size_t> order(samples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return samples[x] > samples[y]; });
  parallel_for(samples.size() * seeds, threads, [&](std::size_t task) {
    const std::size_t ni = order[task / seeds], s = task % seeds;
    const std::uint64_t seed = first_seed + s;
    const recovery_case c(samples[ni], seed);
    bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
    if (any_bip) problem.cache_gram();
    for (std::size_t mi = 0; mi < methods.size(); ++mi) {
      const auto t = clock_type::now();
      const std::vector<std::size_t> found = methods[mi].run(c, problem, seed);
      const auto [hits, exact] = score_support(found, c.inst.support);
      const double seconds = seconds_since(t);
      out[mi][ni][s] = {hits, exact, seconds, support_residual(c, found) - support_residual(c, c.inst.support)};
    }
  });
  return out;
}

std::size_t count_exact(const std::vector<outcome>& v) {
  std::size_t c = 0;
  for (const auto& o : v) c += o.exact ? 1u : 0u;
  return c;
}

/// The n at which the recovery fraction first reaches 1/2, by linear interpolation between grid points; NaN if it
/// never does, the first n if it starts above.
double half_point(const std::vector<std::size_t>& samples, const std::vector<double>& fraction) {
  if (fraction.empty()) return std::nan("");
  if (fraction[0] >= 0.5) return static_cast<double>(samples[0]);
  for (std::size_t i = 1; i < samples.size(); ++i)
    if (fraction[i] >= 0.5) {
      const double t = (0.5 - fraction[i - 1]) / (fraction[i] - fraction[i - 1]);
      return static_cast<double>(samples[i - 1]) + t * static_cast<double>(samples[i] - samples[i - 1]);
    }
  return std::nan("");
}
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
// Phase transition

std::vector<recovery_method> phase_methods() {
  std::vector<recovery_method> m = baseline_methods();
  m.push_back(bip_method("BiP paper (scores, first_order)", "bip_paper", scores_settings(bipq::implicit_gradient_mode::first_order)));
  bipq::bilevel_params annealed = best_settings();
  annealed.iterations = 200;
  m.push_back(bip_annealed_method("BiP best documented (relaxed, none, k 40-30-20)", "bip_best", annealed, {40, 30, 20}));
  return m;
}

void phase_study(const std::vector<std::size_t>& samples, std::size_t seeds, std::size_t threads, const std::string& csv) {
  const std::vector<recovery_method> methods = phase_methods();
  const auto start = clock_type::now();
  const auto out = run_recovery(methods, samples, 0, seeds, threads);
  const double wall = seconds_since(start);

  std::printf("## 3. Exact support recovery against n (d = 1000, k = 20, SNR 10), seeds 0-%zu: count [Wilson 95%%]\n\n",
              seeds - 1);
  std::printf("| method |");
  for (std::size_t n : samples) std::printf(" n = %zu |", n);
  std::printf(" 50%% point | s / run |\n|---|");
  for (std::size_t i = 0; i < samples.size(); ++i) std::printf("---:|");
  std::printf("---:|---:|\n");
  std::vector<double> halves(methods.size());
  for (std::size_t mi = 0; mi < methods.size(); ++mi) {
    std::printf("| %s |", methods[mi].name.c_str());
    std::vector<double> fraction;
    double secs = 0.0;
    for (std::size_t ni = 0; ni < samples.size(); ++ni) {
      const std::size_t c = count_exact(out[mi][ni]);
      const auto w = bipq::wilson_interval(c, seeds);
      std::printf(" %zu [%.0f, %.0f] |", c, 100.0 * w.low, 100.0 * w.high);
      fraction.push_back(static_cast<double>(c) / static_cast<double>(seeds));
      for (const auto& o : out[mi][ni]) secs += o.seconds;
    }
    halves[mi] = half_point(samples, fraction);
    std::printf(" %.0f | %.3f |\n", halves[mi], secs / static_cast<double>(seeds * samples.size()));
  }
  std::printf("\nCounts of %zu seeds; the interval in percent. 50%% point: n where the recovery fraction first reaches "
              "1/2 (linear between grid points).\n",
              seeds);

  // The best baseline: the lowest 50% point (ties: the higher count at n = 200).
  std::size_t best = 0, at200 = samples.size();
  for (std::size_t ni = 0; ni < samples.size(); ++ni)
    if (samples[ni] == 200) at200 = ni;
  for (std::size_t mi = 1; mi < methods.size(); ++mi) {
    if (methods[mi].is_bip) continue;
    const bool lower = halves[mi] < halves[best] || (std::isnan(halves[best]) && !std::isnan(halves[mi]));
    if (lower) best = mi;
  }
  std::printf("\nBest baseline (lowest 50%% point): %s, at n = %.0f.\n", methods[best].name.c_str(), halves[best]);
  for (std::size_t mi = 0; mi < methods.size(); ++mi)
    if (methods[mi].is_bip)
      std::printf("%s: 50%% point %.0f, %+.1f%% from the best baseline's.\n", methods[mi].name.c_str(), halves[mi],
                  100.0 * (halves[mi] / halves[best] - 1.0));

  if (at200 < samples.size()) {
    std::printf("\n## McNemar's exact test at n = 200 (paired by seed) against %s\n\n", methods[best].name.c_str());
    std::printf("| method | its count | baseline's count | only the method | only the baseline | p (two-sided) |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (std::size_t mi = 0; mi < methods.size(); ++mi) {
      if (!methods[mi].is_bip) continue;
      std::size_t only_m = 0, only_b = 0;
      for (std::size_t s = 0; s < seeds; ++s) {
        const bool x = out[mi][at200][s].exact, y = out[best][at200][s].exact;
        only_m += x && !y ? 1u : 0u;
        only_b += y && !x ? 1u : 0u;
      }
      std::printf("| %s | %zu | %zu | %zu | %zu | %.3g |\n", methods[mi].name.c_str(), count_exact(out[mi][at200]),
                  count_exact(out[best][at200]), only_m, only_b, bipq::mcnemar_exact_p(only_m, only_b));
    }
  }
  std::printf("\nWall time of the sweep: %.1f s on %zu thread(s).\n\n", wall, threads);

  if (!csv.empty()) {
    FILE* f = std::fopen(csv.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "toy_bilevel: cannot write %s\n", csv.c_str());
      std::exit(1);
    }
    std::fprintf(f, "method,n,seed,exact,hits,seconds\n");
    for (std::size_t mi = 0; mi < methods.size(); ++mi)
      for (std::size_t ni = 0; ni < samples.size(); ++ni)
        for (std::size_t s = 0; s < seeds; ++s) {
          const outcome& o = out[mi][ni][s];
          std::fprintf(f, "%s,%zu,%zu,%d,%zu,%.4f\n", methods[mi].key.c_str(), samples[ni], s, o.exact ? 1 : 0, o.hits,
                       o.seconds);
        }
    std::fclose(f);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tuning, on seeds 1000-1049 only

void print_counts(const std::vector<recovery_method>& methods, const std::vector<std::size_t>& samples,
                  const std::vector<std::vector<std::vector<outcome>>>& out) {
  std::printf("| setting |");
  for (std::size_t n : samples) std::printf(" n = %zu |", n);
  std::printf("\n|---|");
  for (std::size_t i = 0; i < samples.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (std::size_t mi = 0; mi < methods.size(); ++mi) {
    std::printf("| %s |", methods[mi].name.c_str());
    for (std::size_t ni = 0; ni < samples.size(); ++ni) std::printf(" %zu |", count_exact(out[mi][ni]));
    std::printf("\n");
  }
  std::printf("\n");
}

/// BiP variants around the best documented mode (relaxed, uniform start, none, γ = 0.01, α = 0.5, full batch):
/// slower upper steps with more iterations, on seeds 1000-1029 in the transition region.
void tune_bip_study(std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200};
  std::printf("## BiP variants on seeds 1000-1029 (exact recoveries of 30)\n\n");
  std::vector<recovery_method> methods;
  methods.push_back(bip_method("documented best: 40 lower steps, beta 0.03, 600 iterations", "a", best_settings()));
  for (auto [steps, beta, iterations] : {std::tuple<std::size_t, double, std::size_t>{10, 0.01, 1800}, {20, 0.01, 1200},
                                         {10, 0.003, 3000}}) {
    bipq::bilevel_params p = best_settings();
    p.lower_steps = steps;
    p.upper_learning_rate = beta;
    p.iterations = iterations;
    methods.push_back(bip_method(std::to_string(steps) + " lower steps, beta " + std::to_string(beta).substr(0, 5) + ", " +
                                     std::to_string(iterations) + " iterations",
                                 "v", p));
  }
  print_counts(methods, samples, run_recovery(methods, samples, 1000, 30, threads));
}

/// The released BiP code's parametrisation (scores = |θ|, the upper step moving θ) on the same seeds: IG mode, lower
/// steps and upper rate.
void tune_weights_study(std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200};
  std::printf("## The released code's parametrisation (scores = |theta|) on seeds 1000-1029 (of 30)\n\n");
  std::vector<recovery_method> methods;
  for (auto mode : {bipq::implicit_gradient_mode::none, bipq::implicit_gradient_mode::first_order})
    for (std::size_t steps : {std::size_t{10}, std::size_t{40}})
      for (double beta : {0.3, 1.0, 3.0, 10.0}) {
        bipq::bilevel_params p = scores_settings(mode);
        p.parametrization = bipq::mask_parametrization::weights;
        p.lower_steps = steps;
        p.upper_learning_rate = beta;
        p.iterations = 300;
        methods.push_back(bip_method(std::string(mode == bipq::implicit_gradient_mode::none ? "none" : "first_order") +
                                         ", " + std::to_string(steps) + " lower steps, beta " +
                                         std::to_string(beta).substr(0, 4),
                                     "w", p));
      }
  print_counts(methods, samples, run_recovery(methods, samples, 1000, 30, threads));
}

/// BiP's best documented mode with the kept count annealed from 3k or 2k down to k.
void tune_anneal_study(std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200};
  std::printf("## BiP with the kept count annealed, seeds 1000-1029 (of 30)\n\n");
  std::vector<recovery_method> methods;
  methods.push_back(bip_method("documented best: 40 lower steps, beta 0.03, 600 iterations", "a", best_settings()));
  for (auto ks : {std::vector<std::size_t>{60, 40, 20}, std::vector<std::size_t>{40, 30, 20},
                  std::vector<std::size_t>{40, 20}, std::vector<std::size_t>{100, 60, 40, 30, 20}})
    for (std::size_t iterations : {std::size_t{100}, std::size_t{200}}) {
      bipq::bilevel_params p = best_settings();
      p.iterations = iterations;
      std::string name = "k";
      for (std::size_t k : ks) {
        name.push_back(' ');
        name.append(std::to_string(k));
      }
      name.append(", ").append(std::to_string(iterations)).append(" iterations each");
      methods.push_back(bip_annealed_method(name, "k", p, ks));
    }
  print_counts(methods, samples, run_recovery(methods, samples, 1000, 30, threads));
}

/// BiP's best documented mode (k annealed 40 → 30 → 20) at larger ridge weights γ and upper rates β: the relaxed
/// problem is a squared-ℓ1 Lasso with λ ≈ γ‖z‖₁/k (docs/bilevel.md), so γ sets how hard it shrinks.
void tune_gamma_study(std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200};
  std::printf("## BiP, k annealed 40 30 20, ridge weight gamma and upper rate beta, seeds 1000-1029 (of 30)\n\n");
  std::vector<recovery_method> methods;
  for (double gamma : {0.01, 0.03, 0.1, 0.3})
    for (double beta : {0.03, 0.1}) {
      bipq::bilevel_params p = best_settings();
      p.iterations = 200;
      p.gamma = gamma;
      p.upper_learning_rate = beta;
      methods.push_back(bip_annealed_method("gamma " + std::to_string(gamma).substr(0, 4) + ", beta " +
                                                std::to_string(beta).substr(0, 4),
                                            "g", p, {40, 30, 20}));
    }
  print_counts(methods, samples, run_recovery(methods, samples, 1000, 30, threads));
}

/// Why the methods fail near the transition: each failure at n = 150 and 200 (seeds 0–99) is an optimisation failure
/// when the planted support fits the training data better than the found one (‖b − A x_S‖² with least squares on
/// each support), and a statistical one otherwise (no exact solver of min ‖Ax − b‖ s.t. ‖x‖₀ ≤ k would recover it).
void failures_study(std::size_t seeds, std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200};
  std::vector<recovery_method> methods;
  for (const auto& m : phase_methods())
    if (m.key != "magnitude" && m.key != "bip_paper") methods.push_back(m);
  const auto out = run_recovery(methods, samples, 0, seeds, threads);
  std::printf("## Failures near the transition, seeds 0-%zu: exact / failed with the planted support fitting better "
              "(optimisation) / failed with the found support fitting at least as well (statistical)\n\n",
              seeds - 1);
  std::printf("| method |");
  for (std::size_t n : samples) std::printf(" n = %zu: exact / optimisation / statistical |", n);
  std::printf("\n|---|");
  for (std::size_t i = 0; i < samples.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (std::size_t mi = 0; mi < methods.size(); ++mi) {
    std::printf("| %s |", methods[mi].name.c_str());
    for (std::size_t ni = 0; ni < samples.size(); ++ni) {
      std::size_t exact = 0, optimisation = 0, statistical = 0;
      for (std::size_t s = 0; s < seeds; ++s) {
        const outcome& o = out[mi][ni][s];
        if (o.exact) ++exact;
        else if (o.excess_residual > 0) ++optimisation;
        else ++statistical;
      }
      std::printf(" %zu / %zu / %zu |", exact, optimisation, statistical);
    }
    std::printf("\n");
  }
  std::printf("\n");
}

void tune_study(std::size_t threads) {
  const std::vector<std::size_t> samples{150, 200, 250};
  const std::uint64_t first = 1000;
  const std::size_t seeds = 50;
  std::printf("## Tuning on seeds 1000-1049 (exact recoveries of 50)\n\n");
  std::vector<recovery_method> methods;
  for (double mu : {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0}) methods.push_back(baseline_methods(mu)[1]);
  for (double mu : {0.5, 0.75, 1.0, 1.25}) methods.push_back(baseline_methods(iht_step, mu)[2]);
  for (double c : {0.5, 0.75, 1.0, 1.5, 2.0}) {
    recovery_method m = baseline_methods(iht_step, htp_step, c)[4];
    m.name += " c = " + std::to_string(c).substr(0, 4);
    methods.push_back(m);
  }
  print_counts(methods, samples, run_recovery(methods, samples, first, seeds, threads));
}

// ---------------------------------------------------------------------------------------------------------------
// Where the Hessian-free assumption holds

/// ‖IG_first_order − IG_exact‖ / ‖IG_exact‖ and the same for `none`, at θ = θ*(m) (closed form), full batch, for the
/// problem with A scaled by `scale` (so ∇²ℓ = scale² AᵀA/n).
std::pair<double, double> ig_errors(const bipq::planted_regression<double>& inst, double scale,
                                    const std::vector<double>& m, double gamma) {
  bipq::least_squares_problem<double> p(scale * inst.a, inst.b);
  const Eigen::VectorXd t = p.lower_solution(m, gamma);
  const std::vector<double> theta(t.data(), t.data() + t.size());
  std::vector<std::size_t> all(p.num_samples());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  const std::size_t d = m.size();
  std::vector<double> exact(d), first(d), direct(d);
  double loss = 0.0;
  bipq::exact_implicit_gradient(p, all, std::span<const double>(theta), std::span<const double>(m), gamma,
                                std::span<double>(exact), loss, 20000, 1e-13);
  const std::vector<double> g(p.parameters()[0].grad.begin(), p.parameters()[0].grad.end());
  bipq::first_order_implicit_gradient<double>(g, theta, m, gamma, first);
  bipq::direct_gradient<double>(g, theta, direct);
  double e1 = 0.0, e0 = 0.0, ref = 0.0;
  for (std::size_t j = 0; j < d; ++j) {
    e1 += (first[j] - exact[j]) * (first[j] - exact[j]);
    e0 += (direct[j] - exact[j]) * (direct[j] - exact[j]);
    ref += exact[j] * exact[j];
  }
  return {std::sqrt(e1 / ref), std::sqrt(e0 / ref)};
}

void hessian_free_table() {
  bipq::planted_regression_spec spec;  // n = 200, d = 1000, k = 20: the instance of the phase study at n = 200
  const auto inst = bipq::make_planted_regression<double>(spec, 0);
  const double h = bipq::largest_gram_eigenvalue(Eigen::MatrixXd(inst.a));
  bipq::detail::rng g(7);
  std::vector<double> relaxed(spec.features), support(spec.features, 0.0), uniform(spec.features, 0.02);
  for (auto& x : relaxed) x = 0.2 + 0.7 * g.uniform();
  for (std::size_t j : inst.support) support[j] = 1.0;

  std::printf("## 2. Where the Hessian-free assumption holds: first-order IG against the exact IG\n\n");
  std::printf("Planted least squares, n = 200, d = 1000 (seed 0), ||H|| = lambda_max(A'A/n) = %.3g; relaxed mask with "
              "entries uniform in [0.2, 0.9]; A scaled by s so that ||H|| = s^2 %.3g takes the ratio asked;\n"
              "||IG_first_order - IG_exact|| / ||IG_exact|| at theta = theta*(m):\n\n",
              h, h);
  const std::vector<double> ratios{0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0};
  std::printf("| gamma \\ ||H||/gamma |");
  for (double r : ratios) std::printf(" %g |", r);
  std::printf("\n|---:|");
  for (std::size_t i = 0; i < ratios.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (double gamma : {0.001, 0.01, 0.1, 1.0, 10.0}) {
    std::printf("| %g |", gamma);
    for (double r : ratios) std::printf(" %.2e |", ig_errors(inst, std::sqrt(r * gamma / h), relaxed, gamma).first);
    std::printf("\n");
  }
  std::printf("\nThe same problem unscaled (the phase study's), three masks: first-order (fo) and none relative errors\n\n");
  std::printf("| gamma | ||H||/gamma | true support: fo | none | uniform k/d: fo | none | relaxed [0.2, 0.9]: fo | none |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (double gamma : {0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0}) {
    const auto a = ig_errors(inst, 1.0, support, gamma), b = ig_errors(inst, 1.0, uniform, gamma),
               c = ig_errors(inst, 1.0, relaxed, gamma);
    std::printf("| %g | %.3g | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e |\n", gamma, h / gamma, a.first, a.second,
                b.first, b.second, c.first, c.second);
  }
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// The second IG term

void second_term_table(std::size_t seeds) {
  using mode = bipq::implicit_gradient_mode;
  std::printf("## 4. The 1/gamma term: first_order vs none (relaxed masks, 300 iterations, beta = 0.03), n = 200, "
              "%zu seeds\n\n",
              seeds);
  std::printf("| gamma | lower steps | first_order exact | first_order hits | none exact | none hits |\n");
  std::printf("|------:|------------:|------------------:|-----------------:|-----------:|----------:|\n");
  std::vector<std::unique_ptr<recovery_case>> cases;
  for (std::size_t seed = 0; seed < seeds; ++seed) cases.push_back(std::make_unique<recovery_case>(200, seed));
  for (double gamma : {0.001, 0.01, 0.1, 1.0}) {
    for (std::size_t steps : {1u, 10u}) {
      tally first{"first"}, none{"none"};
      for (std::size_t seed = 0; seed < seeds; ++seed) {
        bipq::least_squares_problem<double> problem(cases[seed]->inst.a, cases[seed]->inst.b);
        problem.cache_gram();
        for (auto [row, m] : {std::pair<tally*, mode>{&first, mode::first_order}, {&none, mode::none}}) {
          bipq::bilevel_params p = relaxed_settings(m);
          p.gamma = gamma;
          p.lower_steps = steps;
          row->add(score_support(run_bip(problem, cases[seed]->dense, p, seed), cases[seed]->inst.support), 0.0);
        }
      }
      std::printf("| %5g | %11zu | %12zu / %-3zu | %16.2f | %5zu / %-3zu | %9.2f |\n", gamma, steps, first.exact, first.runs,
                  first.overlap / static_cast<double>(seeds), none.exact, none.runs,
                  none.overlap / static_cast<double>(seeds));
    }
  }
  std::printf("\n");
}

std::vector<std::size_t> parse_list(const char* program, const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    out.push_back(examples::parse_number<std::size_t>(program, "--samples", text.substr(start, comma - start)));
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear row by row also when redirected to a file
  const char* program = "toy_bilevel";
  std::string study = "all", csv;
  std::size_t seeds = 100, study_seeds = 10, threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::size_t> samples{100, 125, 150, 175, 200, 250, 300, 400};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("usage: toy_bilevel [--study ig|phase|second-term|tune|tune-bip|tune-weights|tune-anneal|tune-gamma|failures|all] [--seeds N] [--samples 100,...]\n"
                  "                   [--threads T] [--csv FILE] [--study-seeds M]\n");
      return 0;
    }
    if (i + 1 >= argc) examples::fail(program, "missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--study") study = value;
    else if (flag == "--seeds") seeds = examples::parse_number<std::size_t>(program, flag, value);
    else if (flag == "--study-seeds") study_seeds = examples::parse_number<std::size_t>(program, flag, value);
    else if (flag == "--threads") threads = examples::parse_number<std::size_t>(program, flag, value);
    else if (flag == "--samples") samples = parse_list(program, value);
    else if (flag == "--csv") csv = value;
    else examples::fail(program, "unknown option " + flag);
  }
  if (seeds == 0 || threads == 0) examples::fail(program, "--seeds and --threads must be >= 1");
  if (study != "ig" && study != "phase" && study != "second-term" && study != "tune" && study != "tune-bip" && study != "tune-weights" && study != "tune-anneal" && study != "tune-gamma" && study != "failures" &&
      study != "all")
    examples::fail(program, "unknown study '" + study + "'");
  if (study == "ig" || study == "all") {
    implicit_gradient_table();
    hessian_free_table();
  }
  if (study == "phase" || study == "all") phase_study(samples, seeds, threads, csv);
  if (study == "second-term" || study == "all") second_term_table(study_seeds);
  if (study == "tune") tune_study(threads);
  if (study == "tune-bip") tune_bip_study(threads);
  if (study == "tune-weights") tune_weights_study(threads);
  if (study == "tune-anneal") tune_anneal_study(threads);
  if (study == "tune-gamma") tune_gamma_study(threads);
  if (study == "failures") failures_study(seeds, threads);
  return 0;
}
