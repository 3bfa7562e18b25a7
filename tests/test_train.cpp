// The generic masked trainer on a least-squares problem with a known solution: SGD steps as the formula says, masked
// weights stay exactly zero (also when a callback changes the mask mid-run), the callback protocol, determinism.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "bipq/optim/train.hpp"

namespace {

// ℓ(w, b) = (1/|I|) Σ_{i∈I} ½ (w·x_i + b − y_i)², with y_i = a·x_i + c exactly: the minimum is w = a, b = c, ℓ = 0.
template <bool with_evaluate>
struct least_squares {
  using scalar_type = double;
  static constexpr std::size_t d = 6;
  std::vector<double> w = std::vector<double>(d, 0.0), b = std::vector<double>(1, 0.0), gw = std::vector<double>(d, 0.0),
                      gb = std::vector<double>(1, 0.0);
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  std::vector<double> a{1.0, -2.0, 0.5, 3.0, -1.0, 2.0};
  double c = 0.7;
  std::vector<bipq::parameter<double>> params;
  std::size_t evaluations = 0;

  explicit least_squares(std::size_t n) {
    bipq::detail::rng g(42);
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<double> xi(d);
      double yi = c;
      for (std::size_t j = 0; j < d; ++j) xi[j] = 2 * g.uniform() - 1, yi += a[j] * xi[j];
      x.push_back(xi);
      y.push_back(yi);
    }
    params.push_back({"fc.weight", {1, d}, bipq::parameter_kind::linear_weight, w, gw});
    params.push_back({"fc.bias", {1}, bipq::parameter_kind::bias, b, gb});
  }
  const std::vector<bipq::parameter<double>>& parameters() const { return params; }
  std::size_t num_samples() const { return x.size(); }
  double loss_and_gradient(std::span<const std::size_t> idx) {
    std::fill(gw.begin(), gw.end(), 0.0);
    gb[0] = 0.0;
    double loss = 0.0;
    for (std::size_t i : idx) {
      double r = b[0] - y[i];
      for (std::size_t j = 0; j < d; ++j) r += w[j] * x[i][j];
      loss += 0.5 * r * r;
      for (std::size_t j = 0; j < d; ++j) gw[j] += r * x[i][j] / double(idx.size());
      gb[0] += r / double(idx.size());
    }
    return loss / double(idx.size());
  }
  bipq::evaluation evaluate()
    requires with_evaluate
  {
    ++evaluations;
    return {0.5, 0.25};
  }
};

using problem = least_squares<false>;
using model = least_squares<true>;

struct counter {
  std::size_t begins = 0, steps = 0, epochs = 0, ends = 0;
  std::size_t stop_after_steps = 0;  // 0: never stop
  double last_test_accuracy = 0.0;
  std::size_t weights_shown = 0, masks_shown = 0;
  void begin(const bipq::run_info& r) {
    ++begins;
    CHECK(r.method == "train");
  }
  bool step_taken(const bipq::step_info& s) {
    CHECK(s.step == steps);
    ++steps;
    return stop_after_steps != 0 && steps >= stop_after_steps;
  }
  void end_epoch(const bipq::epoch_info<double>& e) {
    CHECK(e.epoch == epochs);
    ++epochs;
    last_test_accuracy = e.test_accuracy;
    weights_shown = e.weights.size();
    masks_shown = e.masks.size();
  }
  void end(const bipq::run_info&) { ++ends; }
};

}  // namespace

TEST_CASE("train converges to the least-squares solution") {
  problem p(200);
  bipq::train_params tp;
  tp.epochs = 40;
  tp.batch_size = 20;
  tp.sgd.learning_rate = 0.1;
  tp.sgd.weight_decay = 0.0;
  const auto r = bipq::train(p, tp, {});
  CHECK(r.reason == bipq::termination::completed);
  REQUIRE(r.epoch_loss.size() == 40);
  CHECK(r.epoch_loss.back() < 1e-6);
  CHECK(r.steps == 40 * 10);
  for (std::size_t j = 0; j < problem::d; ++j) CHECK(p.w[j] == doctest::Approx(p.a[j]).epsilon(1e-3));
  CHECK(p.b[0] == doctest::Approx(p.c).epsilon(1e-3));
}

TEST_CASE("one full-batch step is the SGD update with the base learning rate and decay on weights only") {
  problem p(10);
  std::fill(p.w.begin(), p.w.end(), 0.5);
  p.b[0] = 0.3;
  problem q = p;  // same data and values, for the reference gradient
  q.params[0].value = q.w, q.params[0].grad = q.gw, q.params[1].value = q.b, q.params[1].grad = q.gb;
  std::vector<std::size_t> all(10);
  for (std::size_t i = 0; i < 10; ++i) all[i] = i;
  q.loss_and_gradient(all);
  bipq::train_params tp;
  tp.epochs = 1;
  tp.batch_size = 10;
  tp.sgd = {.learning_rate = 0.1, .momentum = 0.9, .nesterov = false, .weight_decay = 0.01};
  bipq::train(p, tp, {});
  for (std::size_t j = 0; j < problem::d; ++j) CHECK(p.w[j] == doctest::Approx(0.5 - 0.1 * (q.gw[j] + 0.01 * 0.5)));
  CHECK(p.b[0] == doctest::Approx(0.3 - 0.1 * q.gb[0]));  // biases are not decayed by default
}

