// The models and the classifier problem: parameter lists, the loss gradient of whole models against finite
// differences, overfitting a small batch, determinism, thread-count independence, and Fashion-MNIST when installed.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <numeric>
#include <vector>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/data.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/optim/train.hpp"

using namespace bipq::eigen;
using bipq::io::image_dataset;

namespace {

// n samples of shape c×h×w, pixels uniform in [0, 1]; the label depends on the image (class = argmax of the mean of
// 10 pixel groups) so that the data is learnable.
image_dataset synthetic(std::size_t n, std::uint64_t seed, std::size_t c = 1, std::size_t h = 28,
                        std::size_t w = 28) {
  bipq::detail::rng g(seed);
  image_dataset d;
  d.channels = c, d.height = h, d.width = w;
  d.images.resize(n * c * h * w);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<float>(g.uniform());
  d.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) d.labels[i] = static_cast<std::uint8_t>(g.below(10));
  return d;
}

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t(0));
  return v;
}

template <class T>
void check_model_gradient(basic_sequential<T>& model, const image_dataset& data, std::size_t threads) {
  basic_classifier<T> problem(model, data, data, threads);
  const auto idx = iota(data.size());
  problem.loss_and_gradient(idx);
  const auto& ps = problem.parameters();
  std::vector<std::vector<T>> grads;
  for (const auto& p : ps) grads.emplace_back(p.grad.begin(), p.grad.end());
  const double h = 1e-6;
  for (std::size_t i = 0; i < ps.size(); ++i) {
    // A few entries of every tensor (first, middle, last).
    for (std::size_t j : {std::size_t(0), ps[i].value.size() / 2, ps[i].value.size() - 1}) {
      T& v = ps[i].value[j];
      const T saved = v;
      v = saved + h;
      const double fp = problem.loss_and_gradient(idx);
      v = saved - h;
      const double fm = problem.loss_and_gradient(idx);
      v = saved;
      INFO(ps[i].name << "[" << j << "]");
      CHECK(grads[i][j] == doctest::Approx((fp - fm) / (2 * h)).epsilon(1e-5).scale(1e-3));
    }
  }
}

}  // namespace

TEST_CASE("LeNet-5 has the named parameters, shapes and kinds of the PyTorch model") {
  const sequential m = make_lenet5(0);
  const auto& ps = m.parameters();
  REQUIRE(ps.size() == 10);
  CHECK(ps[0].name == "conv1.weight");
  CHECK(ps[0].shape == std::vector<std::size_t>{6, 1, 5, 5});
  CHECK(ps[0].kind == bipq::parameter_kind::conv_weight);
  CHECK(ps[1].name == "conv1.bias");
  CHECK(ps[1].kind == bipq::parameter_kind::bias);
  CHECK(ps[2].shape == std::vector<std::size_t>{16, 6, 5, 5});
  CHECK(ps[4].name == "fc1.weight");
  CHECK(ps[4].shape == std::vector<std::size_t>{120, 400});
  CHECK(ps[4].kind == bipq::parameter_kind::linear_weight);
  CHECK(ps[9].name == "fc3.bias");
  CHECK(m.num_parameters() == 61706);
  CHECK(m.output_shape() == shape3{10, 1, 1});
}

TEST_CASE("Kaiming-normal initialisation: zero biases, weight variance 2/fan_in, same seed same bits") {
  const sequential a = make_lenet5(7), b = make_lenet5(7), c = make_lenet5(8);
  const auto& w = a.parameters()[4];  // fc1.weight, fan_in 400, 48,000 values
  double s2 = 0.0;
  for (float v : w.value) s2 += double(v) * v;
  CHECK(s2 / double(w.value.size()) == doctest::Approx(2.0 / 400).epsilon(0.03));
  for (float v : a.parameters()[5].value) CHECK(v == 0.0f);
  for (std::size_t i = 0; i < a.parameters().size(); ++i) {
    CHECK(std::equal(a.parameters()[i].value.begin(), a.parameters()[i].value.end(), b.parameters()[i].value.begin()));
  }
  CHECK_FALSE(std::equal(a.parameters()[0].value.begin(), a.parameters()[0].value.end(), c.parameters()[0].value.begin()));
}

