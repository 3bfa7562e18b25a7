#pragma once
// A small trainable model for the driver tests: a two-layer perceptron (ReLU, softmax cross-entropy) on Gaussian
// clusters, written directly on std::vector so the tests depend on nothing but the concepts.

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/optim/train.hpp"

namespace bipq::testing {

/// The training run of the driver tests: 2 epochs of batches of 32 at rate 0.05, shuffles seeded 3.
inline train_params short_training() {
  train_params t;
  t.epochs = 2;
  t.batch_size = 32;
  t.sgd.learning_rate = 0.05;
  t.seed = 3;
  return t;
}

class cluster_mlp {
 public:
  using scalar_type = double;
  static constexpr std::size_t in = 8, hidden = 16, classes = 4;

  explicit cluster_mlp(std::uint64_t seed, std::size_t train_size = 256, std::size_t test_size = 256)
      : w1_(hidden * in), b1_(hidden), w2_(classes * hidden), b2_(classes), g_w1_(w1_.size()), g_b1_(hidden),
        g_w2_(w2_.size()), g_b2_(classes) {
    detail::rng g(seed);
    for (auto& v : w1_) v = g.normal() * std::sqrt(2.0 / in);
    for (auto& v : w2_) v = g.normal() * std::sqrt(2.0 / hidden);
    std::vector<double> centres(classes * in);
    for (auto& c : centres) c = 2.0 * g.normal();
    auto make = [&](std::size_t n, std::vector<double>& x, std::vector<int>& y) {
      x.resize(n * in);
      y.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        y[i] = static_cast<int>(g.below(classes));
        for (std::size_t k = 0; k < in; ++k) x[i * in + k] = centres[std::size_t(y[i]) * in + k] + g.normal();
      }
    };
    make(train_size, x_train_, y_train_);
    make(test_size, x_test_, y_test_);
    params_ = {{"fc1.weight", {hidden, in}, parameter_kind::linear_weight, w1_, g_w1_},
               {"fc1.bias", {hidden}, parameter_kind::bias, b1_, g_b1_},
               {"fc2.weight", {classes, hidden}, parameter_kind::linear_weight, w2_, g_w2_},
               {"fc2.bias", {classes}, parameter_kind::bias, b2_, g_b2_}};
  }
  cluster_mlp(const cluster_mlp&) = delete;  // parameters point into this object

  const std::vector<parameter<double>>& parameters() const { return params_; }
  std::size_t num_samples() const { return y_train_.size(); }

  double loss_and_gradient(std::span<const std::size_t> idx) {
    std::fill(g_w1_.begin(), g_w1_.end(), 0.0);
    std::fill(g_b1_.begin(), g_b1_.end(), 0.0);
    std::fill(g_w2_.begin(), g_w2_.end(), 0.0);
    std::fill(g_b2_.begin(), g_b2_.end(), 0.0);
    double loss = 0.0;
    const double scale = 1.0 / double(idx.size());
    for (std::size_t i : idx) {
      const double* x = &x_train_[i * in];
      double h[hidden], p[classes], dh[hidden] = {};
      forward(x, h, p);
      loss -= std::log(std::max(p[y_train_[i]], 1e-300));
      p[y_train_[i]] -= 1.0;
      for (std::size_t c = 0; c < classes; ++c) {
        const double d = p[c] * scale;
        g_b2_[c] += d;
        for (std::size_t j = 0; j < hidden; ++j) {
          g_w2_[c * hidden + j] += d * h[j];
          dh[j] += d * w2_[c * hidden + j];
        }
      }
      for (std::size_t j = 0; j < hidden; ++j) {
        if (h[j] <= 0.0) continue;
        g_b1_[j] += dh[j];
        for (std::size_t k = 0; k < in; ++k) g_w1_[j * in + k] += dh[j] * x[k];
      }
    }
    return loss * scale;
  }

  evaluation evaluate() const {
    evaluation e;
    for (std::size_t i = 0; i < y_test_.size(); ++i) {
      double h[hidden], p[classes];
      forward(&x_test_[i * in], h, p);
      e.loss -= std::log(std::max(p[y_test_[i]], 1e-300));
      e.accuracy += double(std::max_element(p, p + classes) - p == y_test_[i]);
    }
    e.loss /= double(y_test_.size());
    e.accuracy /= double(y_test_.size());
    return e;
  }

 private:
  void forward(const double* x, double* h, double* p) const {
    for (std::size_t j = 0; j < hidden; ++j) {
      double s = b1_[j];
      for (std::size_t k = 0; k < in; ++k) s += w1_[j * in + k] * x[k];
      h[j] = std::max(s, 0.0);
    }
    double mx = -1e300;
    for (std::size_t c = 0; c < classes; ++c) {
      double s = b2_[c];
      for (std::size_t j = 0; j < hidden; ++j) s += w2_[c * hidden + j] * h[j];
      p[c] = s;
      mx = std::max(mx, s);
    }
    double z = 0.0;
    for (std::size_t c = 0; c < classes; ++c) z += (p[c] = std::exp(p[c] - mx));
    for (std::size_t c = 0; c < classes; ++c) p[c] /= z;
  }

  std::vector<double> w1_, b1_, w2_, b2_, g_w1_, g_b1_, g_w2_, g_b2_;
  std::vector<double> x_train_, x_test_;
  std::vector<int> y_train_, y_test_;
  std::vector<parameter<double>> params_;
};

static_assert(trainable_model<cluster_mlp>);

}  // namespace bipq::testing