TEST_CASE("masked weights are zeroed first and stay exactly zero under momentum and weight decay") {
  problem p(100);
  std::fill(p.w.begin(), p.w.end(), 1.0);
  const std::vector<double> mask{1, 0, 1, 0, 0, 1};
  const std::vector<std::span<const double>> masks{std::span<const double>(mask), {}};
  bipq::train_params tp;
  tp.epochs = 5;
  tp.batch_size = 10;
  bipq::train(p, tp, std::span<const std::span<const double>>(masks));
  for (std::size_t j = 0; j < problem::d; ++j) {
    if (mask[j] == 0.0) CHECK(p.w[j] == 0.0);
    else CHECK(p.w[j] != 1.0);
  }
}

TEST_CASE("a mask changed by a callback during the run keeps the newly pruned weights at zero") {
  problem p(100);
  std::vector<double> mask(problem::d, 1.0);
  const std::vector<std::span<const double>> masks{std::span<const double>(mask), {}};
  struct pruner {
    std::vector<double>& mask;
    std::vector<double>& w;
    bool step_taken(const bipq::step_info& s) {
      if (s.step == 7) mask[3] = 0.0, w[3] = 0.0;  // prune weight 3 after step 7, as gradual pruning does
      return false;
    }
  } cb{mask, p.w};
  bipq::train_params tp;
  tp.epochs = 3;
  tp.batch_size = 10;
  bipq::train(p, tp, std::span<const std::span<const double>>(masks), cb);
  CHECK(p.w[3] == 0.0);
  CHECK(p.w[0] != 0.0);
}

TEST_CASE("callbacks: hooks called once per run, step and epoch; a stop request ends the run") {
  model m(50);
  bipq::train_params tp;
  tp.epochs = 3;
  tp.batch_size = 16;  // 4 steps per epoch, the last one of 2 samples
  counter c;
  auto r = bipq::train(m, tp, {}, c);
  CHECK(c.begins == 1);
  CHECK(c.steps == 12);
  CHECK(c.epochs == 3);
  CHECK(c.ends == 1);
  CHECK(m.evaluations == 3);  // a trainable_model is evaluated at every epoch end
  CHECK(c.last_test_accuracy == 0.25);
  CHECK(c.weights_shown == 1);  // the linear weight only
  CHECK(c.masks_shown == 0);

  counter stopper;
  stopper.stop_after_steps = 6;
  r = bipq::train(m, tp, {}, stopper);
  CHECK(r.reason == bipq::termination::callback_stop);
  CHECK(stopper.steps == 6);
  CHECK(stopper.epochs == 2);  // the interrupted epoch still reports
  CHECK(stopper.ends == 1);
  CHECK(r.epoch_loss.size() == 2);
}

TEST_CASE("same seed, same result; another seed, another order") {
  auto run = [](std::uint64_t seed) {
    problem p(64);
    bipq::train_params tp;
    tp.epochs = 2;
    tp.batch_size = 8;
    tp.seed = seed;
    bipq::train(p, tp, {});
    return p.w;
  };
  CHECK(run(1) == run(1));
  CHECK(run(1) != run(2));
}

TEST_CASE("train rejects invalid settings and masks, naming them") {
  problem p(10);
  bipq::train_params tp;
  tp.epochs = 0;
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, {}), doctest::Contains("'epochs'"), std::invalid_argument);
  tp.epochs = 1;
  tp.batch_size = 0;
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, {}), doctest::Contains("'batch_size'"), std::invalid_argument);
  tp.batch_size = 4;
  tp.sgd.learning_rate = -1.0;
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, {}), doctest::Contains("'learning_rate'"), std::invalid_argument);
  tp.sgd.learning_rate = 0.1;
  const std::vector<double> short_mask(3, 1.0);
  const std::vector<std::span<const double>> bad{std::span<const double>(short_mask), {}};
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, std::span<const std::span<const double>>(bad)),
                       doctest::Contains("fc.weight"), std::invalid_argument);
  const std::vector<std::span<const double>> one{{}};
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, std::span<const std::span<const double>>(one)),
                       doctest::Contains("masks has 1"), std::invalid_argument);
  tp.sgd.learning_rate = 1e6;  // diverges: reported, not silently NaN
  tp.epochs = 50;
  CHECK_THROWS_WITH_AS(bipq::train(p, tp, {}), doctest::Contains("not finite"), std::invalid_argument);
}
