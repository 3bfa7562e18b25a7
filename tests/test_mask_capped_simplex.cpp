// The capped-simplex projection checked against its definition: the KKT conditions (m = clip(v − λ, 0, 1),
// λ ≥ 0 and complementary slackness for 1ᵀm ≤ k; 1ᵀm = k for the equality), and, for small n, against the
// closest feasible point over all active sets, and against the distance to random feasible points.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/mask/capped_simplex.hpp"

namespace {

using bipq::simplex_constraint;

/// Brute force over active sets: every assignment of the coordinates to {at 0, at 1, free} and of the sum
/// constraint to {inactive (λ = 0), active}, free coordinates m_i = v_i − λ with λ from 1ᵀm = k; the closest
/// feasible candidate is the projection (the projection is one of them, and it is unique).
std::vector<double> brute_force(const std::vector<double>& v, double k, simplex_constraint c) {
  const std::size_t n = v.size();
  std::size_t combos = 1;
  for (std::size_t i = 0; i < n; ++i) combos *= 3;
  std::vector<double> best;
  double best_distance = std::numeric_limits<double>::infinity();
  std::vector<double> m(n);
  for (std::size_t code = 0; code < combos; ++code) {
    std::vector<int> state(n);
    std::size_t x = code, n_free = 0;
    double fixed = 0.0, free_sum = 0.0;
    for (std::size_t i = 0; i < n; ++i, x /= 3) {
      state[i] = int(x % 3);  // 0: at 0, 1: at 1, 2: free
      if (state[i] == 1) fixed += 1.0;
      if (state[i] == 2) {
        ++n_free;
        free_sum += v[i];
      }
    }
    for (int active = 0; active < 2; ++active) {
      if (c == simplex_constraint::equal && !active) continue;
      const double lambda = !active ? 0.0 : (n_free ? (fixed + free_sum - k) / double(n_free) : 0.0);
      double sum = 0.0, distance = 0.0;
      bool feasible = true;
      for (std::size_t i = 0; i < n; ++i) {
        m[i] = state[i] == 0 ? 0.0 : state[i] == 1 ? 1.0 : v[i] - lambda;
        feasible &= m[i] >= -1e-12 && m[i] <= 1.0 + 1e-12;
        sum += m[i];
        distance += (m[i] - v[i]) * (m[i] - v[i]);
      }
      feasible &= c == simplex_constraint::equal ? std::abs(sum - k) <= 1e-9 : sum <= k + 1e-9;
      if (feasible && distance < best_distance) {
        best_distance = distance;
        best = m;
      }
    }
  }
  return best;
}

template <class T>
void check_kkt(const std::vector<T>& v, double k, simplex_constraint c, double tol) {
  std::vector<T> m(v.size());
  bipq::capped_simplex_projection<T>(v, k, m, c);
  const double lambda = bipq::capped_simplex_threshold<T>(v, k, c);
  double sum = 0.0, worst = 0.0;
  bool in_box = true;
  for (std::size_t i = 0; i < v.size(); ++i) {
    in_box &= m[i] >= T(0) && m[i] <= T(1);
    worst = std::max(worst, std::abs(double(m[i]) - std::clamp(double(v[i]) - lambda, 0.0, 1.0)));
    sum += double(m[i]);
  }
  CHECK(in_box);
  CHECK(worst <= tol);  // stationarity: m = clip(v − λ, 0, 1)
  const double slack = tol * std::max(1.0, double(v.size()));
  if (c == simplex_constraint::at_most) {
    CHECK(lambda >= 0.0);
    CHECK(sum <= k + slack);
    if (lambda > 0.0) CHECK(std::abs(sum - k) <= slack);  // complementary slackness
  } else {
    CHECK(std::abs(sum - k) <= slack);
  }
}

}  // namespace

