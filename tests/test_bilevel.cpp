// The bi-level solver: parameter validation, the mask it returns (size, structure, scope), the lower level against
// the closed-form θ*(m), the bookkeeping (mask change, density, termination), determinism, and errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/problems/least_squares.hpp"
#include "bipq/problems/linear.hpp"
#include "bipq/problems/logistic.hpp"
#include "bipq/solver/bilevel.hpp"

namespace {

/// ℓ_B(z) = (1/2|B|) Σ_{i∈B} ‖z − c_i‖² over three parameters: "fc1.weight" {4, 8}, "fc1.bias" {4}, "fc2.weight"
/// {3, 4}. No Hessian–vector product.
class quadratic_model {
 public:
  using scalar_type = double;
  explicit quadratic_model(std::uint64_t seed, std::size_t samples = 16) : targets_(samples) {
    bipq::detail::rng g(seed);
    for (auto& t : targets_) {
      t.resize(total);
      for (auto& x : t) x = g.normal();
    }
    value_.resize(total);
    grad_.resize(total);
    for (auto& v : value_) v = g.normal();
    auto span = [&](std::vector<double>& v, std::size_t off, std::size_t n) { return std::span<double>(v.data() + off, n); };
    params_.push_back({"fc1.weight", {4, 8}, bipq::parameter_kind::linear_weight, span(value_, 0, 32), span(grad_, 0, 32)});
    params_.push_back({"fc1.bias", {4}, bipq::parameter_kind::bias, span(value_, 32, 4), span(grad_, 32, 4)});
    params_.push_back({"fc2.weight", {3, 4}, bipq::parameter_kind::linear_weight, span(value_, 36, 12), span(grad_, 36, 12)});
  }
  quadratic_model(const quadratic_model&) = delete;
  const std::vector<bipq::parameter<double>>& parameters() const { return params_; }
  std::size_t num_samples() const { return targets_.size(); }
  double loss_and_gradient(std::span<const std::size_t> idx) {
    std::fill(grad_.begin(), grad_.end(), 0.0);
    double loss = 0.0;
    for (std::size_t i : idx)
      for (std::size_t j = 0; j < total; ++j) {
        const double r = value_[j] - targets_[i][j];
        loss += 0.5 * r * r;
        grad_[j] += r / static_cast<double>(idx.size());
      }
    return loss / static_cast<double>(idx.size());
  }
  static constexpr std::size_t total = 48;

 private:
  std::vector<std::vector<double>> targets_;
  std::vector<double> value_, grad_;
  std::vector<bipq::parameter<double>> params_;
};

std::size_t ones(const std::vector<double>& m) { return static_cast<std::size_t>(std::count(m.begin(), m.end(), 1.0)); }

bool binary(const std::vector<double>& m) {
  return std::all_of(m.begin(), m.end(), [](double x) { return x == 0.0 || x == 1.0; });
}

bipq::bilevel_params small_params() {
  bipq::bilevel_params p;
  p.iterations = 20;
  p.lower_steps = 2;
  p.batch_size = 4;
  p.lower_learning_rate = 0.1;
  p.upper_learning_rate = 0.1;
  p.gamma = 0.1;
  p.mask.density = 0.3;
  return p;
}

/// Records the masks seen at every epoch.
struct mask_recorder {
  std::vector<std::vector<double>> masks;  // concatenated per epoch
  std::vector<double> densities;
  std::vector<std::size_t> changes;
  void end_epoch(const bipq::epoch_info<double>& e) {
    std::vector<double> all;
    for (auto s : e.masks) all.insert(all.end(), s.begin(), s.end());
    masks.push_back(all);
    densities.push_back(e.density);
    changes.push_back(e.mask_change);
  }
};

}  // namespace

