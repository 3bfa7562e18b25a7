#pragma once
// An xtensor MLP trained with softmax cross-entropy on a data set: the problem type that models
// bipq::trainable_model, so every trainer, solver and pruning driver of bipq runs on it unchanged.
//
// Loss on a mini-batch S (mean softmax cross-entropy), logits a = f(x; z):
//   ℓ(z) = (1/|S|) Σ_{i∈S} [ log Σ_c exp(a_ic) − a_{i,y_i} ],   ∂ℓ/∂a_ic = (softmax(a_i)_c − [c = y_i]) / |S|.
// The log-sum-exp is shifted by max_c a_ic (no overflow). The loss is accumulated in double.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "bipq/adapters/xtensor/dataset.hpp"
#include "bipq/adapters/xtensor/mlp.hpp"
#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/concepts.hpp"

namespace bipq::xtensor_adapter {

/// An mlp with its training and test data. Models bipq::trainable_model:
///   scalar_type = T; parameters() = fc1.weight, fc1.bias, ...; num_samples() = train.size();
///   loss_and_gradient(indices) = mean cross-entropy over those training samples (writes ∇_z into every grad);
///   evaluate() = test loss and accuracy (argmax, ties to the lower class index).
template <std::floating_point T = float>
class classifier {
 public:
  using scalar_type = T;

  /// Throws std::invalid_argument("classifier(): ...") if a data set is invalid or its feature count or class count
  /// does not match the network.
  classifier(mlp<T> network, dataset<T> train, dataset<T> test)
      : network_(std::move(network)), train_(std::move(train)), test_(std::move(test)) {
    for (const dataset<T>* d : {&train_, &test_}) {
      d->validate("classifier");
      if (d->size() > 0 && d->features() != network_.inputs())
        throw std::invalid_argument("classifier(): data has " + std::to_string(d->features()) +
                                    " features, the network expects " + std::to_string(network_.inputs()));
      if (d->num_classes != network_.outputs())
        throw std::invalid_argument("classifier(): data has " + std::to_string(d->num_classes) +
                                    " classes, the network has " + std::to_string(network_.outputs()) + " outputs");
    }
    if (train_.size() == 0) throw std::invalid_argument("classifier(): train data is empty");
    parameters_ = network_.parameter_list();
  }
  classifier(const classifier&) = delete;
  classifier& operator=(const classifier&) = delete;
  classifier(classifier&&) noexcept = default;  // xtensor storage moves with its address, the spans stay valid
  classifier& operator=(classifier&&) noexcept = default;

  const std::vector<parameter<T>>& parameters() const noexcept { return parameters_; }
  std::size_t num_samples() const noexcept { return train_.size(); }

  /// Mean cross-entropy over the training samples `indices` at the current values; writes ∂ℓ/∂z into every
  /// parameter's grad. Throws std::invalid_argument("classifier::loss_and_gradient(): indices ...") if `indices` is
  /// empty or holds an index ≥ num_samples().
  double loss_and_gradient(std::span<const std::size_t> indices) {
    if (indices.empty()) throw std::invalid_argument("classifier::loss_and_gradient(): indices is empty");
    gather(train_, indices, "classifier::loss_and_gradient");
    const xt::xtensor<T, 2>& logits = network_.forward(batch_);
    const double loss = softmax_cross_entropy(logits, true);
    network_.backward(batch_, dlogits_);
    return loss;
  }

  /// Loss and accuracy on the test data (no gradient, no state change); NaN for an empty test set.
  evaluation evaluate() { return evaluate(test_); }

