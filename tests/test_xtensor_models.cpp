// The xtensor models: the matrix kernel against the definition, gradients against central finite differences,
// the concept, determinism, input validation, and that plain SGD on the model learns separable clusters.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/optim/sgd.hpp"
#include "xtensor_test_data.hpp"

namespace xa = bipq::xtensor_adapter;

static_assert(bipq::trainable_model<xa::classifier<float>>);
static_assert(bipq::trainable_model<xa::classifier<double>>);
static_assert(bipq::check_bilevel_problem<xa::classifier<float>>());

namespace {

std::vector<std::size_t> iota_indices(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t(0));
  return v;
}

/// Max over all parameters of |analytic − central difference| / max(1, |central difference|), with step h, on the
/// batch `idx`, probing `probes` random coordinates of every tensor (all of them if the tensor is smaller).
template <class T>
double max_gradient_error(xa::classifier<T>& model, std::span<const std::size_t> idx, double h, std::size_t probes,
                          std::uint64_t seed) {
  model.loss_and_gradient(idx);
  std::vector<std::vector<T>> analytic;
  for (const auto& p : model.parameters()) analytic.emplace_back(p.grad.begin(), p.grad.end());
  bipq::detail::rng g(seed);
  double worst = 0.0;
  for (std::size_t t = 0; t < model.parameters().size(); ++t) {
    const auto& p = model.parameters()[t];
    const std::size_t n = p.value.size();
    for (std::size_t s = 0; s < std::min(n, probes); ++s) {
      const std::size_t j = n <= probes ? s : static_cast<std::size_t>(g.below(n));
      const T saved = p.value[j];
      p.value[j] = static_cast<T>(saved + h);
      const double up = model.loss_and_gradient(idx);
      p.value[j] = static_cast<T>(saved - h);
      const double down = model.loss_and_gradient(idx);
      p.value[j] = saved;
      const double fd = (up - down) / (2.0 * h);
      worst = std::max(worst, std::abs(double(analytic[t][j]) - fd) / std::max(1.0, std::abs(fd)));
    }
  }
  return worst;
}

}  // namespace

TEST_CASE_TEMPLATE("gemm_accumulate adds A·B to C, for every remainder of the 4 × 32 register tiles", T, float, double) {
  bipq::detail::rng g(7);
  for (std::size_t m : {1u, 3u, 4u, 5u, 9u})
    for (std::size_t k : {1u, 2u, 4u, 7u, 13u})
      for (std::size_t n : {1u, 5u, 31u, 32u, 33u, 70u}) {
        std::vector<T> a(m * k), b(k * n), c(m * n), expected(m * n);
        for (auto& v : a) v = static_cast<T>(g.normal());
        for (auto& v : b) v = static_cast<T>(g.normal());
        for (std::size_t i = 0; i < m * n; ++i) expected[i] = c[i] = static_cast<T>(g.normal());
        for (std::size_t i = 0; i < m; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            double s = double(expected[i * n + j]);
            for (std::size_t p = 0; p < k; ++p) s += double(a[i * k + p]) * double(b[p * n + j]);
            expected[i * n + j] = static_cast<T>(s);
          }
        xa::detail::gemm_accumulate(a.data(), b.data(), c.data(), m, k, n);
        const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
        for (std::size_t i = 0; i < m * n; ++i) CHECK(double(c[i]) == doctest::Approx(double(expected[i])).epsilon(tol));
      }
}

TEST_CASE("transpose_into is the transpose, for sizes that are not multiples of the block") {
  xt::xtensor<double, 2> a = xt::xtensor<double, 2>::from_shape({37, 19}), t;
  std::iota(a.begin(), a.end(), 0.0);
  xa::detail::transpose_into(a, t);
  REQUIRE(t.shape()[0] == 19);
  REQUIRE(t.shape()[1] == 37);
  for (std::size_t i = 0; i < 37; ++i)
    for (std::size_t j = 0; j < 19; ++j) CHECK(t(j, i) == a(i, j));
}

