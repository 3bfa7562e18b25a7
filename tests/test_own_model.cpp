// "Your own model in 45 lines" from docs/adapters.md: a logistic-regression model on std::vector that models
// bipq::trainable_model. The code between the markers is the code shown in the documentation (checked below), and it
// is tested here: its gradient against central differences, bipq::train lowering its loss, a pruning driver on it.

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "bipq/detail/random.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/prune/omp.hpp"

// [own-model-begin]
#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <vector>

#include <bipq/concepts.hpp>

/// Binary logistic regression: s = w·x + b, p(y = 1 | x) = σ(s), loss = mean of softplus(s) − y·s.
class logistic_model {
 public:
  using scalar_type = double;  // 1. the parameters' floating type
  logistic_model(std::size_t dim, std::vector<double> x, std::vector<double> y, std::vector<double> x_test,
                 std::vector<double> y_test)
      : dim_(dim), x_{std::move(x), std::move(x_test)}, y_{std::move(y), std::move(y_test)}, w_(dim), gw_(dim) {}
  logistic_model(const logistic_model&) = delete;  // params_ points into this object
  // 2. named parameters: spans over the values z (read by the forward pass) and over ∇_z ℓ
  const std::vector<bipq::parameter<double>>& parameters() const { return params_; }
  // 3. the training samples are 0 .. num_samples() − 1
  std::size_t num_samples() const { return y_[0].size(); }
  // 4. mean loss over `idx`, and ∇_z of that mean written into every grad (∂loss_i/∂s = σ(s) − y_i)
  double loss_and_gradient(std::span<const std::size_t> idx) {
    std::fill(gw_.begin(), gw_.end(), 0.0);
    double loss = 0.0, n = double(idx.size());
    gb_[0] = 0.0;
    for (std::size_t i : idx) {
      const double s = score(0, i), r = (1.0 / (1.0 + std::exp(-s)) - y_[0][i]) / n;
      loss += (softplus(s) - y_[0][i] * s) / n;
      for (std::size_t k = 0; k < dim_; ++k) gw_[k] += r * x_[0][i * dim_ + k];
      gb_[0] += r;
    }
    return loss;
  }
  // 5. loss and accuracy on the held-out data, without changing the model
  bipq::evaluation evaluate() const {
    bipq::evaluation e;
    for (std::size_t i = 0, n = y_[1].size(); i < n; ++i) {
      const double s = score(1, i);
      e.loss += (softplus(s) - y_[1][i] * s) / double(n);
      e.accuracy += double((s > 0.0) == (y_[1][i] == 1.0)) / double(n);
    }
    return e;
  }

 private:
  static double softplus(double s) { return std::max(s, 0.0) + std::log1p(std::exp(-std::abs(s))); }
  double score(int set, std::size_t i) const {  // set 0: training data, 1: test data
    return std::inner_product(w_.begin(), w_.end(), x_[set].begin() + std::ptrdiff_t(i * dim_), b_[0]);
  }
  std::size_t dim_;
  std::vector<double> x_[2], y_[2], w_, gw_, b_{0.0}, gb_{0.0};
  std::vector<bipq::parameter<double>> params_{{"fc.weight", {1, dim_}, bipq::parameter_kind::linear_weight, w_, gw_},
                                               {"fc.bias", {1}, bipq::parameter_kind::bias, b_, gb_}};
};

static_assert(bipq::trainable_model<logistic_model>);
// [own-model-end]

