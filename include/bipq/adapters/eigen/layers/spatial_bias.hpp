#pragma once
// A bias per channel and position (layout: layers/layer.hpp).

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

/// y[c, i, h, w] = x[c, i, h, w] + B[c, h, w]: the same map added to every sample, B of shape [C, H, W] (kind bias).
/// compact() puts one after a convolution whose removed input channels were constant but nonzero: with zero
/// padding, their contribution W * const differs at the border, so it is a map rather than a bias per channel.
template <std::floating_point T = float>
class spatial_bias : public layer<T> {
 public:
  explicit spatial_bias(shape3 shape) : shape_(shape) {
    if (shape.size() == 0) throw std::invalid_argument("spatial_bias(): shape has a zero dimension");
    this->params_.emplace_back("bias", std::vector<std::size_t>{shape.c, shape.h, shape.w}, parameter_kind::bias);
  }
  shape3 output_shape(shape3 in) const override {
    if (in != shape_) detail::bad_shape("spatial_bias", "input shape differs from the map's");
    return in;
  }
  void forward(const thread_context&, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    const std::size_t P = x.plane();
    const T* b = this->params_[0].value.data();
    for (std::size_t c = 0; c < x.c; ++c)
      for (std::size_t i = 0; i < x.n; ++i) {
        const T* __restrict a = x.channel(c) + i * P;
        T* __restrict d = y.channel(c) + i * P;
        const T* __restrict bc = b + c * P;
        for (std::size_t p = 0; p < P; ++p) d[p] = a[p] + bc[p];
      }
  }
  bool pointwise(const thread_context&) const override { return true; }
  void map_samples(const thread_context&, activation<T>& a, std::size_t i0, std::size_t i1) const override {
    const std::size_t P = a.plane();
    const T* b = this->params_[0].value.data();
    for (std::size_t c = 0; c < a.c; ++c)
      for (std::size_t i = i0; i < i1; ++i) {
        T* __restrict d = a.channel(c) + i * P;
        const T* __restrict bc = b + c * P;
        for (std::size_t p = 0; p < P; ++p) d[p] = d[p] + bc[p];
      }
  }
  // ∂ℓ/∂B[c, p] = Σ_i dy[c, i, p], ∂ℓ/∂x = dy.
  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    const std::size_t P = x.plane();
    std::vector<T>& g = this->thread_grad(0, ctx);
    for (std::size_t c = 0; c < x.c; ++c)
      for (std::size_t i = 0; i < x.n; ++i) {
        const T* d = dy.channel(c) + i * P;
        for (std::size_t p = 0; p < P; ++p) g[c * P + p] += d[p];
      }
    if (dx != nullptr) {
      dx->resize(x.sample_shape(), x.n);
      std::copy(dy.data.begin(), dy.data.end(), dx->data.begin());
    }
  }

 private:
  shape3 shape_;
};

}  // namespace bipq::eigen
