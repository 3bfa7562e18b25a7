#pragma once
// A fully connected ReLU network whose parameters live in xtensor containers: weights W_l as xt::xtensor<T, 2>
// [out, in] (row-major, PyTorch's nn.Linear layout), biases b_l as xt::xtensor<T, 1> [out].
//
// Forward, for a batch X [B, in] (one sample per row), layers l = 1 .. L:
//   h_0 = X,   a_l = h_{l−1} W_lᵀ + 1 b_lᵀ,   h_l = relu(a_l) (l < L),   logits = a_L.
// Backward, from δ_L = ∂ℓ/∂a_L [B, out]:
//   ∂ℓ/∂W_l = δ_lᵀ h_{l−1},   ∂ℓ/∂b_l = δ_lᵀ 1,   δ_{l−1} = (δ_l W_l) ⊙ [a_{l−1} > 0].
// Element-wise parts (bias broadcast, ReLU and its derivative, the bias gradient) are xtensor expressions; the three
// matrix products are one register-tiled row-major kernel over the xtensor storage (`detail::gemm_accumulate`),
// vectorised by the compiler along the contiguous rows (xtensor-blas is not required).
//
// Initialisation: Kaiming normal (He et al., "Delving Deep into Rectifiers", ICCV 2015, eq. 10), W_l ~ N(0, 2/in_l),
// b_l = 0, drawn from bipq's portable seeded generator: the same seed gives the same network on every platform.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>

#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"

namespace bipq::xtensor_adapter {

namespace detail {
template <class T>
void gemm_accumulate(const T* a, const T* b, T* c, std::size_t m, std::size_t k, std::size_t n) noexcept;
template <class T>
void transpose_into(const xt::xtensor<T, 2>& src, xt::xtensor<T, 2>& dst);
}  // namespace detail

/// A ReLU multilayer perceptron with widths {in, h_1, ..., h_{L−1}, out}; L = widths.size() − 1 linear layers
/// (L = 1 is a linear model). Copying is disabled (parameter spans point into the storage); moving keeps the storage.
template <std::floating_point T = float>
class mlp {
 public:
  using scalar_type = T;

  /// Throws std::invalid_argument("mlp(): widths must have at least 2 entries, all > 0").
  mlp(std::vector<std::size_t> widths, std::uint64_t seed) : widths_(std::move(widths)) {
    if (widths_.size() < 2 || std::find(widths_.begin(), widths_.end(), std::size_t(0)) != widths_.end())
      throw std::invalid_argument("mlp(): widths must have at least 2 entries, all > 0");
    bipq::detail::rng g(seed);
    const std::size_t layers = widths_.size() - 1;
    for (std::size_t l = 0; l < layers; ++l) {
      const std::size_t in = widths_[l], out = widths_[l + 1];
      weights_.push_back(xt::xtensor<T, 2>::from_shape({out, in}));
      const double sd = std::sqrt(2.0 / static_cast<double>(in));
      for (T& w : weights_.back()) w = static_cast<T>(sd * g.normal());
      biases_.push_back(xt::zeros<T>({out}));
      weight_grads_.push_back(xt::zeros<T>({out, in}));
      bias_grads_.push_back(xt::zeros<T>({out}));
    }
    activations_.resize(layers);
  }
  mlp(const mlp&) = delete;
  mlp& operator=(const mlp&) = delete;
  mlp(mlp&&) noexcept = default;
  mlp& operator=(mlp&&) noexcept = default;

  const std::vector<std::size_t>& widths() const noexcept { return widths_; }
  std::size_t num_layers() const noexcept { return weights_.size(); }
  std::size_t inputs() const noexcept { return widths_.front(); }
  std::size_t outputs() const noexcept { return widths_.back(); }

  xt::xtensor<T, 2>& weight(std::size_t l) { return weights_.at(l); }
  const xt::xtensor<T, 2>& weight(std::size_t l) const { return weights_.at(l); }
  xt::xtensor<T, 1>& bias(std::size_t l) { return biases_.at(l); }
  const xt::xtensor<T, 1>& bias(std::size_t l) const { return biases_.at(l); }
  const xt::xtensor<T, 2>& weight_grad(std::size_t l) const { return weight_grads_.at(l); }
  const xt::xtensor<T, 1>& bias_grad(std::size_t l) const { return bias_grads_.at(l); }

