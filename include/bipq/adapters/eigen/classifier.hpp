#pragma once
// A sequential model with its training and test data as one bipq problem: models bipq::trainable_model, so every
// solver and pruning driver of bipq trains, prunes and evaluates it unchanged.
//
// Loss: mean softmax cross-entropy over the mini-batch, ℓ = (1/B) Σ_i [log Σ_j exp(z_ij) − z_{i,y_i}], with
// ∂ℓ/∂z_ij = (softmax(z_i)_j − [j = y_i]) / B. The batch is split into contiguous slices, one per thread
// (std::thread); gradients are summed in thread order, so the same indices and thread count give the same bits, and
// another thread count gives the same result up to float rounding.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/concepts.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace bipq::eigen {

namespace detail {
/// Runs fn(t) for t = 0 .. threads-1, t = 0 on the calling thread; rethrows the first exception after joining.
template <class F>
void run_threads(std::size_t threads, F&& fn) {
  std::vector<std::exception_ptr> errors(threads);
  auto guarded = [&](std::size_t t) {
    try {
      fn(t);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(threads > 0 ? threads - 1 : 0);
  for (std::size_t t = 1; t < threads; ++t) workers.emplace_back(guarded, t);
  guarded(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}
}  // namespace detail

/// `model` trained on `train` and evaluated on `test`. The model and both datasets are held by reference and must
/// outlive the classifier; the model must not be used by another classifier at the same time.
template <std::floating_point T = float>
class basic_classifier {
 public:
  using scalar_type = T;

  /// Throws std::invalid_argument if a dataset's sample shape differs from the model's input, the model's output
  /// is not {num_classes, 1, 1}, a dataset is inconsistent, or threads is 0.
  basic_classifier(basic_sequential<T>& model, const io::image_dataset& train, const io::image_dataset& test,
                   std::size_t threads = 2)
      : model_(&model), train_(&train), test_(&test), threads_(threads) {
    if (threads == 0) throw std::invalid_argument("classifier(): threads must be > 0");
    check_data(train, "train");
    check_data(test, "test");
    model.set_threads(threads);
    acts_.resize(threads, std::vector<activation<T>>(model.size() + 1));
    grads_.resize(threads, std::vector<activation<T>>(model.size() + 1));
  }

  /// The model's parameters: `value` is what forward reads, `grad` what loss_and_gradient writes.
  const std::vector<parameter<T>>& parameters() const noexcept { return model_->parameters(); }
  std::size_t num_samples() const noexcept { return train_->size(); }
  std::size_t threads() const noexcept { return threads_; }
  basic_sequential<T>& model() noexcept { return *model_; }
  /// Training samples through forward and backward so far (Σ |indices| over loss_and_gradient calls): a run's
  /// cost in passes, the same on every machine. Evaluation is not counted.
  std::size_t samples_processed() const noexcept { return samples_processed_; }

  /// Mean cross-entropy over the training samples `indices` in training mode (batch-norm batch statistics, running
  /// statistics updated), with its gradient written into every parameter's grad. Throws std::invalid_argument if
  /// indices is empty or holds an index ≥ num_samples().
  double loss_and_gradient(std::span<const std::size_t> indices) {
    if (indices.empty()) throw std::invalid_argument("classifier::loss_and_gradient(): indices is empty");
    for (std::size_t i : indices)
      if (i >= train_->size())
        throw std::invalid_argument("classifier::loss_and_gradient(): indices holds " + std::to_string(i) +
                                    ", expected < num_samples() = " + std::to_string(train_->size()));
    const std::size_t B = indices.size(), active = std::min(threads_, B);
    samples_processed_ += B;
    std::vector<double> losses(active, 0.0);
    team group(active);
    detail::run_threads(active, [&](std::size_t t) {
      const std::size_t b0 = t * B / active, b1 = (t + 1) * B / active;
      const thread_context ctx{t, true, &group};
      std::vector<activation<T>>& acts = acts_[t];
      std::vector<activation<T>>& grads = grads_[t];
      gather(*train_, indices.subspan(b0, b1 - b0), acts[0]);
      model_->forward(ctx, acts);
      losses[t] = cross_entropy(acts.back(), *train_, indices.subspan(b0, b1 - b0), B, &grads.back(), nullptr);
      model_->backward(ctx, acts, grads);
    });
    model_->reduce_gradients(active);
    double loss = 0.0;
    for (double l : losses) loss += l;
    return loss / static_cast<double>(B);
  }

  /// Loss and accuracy on the test set, in inference mode (no state changes). NaN for an empty test set.
  evaluation evaluate() { return evaluate(*test_); }

  /// Loss and accuracy on `d` (same sample shape as the model's input), in inference mode.
  evaluation evaluate(const io::image_dataset& d) {
    check_data(d, "d");
    if (d.size() == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    constexpr std::size_t chunk = 256;
    const std::size_t chunks = (d.size() + chunk - 1) / chunk, active = std::min(threads_, chunks);
    std::vector<double> losses(active, 0.0);
    std::vector<std::size_t> correct(active, 0);
    detail::run_threads(active, [&](std::size_t t) {
      const thread_context ctx{t, false, nullptr};
      std::vector<std::size_t> idx;
      for (std::size_t c = t; c < chunks; c += active) {  // chunk c goes to thread c mod active
        const std::size_t b0 = c * chunk, b1 = std::min(d.size(), b0 + chunk);
        idx.resize(b1 - b0);
        for (std::size_t i = b0; i < b1; ++i) idx[i - b0] = i;
        gather(d, idx, acts_[t][0]);
        model_->infer(ctx, acts_[t]);
        losses[t] += cross_entropy(acts_[t].back(), d, idx, 1, nullptr, &correct[t]);
      }
    });
    double loss = 0.0;
    std::size_t hits = 0;
    for (std::size_t t = 0; t < active; ++t) loss += losses[t], hits += correct[t];
    const double n = static_cast<double>(d.size());
    return {loss / n, static_cast<double>(hits) / n};
  }

  /// Predicted classes (arg-max of the logits) of the samples of `d`, in inference mode.
  std::vector<std::size_t> predict(const io::image_dataset& d) {
    check_data(d, "d");
    std::vector<std::size_t> out(d.size());
    constexpr std::size_t chunk = 256;
    const thread_context ctx{0, false, nullptr};
    std::vector<std::size_t> idx;
    for (std::size_t b0 = 0; b0 < d.size(); b0 += chunk) {
      const std::size_t b1 = std::min(d.size(), b0 + chunk);
      idx.resize(b1 - b0);
      for (std::size_t i = b0; i < b1; ++i) idx[i - b0] = i;
      gather(d, idx, acts_[0][0]);
      model_->infer(ctx, acts_[0]);
      const activation<T>& z = acts_[0].back();
      for (std::size_t i = 0; i < z.n; ++i) {
        std::size_t best = 0;
        for (std::size_t j = 1; j < z.c; ++j)
          if (z.data[j * z.n + i] > z.data[best * z.n + i]) best = j;
        out[b0 + i] = best;
      }
    }
    return out;
  }

 private:
  basic_sequential<T>* model_;
  const io::image_dataset* train_;
  const io::image_dataset* test_;
  std::size_t threads_;
  std::size_t samples_processed_ = 0;
  std::vector<std::vector<activation<T>>> acts_, grads_;  // per thread, per layer boundary

  void check_data(const io::image_dataset& d, const char* arg) const {
    d.validate("classifier", arg);
    const shape3 in = model_->input_shape(), out = model_->output_shape();
    if (shape3{d.channels, d.height, d.width} != in)
      throw std::invalid_argument(std::string("classifier(): ") + arg + " has samples of shape " +
                                  std::to_string(d.channels) + "x" + std::to_string(d.height) + "x" +
                                  std::to_string(d.width) + ", the model takes " + std::to_string(in.c) + "x" +
                                  std::to_string(in.h) + "x" + std::to_string(in.w));
    if (out.h != 1 || out.w != 1 || out.c != d.num_classes)
      throw std::invalid_argument(std::string("classifier(): the model's output is not a vector of ") + arg +
                                  ".num_classes = " + std::to_string(d.num_classes) + " logits");
  }

  // x[c, i, :, :] = sample indices[i], channel c.
  static void gather(const io::image_dataset& d, std::span<const std::size_t> indices, activation<T>& x) {
    x.resize(shape3{d.channels, d.height, d.width}, indices.size());
    const std::size_t P = d.height * d.width;
    for (std::size_t c = 0; c < d.channels; ++c)
      for (std::size_t i = 0; i < indices.size(); ++i) {
        const float* src = d.images.data() + indices[i] * d.sample_size() + c * P;
        std::copy(src, src + P, x.channel(c) + i * P);
      }
  }

  // Σ_i cross-entropy of the logits z [classes, n]; if dz: dz = (softmax − onehot) / denominator; if correct: adds
  // the number of arg-max hits (ties: the lowest class).
  static double cross_entropy(const activation<T>& z, const io::image_dataset& d,
                              std::span<const std::size_t> indices, std::size_t denominator, activation<T>* dz,
                              std::size_t* correct) {
    const std::size_t n = z.n, k = z.c;
    if (dz != nullptr) dz->resize(z.sample_shape(), n);
    const T inv = T(1) / static_cast<T>(denominator);
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t y = d.labels[indices[i]];
      std::size_t best = 0;
      T zmax = z.data[i];
      for (std::size_t j = 1; j < k; ++j)
        if (z.data[j * n + i] > zmax) zmax = z.data[j * n + i], best = j;
      double sum = 0.0;
      for (std::size_t j = 0; j < k; ++j) sum += std::exp(double(z.data[j * n + i] - zmax));
      total += std::log(sum) + double(zmax) - double(z.data[y * n + i]);
      if (dz != nullptr)
        for (std::size_t j = 0; j < k; ++j) {
          const double p = std::exp(double(z.data[j * n + i] - zmax)) / sum;
          dz->data[j * n + i] = static_cast<T>(p - (j == y ? 1.0 : 0.0)) * inv;
        }
      if (correct != nullptr && best == y) ++*correct;
    }
    return total;
  }
};

using classifier = basic_classifier<float>;

}  // namespace bipq::eigen
