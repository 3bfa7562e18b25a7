// Planted-support recovery by BiP and the compressed-sensing baselines on masked least squares (d = 1000, 20
// non-zeros of magnitude 1–2, Gaussian A, SNR 10, dense start A⁺b), on a few seeds and three n: the small version of
// `toy_bilevel --study phase`, which runs 100 seeds and eight n (docs/bilevel.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "bipq/mask/top_k.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/sparse_recovery.hpp"
#include "bipq/solver/bilevel.hpp"

namespace {

std::size_t hits(const std::vector<double>& mask, const std::vector<std::size_t>& support) {
  std::size_t h = 0;
  for (std::size_t j : support) h += mask[j] == 1.0 ? 1u : 0u;
  return h;
}

}  // namespace

TEST_CASE("BiP (relaxed masks, IG without the second term) finds more of a planted support than magnitude pruning of A⁺b") {
  bipq::bilevel_params p;
  p.mask.k = 20;
  p.parametrization = bipq::mask_parametrization::relaxed;
  p.ig_mode = bipq::implicit_gradient_mode::none;
  p.gamma = 0.01;
  p.lower_steps = 10;
  p.lower_learning_rate = 0.5;
  p.momentum = 0.0;
  p.upper_learning_rate = 0.03;
  p.iterations = 300;
  p.batch_size = 0;
  std::size_t bip_total = 0, magnitude_total = 0, exact = 0;
  const std::size_t seeds = 4;
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    const auto inst = bipq::make_planted_regression<double>(bipq::planted_regression_spec{}, seed);
    bipq::least_squares_problem<double> problem(inst.a, inst.b);
    const Eigen::VectorXd dense = problem.least_norm_solution();
    std::vector<double> values(dense.data(), dense.data() + dense.size()), magnitude(values.size());
    bipq::magnitude_mask<double>(values, 20, magnitude);
    std::copy(values.begin(), values.end(), problem.parameters()[0].value.begin());
    p.seed = seed;
    const auto r = bipq::bilevel_solver(p).optimize(problem);
    const std::size_t h = hits(r.masks[0], inst.support), hm = hits(magnitude, inst.support);
    MESSAGE("seed " << seed << ": BiP finds " << h << " of 20, magnitude pruning " << hm);
    CHECK(h >= hm + 2);
    bip_total += h;
    magnitude_total += hm;
    exact += h == 20 ? 1u : 0u;
  }
  // Over 100 seeds this setting finds 19.49 of 20 on average and the whole support in 65 (docs/bilevel.md,
  // table 2); 4 seeds must reach 18.5 on average and one exact recovery.
  CHECK(static_cast<double>(bip_total) / seeds >= 18.5);
  CHECK(exact >= 1);
  MESSAGE("exact recoveries: " << exact << " of " << seeds << "; magnitude pruning finds " << magnitude_total << " of "
                               << 20 * seeds);
}

namespace {

/// The two BiP settings of the phase study: the paper's (scores, first-order IG) and the best documented mode
/// (relaxed, uniform start, no second IG term, 40 lower steps, 600 iterations); full batch.
bipq::bilevel_params bip_settings(bool best) {
  bipq::bilevel_params p;
  p.mask.k = 20;
  p.gamma = 0.01;
  p.lower_learning_rate = 0.5;
  p.momentum = 0.0;
  p.batch_size = 0;
  p.lower_steps = 10;
  if (best) {
    p.parametrization = bipq::mask_parametrization::relaxed;
    p.start = bipq::relaxed_start::uniform;
    p.ig_mode = bipq::implicit_gradient_mode::none;
    p.upper_learning_rate = 0.03;
    p.lower_steps = 40;
    p.iterations = 600;
  } else {
    p.parametrization = bipq::mask_parametrization::scores;
    p.ig_mode = bipq::implicit_gradient_mode::first_order;
    p.upper_learning_rate = 3.0;
    p.iterations = 100;
  }
  return p;
}

using finder = std::function<std::vector<std::size_t>(const bipq::planted_regression<double>&, const Eigen::MatrixXd&,
                                                      std::uint64_t)>;

std::vector<std::size_t> bip_support(const bipq::planted_regression<double>& inst, const Eigen::MatrixXd& a,
                                     std::uint64_t seed, bool best) {
  bipq::least_squares_problem<double> problem(inst.a, inst.b);
  problem.cache_gram();
  const Eigen::VectorXd dense = bipq::least_norm_solution(a, inst.b.cast<double>());
  std::copy(dense.data(), dense.data() + dense.size(), problem.parameters()[0].value.begin());
  bipq::bilevel_params p = bip_settings(best);
  p.seed = seed;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  std::vector<std::size_t> s;
  for (std::size_t j = 0; j < r.masks[0].size(); ++j)
    if (r.masks[0][j] != 0.0) s.push_back(j);
  return s;
}

}  // namespace