  /// The parameters in order fc1.weight, fc1.bias, fc2.weight, ... (kinds linear_weight / bias), with value and grad
  /// spans over the xtensor storage.
  std::vector<parameter<T>> parameter_list() {
    std::vector<parameter<T>> list;
    for (std::size_t l = 0; l < num_layers(); ++l) {
      const std::string name = "fc" + std::to_string(l + 1);
      list.push_back({name + ".weight", {widths_[l + 1], widths_[l]}, parameter_kind::linear_weight,
                      std::span<T>(weights_[l].data(), weights_[l].size()),
                      std::span<T>(weight_grads_[l].data(), weight_grads_[l].size())});
      list.push_back({name + ".bias", {widths_[l + 1]}, parameter_kind::bias,
                      std::span<T>(biases_[l].data(), biases_[l].size()),
                      std::span<T>(bias_grads_[l].data(), bias_grads_[l].size())});
    }
    return list;
  }

  /// logits = a_L for the batch `x` [B, in]; keeps the activations for `backward`. The reference stays valid until
  /// the next call. Throws std::invalid_argument("mlp::forward(): x has k columns, expected in").
  const xt::xtensor<T, 2>& forward(const xt::xtensor<T, 2>& x) {
    if (x.shape()[1] != inputs())
      throw std::invalid_argument("mlp::forward(): x has " + std::to_string(x.shape()[1]) + " columns, expected " +
                                  std::to_string(inputs()));
    const std::size_t batch = x.shape()[0];
    for (std::size_t l = 0; l < num_layers(); ++l) {
      const xt::xtensor<T, 2>& h = l == 0 ? x : activations_[l - 1];
      const std::size_t in = widths_[l], out = widths_[l + 1];
      xt::xtensor<T, 2>& a = activations_[l];
      a.resize({batch, out});
      xt::noalias(a) = xt::broadcast(biases_[l], {batch, out});  // a = 1 bᵀ
      detail::transpose_into(weights_[l], transposed_);           // Wᵀ [in, out], so every product is row × row
      detail::gemm_accumulate(h.data(), transposed_.data(), a.data(), batch, in, out);  // a += h Wᵀ
      if (l + 1 < num_layers()) xt::noalias(a) = xt::maximum(a, T(0));
    }
    return activations_.back();
  }

  /// Given δ_L = ∂ℓ/∂logits [B, out] for the batch `x` of the last `forward`, overwrites every weight and bias
  /// gradient with ∂ℓ/∂W_l and ∂ℓ/∂b_l. Throws std::invalid_argument on a shape mismatch.
  void backward(const xt::xtensor<T, 2>& x, const xt::xtensor<T, 2>& dlogits) {
    const std::size_t batch = x.shape()[0];
    if (activations_.back().shape()[0] != batch || x.shape()[1] != inputs())
      throw std::invalid_argument("mlp::backward(): x is not the batch of the last forward()");
    if (dlogits.shape()[0] != batch || dlogits.shape()[1] != outputs())
      throw std::invalid_argument("mlp::backward(): dlogits must have shape [batch, outputs]");
    delta_ = dlogits;
    for (std::size_t l = num_layers(); l-- > 0;) {
      const xt::xtensor<T, 2>& h = l == 0 ? x : activations_[l - 1];
      const std::size_t in = widths_[l], out = widths_[l + 1];
      xt::noalias(bias_grads_[l]) = xt::sum(delta_, {0}, xt::evaluation_strategy::immediate);  // δᵀ 1
      detail::transpose_into(delta_, transposed_);                                           // δᵀ [out, B]
      std::fill(weight_grads_[l].begin(), weight_grads_[l].end(), T(0));
      detail::gemm_accumulate(transposed_.data(), h.data(), weight_grads_[l].data(), out, batch, in);  // δᵀ h
      if (l == 0) break;
      previous_delta_.resize({batch, in});
      std::fill(previous_delta_.begin(), previous_delta_.end(), T(0));
      detail::gemm_accumulate(delta_.data(), weights_[l].data(), previous_delta_.data(), batch, out, in);  // δ W
      xt::noalias(previous_delta_) = xt::where(h > T(0), previous_delta_, T(0));  // relu'(a) = [h > 0]
      std::swap(delta_, previous_delta_);
    }
  }

