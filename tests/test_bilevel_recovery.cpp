// Planted-support recovery by BiP on masked least squares (n = 200, d = 1000, 20 non-zeros of magnitude 1–2,
// Gaussian A, SNR 10, dense start A⁺b), on a few seeds; examples/toy_bilevel runs the 100-seed table.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "bipq/mask/top_k.hpp"
#include "bipq/problems/least_squares.hpp"
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
