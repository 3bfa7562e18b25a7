#pragma once
// A sequential model over the Eigen layers, with named parameters, and the three models of the experiments:
// LeNet-5, the PQI paper's CNN (narrower by default) and a multi-layer perceptron.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"

namespace bipq::eigen {

/// Layers applied in order to an input of a fixed per-sample shape. Parameters are exposed as bipq::parameter with
/// names "<layer name>.<weight|bias>" (e.g. "conv1.weight"), row-major shapes and kinds, in the order the layers
/// were added; their storage never moves, also when the model is moved (layers live on the heap).
template <std::floating_point T = float>
class basic_sequential {
 public:
  using scalar_type = T;

  explicit basic_sequential(shape3 input) : input_(input), output_(input) {
    if (input.size() == 0) throw std::invalid_argument("sequential(): input shape has a zero dimension");
  }

  /// Appends a layer named `name` (unique; it prefixes the layer's parameter names). Throws std::invalid_argument
  /// if the name is taken or empty, or the layer cannot take the current output shape.
  template <class Layer>
    requires std::derived_from<std::remove_cvref_t<Layer>, layer<T>>
  basic_sequential& add(std::string name, Layer&& l) {
    if (name.empty()) throw std::invalid_argument("sequential::add(): name must not be empty");
    for (const auto& n : names_)
      if (n == name) throw std::invalid_argument("sequential::add(): name '" + name + "' is already used");
    auto p = std::make_unique<std::remove_cvref_t<Layer>>(std::forward<Layer>(l));
    output_ = p->output_shape(output_);
    for (auto& lp : p->parameters())
      parameters_.push_back(parameter<T>{name + "." + lp.suffix, lp.shape, lp.kind, std::span<T>(lp.value),
                                         std::span<T>(lp.grad)});
    p->set_threads(threads_);
    layers_.push_back(std::move(p));
    names_.push_back(std::move(name));
    return *this;
  }

  const std::vector<parameter<T>>& parameters() const noexcept { return parameters_; }
  shape3 input_shape() const noexcept { return input_; }
  shape3 output_shape() const noexcept { return output_; }
  std::size_t size() const noexcept { return layers_.size(); }
  layer<T>& operator[](std::size_t i) { return *layers_.at(i); }
  const layer<T>& operator[](std::size_t i) const { return *layers_.at(i); }
  const std::string& name(std::size_t i) const { return names_.at(i); }

  /// Total number of parameter values.
  std::size_t num_parameters() const noexcept {
    std::size_t n = 0;
    for (const auto& p : parameters_) n += p.value.size();
    return n;
  }

  /// Re-initialises every layer from `seed`: Kaiming-normal conv and linear weights (std √(2/fan_in)), zero biases,
  /// γ = 1 and β = 0 for batch norms. The same seed gives the same bits everywhere.
  void reset_parameters(std::uint64_t seed) {
    bipq::detail::rng g(seed);
    for (auto& l : layers_) l->reset_parameters(g);
  }

  /// Prepares per-thread buffers for up to `threads` threads (the classifier calls this).
  void set_threads(std::size_t threads) {
    if (threads == 0) throw std::invalid_argument("sequential::set_threads(): threads must be > 0");
    threads_ = threads;
    for (auto& l : layers_) l->set_threads(threads);
  }
  std::size_t threads() const noexcept { return threads_; }

  /// acts[0] is the input slice; fills acts[1 .. size()] (acts must have size() + 1 entries).
  void forward(const thread_context& ctx, std::vector<activation<T>>& acts) {
    for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l]->forward(ctx, acts[l], acts[l + 1]);
  }

  /// The output of forward() in inference mode (ctx.training false), with the pointwise layers that follow a layer
  /// able to fuse them (a convolution followed by batch norm, ReLU or a bias) applied to its output slice by slice
  /// while it is in cache: the same values in acts.back(), but the activations between fused layers are not kept
  /// (backward() needs forward()).
  void infer(const thread_context& ctx, std::vector<activation<T>>& acts) {
    if (ctx.training) throw std::invalid_argument("sequential::infer(): ctx.training must be false");
    std::vector<const layer<T>*> then;
    for (std::size_t l = 0; l < layers_.size();) {
      std::size_t next = l + 1;
      then.clear();
      for (; next < layers_.size() && layers_[next]->pointwise(ctx); ++next) then.push_back(layers_[next].get());
      if (!then.empty() && layers_[l]->forward_then(ctx, acts[l], acts[next], then)) {
        l = next;
        continue;
      }
      layers_[l]->forward(ctx, acts[l], acts[l + 1]);
      ++l;
    }
  }

  /// grads[size()] holds ∂ℓ/∂(output); fills grads[1 .. size()-1] and this thread's parameter gradients. The input
  /// gradient grads[0] is not computed.
  void backward(const thread_context& ctx, const std::vector<activation<T>>& acts, std::vector<activation<T>>& grads) {
    for (std::size_t l = layers_.size(); l-- > 0;)
      layers_[l]->backward(ctx, acts[l], acts[l + 1], grads[l + 1], l == 0 ? nullptr : &grads[l]);
  }