TEST_CASE("PQI CNN and MLP: structure and parameter kinds") {
  const sequential cnn = make_pqi_cnn({}, 0);
  std::size_t norms = 0, convs = 0;
  for (const auto& p : cnn.parameters()) {
    norms += p.kind == bipq::parameter_kind::norm;
    convs += p.kind == bipq::parameter_kind::conv_weight;
  }
  CHECK(convs == 4);
  CHECK(norms == 8);
  CHECK(cnn.parameters().back().name == "fc.bias");
  CHECK(cnn.parameters()[0].shape == std::vector<std::size_t>{16, 1, 3, 3});
  const sequential mlp = make_mlp(0);
  CHECK(mlp.num_parameters() == 784 * 128 + 128 + 128 * 256 + 256 + 256 * 10 + 10);
  CHECK_THROWS_AS(make_pqi_cnn({8, 0}, 0), std::invalid_argument);
}

TEST_CASE("classifier loss gradient matches finite differences for whole models (double)") {
  SUBCASE("LeNet-5, 2 threads") {
    auto m = make_lenet5<double>(3);
    check_model_gradient(m, synthetic(6, 1), 2);
  }
  SUBCASE("PQI CNN with batch norm (training mode), 2 threads") {
    auto m = make_pqi_cnn<double>({3, 4}, 4, 10, {1, 8, 8});
    check_model_gradient(m, synthetic(6, 2, 1, 8, 8), 2);
  }
  SUBCASE("MLP, 1 thread") {
    auto m = make_mlp<double>(5, 10, {1, 4, 4});
    check_model_gradient(m, synthetic(5, 3, 1, 4, 4), 1);
  }
}

TEST_CASE("the loss is the mean cross-entropy: log(10) for zero weights") {
  auto m = make_lenet5(0);
  for (const auto& p : m.parameters()) std::fill(p.value.begin(), p.value.end(), 0.0f);
  const image_dataset d = synthetic(10, 4);
  classifier problem(m, d, d, 2);
  const auto idx = iota(10);
  CHECK(problem.loss_and_gradient(idx) == doctest::Approx(std::log(10.0)).epsilon(1e-6));
  const bipq::evaluation e = problem.evaluate();
  CHECK(e.loss == doctest::Approx(std::log(10.0)).epsilon(1e-6));
  // The cost counter: training samples through loss_and_gradient (10 + 3), evaluation not counted.
  problem.loss_and_gradient(std::span<const std::size_t>(idx).first(3));
  CHECK(problem.samples_processed() == 13);
}

TEST_CASE("results do not depend on the thread count beyond float rounding") {
  const image_dataset d = synthetic(37, 5, 1, 12, 12);
  const auto idx = iota(37);
  std::vector<std::vector<float>> ref;
  double ref_loss = 0.0;
  for (std::size_t threads : {1, 2, 3}) {
    auto m = make_pqi_cnn({6, 8}, 9, 10, {1, 12, 12});
    classifier problem(m, d, d, threads);
    const double loss = problem.loss_and_gradient(idx);
    if (threads == 1) {
      ref_loss = loss;
      for (const auto& p : problem.parameters()) ref.emplace_back(p.grad.begin(), p.grad.end());
      continue;
    }
    CHECK(loss == doctest::Approx(ref_loss).epsilon(1e-5));
    for (std::size_t i = 0; i < ref.size(); ++i) {
      double diff = 0.0, norm = 0.0;
      for (std::size_t j = 0; j < ref[i].size(); ++j) {
        diff += std::pow(double(problem.parameters()[i].grad[j]) - ref[i][j], 2);
        norm += std::pow(double(ref[i][j]), 2);
      }
      INFO(problem.parameters()[i].name << " with " << threads << " threads");
      CHECK(std::sqrt(diff) <= 1e-4 * std::sqrt(norm) + 1e-7);
    }
  }
}

