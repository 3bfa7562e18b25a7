#pragma once
// Any LibTorch module with its training and test tensors as one bipq problem: models bipq::trainable_model, so every
// solver and pruning driver of bipq trains, prunes and evaluates a torch::nn::Module unchanged.
//
// The module's parameters are exposed as bipq::parameter spans over the tensors' own storage: bipq writes the
// effective weights z = m ⊙ θ into them and reads ∇_z ℓ from their gradients, which are allocated once, zeroed in
// place before every backward pass, and checked to stay at the same address afterwards (autograd accumulates into a
// defined gradient in place; a gradient that was set to none, or replaced, would leave a stale span).
//
// Loss: mean softmax cross-entropy over the mini-batch (torch::nn::functional::cross_entropy), the same as
// bipq::eigen::classifier. The module's forward(x) takes a float32 batch [B, C, H, W] and returns logits [B, K].
// Threads: libtorch's intra-op thread pool is process-wide (at::set_num_threads); the classifier sets it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/nn/functional/instancenorm.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "bipq/concepts.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace bipq::torch_adapter {

/// Images and labels as libtorch tensors: images float32 [N, C, H, W], labels int64 [N], both contiguous on the CPU.
struct tensor_dataset {
  at::Tensor images;
  at::Tensor labels;
  std::int64_t num_classes = 10;

  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// A copy of `d` as tensors (the images keep their values: standardise `d` first if the model expects it).
inline tensor_dataset to_tensors(const io::image_dataset& d) {
  d.validate("to_tensors", "d");
  const auto n = static_cast<std::int64_t>(d.size());
  tensor_dataset t;
  t.images = at::empty({n, static_cast<std::int64_t>(d.channels), static_cast<std::int64_t>(d.height),
                        static_cast<std::int64_t>(d.width)},
                       at::kFloat);
  std::copy(d.images.begin(), d.images.end(), t.images.data_ptr<float>());
  t.labels = at::empty({n}, at::kLong);
  auto* y = t.labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) y[i] = d.labels[static_cast<std::size_t>(i)];
  t.num_classes = static_cast<std::int64_t>(d.num_classes);
  return t;
}

/// The kind of a parameter named `name` (its last component) owned directly by `owner`: the weight of a Conv1d/2d/3d
/// (or transposed conv) is a conv weight, of a Linear a linear weight; a parameter named "bias" is a bias; the
/// parameters of BatchNorm, InstanceNorm, LayerNorm and GroupNorm are norm parameters; anything else is other.
inline parameter_kind kind_of(const torch::nn::Module& owner, const std::string& name) {
  using namespace torch::nn;
  const bool norm = dynamic_cast<const BatchNorm1dImpl*>(&owner) || dynamic_cast<const BatchNorm2dImpl*>(&owner) ||
                    dynamic_cast<const BatchNorm3dImpl*>(&owner) || dynamic_cast<const InstanceNorm1dImpl*>(&owner) ||
                    dynamic_cast<const InstanceNorm2dImpl*>(&owner) ||
                    dynamic_cast<const InstanceNorm3dImpl*>(&owner) || dynamic_cast<const LayerNormImpl*>(&owner) ||
                    dynamic_cast<const GroupNormImpl*>(&owner);
  if (norm) return parameter_kind::norm;
  if (name == "bias") return parameter_kind::bias;
  if (name != "weight") return parameter_kind::other;
  if (dynamic_cast<const Conv1dImpl*>(&owner) || dynamic_cast<const Conv2dImpl*>(&owner) ||
      dynamic_cast<const Conv3dImpl*>(&owner) || dynamic_cast<const ConvTranspose1dImpl*>(&owner) ||
      dynamic_cast<const ConvTranspose2dImpl*>(&owner) || dynamic_cast<const ConvTranspose3dImpl*>(&owner))
    return parameter_kind::conv_weight;
  if (dynamic_cast<const LinearImpl*>(&owner)) return parameter_kind::linear_weight;
  return parameter_kind::other;
}

/// `Net` is a module holder (torch::nn::Sequential, a TORCH_MODULE(...) holder of a user's module) or a
/// std::shared_ptr to a torch::nn::Module subclass: `net->forward(x)` gives the logits, and `net.ptr()` or `net`
/// itself is a shared pointer to the module.
template <class Net>
concept module_holder = requires(Net& net, const at::Tensor& x) {
  { net->forward(x) } -> std::convertible_to<at::Tensor>;
  { net->named_parameters() };
  { net->is_training() } -> std::convertible_to<bool>;
};

/// `net` trained on `train` and evaluated on `test`. The classifier shares ownership of the module (a holder is a
/// shared pointer) and keeps its own reference to the data tensors; copying is deleted (two classifiers over one
/// module would zero each other's gradients), moving keeps the spans valid (they point into the module's tensors).
template <module_holder Net>
class classifier {
 public:
  using scalar_type = float;