TEST_CASE("the MLP's parameters are named, shaped and typed as the concept asks, with spans over xtensor storage") {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(784, 10, 16, 8, 1);
  auto model = xa::make_fashion_mnist_mlp<float>(std::move(train), std::move(test), 3);
  const auto& ps = model.parameters();
  REQUIRE(ps.size() == 6);
  const char* names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
  const std::vector<std::vector<std::size_t>> shapes = {{128, 784}, {128}, {256, 128}, {256}, {10, 256}, {10}};
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(ps[i].name == names[i]);
    CHECK(ps[i].shape == shapes[i]);
    CHECK(ps[i].kind == (i % 2 == 0 ? bipq::parameter_kind::linear_weight : bipq::parameter_kind::bias));
    std::size_t n = 1;
    for (std::size_t s : shapes[i]) n *= s;
    CHECK(ps[i].value.size() == n);
    CHECK(ps[i].grad.size() == n);
  }
  CHECK(ps[0].value.data() == model.network().weight(0).data());
  CHECK(ps[5].grad.data() == model.network().bias_grad(2).data());
  // Moving the model keeps the spans valid (xtensor storage moves with its address).
  const float* w = ps[0].value.data();
  auto moved = std::move(model);
  CHECK(moved.parameters()[0].value.data() == w);
  CHECK(moved.network().weight(0).data() == w);
}

TEST_CASE("Kaiming-normal initialisation: deterministic per seed, variance 2/fan_in, zero biases") {
  xa::mlp<float> a({784, 128, 256, 10}, 42), b({784, 128, 256, 10}, 42), c({784, 128, 256, 10}, 43);
  for (std::size_t l = 0; l < 3; ++l) {
    CHECK(std::equal(a.weight(l).begin(), a.weight(l).end(), b.weight(l).begin()));
    CHECK(!std::equal(a.weight(l).begin(), a.weight(l).end(), c.weight(l).begin()));
    CHECK(std::all_of(a.bias(l).begin(), a.bias(l).end(), [](float v) { return v == 0.0f; }));
  }
  // Sample variance of fc1's 100352 weights vs 2/784: the standard error of the variance estimate is about
  // σ²·sqrt(2/n) ≈ 0.45% of σ², so 3% is far outside chance.
  const auto& w = a.weight(0);
  double s = 0.0, s2 = 0.0;
  for (float v : w) s += v, s2 += double(v) * v;
  const double n = double(w.size()), mean = s / n, var = s2 / n - mean * mean;
  CHECK(std::abs(mean) < 3.0 * std::sqrt(2.0 / 784.0 / n));
  CHECK(var == doctest::Approx(2.0 / 784.0).epsilon(0.03));
}

TEST_CASE("MLP gradient matches central finite differences (double)") {
  auto [train, test] = bipq::testing::gaussian_clusters<double>(12, 5, 40, 10, 11);
  xa::classifier<double> model(xa::mlp<double>({12, 9, 7, 5}, 5), std::move(train), std::move(test));
  const std::vector<std::size_t> idx = {3, 17, 0, 25, 39, 8, 8};  // a repeated sample counts twice
  CHECK(max_gradient_error(model, std::span<const std::size_t>(idx), 1e-6, 200, 1) < 1e-7);
}

TEST_CASE("linear classifier gradient matches central finite differences (double)") {
  auto [train, test] = bipq::testing::gaussian_clusters<double>(10, 4, 30, 10, 12);
  auto model = xa::make_linear_classifier<double>(std::move(train), std::move(test), 6);
  REQUIRE(model.parameters().size() == 2);
  CHECK(model.parameters()[0].name == "fc1.weight");
  const auto idx = iota_indices(30);
  CHECK(max_gradient_error(model, std::span<const std::size_t>(idx), 1e-6, 100, 2) < 1e-8);
}

TEST_CASE("Fashion-MNIST-shaped MLP (float): gradient matches central differences within float tolerance") {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(784, 10, 32, 8, 13, 0.3);
  auto model = xa::make_fashion_mnist_mlp<float>(std::move(train), std::move(test), 7);
  const auto idx = iota_indices(32);
  // float loss ≈ 2.3 carries a rounding error near 1e-7; with h = 1e-2 the difference quotient is good to ~1e-4
  // plus the O(h²) truncation term.
  CHECK(max_gradient_error(model, std::span<const std::size_t>(idx), 1e-2, 12, 3) < 5e-3);
}