TEST_CASE("bilevel_params::validate names the invalid field") {
  auto throws_with = [](auto change, const std::string& message) {
    bipq::bilevel_params p;
    change(p);
    CHECK_THROWS_WITH_AS(p.validate(), message.c_str(), std::invalid_argument);
    CHECK_THROWS_AS(bipq::bilevel_solver{p}, std::invalid_argument);
  };
  throws_with([](auto& p) { p.lower_learning_rate = 0.0; }, "bilevel_params: 'lower_learning_rate' must be finite and > 0");
  throws_with([](auto& p) { p.upper_learning_rate = NAN; }, "bilevel_params: 'upper_learning_rate' must be finite and > 0");
  throws_with([](auto& p) { p.gamma = -1.0; }, "bilevel_params: 'gamma' must be finite and > 0");
  throws_with([](auto& p) { p.momentum = 1.0; }, "bilevel_params: 'momentum' must be in [0, 1)");
  throws_with([](auto& p) { p.lower_steps = 0; }, "bilevel_params: 'lower_steps' must be >= 1");
  throws_with([](auto& p) { p.iterations = 0; }, "bilevel_params: 'iterations' must be >= 1");
  throws_with([](auto& p) { p.mask.density = 0.0; }, "bilevel_params: 'mask.density' must be in (0, 1]");
  throws_with([](auto& p) { p.mask.density = 1.5; }, "bilevel_params: 'mask.density' must be in (0, 1]");
  throws_with(
      [](auto& p) {
        p.mask.k = 3;
        p.mask.scope = bipq::mask_scope::per_tensor;
      },
      "bilevel_params: 'mask.k' can only be given with scope global (use 'density')");
  throws_with(
      [](auto& p) {
        p.mask.structure = bipq::mask_structure::n_m;
        p.mask.n = 5;
      },
      "bilevel_params: 'mask.n' and 'mask.m' must satisfy 1 <= n <= m");
  throws_with(
      [](auto& p) {
        p.parametrization = bipq::mask_parametrization::relaxed;
        p.mask.structure = bipq::mask_structure::filter;
      },
      "bilevel_params: 'parametrization' relaxed requires mask.structure unstructured");
  throws_with(
      [](auto& p) {
        p.mask.k = 3;
        p.mask.structure = bipq::mask_structure::filter;
      },
      "bilevel_params: 'mask.k' can only be given with structure unstructured (use 'density')");
  throws_with([](auto& p) { p.upper_momentum = -0.1; }, "bilevel_params: 'upper_momentum' must be in [0, 1)");
  throws_with([](auto& p) { p.cg_max_iterations = 0; }, "bilevel_params: 'cg_max_iterations' must be >= 1");
  throws_with([](auto& p) { p.cg_tolerance = 0.0; }, "bilevel_params: 'cg_tolerance' must be finite and > 0");
  throws_with([](auto& p) { p.mask.prunable.kinds.clear(); }, "bilevel_params: 'mask.prunable.kinds' must not be empty");
  CHECK_NOTHROW(bipq::bilevel_params{}.validate());
}

TEST_CASE("global scores mask: exactly k kept over the prunable tensors, biases untouched by masks, z = m⊙θ") {
  quadratic_model model(1);
  auto p = small_params();
  p.mask.k = 13;
  const auto r = bipq::bilevel_solver(p).optimize(model);
  REQUIRE(r.masks.prunable() == std::vector<std::size_t>{0, 2});
  REQUIRE(r.masks.size() == 2);
  CHECK(binary(r.masks[0]));
  CHECK(binary(r.masks[1]));
  CHECK(ones(r.masks[0]) + ones(r.masks[1]) == 13);
  for (std::size_t j = 0; j < 2; ++j) {
    const auto& value = model.parameters()[r.masks.prunable()[j]].value;
    for (std::size_t e = 0; e < value.size(); ++e)
      if (r.masks[j][e] == 0.0) CHECK(value[e] == 0.0);
  }
  CHECK(r.iterations == 20);
  CHECK(r.reason == bipq::termination::completed);
  CHECK(r.upper_loss.size() == 20);
  CHECK(r.lower_loss.size() == 20);
  for (double d : r.density) CHECK(d == doctest::Approx(13.0 / 44.0));
}

