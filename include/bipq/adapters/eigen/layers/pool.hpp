#pragma once
// Pooling layers: max pooling over windows, global average pooling (layout: layers/layer.hpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

/// Max pooling over kernel×kernel windows with the given stride (default: the kernel), no padding:
/// y[c,i,oh,ow] = max_{r,s < k} x[c,i,oh·σ+r,ow·σ+s]; OH = (H − k)/σ + 1. The gradient flows to the first maximum
/// of each window (row-major order), as PyTorch's.
template <std::floating_point T = float>
class max_pool2d : public layer<T> {
 public:
  explicit max_pool2d(std::size_t kernel = 2, std::size_t stride = 0) : k_(kernel), stride_(stride == 0 ? kernel : stride) {
    if (k_ == 0) throw std::invalid_argument("max_pool2d(): kernel must be > 0");
  }
  std::size_t kernel_size() const noexcept { return k_; }
  std::size_t stride() const noexcept { return stride_; }
  shape3 output_shape(shape3 in) const override {
    if (in.h < k_ || in.w < k_) detail::bad_shape("max_pool2d", "input is smaller than the kernel");
    return {in.c, (in.h - k_) / stride_ + 1, (in.w - k_) / stride_ + 1};
  }
  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    argmax_.resize(threads);
  }
  /// In training mode the layer records each window's maximum for backward(); in inference mode it does not, and
  /// a backward() after an inference-mode forward() finds them again from x.
  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    std::vector<std::uint32_t>& arg = argmax_[ctx.thread];
    if (ctx.training) {
      arg.resize(y.data.size());
      pool(x, y, arg.data());
    } else {
      arg.clear();
      pool(x, y, nullptr);
    }
  }
  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y, const activation<T>& dy,
                activation<T>* dx) override {
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    std::fill(dx->data.begin(), dx->data.end(), T(0));
    std::vector<std::uint32_t>& arg = argmax_[ctx.thread];
    if (arg.size() != dy.data.size()) {  // forward() ran in inference mode
      activation<T> maxima;
      maxima.resize(y.sample_shape(), y.n);
      arg.resize(maxima.data.size());
      pool(x, maxima, arg.data());
    }
    const std::size_t planes = x.c * x.n, in_plane = x.h * x.w, out_plane = y.h * y.w;
    for (std::size_t pl = 0; pl < planes; ++pl) {
      T* d = dx->data.data() + pl * in_plane;
      const T* g = dy.data.data() + pl * out_plane;
      const std::uint32_t* a = arg.data() + pl * out_plane;
      for (std::size_t j = 0; j < out_plane; ++j) d[a[j]] += g[j];
    }
  }

 private:
  // y = the windows' maxima and, if arg is not null, arg = the flat index in its plane of each window's first
  // maximum (row-major order); the loops without indices make the same comparisons in the same order.
  void pool(const activation<T>& x, activation<T>& y, std::uint32_t* arg) const {
    const shape3 out = y.sample_shape();
    const std::size_t planes = x.c * x.n, H = x.h, Wd = x.w, OH = out.h, OW = out.w;
    if (k_ == 2 && stride_ == 2 && arg == nullptr) {  // the common case, without the indices
      for (std::size_t pl = 0; pl < planes; ++pl) {
        const T* src = x.data.data() + pl * H * Wd;
        T* __restrict dst = y.data.data() + pl * OH * OW;
        for (std::size_t oh = 0; oh < OH; ++oh) {
          const T* r0 = src + 2 * oh * Wd;
          const T* r1 = r0 + Wd;
          for (std::size_t ow = 0; ow < OW; ++ow) {  // the comparisons of the indexed loop below, in the same order
            const T x0 = r0[2 * ow], x1 = r0[2 * ow + 1], x2 = r1[2 * ow], x3 = r1[2 * ow + 1];
            const T m0 = x1 > x0 ? x1 : x0, m1 = x3 > x2 ? x3 : x2;
            dst[oh * OW + ow] = m1 > m0 ? m1 : m0;
          }
        }
      }
      return;
    }
    if (k_ == 2 && stride_ == 2) {  // the common case, without the generic window loops
      for (std::size_t pl = 0; pl < planes; ++pl) {
        const T* src = x.data.data() + pl * H * Wd;
        T* __restrict dst = y.data.data() + pl * OH * OW;
        std::uint32_t* __restrict a = arg + pl * OH * OW;
        for (std::size_t oh = 0; oh < OH; ++oh) {
          const T* r0 = src + 2 * oh * Wd;
          const T* r1 = r0 + Wd;
          const std::uint32_t row = static_cast<std::uint32_t>(2 * oh * Wd), w1 = static_cast<std::uint32_t>(Wd);
          for (std::size_t ow = 0; ow < OW; ++ow) {  // branch-free, so that the loop vectorises
            const T x0 = r0[2 * ow], x1 = r0[2 * ow + 1], x2 = r1[2 * ow], x3 = r1[2 * ow + 1];
            const std::uint32_t j = row + 2 * static_cast<std::uint32_t>(ow);
            const bool top = !(x1 > x0), bottom = !(x3 > x2);
            const T m0 = top ? x0 : x1, m1 = bottom ? x2 : x3;
            const std::uint32_t i0 = top ? j : j + 1, i1 = bottom ? j + w1 : j + w1 + 1;
            const bool first = !(m1 > m0);
            dst[oh * OW + ow] = first ? m0 : m1;
            a[oh * OW + ow] = first ? i0 : i1;
          }
        }
      }
      return;
    }
    for (std::size_t pl = 0; pl < planes; ++pl) {
      const T* src = x.data.data() + pl * H * Wd;
      T* dst = y.data.data() + pl * OH * OW;
      std::uint32_t* a = arg == nullptr ? nullptr : arg + pl * OH * OW;
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          std::size_t best = (oh * stride_) * Wd + ow * stride_;
          T v = src[best];
          for (std::size_t r = 0; r < k_; ++r)
            for (std::size_t s = 0; s < k_; ++s) {
              const std::size_t j = (oh * stride_ + r) * Wd + ow * stride_ + s;
              if (src[j] > v) v = src[j], best = j;
            }
          dst[oh * OW + ow] = v;
          if (a != nullptr) a[oh * OW + ow] = static_cast<std::uint32_t>(best);
        }
    }
  }

  std::size_t k_, stride_;
  std::vector<std::vector<std::uint32_t>> argmax_;  // per thread: flat index of each window's maximum in its plane
};

/// Global average pooling: y[c,i] = (1/HW) Σ_{h,w} x[c,i,h,w]; output {C, 1, 1}.
template <std::floating_point T = float>
class global_avg_pool : public layer<T> {
 public:
  shape3 output_shape(shape3 in) const override { return {in.c, 1, 1}; }
  void forward(const thread_context&, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    const std::size_t P = x.plane(), planes = x.c * x.n;
    const T scale = T(1) / static_cast<T>(P);
    for (std::size_t pl = 0; pl < planes; ++pl) {
      const T* src = x.data.data() + pl * P;
      T s = T(0);
      for (std::size_t p = 0; p < P; ++p) s += src[p];
      y.data[pl] = s * scale;
    }
  }
  void backward(const thread_context&, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    const std::size_t P = x.plane(), planes = x.c * x.n;
    const T scale = T(1) / static_cast<T>(P);
    for (std::size_t pl = 0; pl < planes; ++pl) std::fill_n(dx->data.data() + pl * P, P, dy.data[pl] * scale);
  }
};

}  // namespace bipq::eigen