TEST_CASE("the float model's gradient agrees with the double model's on the same weights and data") {
  auto [train, test] = bipq::testing::gaussian_clusters<double>(30, 6, 64, 16, 21);
  auto trainf = xa::make_dataset<float, double, std::int32_t>(
      std::span<const double>(train.images.data(), train.images.size()), 30,
      std::span<const std::int32_t>(train.labels.data(), train.labels.size()), 6);
  auto testf = xa::head(trainf, 4);
  xa::classifier<double> md(xa::mlp<double>({30, 20, 6}, 9), std::move(train), std::move(test));
  xa::classifier<float> mf(xa::mlp<float>({30, 20, 6}, 9), std::move(trainf), std::move(testf));
  // Same weights: copy the float initialisation into the double model.
  for (std::size_t t = 0; t < md.parameters().size(); ++t)
    std::copy(mf.parameters()[t].value.begin(), mf.parameters()[t].value.end(), md.parameters()[t].value.begin());
  const auto idx = iota_indices(64);
  const double ld = md.loss_and_gradient(idx), lf = mf.loss_and_gradient(idx);
  CHECK(lf == doctest::Approx(ld).epsilon(1e-5));
  for (std::size_t t = 0; t < md.parameters().size(); ++t)
    for (std::size_t j = 0; j < md.parameters()[t].grad.size(); ++j)
      CHECK(double(mf.parameters()[t].grad[j]) == doctest::Approx(md.parameters()[t].grad[j]).epsilon(1e-4).scale(1e-3));
}

TEST_CASE("the batch loss is the mean of the per-sample losses, and the gradient the mean of per-sample gradients") {
  auto [train, test] = bipq::testing::gaussian_clusters<double>(8, 3, 20, 5, 31);
  xa::classifier<double> model(xa::mlp<double>({8, 6, 3}, 4), std::move(train), std::move(test));
  const std::vector<std::size_t> idx = {1, 4, 9, 16};
  const double batch_loss = model.loss_and_gradient(idx);
  std::vector<std::vector<double>> batch_grad;
  for (const auto& p : model.parameters()) batch_grad.emplace_back(p.grad.begin(), p.grad.end());
  double mean_loss = 0.0;
  std::vector<std::vector<double>> mean_grad(batch_grad.size());
  for (std::size_t t = 0; t < batch_grad.size(); ++t) mean_grad[t].assign(batch_grad[t].size(), 0.0);
  for (std::size_t i : idx) {
    const std::size_t one[] = {i};
    mean_loss += model.loss_and_gradient(one) / 4.0;
    for (std::size_t t = 0; t < batch_grad.size(); ++t)
      for (std::size_t j = 0; j < batch_grad[t].size(); ++j) mean_grad[t][j] += model.parameters()[t].grad[j] / 4.0;
  }
  CHECK(batch_loss == doctest::Approx(mean_loss).epsilon(1e-13));
  for (std::size_t t = 0; t < batch_grad.size(); ++t)
    for (std::size_t j = 0; j < batch_grad[t].size(); ++j)
      CHECK(batch_grad[t][j] == doctest::Approx(mean_grad[t][j]).epsilon(1e-12).scale(1e-12));
}

TEST_CASE("evaluate() is the mean loss and the argmax accuracy on the test data, computed independently") {
  auto [train, test] = bipq::testing::gaussian_clusters<double>(6, 3, 10, 2503, 41);
  xa::classifier<double> model(xa::mlp<double>({6, 5, 3}, 8), std::move(train), std::move(test));
  const auto e = model.evaluate();  // 2503 samples: three chunks, the last one partial
  // Reference: a plain forward pass per sample on the raw weights.
  const auto& net = model.network();
  const auto& data = model.test_data();
  double loss = 0.0;
  std::size_t correct = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::vector<double> h(data.images.data() + i * 6, data.images.data() + (i + 1) * 6);
    for (std::size_t l = 0; l < net.num_layers(); ++l) {
      const auto& w = net.weight(l);
      std::vector<double> a(w.shape()[0]);
      for (std::size_t o = 0; o < a.size(); ++o) {
        a[o] = net.bias(l)(o);
        for (std::size_t k = 0; k < h.size(); ++k) a[o] += w(o, k) * h[k];
        if (l + 1 < net.num_layers()) a[o] = std::max(a[o], 0.0);
      }
      h = a;
    }
    double mx = *std::max_element(h.begin(), h.end()), s = 0.0;
    for (double v : h) s += std::exp(v - mx);
    const std::size_t y = static_cast<std::size_t>(data.labels(i));
    loss += std::log(s) + mx - h[y];
    correct += static_cast<std::size_t>(std::max_element(h.begin(), h.end()) - h.begin()) == y;
  }
  CHECK(e.loss == doctest::Approx(loss / double(data.size())).epsilon(1e-12));
  CHECK(e.accuracy == double(correct) / double(data.size()));
}

