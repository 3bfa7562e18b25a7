// The six Hurley–Rickard criteria: the PQ Index satisfies all of them (Diao et al. 2023, Theorem 1), so does the Gini
// index (Hurley & Rickard 2009); and the randomised checker refutes the measures that provably fail one.
#include <doctest/doctest.h>

#include <cmath>
#include <span>
#include <string>

#include "bipq/sparsity/criteria.hpp"
#include "bipq/sparsity/measures.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace {

std::string describe(const bipq::criterion_check& r) {
  std::string s(bipq::criterion_name(r.criterion));
  s += ": ";
  s += std::to_string(r.violations);
  s += " violations of ";
  s += std::to_string(r.trials);
  s += "; S before ";
  s += std::to_string(r.before);
  s += ", after ";
  s += std::to_string(r.after);
  s += "; c =";
  for (double x : r.counterexample) {
    s += ' ';
    s += std::to_string(x);
  }
  return s;
}

}  // namespace

TEST_CASE("the PQ Index satisfies all six Hurley-Rickard criteria for 0 < p <= 1 <= q, p < q") {
  for (const auto& pair : {std::pair{0.5, 1.0}, std::pair{1.0, 2.0}, std::pair{0.5, 2.0}, std::pair{0.25, 1.0},
                           std::pair{1.0, 3.0}, std::pair{0.8, 1.5}}) {
    const double p = pair.first, q = pair.second;  // named copies: INFO captures them
    auto measure = [p, q](std::span<const double> c) { return bipq::pq_index(c, p, q); };
    for (auto criterion : bipq::all_sparsity_criteria) {
      for (std::uint64_t seed : {1u, 2u}) {
        const auto r = bipq::check_sparsity_criterion(measure, criterion, {.seed = seed});
        INFO("p = ", p, ", q = ", q, "; ", describe(r));
        CHECK(r.trials == 300);
        CHECK(r.satisfied);
      }
    }
  }
}

TEST_CASE("the PQ Index on float data satisfies the scale and cloning criteria up to float rounding") {
  auto measure = [](std::span<const double> c) {
    std::vector<float> f(c.begin(), c.end());
    return bipq::pq_index(f);
  };
  for (auto criterion : {bipq::sparsity_criterion::scaling, bipq::sparsity_criterion::cloning}) {
    const auto r = bipq::check_sparsity_criterion(measure, criterion, {.seed = 3, .equality_tolerance = 1e-6});
    INFO(describe(r));
    CHECK(r.satisfied);
  }
}

TEST_CASE("the Gini index satisfies all six criteria (Hurley & Rickard 2009)") {
  auto measure = [](std::span<const double> c) { return bipq::gini_index(c); };
  for (auto criterion : bipq::all_sparsity_criteria) {
    const auto r = bipq::check_sparsity_criterion(measure, criterion, {.seed = 4});
    INFO(describe(r));
    CHECK(r.satisfied);
  }
}

TEST_CASE("the checker refutes criteria that a measure provably fails") {
  // Hoyer's √d normalisation changes under cloning; κ₄ halves under cloning and ignores appended zeros;
  // ℓ⁰ ignores transfers between non-zero entries; ℓ⁰_ε depends on the scale.
  using bipq::sparsity_criterion;
  auto hoyer = [](std::span<const double> c) { return bipq::hoyer(c); };
  auto kurtosis = [](std::span<const double> c) { return bipq::kurtosis(c); };
  auto l0 = [](std::span<const double> c) { return bipq::l0_fraction(c); };
  auto l0_eps = [](std::span<const double> c) { return bipq::l0_epsilon_fraction(c, 0.05); };
  CHECK_FALSE(bipq::check_sparsity_criterion(hoyer, sparsity_criterion::cloning).satisfied);
  CHECK_FALSE(bipq::check_sparsity_criterion(kurtosis, sparsity_criterion::cloning).satisfied);
  CHECK_FALSE(bipq::check_sparsity_criterion(kurtosis, sparsity_criterion::babies).satisfied);
  CHECK_FALSE(bipq::check_sparsity_criterion(l0, sparsity_criterion::robin_hood).satisfied);
  CHECK_FALSE(bipq::check_sparsity_criterion(l0, sparsity_criterion::bill_gates).satisfied);
  CHECK_FALSE(bipq::check_sparsity_criterion(l0_eps, sparsity_criterion::scaling).satisfied);
  // ... and keeps what they provably satisfy.
  CHECK(bipq::check_sparsity_criterion(hoyer, sparsity_criterion::scaling).satisfied);
  CHECK(bipq::check_sparsity_criterion(l0, sparsity_criterion::scaling).satisfied);
  CHECK(bipq::check_sparsity_criterion(l0, sparsity_criterion::cloning).satisfied);
  CHECK(bipq::check_sparsity_criterion(l0, sparsity_criterion::babies).satisfied);
}

TEST_CASE("a counterexample reproduces the violation it reports, and the same seed gives the same trials") {
  auto kurtosis = [](std::span<const double> c) { return bipq::kurtosis(c); };
  const auto a = bipq::check_sparsity_criterion(kurtosis, bipq::sparsity_criterion::cloning, {.seed = 9});
  const auto b = bipq::check_sparsity_criterion(kurtosis, bipq::sparsity_criterion::cloning, {.seed = 9});
  REQUIRE_FALSE(a.satisfied);
  CHECK(a.counterexample == b.counterexample);
  CHECK(a.violations == b.violations);
  CHECK(a.before == bipq::kurtosis(a.counterexample));
  CHECK(a.after == doctest::Approx(a.before / 2));  // the first clone fails: κ₄(c‖c) = 2Σc⁴ / (2Σc²)² = κ₄(c)/2
}
