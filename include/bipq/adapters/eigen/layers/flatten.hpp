#pragma once
// [C, n, H, W] → [C·H·W, n, 1, 1] in PyTorch's order (layout: layers/layer.hpp).

#include <cstddef>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

/// [C, n, H, W] → [C·H·W, n, 1, 1], feature index c·H·W + h·W + w (PyTorch's flatten of NCHW).
template <std::floating_point T = float>
class flatten : public layer<T> {
 public:
  shape3 output_shape(shape3 in) const override { return {in.size(), 1, 1}; }
  void forward(const thread_context&, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    const std::size_t P = x.plane(), n = x.n;
    for (std::size_t c = 0; c < x.c; ++c)
      for (std::size_t i = 0; i < n; ++i) {
        const T* src = x.channel(c) + i * P;
        T* dst = y.data.data() + (c * P) * n + i;
        for (std::size_t p = 0; p < P; ++p) dst[p * n] = src[p];
      }
  }
  void backward(const thread_context&, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    const std::size_t P = x.plane(), n = x.n;
    for (std::size_t c = 0; c < x.c; ++c)
      for (std::size_t i = 0; i < n; ++i) {
        T* dst = dx->channel(c) + i * P;
        const T* src = dy.data.data() + (c * P) * n + i;
        for (std::size_t p = 0; p < P; ++p) dst[p] = src[p * n];
      }
  }
};

}  // namespace bipq::eigen
