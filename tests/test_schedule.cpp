// Pruning schedules against their formulas.
#include <doctest/doctest.h>

#include <cmath>

#include "bipq/schedule/cubic.hpp"
#include "bipq/schedule/geometric.hpp"

TEST_CASE("geometric schedule keeps round(n 0.8^t) until the target, ending exactly at it") {
  const std::size_t n = 100000, target = 5000;
  const auto kept = bipq::geometric_schedule(n, target, 0.2);
  REQUIRE(kept.size() == bipq::geometric_rounds(0.05, 0.2));
  CHECK(kept.size() == 14);  // 0.8^13 = 0.055 > 0.05 >= 0.8^14 = 0.044
  for (std::size_t t = 0; t + 1 < kept.size(); ++t)
    CHECK(kept[t] == static_cast<std::size_t>(std::round(n * std::pow(0.8, double(t + 1)))));
  CHECK(kept.back() == target);
  for (std::size_t t = 1; t < kept.size(); ++t) CHECK(kept[t] < kept[t - 1]);
}

TEST_CASE("geometric schedule on tiny n always progresses and validates its arguments") {
  const auto kept = bipq::geometric_schedule(3, 1, 0.2);
  CHECK(kept.back() == 1);
  for (std::size_t t = 1; t < kept.size(); ++t) CHECK(kept[t] < kept[t - 1]);
  CHECK(bipq::geometric_schedule(10, 10).empty());
  CHECK_THROWS_WITH_AS(bipq::geometric_schedule(10, 11), doctest::Contains("k_target"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::geometric_schedule(10, 1, 1.0), doctest::Contains("rate"), std::invalid_argument);
}

TEST_CASE("cubic schedule follows s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3") {
  bipq::cubic_schedule s{.initial_sparsity = 0.1, .final_sparsity = 0.9, .begin_step = 100, .end_step = 300};
  s.validate();
  CHECK(s.sparsity(0) == 0.1);
  CHECK(s.sparsity(100) == 0.1);
  CHECK(s.sparsity(200) == doctest::Approx(0.9 - 0.8 * 0.125));
  CHECK(s.sparsity(300) == 0.9);
  CHECK(s.sparsity(1000) == 0.9);
  double prev = 0.0;
  for (std::size_t t = 0; t <= 400; ++t) {
    CHECK(s.sparsity(t) >= prev);  // monotone
    prev = s.sparsity(t);
  }
  CHECK_THROWS_WITH_AS((bipq::cubic_schedule{.final_sparsity = 1.0}.validate()), doctest::Contains("final_sparsity"),
                       std::invalid_argument);
}

#include "bipq/schedule/sap.hpp"

TEST_CASE("sap rule: r = ceil(d (1+eta)^(-q/(q-p)) (1-I)^(qp/(q-p))), c = floor(d min(gamma (1 - r/d), beta))") {
  const bipq::sap_rule rule{};  // p = 0.5, q = 1: r = ceil(d (1 - I)), c = floor(d min(I', 0.9)) with I' = 1 - r/d
  for (std::size_t d : {1u, 7u, 100u, 12345u}) {
    for (double pq : {0.0, 0.05, 0.3, 0.77, 0.99}) {
      const double r = std::ceil(double(d) * (1.0 - pq) - 1e-9);
      CHECK(bipq::sap_retained_count(d, pq, rule) == static_cast<std::size_t>(r));
      const double c = std::floor(double(d) * std::min(1.0 - r / double(d), 0.9) + 1e-9);
      CHECK(bipq::sap_prune_count(d, pq, rule) == static_cast<std::size_t>(c));
    }
  }
  // q = 2, p = 1, eta = 0.5: exponents q/(q-p) = 2 and qp/(q-p) = 2
  const bipq::sap_rule r2{.p = 1.0, .q = 2.0, .eta_r = 0.5, .gamma = 2.0, .beta = 0.5};
  const double r = std::ceil(1000.0 * std::pow(1.5, -2.0) * std::pow(1.0 - 0.2, 2.0) - 1e-9);
  CHECK(bipq::sap_retained_count(1000, 0.2, r2) == static_cast<std::size_t>(r));
  CHECK(bipq::sap_prune_count(1000, 0.2, r2) ==
        static_cast<std::size_t>(std::floor(1000.0 * std::min(2.0 * (1.0 - r / 1000.0), 0.5) + 1e-9)));
  // a dense constant-like scope (I = 0) keeps everything; an empty scope prunes nothing
  CHECK(bipq::sap_prune_count(500, 0.0, rule) == 0);
  CHECK(bipq::sap_prune_count(0, 0.5, rule) == 0);
  CHECK_THROWS_WITH_AS(bipq::sap_prune_count(10, 0.5, bipq::sap_rule{.beta = 0.0}), doctest::Contains("beta"),
                       std::invalid_argument);
}
