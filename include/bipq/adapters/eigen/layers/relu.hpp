#pragma once
// Rectified linear unit (layout: layers/layer.hpp).

#include <cstddef>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

/// Rectified linear unit, y = max(x, 0); ∂y/∂x = [x > 0] (0 at x = 0, as PyTorch).
template <std::floating_point T = float>
class relu : public layer<T> {
 public:
  shape3 output_shape(shape3 in) const override { return in; }
  void forward(const thread_context&, const activation<T>& x, activation<T>& y) override {
    y.resize(x.sample_shape(), x.n);
    const std::size_t len = x.data.size();
    const T* __restrict a = x.data.data();
    T* __restrict b = y.data.data();
    for (std::size_t j = 0; j < len; ++j) b[j] = a[j] > T(0) ? a[j] : T(0);
  }
  bool pointwise(const thread_context&) const override { return true; }
  void map_samples(const thread_context&, activation<T>& a, std::size_t i0, std::size_t i1) const override {
    const std::size_t P = a.plane();
    for (std::size_t c = 0; c < a.c; ++c) {
      T* __restrict v = a.channel(c) + i0 * P;
      for (std::size_t j = 0; j < (i1 - i0) * P; ++j) v[j] = v[j] > T(0) ? v[j] : T(0);
    }
  }
  void backward(const thread_context&, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    const std::size_t len = x.data.size();
    const T* __restrict a = x.data.data();
    const T* __restrict g = dy.data.data();
    T* __restrict d = dx->data.data();
    for (std::size_t j = 0; j < len; ++j) d[j] = a[j] > T(0) ? g[j] : T(0);
  }
};

}  // namespace bipq::eigen