  /// Every parameter's grad ← the sum of the first `threads` threads' gradients, in thread order.
  void reduce_gradients(std::size_t threads) {
    for (auto& l : layers_) l->reduce_gradients(threads);
  }

 private:
  shape3 input_, output_;
  std::size_t threads_ = 1;
  std::vector<std::unique_ptr<layer<T>>> layers_;
  std::vector<std::string> names_;
  std::vector<parameter<T>> parameters_;
};

using sequential = basic_sequential<float>;

/// The running statistics of every batch_norm2d layer of `m` (per layer: mean, then variance), in layer order: the
/// model state that is not a parameter (for bipq::mpi::data_parallel_options::statistics). Empty without batch norm.
template <std::floating_point T>
std::vector<std::span<double>> running_statistics(basic_sequential<T>& m) {
  std::vector<std::span<double>> out;
  for (std::size_t i = 0; i < m.size(); ++i)
    if (auto* bn = dynamic_cast<batch_norm2d<T>*>(&m[i])) {
      out.push_back(bn->running_mean_values());
      out.push_back(bn->running_var_values());
    }
  return out;
}

/// LeNet-5 as in the PyTorch tutorials (LeCun et al. 1998 with ReLU and max pooling), for 1×28×28 inputs:
/// conv1 1→6 5×5 pad 2, ReLU, maxpool 2; conv2 6→16 5×5, ReLU, maxpool 2; flatten 400; fc1 400→120, ReLU;
/// fc2 120→84, ReLU; fc3 84→10. 61,706 parameters; 0.42 M multiply-adds per image forward.
template <std::floating_point T = float>
basic_sequential<T> make_lenet5(std::uint64_t seed, std::size_t num_classes = 10) {
  basic_sequential<T> m(shape3{1, 28, 28});
  m.add("conv1", conv2d<T>(1, 6, 5, 1, 2)).add("relu1", relu<T>()).add("pool1", max_pool2d<T>(2));
  m.add("conv2", conv2d<T>(6, 16, 5)).add("relu2", relu<T>()).add("pool2", max_pool2d<T>(2));
  m.add("flatten", flatten<T>());
  m.add("fc1", linear<T>(400, 120)).add("relu3", relu<T>());
  m.add("fc2", linear<T>(120, 84)).add("relu4", relu<T>());
  m.add("fc3", linear<T>(84, num_classes));
  m.reset_parameters(seed);
  return m;
}

/// The CNN of the PQI paper (Diao et al. 2023, appendix): blocks conv3×3 (pad 1, no bias) – batch norm – ReLU –
/// maxpool 2, without the pool after the last block, then global average pooling and a linear classifier.
/// The paper uses widths {64, 128, 256, 512}; an empty `widths` gives the narrower default {16, 32, 64, 128}
/// (16× fewer multiply-adds, the same structure), which trains on 2 CPU cores in minutes. Layers are named conv<i>,
/// bn<i>, fc. The input is 1×28×28 unless `input` says otherwise.
template <std::floating_point T = float>
basic_sequential<T> make_pqi_cnn(std::vector<std::size_t> widths, std::uint64_t seed, std::size_t num_classes = 10,
                                 shape3 input = {1, 28, 28}) {
  if (widths.empty()) widths = {16, 32, 64, 128};
  basic_sequential<T> m(input);
  std::size_t in = input.c;
  for (std::size_t b = 0; b < widths.size(); ++b) {
    const std::string i = std::to_string(b + 1);
    if (widths[b] == 0) throw std::invalid_argument("make_pqi_cnn(): widths must be > 0");
    m.add("conv" + i, conv2d<T>(in, widths[b], 3, 1, 1, false));
    m.add("bn" + i, batch_norm2d<T>(widths[b]));
    m.add("relu" + i, relu<T>());
    if (b + 1 < widths.size()) m.add("pool" + i, max_pool2d<T>(2));
    in = widths[b];
  }
  m.add("gap", global_avg_pool<T>());
  m.add("fc", linear<T>(in, num_classes));
  m.reset_parameters(seed);
  return m;
}

/// Multi-layer perceptron 784 → 128 → 256 → 10 with ReLU (the PQI paper's MLP), layers fc1, fc2, fc3.
template <std::floating_point T = float>
basic_sequential<T> make_mlp(std::uint64_t seed, std::size_t num_classes = 10, shape3 input = {1, 28, 28}) {
  basic_sequential<T> m(input);
  m.add("flatten", flatten<T>());
  m.add("fc1", linear<T>(input.size(), 128)).add("relu1", relu<T>());
  m.add("fc2", linear<T>(128, 256)).add("relu2", relu<T>());
  m.add("fc3", linear<T>(256, num_classes));
  m.reset_parameters(seed);
  return m;
}

}  // namespace bipq::eigen
