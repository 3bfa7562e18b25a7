#pragma once
// A fully connected ReLU network whose parameters live in xtensor containers: weights W_l as xt::xtensor<T, 2>
// [out, in] (row-major, PyTorch's nn.Linear layout), biases b_l as xt::xtensor<T, 1> [out].
//
// Forward, for a batch X [B, in] (one sample per row), layers l = 1 .. L:
//   h_0 = X,   a_l = h_{l−1} W_lᵀ + 1 b_lᵀ,   h_l = relu(a_l) (l < L),   logits = a_L.
// Backward, from δ_L = ∂ℓ/∂a_L [B, out]:
//   ∂ℓ/∂W_l = δ_lᵀ h_{l−1},   ∂ℓ/∂b_l = δ_lᵀ 1,   δ_{l−1} = (δ_l W_l) ⊙ [a_{l−1} > 0].
// Element-wise parts (bias broadcast, ReLU and its derivative, the bias gradient) are xtensor expressions; the three
// matrix products are one register-tiled row-major kernel over the xtensor storage (`detail::gemm_accumulate`,
// 4 × 32 tiles of the output held in registers), vectorised by the compiler along the contiguous rows (xtensor-blas
// is not required).
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

#include "bipq/adapters/xtensor/tensor.hpp"
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

/// Register tile of gemm_accumulate: rows × columns of C kept in local accumulators across the whole k loop.
inline constexpr std::size_t gemm_tile_rows = 4, gemm_tile_cols = 32;

/// C[i0 .. i0+R, j0 .. j0+32] += A[i0 .. i0+R, :] · B[:, j0 .. j0+32], the accumulators held in registers: per step
/// of k, one row segment of B is loaded and R·32 multiply-adds are done, with no load or store of C.
template <std::size_t R, class T>
inline void gemm_tile(const T* a, const T* b, T* c, std::size_t k, std::size_t n, std::size_t i0,
                      std::size_t j0) noexcept {
  constexpr std::size_t nc = gemm_tile_cols;
  T acc[R][nc];
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t j = 0; j < nc; ++j) acc[r][j] = c[(i0 + r) * n + j0 + j];
  for (std::size_t p = 0; p < k; ++p) {
    const T* __restrict bp = b + p * n + j0;
    for (std::size_t r = 0; r < R; ++r) {
      const T x = a[(i0 + r) * k + p];
      for (std::size_t j = 0; j < nc; ++j) acc[r][j] += x * bp[j];
    }
  }
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t j = 0; j < nc; ++j) c[(i0 + r) * n + j0 + j] = acc[r][j];
}

/// C[m, n] += A[m, k] · B[k, n], all row-major and contiguous. C is cut into 4 × 32 tiles whose accumulators stay in
/// registers for the whole reduction (the compiler vectorises the 32 columns; no sum is reassociated, so the
/// result is the same at every optimisation level with the same contraction setting); the ragged right columns
/// (n mod 32) and bottom rows (m mod 4) take simple loops. Every C[i, j] is summed in the order p = 0, 1, ..., k−1.
template <class T>
void gemm_accumulate(const T* a, const T* b, T* c, std::size_t m, std::size_t k, std::size_t n) noexcept {
  constexpr std::size_t mr = gemm_tile_rows, nc = gemm_tile_cols;
  const std::size_t n_full = n - n % nc, m_full = m - m % mr;
  for (std::size_t j0 = 0; j0 < n_full; j0 += nc) {
    for (std::size_t i0 = 0; i0 < m_full; i0 += mr) gemm_tile<mr>(a, b, c, k, n, i0, j0);
    for (std::size_t i0 = m_full; i0 < m; ++i0) gemm_tile<1>(a, b, c, k, n, i0, j0);
  }
  if (n_full == n) return;
  for (std::size_t i = 0; i < m; ++i) {
    T* __restrict ci = c + i * n;
    for (std::size_t p = 0; p < k; ++p) {
      const T* __restrict bp = b + p * n;
      const T x = a[i * k + p];
      for (std::size_t j = n_full; j < n; ++j) ci[j] += x * bp[j];
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