TEST_CASE("phase transition, small: every method recovers more often at larger n, and (but for magnitude pruning) "
          "on most seeds at n = 400") {
  const std::vector<std::size_t> samples{100, 200, 400};
  const std::size_t seeds = 3, k = 20;
  const std::vector<std::pair<std::string, finder>> methods{
      {"magnitude", [&](const auto& in, const auto& a, std::uint64_t) { return bipq::least_norm_magnitude_pruning(a, in.b, k).support; }},
      {"iht", [&](const auto& in, const auto& a, std::uint64_t) {
         bipq::iht_params p;
         p.step = 0.7;
         return bipq::iterative_hard_thresholding(a, in.b, k, p).support;
       }},
      {"htp", [&](const auto& in, const auto& a, std::uint64_t) { return bipq::hard_thresholding_pursuit(a, in.b, k).support; }},
      {"omp", [&](const auto& in, const auto& a, std::uint64_t) { return bipq::orthogonal_matching_pursuit(a, in.b, k).support; }},
      {"lasso", [&](const auto& in, const auto& a, std::uint64_t) {
         bipq::lasso_params p;
         p.lambda = bipq::universal_lasso_lambda(in.noise_sd, a.rows(), a.cols(), 0.75);
         return bipq::debiased_lasso(a, in.b, k, p).support;
       }},
      {"bip_paper", [&](const auto& in, const auto& a, std::uint64_t seed) { return bip_support(in, a, seed, false); }},
      {"bip_best", [&](const auto& in, const auto& a, std::uint64_t seed) { return bip_support(in, a, seed, true); }},
  };
  // exact[method][n], hits[method][n] summed over seeds
  std::vector<std::vector<std::size_t>> exact(methods.size(), std::vector<std::size_t>(samples.size())),
      hits(methods.size(), std::vector<std::size_t>(samples.size()));
  for (std::size_t ni = 0; ni < samples.size(); ++ni) {
    bipq::planted_regression_spec spec;
    spec.samples = samples[ni];
    for (std::uint64_t seed = 0; seed < seeds; ++seed) {
      const auto inst = bipq::make_planted_regression<double>(spec, seed);
      const Eigen::MatrixXd a = inst.a;
      for (std::size_t mi = 0; mi < methods.size(); ++mi) {
        const std::vector<std::size_t> found = methods[mi].second(inst, a, seed);
        exact[mi][ni] += bipq::exact_recovery(found, inst.support) ? 1u : 0u;
        for (std::size_t j : found) hits[mi][ni] += std::binary_search(inst.support.begin(), inst.support.end(), j) ? 1u : 0u;
      }
    }
  }
  for (std::size_t mi = 0; mi < methods.size(); ++mi) {
    MESSAGE(methods[mi].first << ": exact " << exact[mi][0] << ", " << exact[mi][1] << ", " << exact[mi][2] << " of "
                              << seeds << " at n = 100, 200, 400; hits " << hits[mi][0] << ", " << hits[mi][1] << ", "
                              << hits[mi][2] << " of " << k * seeds);
    // Monotone within sampling error: a larger n never loses more than one recovery of three, and finds at least
    // as many support indices in total less one per seed.
    for (std::size_t ni = 1; ni < samples.size(); ++ni) {
      CHECK(exact[mi][ni] + 1 >= exact[mi][ni - 1]);
      CHECK(hits[mi][ni] + seeds >= hits[mi][ni - 1]);
    }
    if (methods[mi].first == "magnitude") {
      CHECK(hits[mi][2] < hits[1][2]);  // A⁺b spreads the signal over all of its d entries: worse than IHT
    } else {
      CHECK(exact[mi][2] >= seeds - 1);
    }
  }
  // Below the transition (n = 100 < 2k ln(d/k) ≈ 156) nobody recovers on most seeds.
  for (std::size_t mi = 0; mi < methods.size(); ++mi) CHECK(exact[mi][0] <= seeds / 2);
}