  /// Loss and accuracy on any data set with the network's shapes (e.g. the training data), forward passes of
  /// `chunk` samples at a time. Throws std::invalid_argument if chunk is 0 or the feature count differs.
  evaluation evaluate(const dataset<T>& data, std::size_t chunk = 1000) {
    if (chunk == 0) throw std::invalid_argument("classifier::evaluate(): chunk must be > 0");
    if (data.size() > 0 && data.features() != network_.inputs())
      throw std::invalid_argument("classifier::evaluate(): data has the wrong number of features");
    if (data.size() == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    evaluation e;
    double loss = 0.0;
    std::size_t correct = 0;
    std::vector<std::size_t> idx;
    for (std::size_t start = 0; start < data.size(); start += chunk) {
      const std::size_t stop = std::min(data.size(), start + chunk);
      idx.resize(stop - start);
      for (std::size_t i = start; i < stop; ++i) idx[i - start] = i;
      gather(data, idx, "classifier::evaluate");
      const xt::xtensor<T, 2>& logits = network_.forward(batch_);
      loss += softmax_cross_entropy(logits, false) * static_cast<double>(idx.size());
      const std::size_t classes = network_.outputs();
      for (std::size_t r = 0; r < idx.size(); ++r) {
        const T* row = logits.data() + r * classes;
        const std::size_t best = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
        correct += best == static_cast<std::size_t>(batch_labels_[r]);
      }
    }
    e.loss = loss / static_cast<double>(data.size());
    e.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
    return e;
  }

  mlp<T>& network() noexcept { return network_; }
  const mlp<T>& network() const noexcept { return network_; }
  const dataset<T>& train_data() const noexcept { return train_; }
  const dataset<T>& test_data() const noexcept { return test_; }

 private:
  /// batch_ = the rows `indices` of `data`, batch_labels_ their labels.
  void gather(const dataset<T>& data, std::span<const std::size_t> indices, const char* func) {
    const std::size_t f = data.features();
    batch_.resize({indices.size(), f});
    batch_labels_.resize(indices.size());
    for (std::size_t r = 0; r < indices.size(); ++r) {
      if (indices[r] >= data.size())
        throw std::invalid_argument(std::string(func) + "(): indices[" + std::to_string(r) + "] = " +
                                    std::to_string(indices[r]) + " is out of range");
      std::copy_n(data.images.data() + indices[r] * f, f, batch_.data() + r * f);
      batch_labels_[r] = data.labels(indices[r]);
    }
  }

  /// Mean cross-entropy of `logits` against batch_labels_; with `gradient`, dlogits_ = (softmax − onehot) / B.
  double softmax_cross_entropy(const xt::xtensor<T, 2>& logits, bool gradient) {
    const std::size_t batch = logits.shape()[0], classes = logits.shape()[1];
    xt::noalias(row_max_) = xt::amax(logits, {1}, xt::evaluation_strategy::immediate);
    exp_shifted_.resize({batch, classes});
    xt::noalias(exp_shifted_) = xt::exp(logits - xt::view(row_max_, xt::all(), xt::newaxis()));
    xt::noalias(row_sum_) = xt::sum(exp_shifted_, {1}, xt::evaluation_strategy::immediate);
    double loss = 0.0;
    for (std::size_t r = 0; r < batch; ++r) {
      const std::size_t y = static_cast<std::size_t>(batch_labels_[r]);
      loss += std::log(static_cast<double>(row_sum_(r))) + static_cast<double>(row_max_(r)) -
              static_cast<double>(logits(r, y));
    }
    loss /= static_cast<double>(batch);
    if (gradient) {
      dlogits_.resize({batch, classes});
      const T inv_batch = T(1) / static_cast<T>(batch);
      xt::noalias(dlogits_) = exp_shifted_ / xt::view(row_sum_, xt::all(), xt::newaxis()) * inv_batch;
      for (std::size_t r = 0; r < batch; ++r) dlogits_(r, static_cast<std::size_t>(batch_labels_[r])) -= inv_batch;
    }
    return loss;
  }

  mlp<T> network_;
  dataset<T> train_, test_;
  std::vector<parameter<T>> parameters_;
  xt::xtensor<T, 2> batch_, exp_shifted_, dlogits_;
  xt::xtensor<T, 1> row_max_, row_sum_;
  std::vector<std::int32_t> batch_labels_;
};

/// The PQI paper's MLP for Fashion-MNIST (Diao et al., ICLR 2023): 784 → 128 → 256 → 10, ReLU, softmax
/// cross-entropy, Kaiming-normal initialisation from `seed`.
template <std::floating_point T = float>
classifier<T> make_fashion_mnist_mlp(dataset<T> train, dataset<T> test, std::uint64_t seed) {
  const std::size_t classes = train.num_classes;
  return classifier<T>(mlp<T>({train.features(), 128, 256, classes}, seed), std::move(train), std::move(test));
}

/// A linear (multinomial logistic regression) classifier: logits = x Wᵀ + b, one layer "fc1", features → classes.
template <std::floating_point T = float>
classifier<T> make_linear_classifier(dataset<T> train, dataset<T> test, std::uint64_t seed) {
  const std::size_t features = train.features(), classes = train.num_classes;
  return classifier<T>(mlp<T>({features, classes}, seed), std::move(train), std::move(test));
}

}  // namespace bipq::xtensor_adapter
