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