  /// Throws std::invalid_argument if threads is 0, a dataset is not float32 images [N, C, H, W] with int64 labels
  /// [N] on the CPU, or a parameter is not a float32 contiguous CPU tensor (the message names the parameter).
  classifier(Net net, tensor_dataset train, tensor_dataset test, std::size_t threads = 2)
      : net_(std::move(net)), train_(std::move(train)), test_(std::move(test)), threads_(threads) {
    if (threads == 0) throw std::invalid_argument("torch_adapter::classifier(): threads must be > 0");
    check_data(train_, "train");
    check_data(test_, "test");
    at::set_num_threads(static_cast<int>(threads));
    std::unordered_map<std::string, parameter_kind> kinds;
    for (const auto& item : net_->named_modules("", true)) {
      for (const auto& p : item.value()->named_parameters(false)) {
        const std::string full = item.key().empty() ? p.key() : item.key() + "." + p.key();
        kinds.emplace(full, kind_of(*item.value(), p.key()));
      }
    }
    for (const auto& item : net_->named_parameters(true)) {
      at::Tensor p = item.value();
      const std::string& name = item.key();
      if (p.scalar_type() != at::kFloat || !p.is_contiguous() || !p.device().is_cpu())
        throw std::invalid_argument("torch_adapter::classifier(): parameter '" + name +
                                    "' must be a float32 contiguous CPU tensor, it is " +
                                    std::string(c10::toString(p.scalar_type())) + (p.is_contiguous() ? "" : " strided") +
                                    " on " + p.device().str());
      if (!p.requires_grad())
        throw std::invalid_argument("torch_adapter::classifier(): parameter '" + name + "' does not require grad");
      at::Tensor& g = p.mutable_grad();
      if (!g.defined() || !g.is_contiguous() || g.scalar_type() != at::kFloat || !g.device().is_cpu() ||
          g.sizes() != p.sizes())
        g = at::zeros_like(p, at::MemoryFormat::Contiguous);
      else
        g.zero_();
      const auto n = static_cast<std::size_t>(p.numel());
      std::vector<std::size_t> shape(p.sizes().begin(), p.sizes().end());
      const auto k = kinds.find(name);
      parameters_.push_back(parameter<float>{name, std::move(shape),
                                             k == kinds.end() ? parameter_kind::other : k->second,
                                             std::span<float>(p.data_ptr<float>(), n),
                                             std::span<float>(g.data_ptr<float>(), n)});
      tensors_.push_back(p);
    }
  }

  classifier(const classifier&) = delete;
  classifier& operator=(const classifier&) = delete;
  classifier(classifier&&) = default;
  classifier& operator=(classifier&&) = default;

  /// The module's parameters in named_parameters() order: `value` is the tensor's storage (what forward reads),
  /// `grad` its gradient's storage (what loss_and_gradient writes).
  const std::vector<parameter<float>>& parameters() const noexcept { return parameters_; }
  std::size_t num_samples() const { return static_cast<std::size_t>(train_.size()); }
  std::size_t threads() const noexcept { return threads_; }
  Net& module() noexcept { return net_; }
  /// Training samples through forward and backward so far (Σ |indices| over loss_and_gradient calls): a run's
  /// cost in passes, the same on every machine. Evaluation is not counted.
  std::size_t samples_processed() const noexcept { return samples_processed_; }

  /// Mean cross-entropy over the training samples `indices` in training mode (batch-norm running statistics are
  /// updated), with its gradient written into every parameter's grad. Throws std::invalid_argument if indices is empty
  /// or holds an index ≥ num_samples(), std::logic_error naming the parameter if autograd moved a gradient.
  double loss_and_gradient(std::span<const std::size_t> indices) {
    if (indices.empty()) throw std::invalid_argument("torch_adapter::classifier::loss_and_gradient(): indices is empty");
    const std::size_t n = num_samples();
    std::vector<std::int64_t> idx(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) {
      if (indices[i] >= n)
        throw std::invalid_argument("torch_adapter::classifier::loss_and_gradient(): indices holds " +
                                    std::to_string(indices[i]) + ", expected < num_samples() = " + std::to_string(n));
      idx[i] = static_cast<std::int64_t>(indices[i]);
    }
    use_threads();
    samples_processed_ += indices.size();
    const at::Tensor index = at::from_blob(idx.data(), {static_cast<std::int64_t>(idx.size())}, at::kLong);
    const at::Tensor x = train_.images.index_select(0, index), y = train_.labels.index_select(0, index);
    for (std::size_t j = 0; j < tensors_.size(); ++j) check_storage(j, "before");
    const mode_guard training(*this, true);
    for (std::size_t j = 0; j < tensors_.size(); ++j) tensors_[j].mutable_grad().zero_();
    const at::Tensor loss = torch::nn::functional::cross_entropy(net_->forward(x), y);
    loss.backward();
    for (std::size_t j = 0; j < tensors_.size(); ++j) check_storage(j, "after");
    return loss.item<double>();
  }

