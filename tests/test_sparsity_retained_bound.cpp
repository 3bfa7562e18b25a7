// Theorem 2 of Diao et al. (2023): r ≥ d (1+η_r)^{−q/(q−p)} [1 − I_{p,q}(w)]^{qp/(q−p)}, with η_r from its definition.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/sparsity/retained_bound.hpp"

namespace {

const std::pair<double, double> pq_pairs[] = {{0.5, 1.0}, {1.0, 2.0}, {0.5, 2.0}, {1.0, 3.0}, {2.0, 4.0}};

std::vector<double> random_vector(std::size_t n, bipq::detail::rng& g, int kind) {
  std::vector<double> w(n);
  for (auto& x : w) {
    switch (kind % 4) {
      case 0: x = g.normal(); break;
      case 1: x = g.uniform(); break;
      case 2: x = std::tan(3.14159265358979 * (g.uniform() - 0.5)); break;  // Cauchy: heavy tails
      default: x = std::pow(1.0 - g.uniform(), -1.0 / 0.8); break;          // Pareto(0.8): infinite mean
    }
    if (g.uniform() < 0.15) x = 0.0;
  }
  return w;
}

/// η_r by a full sort, straight from the definition.
double eta_by_sorting(std::vector<double> w, std::size_t r, double p) {
  for (auto& x : w) x = std::fabs(x);
  std::sort(w.begin(), w.end(), std::greater<>());
  long double kept = 0, dropped = 0;
  for (std::size_t i = 0; i < w.size(); ++i) (i < r ? kept : dropped) += std::pow(static_cast<long double>(w[i]), p);
  return kept == 0 ? 0.0 : static_cast<double>(dropped / kept);
}

}  // namespace

TEST_CASE("Theorem 2 holds for every r on random and heavy-tailed vectors") {
  bipq::detail::rng g(31);
  for (int kind = 0; kind < 4; ++kind) {
    for (std::size_t d : {2u, 9u, 50u, 300u}) {
      const auto w = random_vector(d, g, kind);
      for (const auto& pair : pq_pairs) {
        const double p = pair.first, q = pair.second;  // named copies: INFO captures them
        const double index = bipq::pq_index(w, p, q);
        for (std::size_t r = 1; r <= d; ++r) {
          const double eta = bipq::pq_retained_eta(w, r, p);
          const double bound = bipq::pq_retained_bound(d, index, p, q, eta);
          INFO("kind ", kind, ", d ", d, ", p ", p, ", q ", q, ", r ", r, ", eta ", eta, ", bound ", bound);
          CHECK(bound <= static_cast<double>(r) * (1 + 1e-10));
          CHECK(bound >= 0.0);
        }
      }
    }
  }
}

TEST_CASE("Theorem 2 is tight: r equal non-zero entries give eta_r = 0 and bound = r") {
  for (std::size_t d : {1u, 7u, 100u}) {
    for (std::size_t r = 1; r <= d; r += (d > 10 ? 13 : 1)) {
      // r entries of magnitude 3 (alternating signs) at the end, zeros in front: the positions do not matter.
      std::vector<double> w(d, 0.0);
      for (std::size_t i = 0; i < r; ++i) w[d - 1 - i] = (i % 2 ? -3.0 : 3.0);
      for (auto [p, q] : pq_pairs) {
        CHECK(bipq::pq_retained_eta(w, r, p) == 0.0);
        const double bound = bipq::pq_retained_bound(d, bipq::pq_index(w, p, q), p, q, 0.0);
        CHECK(bound == doctest::Approx(static_cast<double>(r)).epsilon(1e-9));
      }
    }
  }
}

TEST_CASE("eta_r is the smallest eta of the defining inequality") {
  bipq::detail::rng g(37);
  for (int kind = 0; kind < 4; ++kind) {
    const auto w = random_vector(200, g, kind);
    for (std::size_t r : {1u, 2u, 50u, 199u, 200u}) {
      for (double p : {0.5, 1.0, 2.0}) {
        const double eta = bipq::pq_retained_eta(w, r, p);
        CHECK(eta == doctest::Approx(eta_by_sorting(w, r, p)).epsilon(1e-12));
      }
    }
    CHECK(bipq::pq_retained_eta(w, 200, 0.5) == 0.0);
  }
  // Huge and tiny magnitudes: the scaling keeps η finite and exact.
  std::vector<double> huge{1e300, 1e299, 1e298}, tiny{1e-300, 1e-301, 1e-320};
  CHECK(bipq::pq_retained_eta(huge, 1, 4.0) == doctest::Approx(1e-4 + 1e-8).epsilon(1e-12));
  CHECK(bipq::pq_retained_eta(tiny, 1, 1.0) == doctest::Approx(0.1 + 1e-20).epsilon(1e-3));
}

TEST_CASE("the bound decreases as eta_r grows and as the index grows") {
  double previous = bipq::pq_retained_bound(1000, 0.3, 0.5, 1.0, 0.0);
  CHECK(previous <= 1000.0);
  for (double eta : {0.01, 0.1, 1.0, 10.0}) {
    const double b = bipq::pq_retained_bound(1000, 0.3, 0.5, 1.0, eta);
    CHECK(b < previous);
    previous = b;
  }
  CHECK(bipq::pq_retained_bound(1000, 0.5, 0.5, 1.0, 0.0) < bipq::pq_retained_bound(1000, 0.4, 0.5, 1.0, 0.0));
  CHECK(bipq::pq_retained_bound(1000, 0.0, 0.5, 1.0, 0.0) == doctest::Approx(1000.0));
  CHECK(bipq::pq_retained_bound(1000, 1.0, 0.5, 1.0, 0.0) == 0.0);
  CHECK(bipq::pq_retained_bound(0, 0.2, 0.5, 1.0, 0.0) == 0.0);
  CHECK(bipq::pq_retained_bound(10, 0.2, 0.5, 1.0, std::numeric_limits<double>::infinity()) == 0.0);
}

TEST_CASE("bad arguments throw std::invalid_argument naming the function and the argument") {
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, 0.5, 0.0, 1.0, 0.0), doctest::Contains("pq_retained_bound(): p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, 0.5, 1.0, 1.0, 0.0), doctest::Contains("pq_retained_bound(): q"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, 1.5, 0.5, 1.0, 0.0),
                       doctest::Contains("pq_retained_bound(): pq"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, -0.1, 0.5, 1.0, 0.0),
                       doctest::Contains("pq_retained_bound(): pq"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, 0.5, 0.5, 1.0, -1.0),
                       doctest::Contains("pq_retained_bound(): eta_r"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_bound(10, 0.5, 0.5, 1.0, std::nan("")),
                       doctest::Contains("pq_retained_bound(): eta_r"), std::invalid_argument);
  const std::vector<float> w{1.0f, 2.0f};
  CHECK_THROWS_WITH_AS(bipq::pq_retained_eta(w, 0, 0.5), doctest::Contains("pq_retained_eta(): r"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_eta(w, 3, 0.5), doctest::Contains("pq_retained_eta(): r"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_eta(w, 1, -0.5), doctest::Contains("pq_retained_eta(): p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::pq_retained_eta(std::vector<float>{1.0f, std::nanf("")}, 1, 0.5),
                       doctest::Contains("pq_retained_eta(): w contains NaN or Inf (index 1)"), std::invalid_argument);
}