namespace {

/// Two classes with labels from a sparse true direction: y = [u·x > 0] with u non-zero on 3 of `dim` coordinates.
logistic_model make_model(std::size_t dim, std::size_t n_train, std::size_t n_test, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  std::vector<double> u(dim, 0.0);
  u[1] = 2.0, u[4] = -1.5, u[dim - 1] = 1.0;
  auto draw = [&](std::size_t n, std::vector<double>& x, std::vector<double>& y) {
    for (std::size_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (std::size_t k = 0; k < dim; ++k) {
        x.push_back(g.normal());
        s += u[k] * x.back();
      }
      y.push_back(s > 0.0 ? 1.0 : 0.0);
    }
  };
  std::vector<double> xtr, ytr, xte, yte;
  draw(n_train, xtr, ytr);
  draw(n_test, xte, yte);
  return logistic_model(dim, std::move(xtr), std::move(ytr), std::move(xte), std::move(yte));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("the 40-line model's gradient matches central finite differences") {
  // Non-zero weights first, so that the check is not at the symmetric point w = 0.
  logistic_model model = make_model(6, 50, 10, 1);
  bipq::detail::rng g(2);
  for (const auto& p : model.parameters())
    for (double& v : p.value) v = 0.5 * g.normal();
  std::vector<std::size_t> idx(50);
  std::iota(idx.begin(), idx.end(), std::size_t(0));
  model.loss_and_gradient(idx);
  std::vector<std::vector<double>> analytic;
  for (const auto& p : model.parameters()) analytic.emplace_back(p.grad.begin(), p.grad.end());
  const double h = 1e-6;
  for (std::size_t t = 0; t < model.parameters().size(); ++t) {
    const auto& p = model.parameters()[t];
    for (std::size_t j = 0; j < p.value.size(); ++j) {
      const double saved = p.value[j];
      p.value[j] = saved + h;
      const double up = model.loss_and_gradient(idx);
      p.value[j] = saved - h;
      const double down = model.loss_and_gradient(idx);
      p.value[j] = saved;
      CHECK(analytic[t][j] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-7).scale(1e-9));
    }
  }
}

TEST_CASE("bipq::train lowers the 40-line model's loss and it learns the separable classes") {
  logistic_model model = make_model(8, 400, 400, 3);
  const auto before = model.evaluate();
  CHECK(before.loss == doctest::Approx(std::log(2.0)));  // w = 0, b = 0: p = 1/2 everywhere
  bipq::train_params params;
  params.epochs = 10;
  params.batch_size = 20;
  params.sgd.learning_rate = 0.1;
  const auto r = bipq::train(model, params, {});
  CHECK(r.epoch_loss.back() < 0.5 * r.epoch_loss.front());
  const auto after = model.evaluate();
  CHECK(after.loss < 0.5 * before.loss);
  CHECK(after.accuracy > 0.93);
}

TEST_CASE("a pruning driver runs on the 40-line model: OMP to 3 of 8 weights finds the 3 true features") {
  logistic_model model = make_model(8, 400, 400, 4);
  bipq::omp_params params;
  params.mask.density = 3.0 / 8.0;
  params.train.epochs = 8;
  params.train.batch_size = 20;
  params.train.sgd.learning_rate = 0.1;
  const auto r = bipq::omp(model, params);
  REQUIRE(r.masks.size() == 1);  // the bias is not prunable
  CHECK(r.masks[0] == std::vector<double>{0, 1, 0, 0, 1, 0, 0, 1});
  CHECK(r.final_record().test_accuracy > 0.93);
}

TEST_CASE("docs/adapters.md shows exactly the code compiled in this test") {
  const char* root = std::getenv("BIPQ_SOURCE_DIR");
  if (root == nullptr) {
    MESSAGE("BIPQ_SOURCE_DIR is not set; skipped");
    return;
  }
  const std::string self = read_text(std::string(root) + "/tests/test_own_model.cpp");
  const std::string doc = read_text(std::string(root) + "/docs/adapters.md");
  const std::string begin = "// [own-model-begin]\n", end = "// [own-model-end]\n";
  const auto b = self.find(begin), e = self.find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  const std::string code = self.substr(b + begin.size(), e - b - begin.size());
  const std::string fence = "<!-- own-model -->\n```cpp\n";
  const auto d = doc.find(fence);
  REQUIRE(d != std::string::npos);
  const auto d_end = doc.find("```\n", d + fence.size());
  REQUIRE(d_end != std::string::npos);
  CHECK(doc.substr(d + fence.size(), d_end - d - fence.size()) == code);
  // "in 45 lines": the class itself, from its comment to its closing brace.
  const auto cls = code.find("/// Binary logistic"), cls_end = code.find("};\n", cls);
  CHECK(std::count(code.begin() + std::ptrdiff_t(cls), code.begin() + std::ptrdiff_t(cls_end), '\n') <= 45);
}
