#pragma once
// The data-parallel tests' model: a two-layer perceptron (ReLU, softmax cross-entropy) on Gaussian clusters that
// holds only a slice [begin, end) of a training set and of a test set generated from a seed, so that ranks can hold
// different shards of one data set. Sample i of the slice is sample begin + i of the whole set, bit for bit.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"

namespace bipq::testing {

struct slice {
  std::size_t begin = 0, end = 0;
};

class sliced_mlp {
 public:
  using scalar_type = double;
  static constexpr std::size_t in = 6, hidden = 12, classes = 3;

  /// Weights from `seed`; the data set (train_size and test_size samples) from `data_seed`; keeps the slices.
  sliced_mlp(std::uint64_t seed, std::uint64_t data_seed, std::size_t train_size, std::size_t test_size,
             slice train, slice test)
      : w1_(hidden * in), b1_(hidden), w2_(classes * hidden), b2_(classes), g_w1_(w1_.size()), g_b1_(hidden),
        g_w2_(w2_.size()), g_b2_(classes) {
    if (train.end > train_size || test.end > test_size || train.begin > train.end || test.begin > test.end)
      throw std::invalid_argument("sliced_mlp(): slice out of range");
    detail::rng w(seed);
    for (auto& v : w1_) v = w.normal() * std::sqrt(2.0 / in);
    for (auto& v : w2_) v = w.normal() * std::sqrt(2.0 / hidden);
    detail::rng g(data_seed);
    std::vector<double> centres(classes * in);
    for (auto& c : centres) c = 1.5 * g.normal();
    auto make = [&](std::size_t n, slice keep, std::vector<double>& x, std::vector<int>& y) {
      for (std::size_t i = 0; i < n; ++i) {
        const int label = static_cast<int>(g.below(classes));
        double sample[in];
        for (std::size_t k = 0; k < in; ++k) sample[k] = centres[std::size_t(label) * in + k] + g.normal();
        if (i < keep.begin || i >= keep.end) continue;
        y.push_back(label);
        x.insert(x.end(), sample, sample + in);
      }
    };
    make(train_size, train, x_train_, y_train_);
    make(test_size, test, x_test_, y_test_);
    params_ = {{"fc1.weight", {hidden, in}, parameter_kind::linear_weight, w1_, g_w1_},
               {"fc1.bias", {hidden}, parameter_kind::bias, b1_, g_b1_},
               {"fc2.weight", {classes, hidden}, parameter_kind::linear_weight, w2_, g_w2_},
               {"fc2.bias", {classes}, parameter_kind::bias, b2_, g_b2_}};
  }
  sliced_mlp(const sliced_mlp&) = delete;  // parameters point into this object

  const std::vector<parameter<double>>& parameters() const { return params_; }
  std::size_t num_samples() const { return y_train_.size(); }
  std::size_t num_test_samples() const { return y_test_.size(); }
  std::size_t calls() const { return calls_; }

  double loss_and_gradient(std::span<const std::size_t> idx) {
    ++calls_;
    if (idx.empty()) throw std::invalid_argument("sliced_mlp::loss_and_gradient(): indices is empty");
    for (auto* g : {&g_w1_, &g_b1_, &g_w2_, &g_b2_}) std::fill(g->begin(), g->end(), 0.0);
    double loss = 0.0;
    const double scale = 1.0 / double(idx.size());
    for (std::size_t i : idx) {
      if (i >= y_train_.size())
        throw std::invalid_argument("sliced_mlp::loss_and_gradient(): index " + std::to_string(i) + " out of range");
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

  /// Mean loss and accuracy over the test slice (NaN if it is empty).
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
  std::size_t calls_ = 0;
};

static_assert(trainable_model<sliced_mlp>);

}  // namespace bipq::testing