TEST_CASE("capped_simplex_projection equals the brute-force projection over active sets for n <= 6") {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal(0.5, 1.0);
  std::uniform_int_distribution<int> level(-2, 6);
  for (int trial = 0; trial < 400; ++trial) {
    const std::size_t n = 1 + std::size_t(trial % 6);
    std::vector<double> v(n);
    for (auto& x : v) x = (trial % 3 == 0) ? double(level(rng)) * 0.25 : normal(rng);  // ties in a third
    std::uniform_real_distribution<double> uk(0.0, double(n));
    for (double k : {0.0, uk(rng), std::floor(uk(rng)), double(n)}) {
      for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
        std::vector<double> m(n);
        bipq::capped_simplex_projection<double>(v, k, m, c);
        const std::vector<double> expected = brute_force(v, k, c);
        CAPTURE(trial);
        CAPTURE(k);
        for (std::size_t i = 0; i < n; ++i) CHECK(std::abs(m[i] - expected[i]) <= 1e-9);
        // Optimality against random feasible points: ‖m − v‖ ≤ ‖y − v‖.
        double dm = 0.0;
        for (std::size_t i = 0; i < n; ++i) dm += (m[i] - v[i]) * (m[i] - v[i]);
        std::uniform_real_distribution<double> u01(0.0, 1.0);
        for (int s = 0; s < 20; ++s) {
          std::vector<double> y(n);
          for (auto& yi : y) yi = u01(rng);
          const double sum = std::accumulate(y.begin(), y.end(), 0.0);
          if (c == simplex_constraint::at_most && sum > k) {
            for (auto& yi : y) yi *= k / sum;
          }
          if (c == simplex_constraint::equal) continue;  // the equality set is checked by the brute force
          double dy = 0.0;
          for (std::size_t i = 0; i < n; ++i) dy += (y[i] - v[i]) * (y[i] - v[i]);
          CHECK(dm <= dy + 1e-12);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("capped_simplex_projection satisfies the KKT conditions", T, float, double) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal(0.0, 2.0);
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  for (std::size_t n : {std::size_t(1), std::size_t(10), std::size_t(1000), std::size_t(100000)}) {
    std::vector<T> v(n), tied(n), mostly_negative(n);
    for (auto& x : v) x = T(normal(rng));
    for (auto& x : tied) x = T(double(rng() % 5) * 0.5);
    for (auto& x : mostly_negative) x = (rng() % 50 == 0) ? T(normal(rng) + 1.0) : T(-5.0);  // few breakpoints > 0
    for (double fraction : {0.0, 0.01, 0.1, 0.5, 0.9, 1.0}) {
      const double k = fraction * double(n);
      for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
        CAPTURE(n);
        CAPTURE(k);
        check_kkt<T>(v, k, c, tol);
        check_kkt<T>(tied, k, c, tol);
        check_kkt<T>(mostly_negative, k, c, tol);
      }
    }
  }
}

TEST_CASE("capped_simplex_projection edge cases") {
  const std::vector<double> v{0.3, -2.0, 1.7, 0.9};
  std::vector<double> m(4);
  // at_most with k >= n, or with a clipped sum already <= k: the projection is clip(v, 0, 1).
  for (double k : {4.0, 10.0, 2.2}) {
    bipq::capped_simplex_projection<double>(v, k, m);
    CHECK(m == std::vector<double>{0.3, 0.0, 1.0, 0.9});
    CHECK(bipq::capped_simplex_threshold<double>(v, k) == 0.0);
  }
  // k = 0: the zero vector, for both constraints.
  bipq::capped_simplex_projection<double>(v, 0.0, m);
  CHECK(m == std::vector<double>(4, 0.0));
  bipq::capped_simplex_projection<double>(v, 0.0, m, simplex_constraint::equal);
  CHECK(m == std::vector<double>(4, 0.0));
  // equal with k = n: all ones, whatever v.
  bipq::capped_simplex_projection<double>(v, 4.0, m, simplex_constraint::equal);
  CHECK(m == std::vector<double>(4, 1.0));
  // All entries tied: every entry gets k / n.
  const std::vector<double> same(5, 3.0);
  std::vector<double> ms(5);
  bipq::capped_simplex_projection<double>(same, 2.0, ms);
  for (double x : ms) CHECK(x == doctest::Approx(0.4));
  // Integer k on distinct entries far apart gives a 0/1 vertex: the top-k.
  const std::vector<double> spread{5.0, -1.0, 9.0, 0.0, 7.0};
  std::vector<double> mv(5);
  bipq::capped_simplex_projection<double>(spread, 2.0, mv, simplex_constraint::equal);
  CHECK(mv == std::vector<double>{0, 0, 1, 0, 1});
  // In place.
  std::vector<double> w = v, expected(4);
  bipq::capped_simplex_projection<double>(v, 1.5, expected);
  bipq::capped_simplex_projection<double>(w, 1.5, w);
  CHECK(w == expected);
  // Empty input.
  std::vector<double> empty;
  bipq::capped_simplex_projection<double>(empty, 0.0, empty, simplex_constraint::equal);
}

TEST_CASE("capped_simplex_projection is deterministic, in place or not") {
  std::mt19937_64 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(50000);
  for (auto& x : v) x = normal(rng);
  std::vector<float> a(v.size()), b(v.size());
  bipq::capped_simplex_projection(v, 1234.5, a, simplex_constraint::equal);
  bipq::capped_simplex_projection(v, 1234.5, b, simplex_constraint::equal);
  CHECK(a == b);
  std::vector<float> in_place = v;  // out == v: the search then works on a private copy
  bipq::capped_simplex_projection(in_place, 1234.5, in_place, simplex_constraint::equal);
  CHECK(in_place == a);
}

TEST_CASE("capped_simplex_projection rejects bad input with the function and argument named") {
  std::vector<double> v{1, 2, 3}, out(3), short_out(2);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { bipq::capped_simplex_projection<double>(v, -1.0, out); }).find("capped_simplex_projection(): k") == 0);
  CHECK(message([&] { bipq::capped_simplex_projection<double>(v, std::nan(""), out); }).find("capped_simplex_projection(): k") == 0);
  CHECK(message([&] {
          bipq::capped_simplex_projection<double>(v, 3.5, out, simplex_constraint::equal);
        }).find("capped_simplex_projection(): k must be <= n") == 0);
  CHECK(message([&] { bipq::capped_simplex_projection<double>(v, 1.0, short_out); }).find("capped_simplex_projection(): out") == 0);
  for (auto c : {simplex_constraint::at_most, simplex_constraint::equal}) {
    std::vector<double> bad{1, std::numeric_limits<double>::infinity(), 0};
    CHECK(message([&] { bipq::capped_simplex_projection<double>(bad, 1.0, out, c); })
              .find("capped_simplex_projection(): v contains NaN or Inf (index 1)") == 0);
  }
}

