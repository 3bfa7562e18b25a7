// The portable generator: reproducible, uniform enough, and shuffles are permutations.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "bipq/detail/random.hpp"

TEST_CASE("same seed gives the same stream; different seeds differ") {
  bipq::detail::rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto x = a();
    CHECK(x == b());
    if (i == 0) CHECK(x != c());
  }
}

TEST_CASE("uniform and normal have the right first two moments") {
  bipq::detail::rng g(7);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = g.uniform(), z = g.normal();
    CHECK((u >= 0.0 && u < 1.0));
    su += u; su2 += u * u; sn += z; sn2 += z * z;
  }
  CHECK(su / n == doctest::Approx(0.5).epsilon(0.01));
  CHECK(su2 / n - (su / n) * (su / n) == doctest::Approx(1.0 / 12).epsilon(0.02));
  CHECK(std::abs(sn / n) < 0.01);
  CHECK(sn2 / n == doctest::Approx(1.0).epsilon(0.02));
}

TEST_CASE("permutation is a permutation and below(n) stays below n") {
  bipq::detail::rng g(1);
  auto p = bipq::detail::permutation(1000, g);
  std::vector<std::size_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  CHECK(p != iota);
  for (int i = 0; i < 1000; ++i) CHECK(g.below(3) < 3);
}