TEST_CASE("per-tensor, filter and N:M masks have the structure they promise") {
  SUBCASE("per tensor: each tensor keeps round(density · size)") {
    quadratic_model model(2);
    auto p = small_params();
    p.mask.scope = bipq::mask_scope::per_tensor;
    p.mask.density = 0.25;
    const auto r = bipq::bilevel_solver(p).optimize(model);
    CHECK(ones(r.masks[0]) == 8);  // 32 · 0.25
    CHECK(ones(r.masks[1]) == 3);  // 12 · 0.25
  }
  SUBCASE("filter: whole rows, round(density · rows) of them per tensor") {
    quadratic_model model(3);
    auto p = small_params();
    p.mask.structure = bipq::mask_structure::filter;
    p.mask.density = 0.5;
    const auto r = bipq::bilevel_solver(p).optimize(model);
    const std::size_t rows[2] = {4, 3}, cols[2] = {8, 4}, kept[2] = {2, 2};  // round(0.5·3) = 2 (half away from 0)
    for (std::size_t j = 0; j < 2; ++j) {
      std::size_t full_rows = 0;
      for (std::size_t row = 0; row < rows[j]; ++row) {
        const auto begin = r.masks[j].begin() + static_cast<std::ptrdiff_t>(row * cols[j]);
        const auto count = std::count(begin, begin + static_cast<std::ptrdiff_t>(cols[j]), 1.0);
        CHECK((count == 0 || count == static_cast<std::ptrdiff_t>(cols[j])));
        full_rows += count > 0 ? 1u : 0u;
      }
      CHECK(full_rows == kept[j]);
    }
  }
  SUBCASE("2:4: exactly two of every four consecutive weights along the input dimension") {
    quadratic_model model(4);
    auto p = small_params();
    p.mask.structure = bipq::mask_structure::n_m;
    const auto r = bipq::bilevel_solver(p).optimize(model);
    for (const auto& m : r.masks) {
      REQUIRE(m.size() % 4 == 0);
      for (std::size_t g = 0; g < m.size(); g += 4) CHECK(std::count(m.begin() + g, m.begin() + g + 4, 1.0) == 2);
    }
  }
  SUBCASE("relaxed: the continuous mask stays in the capped simplex and is rounded to exactly k at the end") {
    quadratic_model model(5);
    auto p = small_params();
    p.parametrization = bipq::mask_parametrization::relaxed;
    p.mask.k = 10;
    mask_recorder rec;
    const auto r = bipq::bilevel_solver(p).optimize(model, rec);
    CHECK(ones(r.masks[0]) + ones(r.masks[1]) == 10);
    for (double d : r.density) CHECK(d <= 10.0 / 44.0 + 1e-12);
  }
  SUBCASE("relaxed, per tensor: each tensor's continuous mask sums to at most its budget, rounded to it") {
    quadratic_model model(6);
    auto p = small_params();
    p.parametrization = bipq::mask_parametrization::relaxed;
    p.mask.scope = bipq::mask_scope::per_tensor;
    p.mask.density = 0.25;
    const auto r = bipq::bilevel_solver(p).optimize(model);
    CHECK(ones(r.masks[0]) == 8);
    CHECK(ones(r.masks[1]) == 3);
    for (double d : r.density) CHECK(d <= 11.0 / 44.0 + 1e-12);
  }
}

TEST_CASE("mask_change is the Hamming distance between successive hard masks, density their kept fraction") {
  quadratic_model model(6);
  auto p = small_params();
  p.upper_learning_rate = 1.0;  // masks move
  bipq::bilevel_solver solver(p);
  mask_recorder rec;
  // The mask before the first iteration is top-k of |θ₀|.
  std::vector<double> start;
  for (std::size_t i : {0u, 2u})
    for (double v : model.parameters()[i].value) start.push_back(std::abs(v));
  const auto r = solver.optimize(model, rec);
  REQUIRE(rec.masks.size() == r.iterations);
  std::size_t total_change = 0;
  for (std::size_t t = 0; t < r.iterations; ++t) {
    std::size_t hamming = 0;
    if (t > 0)
      for (std::size_t e = 0; e < rec.masks[t].size(); ++e) hamming += rec.masks[t][e] != rec.masks[t - 1][e] ? 1u : 0u;
    if (t > 0) CHECK(r.mask_change[t] == hamming);
    CHECK(rec.changes[t] == r.mask_change[t]);
    CHECK(r.density[t] == doctest::Approx(static_cast<double>(ones(rec.masks[t])) / 44.0));
    total_change += r.mask_change[t];
  }
  CHECK(total_change > 0);  // with β = 1 the mask did move, so the check above was not vacuous
}