TEST_CASE("plain SGD on the xtensor MLP learns well-separated clusters (loss falls, test accuracy > 95%)") {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(20, 4, 512, 256, 51, 1.5);
  xa::classifier<float> model(xa::mlp<float>({20, 32, 4}, 1), std::move(train), std::move(test));
  const auto before = model.evaluate();
  std::vector<std::size_t> sizes;
  for (const auto& p : model.parameters()) sizes.push_back(p.value.size());
  bipq::sgd<float> opt(bipq::sgd_params{0.05, 0.9, false, 0.0}, sizes);
  bipq::detail::rng g(2);
  for (int epoch = 0; epoch < 5; ++epoch) {
    auto order = bipq::detail::permutation(model.num_samples(), g);
    for (std::size_t s = 0; s < order.size(); s += 32) {
      model.loss_and_gradient(std::span<const std::size_t>(order).subspan(s, 32));
      for (std::size_t t = 0; t < model.parameters().size(); ++t) {
        const auto& p = model.parameters()[t];
        opt.step(t, p.value, p.grad, 0.05, 0.0);
      }
    }
  }
  const auto after = model.evaluate();
  CHECK(after.loss < 0.5 * before.loss);
  CHECK(after.accuracy > 0.95);
}

TEST_CASE("same seed, same data, same steps: bit-identical weights") {
  auto run = [] {
    auto [train, test] = bipq::testing::gaussian_clusters<float>(16, 3, 64, 8, 61);
    xa::classifier<float> model(xa::mlp<float>({16, 8, 3}, 5), std::move(train), std::move(test));
    const auto idx = iota_indices(64);
    for (int s = 0; s < 3; ++s) {
      model.loss_and_gradient(idx);
      for (const auto& p : model.parameters())
        for (std::size_t j = 0; j < p.value.size(); ++j) p.value[j] -= 0.1f * p.grad[j];
    }
    std::vector<float> all;
    for (const auto& p : model.parameters()) all.insert(all.end(), p.value.begin(), p.value.end());
    return all;
  };
  CHECK(run() == run());
}

TEST_CASE("bad input is rejected with messages that name the function and the argument") {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(5, 3, 10, 4, 71);
  CHECK_THROWS_WITH_AS(xa::mlp<float>({5}, 1), "mlp(): widths must have at least 2 entries, all > 0",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(xa::mlp<float>({5, 0, 3}, 1), "mlp(): widths must have at least 2 entries, all > 0",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(xa::classifier<float>(xa::mlp<float>({6, 3}, 1), train, test),
                       "classifier(): data has 5 features, the network expects 6", std::invalid_argument);
  CHECK_THROWS_WITH_AS(xa::classifier<float>(xa::mlp<float>({5, 4}, 1), train, test),
                       "classifier(): data has 3 classes, the network has 4 outputs", std::invalid_argument);
  auto bad = train;
  bad.labels(2) = 3;
  CHECK_THROWS_WITH_AS(xa::classifier<float>(xa::mlp<float>({5, 3}, 1), bad, test),
                       "classifier(): data.labels(2) = 3 is not in [0, num_classes)", std::invalid_argument);
  bad = train;
  bad.images(1, 1) = std::nanf("");
  CHECK_THROWS_WITH_AS(xa::classifier<float>(xa::mlp<float>({5, 3}, 1), bad, test),
                       "classifier(): data.images contains NaN or Inf", std::invalid_argument);
  xa::classifier<float> model(xa::mlp<float>({5, 3}, 1), train, test);
  CHECK_THROWS_WITH_AS(model.loss_and_gradient({}), "classifier::loss_and_gradient(): indices is empty",
                       std::invalid_argument);
  const std::size_t out_of_range[] = {0, 10};
  CHECK_THROWS_WITH_AS(model.loss_and_gradient(out_of_range),
                       "classifier::loss_and_gradient(): indices[1] = 10 is out of range", std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.evaluate(model.test_data(), 0), "classifier::evaluate(): chunk must be > 0",
                       std::invalid_argument);
  CHECK(std::isnan(model.evaluate(xa::head(model.test_data(), 0)).accuracy));
  const float pixels[] = {1, 2, 3};
  const int labels[] = {0, 1};
  CHECK_THROWS_WITH_AS((xa::make_dataset<float, float, int>(pixels, 2, labels, 2)),
                       "make_dataset(): images has size 3, expected 4 (labels.size() * features)",
                       std::invalid_argument);
}