namespace {
/// The weights of LeNet-5 (seed 11) after one epoch of SGD on 256 synthetic images, batches of 64, shuffle seed 3.
std::vector<std::vector<float>> weights_after_an_epoch(std::size_t threads) {
  const image_dataset d = head(synthetic(300, 6), 256);
  auto m = make_lenet5(11);
  classifier problem(m, d, d, threads);
  bipq::train_params p;
  p.epochs = 1;
  p.batch_size = 64;
  p.seed = 3;
  bipq::train(problem, p, {});
  std::vector<std::vector<float>> w;
  for (const auto& param : problem.parameters()) w.emplace_back(param.value.begin(), param.value.end());
  return w;
}
}  // namespace

TEST_CASE("an epoch of training gives the same weights with 1 and 2 threads up to float rounding") {
  const auto one = weights_after_an_epoch(1), two = weights_after_an_epoch(2);
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    double diff = 0.0, norm = 0.0;
    for (std::size_t j = 0; j < one[i].size(); ++j) {
      diff += std::pow(double(two[i][j]) - one[i][j], 2);
      norm += std::pow(double(one[i][j]), 2);
    }
    INFO("parameter " << i);
    CHECK(std::sqrt(diff) <= 1e-5 * std::sqrt(norm));
  }
}

TEST_CASE("same seed, same thread count: bit-identical weights after an epoch") {
  CHECK(weights_after_an_epoch(2) == weights_after_an_epoch(2));
}

TEST_CASE("a small model overfits a small batch to 100% training accuracy") {
  const image_dataset d = synthetic(32, 8, 1, 12, 12);  // random labels: only memorisation fits them
  auto m = make_mlp(1, 10, {1, 12, 12});
  classifier problem(m, d, d, 2);
  bipq::train_params p;
  p.epochs = 60;
  p.batch_size = 32;
  p.sgd.learning_rate = 0.05;
  p.sgd.weight_decay = 0.0;
  const bipq::evaluation before = problem.evaluate();
  const auto r = bipq::train(problem, p, {});
  const bipq::evaluation after = problem.evaluate();
  CHECK(before.accuracy < 0.5);
  CHECK(after.accuracy == 1.0);
  CHECK(r.epoch_loss.back() < 0.1 * r.epoch_loss.front());
}

TEST_CASE("classifier rejects mismatched data and bad indices") {
  auto m = make_lenet5(0);
  const image_dataset good = synthetic(4, 1), small = synthetic(4, 1, 1, 8, 8);
  CHECK_THROWS_AS(classifier(m, small, good), std::invalid_argument);
  CHECK_THROWS_AS(classifier(m, good, good, 0), std::invalid_argument);
  classifier problem(m, good, good);
  const image_dataset empty;
  classifier no_test(m, good, empty);
  CHECK(std::isnan(no_test.evaluate().accuracy));
  const std::vector<std::size_t> bad{0, 4};
  CHECK_THROWS_WITH_AS(problem.loss_and_gradient(bad), doctest::Contains("indices"), std::invalid_argument);
  CHECK_THROWS_AS(problem.loss_and_gradient(std::span<const std::size_t>{}), std::invalid_argument);
  CHECK(bipq::trainable_model<classifier>);
}

TEST_CASE("Fashion-MNIST loads from the Debian package when it is installed") {
  const auto dir = bipq::io::fashion_mnist_directory();
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") && !std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
    MESSAGE("Fashion-MNIST not found in " << dir.string() << ": skipped");
    return;
  }
  const bipq::io::fashion_mnist f = bipq::io::load_fashion_mnist();
  CHECK(f.train.size() == 60000);
  CHECK(f.test.size() == 10000);
  CHECK(as_matrix(f.train).cols() == 784);
  CHECK(as_matrix(f.train).minCoeff() >= 0.0f);
  CHECK(as_matrix(f.train).maxCoeff() <= 1.0f);
  std::vector<std::size_t> counts(10, 0);
  for (auto l : f.test.labels) ++counts.at(l);
  for (std::size_t c : counts) CHECK(c == 1000);  // the test set is balanced
  // Mean pixel of the training set (the usual standardisation constant).
  CHECK(as_matrix(f.train).mean() == doctest::Approx(0.2860).epsilon(0.002));
}