  /// Loss and accuracy on the test set, in eval mode under no-grad (the module's training flag is restored).
  evaluation evaluate() { return evaluate(test_); }

  /// Loss and accuracy on `d`, in eval mode under no-grad. NaN for an empty set.
  evaluation evaluate(const tensor_dataset& d) {
    check_data(d, "d");
    const std::int64_t n = d.size();
    if (n == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    use_threads();
    const mode_guard inference(*this, false);
    const at::NoGradGuard no_grad;
    constexpr std::int64_t chunk = 1000;
    double loss = 0.0;
    std::int64_t hits = 0;
    for (std::int64_t b0 = 0; b0 < n; b0 += chunk) {
      const std::int64_t b1 = std::min(n, b0 + chunk);
      const at::Tensor x = d.images.slice(0, b0, b1), y = d.labels.slice(0, b0, b1);
      const at::Tensor z = net_->forward(x);
      loss += torch::nn::functional::cross_entropy(
                  z, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                  .item<double>();
      hits += z.argmax(1).eq(y).sum().item<std::int64_t>();
    }
    return {loss / static_cast<double>(n), static_cast<double>(hits) / static_cast<double>(n)};
  }

 private:
  Net net_;
  tensor_dataset train_, test_;
  std::size_t threads_;
  std::size_t samples_processed_ = 0;
  std::vector<parameter<float>> parameters_;
  std::vector<at::Tensor> tensors_;  // the parameters, in parameters_ order

  // Sets the module's training flag for a scope and restores it on exit (also on an exception).
  struct mode_guard {
    classifier& c;
    bool was;
    mode_guard(classifier& owner, bool training) : c(owner), was(owner.net_->is_training()) {
      if (was != training) c.net_->train(training);
    }
    ~mode_guard() {
      if (c.net_->is_training() != was) c.net_->train(was);
    }
    mode_guard(const mode_guard&) = delete;
    mode_guard& operator=(const mode_guard&) = delete;
  };

  // Throws if parameter j's value or gradient is no longer the storage its spans point to; `when` is "before" or
  // "after" (backward()).
  // LibTorch's thread count is process-wide: set it back if something else changed it (setting it when unchanged
  // is not free: it reconfigures the OpenMP pool).
  void use_threads() const {
    if (at::get_num_threads() != static_cast<int>(threads_)) at::set_num_threads(static_cast<int>(threads_));
  }

  void check_storage(std::size_t j, const char* when) const {
    const at::Tensor& p = tensors_[j];
    const at::Tensor& g = p.grad();
    const parameter<float>& q = parameters_[j];
    if (p.data_ptr<float>() != q.value.data())
      throw std::logic_error("torch_adapter::classifier::loss_and_gradient(): the storage of parameter '" + q.name +
                             "' moved " + when + " backward() (was its data replaced?)");
    if (!g.defined() || g.data_ptr() != static_cast<void*>(q.grad.data()))
      throw std::logic_error("torch_adapter::classifier::loss_and_gradient(): the gradient of parameter '" + q.name +
                             "' moved " + when + " backward() (set to none by zero_grad(true), or replaced?)");
  }

  static void check_data(const tensor_dataset& d, const char* arg) {
    const std::string where = std::string("torch_adapter::classifier(): ") + arg;
    if (!d.images.defined() || !d.labels.defined()) throw std::invalid_argument(where + " has undefined tensors");
    if (d.images.dim() != 4 || d.images.scalar_type() != at::kFloat || !d.images.device().is_cpu() ||
        !d.images.is_contiguous())
      throw std::invalid_argument(where + ".images must be a contiguous float32 CPU tensor [N, C, H, W]");
    if (d.labels.dim() != 1 || d.labels.scalar_type() != at::kLong || !d.labels.device().is_cpu() ||
        d.labels.size(0) != d.images.size(0))
      throw std::invalid_argument(where + ".labels must be an int64 CPU tensor [N] with N = images.size(0)");
    if (d.num_classes <= 0) throw std::invalid_argument(where + ".num_classes must be > 0");
    if (d.size() > 0 && (d.labels.min().item<std::int64_t>() < 0 ||
                         d.labels.max().item<std::int64_t>() >= d.num_classes))
      throw std::invalid_argument(where + ".labels must be in 0 .. num_classes-1");
  }
};

}  // namespace bipq::torch_adapter