 private:
  std::vector<std::size_t> widths_;
  std::vector<xt::xtensor<T, 2>> weights_, weight_grads_;
  std::vector<xt::xtensor<T, 1>> biases_, bias_grads_;
  std::vector<xt::xtensor<T, 2>> activations_;  // h_1 .. h_{L−1}, then the logits a_L
  xt::xtensor<T, 2> transposed_, delta_, previous_delta_;
};

namespace detail {

/// C[m, n] += A[m, k] · B[k, n], all row-major and contiguous. Tiles of 4 rows of C × 4 rows of B: each pass over
/// a row of C reads four rows of B once and performs 16 multiply-adds per column, independent across columns, so the
/// compiler vectorises the column loop without reassociating any sum (the result is the same at every -O level
/// with the same contraction setting).
template <class T>
void gemm_accumulate(const T* a, const T* b, T* c, std::size_t m, std::size_t k, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    T* __restrict c0 = c + i * n;
    T* __restrict c1 = c0 + n;
    T* __restrict c2 = c1 + n;
    T* __restrict c3 = c2 + n;
    const T* a0 = a + i * k;
    const T *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;
    std::size_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const T* __restrict b0 = b + p * n;
      const T* __restrict b1 = b0 + n;
      const T* __restrict b2 = b1 + n;
      const T* __restrict b3 = b2 + n;
      const T x00 = a0[p], x01 = a0[p + 1], x02 = a0[p + 2], x03 = a0[p + 3];
      const T x10 = a1[p], x11 = a1[p + 1], x12 = a1[p + 2], x13 = a1[p + 3];
      const T x20 = a2[p], x21 = a2[p + 1], x22 = a2[p + 2], x23 = a2[p + 3];
      const T x30 = a3[p], x31 = a3[p + 1], x32 = a3[p + 2], x33 = a3[p + 3];
      for (std::size_t j = 0; j < n; ++j) {
        const T y0 = b0[j], y1 = b1[j], y2 = b2[j], y3 = b3[j];
        c0[j] += x00 * y0 + x01 * y1 + x02 * y2 + x03 * y3;
        c1[j] += x10 * y0 + x11 * y1 + x12 * y2 + x13 * y3;
        c2[j] += x20 * y0 + x21 * y1 + x22 * y2 + x23 * y3;
        c3[j] += x30 * y0 + x31 * y1 + x32 * y2 + x33 * y3;
      }
    }
    for (; p < k; ++p) {
      const T* __restrict bp = b + p * n;
      const T x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
      for (std::size_t j = 0; j < n; ++j) {
        c0[j] += x0 * bp[j];
        c1[j] += x1 * bp[j];
        c2[j] += x2 * bp[j];
        c3[j] += x3 * bp[j];
      }
    }
  }
  for (; i < m; ++i) {
    T* __restrict ci = c + i * n;
    for (std::size_t p = 0; p < k; ++p) {
      const T* __restrict bp = b + p * n;
      const T x = a[i * k + p];
      for (std::size_t j = 0; j < n; ++j) ci[j] += x * bp[j];
    }
  }
}

/// dst = srcᵀ, by 16 × 16 blocks (both matrices stay in cache while a block is copied).
template <class T>
void transpose_into(const xt::xtensor<T, 2>& src, xt::xtensor<T, 2>& dst) {
  const std::size_t rows = src.shape()[0], cols = src.shape()[1];
  dst.resize({cols, rows});
  const T* s = src.data();
  T* d = dst.data();
  constexpr std::size_t block = 16;
  for (std::size_t r0 = 0; r0 < rows; r0 += block) {
    const std::size_t r1 = std::min(rows, r0 + block);
    for (std::size_t c0 = 0; c0 < cols; c0 += block) {
      const std::size_t c1 = std::min(cols, c0 + block);
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t col = c0; col < c1; ++col) d[col * rows + r] = s[r * cols + col];
    }
  }
}

}  // namespace detail
}  // namespace bipq::xtensor_adapter