TEST_CASE("the lower level converges to the closed-form θ*(m) of least squares (full mask, full batch)") {
  bipq::planted_regression_spec spec;
  spec.samples = 40;
  spec.features = 10;
  spec.nonzeros = 3;
  const auto inst = bipq::make_planted_regression<double>(spec, 8);
  bipq::least_squares_problem<double> problem(inst.a, inst.b);
  bipq::bilevel_params p;
  p.mask.density = 1.0;
  p.iterations = 1;
  p.lower_steps = 3000;
  p.batch_size = 0;
  p.momentum = 0.5;
  p.lower_learning_rate = 0.05;
  p.gamma = 0.2;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  CHECK(ones(r.masks[0]) == 10);
  const std::vector<double> m(10, 1.0);
  const Eigen::VectorXd expected = problem.lower_solution(m, 0.2);
  for (std::size_t j = 0; j < 10; ++j)
    CHECK(problem.parameters()[0].value[j] == doctest::Approx(expected(static_cast<Eigen::Index>(j))).epsilon(1e-9));
}

TEST_CASE("non-prunable parameters are trained in the lower step; prunable ones are masked") {
  const auto inst = bipq::make_planted_classification<double>(100, 20, 4, 3.0, 2);
  bipq::logistic_problem<double> problem(inst.x, inst.y);
  auto p = small_params();
  p.mask.k = 4;
  p.batch_size = 20;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  REQUIRE(r.masks.prunable() == std::vector<std::size_t>{0});
  CHECK(problem.parameters()[1].value[0] != 0.0);  // the bias moved from 0
  std::size_t nonzero = 0;
  for (double w : problem.parameters()[0].value) nonzero += w != 0.0 ? 1u : 0u;
  CHECK(nonzero <= 4);
}

TEST_CASE("same seed, same bits; another seed draws other mini-batches") {
  auto run = [](std::uint64_t seed, bipq::implicit_gradient_mode mode) {
    quadratic_model model(9);
    auto p = small_params();
    p.seed = seed;
    p.ig_mode = mode;
    p.upper_learning_rate = 1.0;
    return bipq::bilevel_solver(p).optimize(model);
  };
  for (auto mode : {bipq::implicit_gradient_mode::first_order, bipq::implicit_gradient_mode::none}) {
    const auto a = run(7, mode), b = run(7, mode), c = run(8, mode);
    CHECK(a.masks == b.masks);
    CHECK(a.upper_loss == b.upper_loss);  // bitwise equal doubles
    CHECK(a.lower_loss == b.lower_loss);
    CHECK(a.upper_loss != c.upper_loss);
  }
}

TEST_CASE("exact mode: runs conjugate gradients on problems with a Hessian–vector product, refuses others") {
  bipq::planted_regression_spec spec;
  spec.samples = 30;
  spec.features = 15;
  spec.nonzeros = 3;
  const auto inst = bipq::make_planted_regression<double>(spec, 1);
  bipq::least_squares_problem<double> problem(inst.a, inst.b);
  auto p = small_params();
  p.ig_mode = bipq::implicit_gradient_mode::exact;
  p.mask.k = 3;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  REQUIRE(r.cg_iterations.size() == r.iterations);
  for (std::size_t it : r.cg_iterations) {
    CHECK(it >= 1);
    CHECK(it <= 16);  // CG on a 15×15 SPD system converges in ≤ 15 steps (one more for rounding)
  }
  quadratic_model model(1);
  CHECK_THROWS_WITH_AS(bipq::bilevel_solver(p).optimize(model),
                       "bilevel_solver::optimize(): params.ig_mode exact needs a problem with "
                       "hessian_vector_product(indices, v, out)",
                       std::invalid_argument);
}

TEST_CASE("termination: a callback stop, a stable mask") {
  struct stop_at_epoch {
    std::size_t at;
    bool end_epoch(const bipq::epoch_info<double>& e) { return e.epoch == at; }
  };
  struct stop_at_step {
    std::size_t at;
    bool step_taken(const bipq::step_info& s) { return s.step == at; }
  };
  {
    quadratic_model model(1);
    const auto r = bipq::bilevel_solver(small_params()).optimize(model, stop_at_epoch{2});
    CHECK(r.reason == bipq::termination::callback_stop);
    CHECK(r.iterations == 3);
    CHECK(r.upper_loss.size() == 3);
  }
  {
    quadratic_model model(1);
    const auto r = bipq::bilevel_solver(small_params()).optimize(model, stop_at_step{4});  // 2 lower steps per iteration
    CHECK(r.reason == bipq::termination::callback_stop);
    CHECK(r.iterations == 2);  // the step stop interrupts the third iteration, which is not recorded
  }
  {
    quadratic_model model(1);
    auto p = small_params();
    p.upper_learning_rate = 1e-12;  // scores barely move: the mask never changes
    p.stable_mask_iterations = 3;
    const auto r = bipq::bilevel_solver(p).optimize(model);
    CHECK(r.reason == bipq::termination::mask_converged);
    CHECK(r.iterations == 3);
  }
}

