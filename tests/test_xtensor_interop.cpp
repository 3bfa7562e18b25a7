// The xtensor models next to the rest of bipq: data from bipq::io's loader, the same loss and gradient as
// the Eigen adapter's MLP on the same weights, and bipq::train driving the xtensor MLP unchanged.

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <vector>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/adapters/xtensor/fashion_mnist.hpp"
#include "bipq/optim/train.hpp"
#include "xtensor_test_data.hpp"

namespace xa = bipq::xtensor_adapter;

namespace {

/// An image data set (what the Eigen adapter trains on) of `n` random 28×28 images in [0, 1) with labels in [0, 10).
bipq::io::image_dataset random_eigen_images(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::io::image_dataset d;
  d.images.resize(n * 784);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<float>(g.uniform());
  for (std::size_t i = 0; i < n; ++i) d.labels.push_back(static_cast<std::uint8_t>(g.below(10)));
  return d;
}

}  // namespace

TEST_CASE("from_image_dataset copies every pixel and label of an image data set, in order") {
  const auto e = random_eigen_images(37, 1);
  const auto x = xa::from_image_dataset<float>(e);
  REQUIRE(x.size() == 37);
  REQUIRE(x.features() == 784);
  CHECK(x.num_classes == 10);
  for (std::size_t i = 0; i < 37; ++i) {
    CHECK(x.labels(i) == e.labels[i]);
    for (std::size_t k = 0; k < 784; ++k) REQUIRE(x.images(i, k) == e.image(i)[k]);
  }
  auto bad = e;
  bad.labels[3] = 10;
  CHECK_THROWS_AS(xa::from_image_dataset<float>(bad), std::invalid_argument);
}

TEST_CASE("on the same weights and data the xtensor MLP and the Eigen adapter's MLP give the same loss and gradient") {
  const auto train_e = random_eigen_images(48, 2), test_e = random_eigen_images(8, 3);
  auto eigen_mlp = bipq::eigen::make_mlp<double>(11);
  bipq::eigen::basic_classifier<double> eigen_model(eigen_mlp, train_e, test_e, 1);
  xa::classifier<double> xt_model =
      xa::make_fashion_mnist_mlp<double>(xa::from_image_dataset<double>(train_e), xa::from_image_dataset<double>(test_e), 12);
  const auto& pe = eigen_model.parameters();
  const auto& px = xt_model.parameters();
  REQUIRE(pe.size() == px.size());
  for (std::size_t t = 0; t < pe.size(); ++t) {
    REQUIRE(pe[t].name == px[t].name);
    REQUIRE(pe[t].shape == px[t].shape);
    REQUIRE(pe[t].kind == px[t].kind);
    std::copy(pe[t].value.begin(), pe[t].value.end(), px[t].value.begin());
  }
  // Random biases too, so that their gradients flow through something other than zeros.
  bipq::detail::rng g(4);
  for (std::size_t t = 1; t < pe.size(); t += 2)
    for (std::size_t j = 0; j < pe[t].value.size(); ++j) pe[t].value[j] = px[t].value[j] = 0.1 * g.normal();
  const std::vector<std::size_t> idx = {5, 0, 47, 13, 13, 30, 2};
  const double le = eigen_model.loss_and_gradient(idx), lx = xt_model.loss_and_gradient(idx);
  CHECK(lx == doctest::Approx(le).epsilon(1e-12));
  for (std::size_t t = 0; t < pe.size(); ++t)
    for (std::size_t j = 0; j < pe[t].grad.size(); ++j)
      REQUIRE(px[t].grad[j] == doctest::Approx(pe[t].grad[j]).epsilon(1e-10).scale(1e-12));
  const auto ee = eigen_model.evaluate(), ex = xt_model.evaluate();
  CHECK(ex.loss == doctest::Approx(ee.loss).epsilon(1e-12));
  CHECK(ex.accuracy == ee.accuracy);
}

TEST_CASE("bipq::train runs on the xtensor MLP unchanged: the loss falls and masked weights stay exactly zero") {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(24, 5, 400, 200, 5);
  xa::classifier<float> model(xa::mlp<float>({24, 32, 16, 5}, 3), std::move(train), std::move(test));
  const double before = model.evaluate().loss;
  // Mask half of fc1 (every other weight) and zero those weights, as a pruning driver does.
  const auto& ps = model.parameters();
  std::vector<float> mask(ps[0].value.size());
  for (std::size_t j = 0; j < mask.size(); ++j) mask[j] = float(j % 2);
  for (std::size_t j = 0; j < mask.size(); ++j) ps[0].value[j] *= mask[j];
  std::vector<std::span<const float>> masks(ps.size());
  masks[0] = mask;
  bipq::train_params params;
  params.epochs = 4;
  params.batch_size = 32;
  params.sgd.learning_rate = 0.05;
  const auto r = bipq::train(model, params, masks);
  REQUIRE(r.epoch_loss.size() == 4);
  CHECK(r.epoch_loss.back() < r.epoch_loss.front());
  const auto after = model.evaluate();
  CHECK(after.loss < 0.5 * before);
  CHECK(after.accuracy > 0.9);
  for (std::size_t j = 0; j < mask.size(); ++j)
    if (mask[j] == 0.0f) REQUIRE(ps[0].value[j] == 0.0f);
}

TEST_CASE("Fashion-MNIST through the xtensor loader: shapes, pixel range, and a short bipq::train run learns") {
  const auto dir = bipq::io::fashion_mnist_directory();
  if (!std::filesystem::exists(dir / "train-labels-idx1-ubyte.gz") && !std::filesystem::exists(dir / "train-labels-idx1-ubyte")) {
    MESSAGE("Fashion-MNIST not found in " << dir << "; skipped");
    return;
  }
  auto fm = xa::load_fashion_mnist<float>();
  REQUIRE(fm.train.size() == 60000);
  REQUIRE(fm.test.size() == 10000);
  REQUIRE(fm.train.features() == 784);
  CHECK(*std::min_element(fm.train.images.begin(), fm.train.images.end()) >= 0.0f);
  CHECK(*std::max_element(fm.train.images.begin(), fm.train.images.end()) <= 1.0f);
  xa::standardize(fm.train, 0.2860f, 0.3530f);
  xa::standardize(fm.test, 0.2860f, 0.3530f);
  // 6,000 training images, 2 epochs, 2,000 test images: a smoke run of a few seconds; the full run (≥ 87%) is
  // examples/sap_mlp_xtensor.cpp's dense round.
  auto model = xa::make_fashion_mnist_mlp<float>(xa::head(fm.train, 6000), xa::head(fm.test, 2000), 1);
  bipq::train_params params;
  params.epochs = 2;
  const auto r = bipq::train(model, params, {});
  CHECK(r.epoch_loss.back() < r.epoch_loss.front());
  CHECK(model.evaluate().accuracy > 0.78);  // a 10-class problem: chance is 0.10
}
