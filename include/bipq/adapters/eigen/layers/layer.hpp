#pragma once
// CNN layers on Eigen with forward and backward passes over a slice of a mini-batch, for one thread at a time.
//
// Layout. An activation holds a batch slice of n samples as [C, n, H, W]: channel-major across the slice, so that a
// convolution over the whole slice is one GEMM (Chellapilla et al. 2006, "High performance convolutional neural
// networks for document processing": im2col + GEMM), Y[K, n·OH·OW] = W[K, C·R·S] · col[C·R·S, n·OH·OW], and batch
// normalisation's per-channel statistics run over contiguous memory. Flat activations are [F, n, 1, 1], i.e. the
// matrix X[F, n] of a linear layer Y = W X + b. `flatten` turns [C, n, H, W] into [C·H·W, n, 1, 1] in PyTorch's
// order (feature index c·H·W + h·W + w).
//
// Threads. A batch is split into contiguous slices, one per thread; each thread runs every layer on its slice and
// accumulates parameter gradients into its own buffers (`thread_grad`), which the model then sums in thread order.
// Batch normalisation in training mode needs statistics over the whole batch: its threads meet in a `team` whose
// all-reduce sums per-thread partial sums in thread order, so every thread sees the same bits.
//
// Every layer is a template on the scalar type (float for training; double for finite-difference tests).
//
// This header: the activation, the thread team and context, a layer's parameters, and the layer interface.

#include <algorithm>
#include <barrier>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"

namespace bipq::eigen {

/// The shape of one sample's activation: channels, height, width (a flat vector of F features is {F, 1, 1}).
struct shape3 {
  std::size_t c = 1, h = 1, w = 1;
  std::size_t size() const noexcept { return c * h * w; }
  bool operator==(const shape3&) const = default;
};

/// A batch slice of n samples stored as [C, n, H, W] (see the layout note at the top of this file).
template <std::floating_point T>
struct activation {
  std::size_t c = 0, n = 0, h = 0, w = 0;
  std::vector<T> data;

  /// Sets the shape; keeps the allocation when it is large enough (no allocation in the steady state).
  void resize(shape3 s, std::size_t samples) {
    c = s.c, h = s.h, w = s.w, n = samples;
    data.resize(c * n * h * w);
  }
  shape3 sample_shape() const noexcept { return {c, h, w}; }
  std::size_t plane() const noexcept { return h * w; }
  T* channel(std::size_t k) noexcept { return data.data() + k * n * h * w; }
  const T* channel(std::size_t k) const noexcept { return data.data() + k * n * h * w; }
};

/// Threads working on one mini-batch; `all_reduce` sums a few doubles across them.
class team {
 public:
  explicit team(std::size_t threads) : barrier_(static_cast<std::ptrdiff_t>(threads)), slots_(threads) {}
  std::size_t size() const noexcept { return slots_.size(); }

  /// v ← Σ_t v_t over the threads, summed in thread order 0, 1, ... (identical bits in every thread). Every thread
  /// of the team must call it the same number of times with the same length.
  void all_reduce(std::size_t thread, std::span<double> v) {
    if (slots_.size() == 1) return;
    slots_[thread].assign(v.begin(), v.end());
    barrier_.arrive_and_wait();
    for (std::size_t k = 0; k < v.size(); ++k) {
      double s = 0.0;
      for (const auto& slot : slots_) s += slot[k];
      v[k] = s;
    }
    barrier_.arrive_and_wait();  // nobody overwrites a slot before everyone has read it
  }

 private:
  std::barrier<> barrier_;
  std::vector<std::vector<double>> slots_;
};

/// What a layer needs to know about the thread running it.
struct thread_context {
  std::size_t thread = 0;  ///< 0 .. threads-1
  bool training = false;   ///< training mode (batch statistics) or inference mode (running statistics)
  team* group = nullptr;   ///< the threads sharing the mini-batch (training mode); null: this thread alone
  void all_reduce(std::span<double> v) const {
    if (group != nullptr) group->all_reduce(thread, v);
  }
};

/// A learnable tensor of a layer: its value, its gradient (the sum over threads), and one gradient buffer per thread.
template <std::floating_point T>
struct layer_parameter {
  std::string suffix;               ///< "weight" or "bias"; the model prefixes the layer's name
  std::vector<std::size_t> shape;   ///< row-major
  parameter_kind kind = parameter_kind::other;
  std::vector<T> value, grad;
  std::vector<std::vector<T>> thread_grad;