TEST_CASE("optimize rejects problems it cannot prune") {
  quadratic_model model(1);
  auto p = small_params();
  p.mask.prunable.kinds = {bipq::parameter_kind::conv_weight};
  CHECK_THROWS_WITH_AS(bipq::bilevel_solver(p).optimize(model),
                       "bilevel_solver::optimize(): the problem has no prunable parameter", std::invalid_argument);
  p = small_params();
  p.mask.k = 45;
  CHECK_THROWS_WITH_AS(bipq::bilevel_solver(p).optimize(model),
                       "bilevel_solver::optimize(): params.mask.k = 45 exceeds the number of prunable weights 44",
                       std::invalid_argument);
  p = small_params();
  p.mask.prunable.exclude_names = {"fc9.weight"};
  CHECK_THROWS_WITH_AS(bipq::bilevel_solver(p).optimize(model),
                       "prunable_indices(): exclude_names entry 'fc9.weight' matches no parameter",
                       std::invalid_argument);
  p.mask.prunable.exclude_names = {"fc2.weight"};
  const auto r = bipq::bilevel_solver(p).optimize(model);
  CHECK(r.masks.prunable() == std::vector<std::size_t>{0});
  model.parameters()[0].value[5] = NAN;
  CHECK_THROWS_WITH_AS(bipq::bilevel_solver(p).optimize(model),
                       "bilevel_solver::optimize(): parameter 'fc1.weight' contains NaN or Inf (index 5)",
                       std::invalid_argument);
}

TEST_CASE("relaxed masks start from the weights' magnitudes or uniformly, as params.start asks") {
  // With c = 0 the gradient is 0, so the IG is 0 and the relaxed mask keeps its starting point; its top-k shows
  // where it started: the 3 largest |θ| (magnitude) or, all entries tied at k/n, the 3 lowest indices (uniform).
  const std::size_t d = 10;
  bipq::linear_problem<double> problem(bipq::linear_problem<double>::matrix::Zero(4, d));
  bipq::bilevel_params p;
  p.parametrization = bipq::mask_parametrization::relaxed;
  p.ig_mode = bipq::implicit_gradient_mode::none;
  p.mask.k = 3;
  p.iterations = 1;
  p.batch_size = 0;
  auto run = [&](bipq::relaxed_start start) {
    for (std::size_t j = 0; j < d; ++j) problem.parameters()[0].value[j] = static_cast<double>(j + 1);
    p.start = start;
    const auto r = bipq::bilevel_solver(p).optimize(problem);
    CHECK(r.density[0] == doctest::Approx(0.3).epsilon(1e-12));
    return r.masks[0];
  };
  const std::vector<double> magnitude = run(bipq::relaxed_start::magnitude);
  const std::vector<double> uniform = run(bipq::relaxed_start::uniform);
  CHECK(magnitude == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1});
  CHECK(uniform == std::vector<double>{1, 1, 1, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("a diverging run ends with termination::diverged and the last finite 0/1 mask, not an exception") {
  // Lower steps θ ← θ − α(m⊙g + γθ) with α γ = 50 multiply θ by −49 each step: the loss overflows within a few
  // iterations. (A loss linear in z with c ≠ 0.)
  const std::size_t d = 10;
  bipq::linear_problem<double> problem(bipq::linear_problem<double>::matrix::Ones(4, d));
  for (std::size_t j = 0; j < d; ++j) problem.parameters()[0].value[j] = static_cast<double>(j + 1);
  bipq::bilevel_params p;
  p.mask.k = 3;
  p.gamma = 10.0;
  p.lower_learning_rate = 5.0;
  p.momentum = 0.0;
  p.iterations = 1000;
  p.batch_size = 0;
  const auto r = bipq::bilevel_solver(p).optimize(problem);
  CHECK(r.reason == bipq::termination::diverged);
  CHECK(bipq::to_string(r.reason) == "diverged");
  CHECK(r.iterations < 1000);
  REQUIRE(r.masks.size() == 1);
  CHECK(binary(r.masks[0]));
  CHECK(ones(r.masks[0]) == 3);
  for (double l : r.upper_loss) CHECK(std::isfinite(l));
}
