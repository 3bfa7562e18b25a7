// SGD and the cosine schedule against their update formulas.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "bipq/optim/sgd.hpp"

TEST_CASE("sgd with momentum follows v <- mu v + g + wd theta, theta <- theta - lr v") {
  bipq::sgd_params p{.learning_rate = 0.1, .momentum = 0.9, .nesterov = false, .weight_decay = 0.01};
  bipq::sgd<double> opt(p, {2});
  std::vector<double> theta{1.0, -2.0}, g{0.5, 0.25};
  double v0 = 0, v1 = 0, t0 = 1.0, t1 = -2.0;
  for (int it = 0; it < 5; ++it) {
    opt.step(0, theta, g, 0.1, 0.01);
    v0 = 0.9 * v0 + 0.5 + 0.01 * t0;
    t0 -= 0.1 * v0;
    v1 = 0.9 * v1 + 0.25 + 0.01 * t1;
    t1 -= 0.1 * v1;
  }
  CHECK(theta[0] == doctest::Approx(t0).epsilon(1e-14));
  CHECK(theta[1] == doctest::Approx(t1).epsilon(1e-14));
}

TEST_CASE("nesterov sgd steps with d + mu v") {
  bipq::sgd_params p{.learning_rate = 0.1, .momentum = 0.5, .nesterov = true, .weight_decay = 0.0};
  bipq::sgd<double> opt(p, {1});
  std::vector<double> theta{1.0}, g{2.0};
  opt.step(0, theta, g, 0.1, 0.0);  // v = 2, step = 2 + 0.5*2 = 3
  CHECK(theta[0] == doctest::Approx(1.0 - 0.3));
  opt.step(0, theta, g, 0.1, 0.0);  // v = 3, step = 2 + 1.5 = 3.5
  CHECK(theta[0] == doctest::Approx(0.7 - 0.35));
}

TEST_CASE("masked entries with zero weight and zero gradient stay exactly zero") {
  bipq::sgd<float> opt(bipq::sgd_params{}, {3});
  std::vector<float> theta{0.5f, 0.0f, -1.0f}, g{0.1f, 0.0f, 0.2f};
  for (int it = 0; it < 10; ++it) opt.step(0, theta, g, 0.05, 5e-4);
  CHECK(theta[1] == 0.0f);
}

TEST_CASE("sgd_params::validate names the field") {
  CHECK_THROWS_WITH_AS(bipq::sgd<float>(bipq::sgd_params{.learning_rate = -1.0}, {1}),
                       doctest::Contains("learning_rate"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::sgd<float>(bipq::sgd_params{.momentum = 1.0}, {1}), doctest::Contains("momentum"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::sgd<float>(bipq::sgd_params{.momentum = 0.0, .nesterov = true}, {1}),
                       doctest::Contains("nesterov"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::sgd<float>(bipq::sgd_params{.weight_decay = -1e-4}, {1}),
                       doctest::Contains("weight_decay"), std::invalid_argument);
  bipq::sgd<float> opt(bipq::sgd_params{}, {2});
  std::vector<float> theta(3), g(3);
  CHECK_THROWS_AS(opt.step(0, theta, g, 0.1, 0.0), std::invalid_argument);
}

TEST_CASE("cosine schedule goes from base to final along half a cosine") {
  CHECK(bipq::cosine_learning_rate(0.1, 0, 100) == doctest::Approx(0.1));
  CHECK(bipq::cosine_learning_rate(0.1, 50, 100) == doctest::Approx(0.05));
  CHECK(bipq::cosine_learning_rate(0.1, 100, 100) == doctest::Approx(0.0));
  CHECK(bipq::cosine_learning_rate(0.1, 25, 100, 0.02) ==
        doctest::Approx(0.02 + 0.08 * 0.5 * (1 + std::cos(M_PI / 4))));
}