namespace {

// The KKT conditions of the projection of v = c + u (c a large offset, u exact small offsets, so that v_i − λ is
// judged exactly as u_i − (λ − c)): m ∈ [0,1]^n; the free entries share one λ' = u_i − m_i; entries at 0 have
// u_i ≤ λ', entries at 1 have u_i ≥ λ' + 1; the sum is k (≤ k for at_most, where λ > 0 here).
void check_kkt_offset(const std::vector<double>& u, const std::vector<double>& m, double k) {
  double sum = 0.0, lambda = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < m.size(); ++i) {
    CHECK(m[i] >= 0.0);
    CHECK(m[i] <= 1.0);
    sum += m[i];
    if (m[i] > 0.0 && m[i] < 1.0) {
      if (std::isnan(lambda)) lambda = u[i] - m[i];
      CHECK(u[i] - m[i] == doctest::Approx(lambda).epsilon(1e-12));
    }
  }
  CHECK(sum <= k + 1e-12 * double(m.size()));
  CHECK(sum == doctest::Approx(k).epsilon(1e-12));
  if (!std::isnan(lambda)) {
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (m[i] == 0.0) CHECK(u[i] <= lambda + 1e-12);
      if (m[i] == 1.0) CHECK(u[i] >= lambda + 1.0 - 1e-12);
    }
  }
}

}  // namespace

TEST_CASE("capped_simplex_projection keeps the sum at most k and the KKT conditions for entries near 1e16") {
  // Near 1e16 the doubles are 2 apart, so v_i − λ computed directly is off by up to 1: the whole box.
  const double c = 1e16;
  const std::vector<double> u{0, 0, 0, 2, -2, 4, -6, 2};
  std::vector<double> v(u.size());
  for (std::size_t i = 0; i < u.size(); ++i) v[i] = c + u[i];
  for (const double k : {1.0, 2.5, 3.0, 0.3}) {
    for (const auto constraint : {simplex_constraint::at_most, simplex_constraint::equal}) {
      INFO("k = " << k);
      std::vector<double> m(v.size());
      bipq::capped_simplex_projection<double>(v, k, m, constraint);
      check_kkt_offset(u, m, k);
      const double lambda = bipq::capped_simplex_threshold<double>(v, k, constraint);
      CHECK(std::isfinite(lambda));
      CHECK(std::abs(lambda - c) <= 8.0);
    }
  }
}

TEST_CASE("capped_simplex_projection and its threshold are exact and finite for entries at DBL_MAX") {
  constexpr double big = std::numeric_limits<double>::max();
  const double below = std::nextafter(big, 0.0);
  std::vector<double> m(5);
  // Two entries tied at DBL_MAX share k = 1; the rest, however large, are 0.
  const std::vector<double> v{big, below, big, 0.0, -big};
  bipq::capped_simplex_projection<double>(v, 1.0, m);
  CHECK(m == std::vector<double>{0.5, 0.0, 0.5, 0.0, 0.0});
  const double lambda = bipq::capped_simplex_threshold<double>(v, 1.0);
  CHECK(std::isfinite(lambda));
  CHECK(lambda > below);
  // An entry at DBL_MAX at 1 and one at −DBL_MAX free: λ = −DBL_MAX − 0.5 is not a double, the projection still is.
  const std::vector<double> w{big, -big};
  std::vector<double> mw(2);
  bipq::capped_simplex_projection<double>(w, 1.5, mw, simplex_constraint::equal);
  CHECK(mw == std::vector<double>{1.0, 0.5});
  CHECK(std::isfinite(bipq::capped_simplex_threshold<double>(w, 1.5, simplex_constraint::equal)));
  // Huge entries far apart with integer k: the vertex of the k largest.
  const std::vector<double> spread{big / 4, big, -big, big / 2};
  std::vector<double> ms(4);
  bipq::capped_simplex_projection<double>(spread, 2.0, ms);
  CHECK(ms == std::vector<double>{0, 1, 0, 1});
}