  layer_parameter(std::string s, std::vector<std::size_t> dims, parameter_kind k)
      : suffix(std::move(s)), shape(std::move(dims)), kind(k) {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    value.assign(n, T(0));
    grad.assign(n, T(0));
  }
};

/// The interface of a layer. `forward` maps x to y on one thread's slice; `backward` receives x, y and ∂ℓ/∂y and
/// adds ∂ℓ/∂θ into the thread's gradient buffers, and writes ∂ℓ/∂x into `dx` unless it is null (first layer).
template <std::floating_point T>
class layer {
 public:
  virtual ~layer() = default;
  /// The output shape for an input of shape `in`; throws std::invalid_argument if the layer cannot take it.
  virtual shape3 output_shape(shape3 in) const = 0;
  virtual void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) = 0;
  virtual void backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y,
                        const activation<T>& dy, activation<T>* dx) = 0;
  /// Kaiming-normal weights (He et al. 2015: N(0, 2/fan_in)), zero biases, unit/zero norm scale/shift.
  virtual void reset_parameters(bipq::detail::rng&) {}

  // Inference with pointwise layers fused into the layer before them (basic_sequential::infer).
  /// True if, in the mode of `ctx`, forward() maps every value on its own, given its channel and position only
  /// (ReLU, batch norm in inference mode, a bias): it can then run in place on a slice of samples (map_samples).
  virtual bool pointwise(const thread_context&) const { return false; }
  /// a ← forward(a) on the samples [i0, i1) of `a`, in place, with the same values forward() gives; only for a
  /// layer that is pointwise() in this mode.
  virtual void map_samples(const thread_context&, activation<T>&, std::size_t, std::size_t) const {}
  /// y = then[last](… then[0](forward(x))): forward() followed by the pointwise layers `then`, which the layer
  /// applies to each slice of samples it has just computed, while the slice is still in cache, with the same values
  /// as the layers run one after another. Returns false, with y untouched, if the layer does not fuse.
  virtual bool forward_then(const thread_context&, const activation<T>&, activation<T>&,
                            std::span<const layer* const>) {
    return false;
  }
  /// Prepares per-thread state for up to `threads` threads.
  virtual void set_threads(std::size_t threads) {
    threads_ = threads;
    for (auto& p : params_) p.thread_grad.resize(threads, std::vector<T>(p.value.size(), T(0)));
  }
  std::vector<layer_parameter<T>>& parameters() noexcept { return params_; }
  const std::vector<layer_parameter<T>>& parameters() const noexcept { return params_; }
  /// grad ← Σ_{t < threads} thread_grad[t], in thread order.
  void reduce_gradients(std::size_t threads) {
    for (auto& p : params_) {
      std::copy(p.thread_grad[0].begin(), p.thread_grad[0].end(), p.grad.begin());
      for (std::size_t t = 1; t < threads; ++t)
        for (std::size_t j = 0; j < p.grad.size(); ++j) p.grad[j] += p.thread_grad[t][j];
    }
  }

 protected:
  std::vector<layer_parameter<T>> params_;  ///< fixed at construction: the storage never moves
  std::size_t threads_ = 0;

  std::vector<T>& thread_grad(std::size_t i, const thread_context& ctx) {
    auto& g = params_[i].thread_grad[ctx.thread];
    std::fill(g.begin(), g.end(), T(0));
    return g;
  }
  void kaiming_normal(std::size_t i, std::size_t fan_in, bipq::detail::rng& g) {
    const double stddev = std::sqrt(2.0 / static_cast<double>(fan_in));
    for (T& v : params_[i].value) v = static_cast<T>(stddev * g.normal());
  }
};

namespace detail {
template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using matrix_map = Eigen::Map<row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using const_matrix_map = Eigen::Map<const row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

inline Eigen::Index idx(std::size_t v) { return static_cast<Eigen::Index>(v); }

[[noreturn]] inline void bad_shape(const std::string& layer, const std::string& what) {
  throw std::invalid_argument(layer + "::output_shape(): " + what);
}
}  // namespace detail

}  // namespace bipq::eigen
