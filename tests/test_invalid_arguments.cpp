// Bad input a new user could give, each refused with std::invalid_argument whose message names the function and the
// argument (instead of undefined behaviour, a wrong verdict, a silently clipped value or a message naming another
// function).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/mask/top_k.hpp"
#include "bipq/optim/sgd.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/schedule/geometric.hpp"
#include "bipq/schedule/sap.hpp"
#include "bipq/solver/conjugate_gradient.hpp"
#include "bipq/sparsity/criteria.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// `call` throws std::invalid_argument whose message contains `func` ("f()", or "params:" for a validate()) and every
// one of `names`.
void check_invalid(const std::function<void()>& call, const std::string& func, const std::vector<std::string>& names) {
  try {
    call();
    FAIL_CHECK("no exception; expected " << func << " naming " << names.front());
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(func) != std::string::npos);
    for (const auto& name : names) CHECK(msg.find(name) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("geometric_rounds: a rate too small for the round count to be computed is refused, not cast from -inf") {
  check_invalid([] { (void)bipq::geometric_rounds(0.5, 1e-17); }, "geometric_rounds()", {"rate"});
  check_invalid([] { (void)bipq::geometric_rounds(0.5, 1e-300); }, "geometric_rounds()", {"rate"});
  check_invalid([] { (void)bipq::geometric_rounds(not_a_number, 0.2); }, "geometric_rounds()", {"density"});
  // The count is the smallest t with (1 − rate)^t ≤ density, also for a small rate where 1 − rate loses digits.
  for (const double rate : {0.2, 0.5, 1e-3, 1e-9}) {
    const std::size_t t = bipq::geometric_rounds(0.3, rate);
    INFO("rate " << rate);
    CHECK(static_cast<double>(t) * std::log1p(-rate) <= std::log(0.3) + 1e-12);
    CHECK(static_cast<double>(t - 1) * std::log1p(-rate) > std::log(0.3));
  }
}

TEST_CASE("sap_rule: q = inf is refused, and p = q = inf names p") {
  check_invalid([] { const bipq::sap_rule r{.q = inf}; r.validate(); }, "sap_rule:", {"'q'"});
  check_invalid([] { const bipq::sap_rule r{.p = inf, .q = inf}; r.validate(); }, "sap_rule:", {"'p'"});
  check_invalid([] { const bipq::sap_rule r{.p = not_a_number}; r.validate(); }, "sap_rule:", {"'p'"});
}

TEST_CASE("sap_retained_count and sap_prune_count name themselves, and check pq and the rule also for d = 0") {
  const bipq::sap_rule rule;
  for (const std::size_t d : {std::size_t(0), std::size_t(10)}) {
    INFO("d = " << d);
    check_invalid([&] { (void)bipq::sap_retained_count(d, 1.5, rule); }, "sap_retained_count()", {"pq"});
    check_invalid([&] { (void)bipq::sap_retained_count(d, not_a_number, rule); }, "sap_retained_count()", {"pq"});
    check_invalid([&] { (void)bipq::sap_prune_count(d, -0.1, rule); }, "sap_prune_count()", {"pq"});
    check_invalid([&] { (void)bipq::sap_prune_count(d, 0.5, bipq::sap_rule{.beta = 2.0}); }, "sap_prune_count()",
                  {"beta"});
    check_invalid([&] { (void)bipq::sap_retained_count(d, 0.5, bipq::sap_rule{.q = 0.1}); }, "sap_retained_count()",
                  {"q"});
  }
  CHECK(bipq::sap_prune_count(0, 0.5, rule) == 0);  // a valid call on an empty scope prunes nothing
}

TEST_CASE("conjugate_gradient refuses a NaN or negative tolerance and a right-hand side holding NaN") {
  const std::vector<double> b{1.0, 2.0};
  std::vector<double> x(2);
  auto identity = [](std::span<const double> p, std::span<double> out) {
    for (std::size_t i = 0; i < p.size(); ++i) out[i] = p[i];
  };
  for (const double tol : {not_a_number, -1e-6}) {
    check_invalid([&] { (void)bipq::conjugate_gradient<double>(identity, b, x, 10, tol); }, "conjugate_gradient()",
                  {"tolerance"});
  }
  const std::vector<double> bad{1.0, not_a_number};
  check_invalid([&] { (void)bipq::conjugate_gradient<double>(identity, bad, x, 10, 1e-8); }, "conjugate_gradient()",
                {"b"});
}

TEST_CASE("sgd::step refuses a NaN or negative learning rate and weight decay") {
  bipq::sgd<float> opt(bipq::sgd_params{}, {2});
  std::vector<float> theta{1, 2}, grad{0.5f, -0.5f};
  check_invalid([&] { opt.step(0, theta, grad, not_a_number, 0.0); }, "sgd::step()", {"lr"});
  check_invalid([&] { opt.step(0, theta, grad, -0.1, 0.0); }, "sgd::step()", {"lr"});
  check_invalid([&] { opt.step(0, theta, grad, 0.1, not_a_number); }, "sgd::step()", {"weight_decay"});
  CHECK(theta == std::vector<float>{1, 2});  // refused before anything is written
}

TEST_CASE("least_squares_problem::lower_solution refuses gamma = inf") {
  bipq::least_squares_problem<double>::matrix a(3, 2);
  a << 1, 0, 0, 1, 1, 1;
  bipq::least_squares_problem<double>::vector b(3);
  b << 1, 2, 3;
  const bipq::least_squares_problem<double> p(a, b);
  const std::vector<double> m{1, 1};
  check_invalid([&] { (void)p.lower_solution(std::span<const double>(m), inf); },
                "least_squares_problem::lower_solution()", {"gamma"});
}

TEST_CASE("check_sparsity_criterion refuses a NaN tolerance and min_size > max_size instead of a wrong verdict") {
  auto measure = [](std::span<const double> w) { return bipq::pq_index(w); };
  const auto c = bipq::sparsity_criterion::scaling;
  check_invalid([&] { (void)bipq::check_sparsity_criterion(measure, c, {.equality_tolerance = not_a_number}); },
                "check_sparsity_criterion()", {"equality_tolerance"});
  check_invalid([&] { (void)bipq::check_sparsity_criterion(measure, c, {.equality_tolerance = -1.0}); },
                "check_sparsity_criterion()", {"equality_tolerance"});
  check_invalid([&] { (void)bipq::check_sparsity_criterion(measure, c, {.strict_margin = not_a_number}); },
                "check_sparsity_criterion()", {"strict_margin"});
  check_invalid([&] { (void)bipq::check_sparsity_criterion(measure, c, {.min_size = 10, .max_size = 5}); },
                "check_sparsity_criterion()", {"min_size", "max_size"});
}

TEST_CASE("top_k_mask and magnitude_mask refuse NaN or Inf in the eligibility mask, as pq_index and apply_mask do") {
  const std::vector<double> scores{3, 1, 2, 5};
  std::vector<double> mask(4);
  const std::vector<double> eligible{1, not_a_number, 1, 1};
  check_invalid([&] { bipq::top_k_mask(scores, 2, mask, eligible); }, "top_k_mask()", {"eligible", "index 1"});
  check_invalid([&] { bipq::magnitude_mask(scores, 2, mask, eligible); }, "magnitude_mask()", {"eligible"});
  const std::vector<double> ok{1, 1, 1, 1};
  const std::vector<double> inf_eligible{1, 1, inf, 1};
  const std::vector<std::span<const double>> s{scores, scores}, e{ok, inf_eligible};
  std::vector<double> m0(4), m1(4);
  const std::vector<std::span<double>> masks{m0, m1};
  check_invalid([&] { bipq::top_k_mask_global<double>(s, 3, masks, e); }, "top_k_mask_global()", {"eligible[1]"});
}

TEST_CASE("pq_index_global and pq_index_per_tensor name the index of a mask of the wrong size") {
  const std::vector<double> w0{1, 2, 3}, w1{4, 5, 6, 7};
  const std::vector<double> m0{1, 1, 1}, m1{1, 1, 1, 1, 1, 1, 1};
  const std::vector<std::vector<double>> ws{w0, w1}, masks{m0, m1};
  check_invalid([&] { (void)bipq::pq_index_global(ws, masks); }, "pq_index_global()", {"masks[1]", "size 7"});
  check_invalid([&] { (void)bipq::pq_index_per_tensor(ws, masks); }, "pq_index_per_tensor()", {"masks[1]"});
}
