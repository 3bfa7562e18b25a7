#pragma once
// 2-D convolution on Eigen: im2col + GEMM, and direct kernels for short reductions (layout: layers/layer.hpp).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/layers/layer.hpp"

// The direct convolution kernels pass 64-byte vectors (gnu::vector_size) between inline helpers. Without AVX-512,
// GCC notes (-Wpsabi) at every such call that the calling convention differs from an AVX-512 build's. These helpers
// are inline and never called across translation units built with different flags, so the note is moot here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace bipq::eigen {

/// How conv2d computes: chosen by shape, or forced.
enum class conv_algorithm { automatic, gemm, direct };

/// 2-D convolution (cross-correlation, as in PyTorch): y[k,i,oh,ow] = b_k + Σ_{c,r,s} W[k,c,r,s] x[c,i,oh·σ−p+r,ow·σ−p+s]
/// with zero padding p and stride σ; OH = (H + 2p − R)/σ + 1. Weight shape [K, C, R, S] (kind conv_weight), bias [K].
/// Computed by im2col + GEMM on chunks of images small enough for the column buffer to stay in cache, or by direct
/// kernels where the GEMM's inner dimension C·R·S is too short to run at speed (see direct()).
template <std::floating_point T = float>
class conv2d : public layer<T> {
 public:
  conv2d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel, std::size_t stride = 1,
         std::size_t padding = 0, bool bias = true)
      : c_(in_channels), k_(out_channels), r_(kernel), stride_(stride), pad_(padding), bias_(bias) {
    if (c_ == 0 || k_ == 0 || r_ == 0 || stride_ == 0)
      throw std::invalid_argument("conv2d(): in_channels, out_channels, kernel and stride must be > 0");
    this->params_.emplace_back("weight", std::vector<std::size_t>{k_, c_, r_, r_}, parameter_kind::conv_weight);
    if (bias_) this->params_.emplace_back("bias", std::vector<std::size_t>{k_}, parameter_kind::bias);
  }

  shape3 output_shape(shape3 in) const override {
    if (in.c != c_) detail::bad_shape("conv2d", "input has " + std::to_string(in.c) + " channels, expected " + std::to_string(c_));
    if (in.h + 2 * pad_ < r_ || in.w + 2 * pad_ < r_) detail::bad_shape("conv2d", "input is smaller than the kernel");
    return {k_, (in.h + 2 * pad_ - r_) / stride_ + 1, (in.w + 2 * pad_ - r_) / stride_ + 1};
  }

  std::size_t in_channels() const noexcept { return c_; }
  std::size_t out_channels() const noexcept { return k_; }
  std::size_t kernel_size() const noexcept { return r_; }
  std::size_t stride() const noexcept { return stride_; }
  std::size_t padding() const noexcept { return pad_; }
  bool has_bias() const noexcept { return bias_; }

  void reset_parameters(bipq::detail::rng& g) override {
    this->kaiming_normal(0, c_ * r_ * r_, g);
    if (bias_) std::fill(this->params_[1].value.begin(), this->params_[1].value.end(), T(0));
  }

  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    cols_.resize(threads);
    padded_.resize(threads);
    images_.resize(threads);
  }

  /// True when the layer uses the direct kernel rather than im2col + GEMM. Automatic choice: stride 1 and
  /// C·R·S ≤ 32 (a first layer on grey images), where the GEMM's inner dimension is too short to run at speed
  /// (measured per layer by bench/bench_cnn.cpp, conv_train_step: docs/performance.md, "CNN training").
  bool direct() const noexcept {
    if (algorithm_ == conv_algorithm::automatic) return stride_ == 1 && c_ * r_ * r_ <= 32;
    return algorithm_ == conv_algorithm::direct;
  }
  /// Forces a kernel (for measurements); `direct` requires stride 1. Throws std::invalid_argument otherwise.
  void set_algorithm(conv_algorithm a) {
    if (a == conv_algorithm::direct && stride_ != 1)
      throw std::invalid_argument("conv2d::set_algorithm(): the direct kernel requires stride 1");
    algorithm_ = a;
  }

  conv_algorithm algorithm() const noexcept { return algorithm_; }

  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    forward_then(ctx, x, y, {});
  }

  /// The pointwise layers `then` run on each chunk of images (GEMM) or each image (direct kernel) just computed.
  bool forward_then(const thread_context& ctx, const activation<T>& x, activation<T>& y,
                    std::span<const layer<T>* const> then) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    if (direct()) direct_forward(ctx, x, y, then);
    else gemm_forward(ctx, x, y, then);
    return true;
  }

  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y, const activation<T>& dy,
                activation<T>* dx) override {
    if (direct()) return direct_backward(ctx, x, y, dy, dx);
    gemm_backward(ctx, x, y, dy, dx);
    if (bias_) bias_gradient(dy, this->thread_grad(1, ctx));
  }

 private:
  std::size_t c_, k_, r_, stride_, pad_;
  bool bias_;
  conv_algorithm algorithm_ = conv_algorithm::automatic;
  std::vector<std::vector<T>> cols_;     // per-thread im2col buffer
  std::vector<std::vector<T>> padded_;   // per-thread ∂ℓ/∂y on zero-padded rows
  std::vector<std::vector<T>> images_;   // per-thread zero-padded input images of a chunk (im2col, stride 1)

  // Both kernels use vectors of 64 bytes: the direct kernels hold 16 output columns per register, and the gathered
  // col2im pads output rows to one vector.
  static constexpr std::size_t vec = 64 / sizeof(T);  // one 512-bit vector (two or four narrower ones elsewhere)
  using vector_type [[gnu::vector_size(64)]] = T;

  static vector_type load(const T* p) noexcept {
    vector_type v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }

  // ---- im2col + GEMM -------------------------------------------------------------------------------------------

  // Images per GEMM: the column buffer (C·R·S × images·OH·OW) is kept near 64K values (256 KB in float), inside L2.
  std::size_t images_per_chunk(std::size_t P) const {
    const std::size_t per_image = c_ * r_ * r_ * P;
    return std::max<std::size_t>(1, (std::size_t(1) << 16) / per_image);
  }

  // Y[K, chunk·P] = W[K, C·R·S] · col[C·R·S, chunk·P] + b, chunk by chunk of images, each chunk then mapped by the
  // pointwise layers `then`.
  void gemm_forward(const thread_context& ctx, const activation<T>& x, activation<T>& y,
                    std::span<const layer<T>* const> then) {
    const shape3 out = y.sample_shape();
    const std::size_t P = out.h * out.w, crs = c_ * r_ * r_, chunk = images_per_chunk(P);
    std::vector<T>& col = cols_[ctx.thread];
    col.resize(crs * chunk * P + vec);  // + vec: im2col's whole-vector stores past the last row
    const Eigen::Map<const detail::row_matrix<T>> W(this->params_[0].value.data(), detail::idx(k_), detail::idx(crs));
    for (std::size_t i0 = 0; i0 < x.n; i0 += chunk) {
      const std::size_t i1 = std::min(x.n, i0 + chunk), m = (i1 - i0) * P;
      im2col(ctx, x, i0, i1, out, col.data());
      const Eigen::Map<const detail::row_matrix<T>> C(col.data(), detail::idx(crs), detail::idx(m));
      detail::matrix_map<T> Y(y.data.data() + i0 * P, detail::idx(k_), detail::idx(m), Eigen::OuterStride<>(detail::idx(x.n * P)));
      Y.noalias() = W * C;
      if (bias_) add_bias(y, i0, i1);
      for (const layer<T>* l : then) l->map_samples(ctx, y, i0, i1);
    }
  }

  // y[k] += b_k on the images [i0, i1).
  void add_bias(activation<T>& y, std::size_t i0, std::size_t i1) const {
    const T* b = this->params_[1].value.data();
    const std::size_t P = y.plane();
    for (std::size_t k = 0; k < k_; ++k) {
      T* yk = y.channel(k) + i0 * P;
      for (std::size_t j = 0; j < (i1 - i0) * P; ++j) yk[j] += b[k];
    }
  }

  // ∂ℓ/∂b_k = Σ dy[k], summed over the slice in storage order.
  void bias_gradient(const activation<T>& dy, std::vector<T>& gb) const {
    const std::size_t len = dy.n * dy.plane();
    for (std::size_t k = 0; k < k_; ++k) {
      const T* d = dy.channel(k);
      T s = T(0);
      for (std::size_t j = 0; j < len; ++j) s += d[j];
      gb[k] = s;
    }
  }

  // Whether ∂ℓ/∂x can be gathered rather than scattered: without padding, with stride 1 and input rows of at most one
  // vector, the output rows are padded with at least R − 1 zeros to one vector (OWp), so that every input row of dx
  // is the sum of R·R whole-vector loads from the columns, shifted by s, kept in a register (see col2im_gather).
  bool gathers_input_gradient(const activation<T>& x, shape3 out) const {
    return pad_ == 0 && stride_ == 1 && x.w <= vec && vec - out.w >= r_ - 1;
  }

  // ∂ℓ/∂W += dY · colᵀ per chunk (the columns recomputed: cheaper than keeping the forward's out of cache), and
  // ∂ℓ/∂x = col2im(Wᵀ · dY), gathered on padded rows where possible.
  void gemm_backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y,
                     const activation<T>& dy, activation<T>* dx) {
    const shape3 out = y.sample_shape();
    const std::size_t P = out.h * out.w, crs = c_ * r_ * r_, chunk = images_per_chunk(P);
    const std::size_t Pp = out.h * vec;
    const bool padded_rows = dx != nullptr && gathers_input_gradient(x, out);
    std::vector<T>& col = cols_[ctx.thread];
    col.resize(crs * chunk * (padded_rows ? Pp : P) + vec);  // + vec: zeros before the first padded row, or
                                                             // im2col's stores past the last row
    std::vector<T>& gw = this->thread_grad(0, ctx);
    Eigen::Map<detail::row_matrix<T>> dW(gw.data(), detail::idx(k_), detail::idx(crs));
    const Eigen::Map<const detail::row_matrix<T>> W(this->params_[0].value.data(), detail::idx(k_), detail::idx(crs));
    if (dx != nullptr) {
      dx->resize(x.sample_shape(), x.n);
      std::fill(dx->data.begin(), dx->data.end(), T(0));
    }
    for (std::size_t i0 = 0; i0 < x.n; i0 += chunk) {
      const std::size_t i1 = std::min(x.n, i0 + chunk), m = (i1 - i0) * P;
      const detail::const_matrix_map<T> dY(dy.data.data() + i0 * P, detail::idx(k_), detail::idx(m),
                                           Eigen::OuterStride<>(detail::idx(x.n * P)));
      im2col(ctx, x, i0, i1, out, col.data());
      Eigen::Map<detail::row_matrix<T>> C(col.data(), detail::idx(crs), detail::idx(m));
      dW.noalias() += dY * C.transpose();
      if (padded_rows) {
        std::vector<T>& dyp = padded_[ctx.thread];
        pad_output_rows(dy, i0, i1, out, dyp);
        const std::size_t mp = (i1 - i0) * Pp;
        const Eigen::Map<const detail::row_matrix<T>> dYp(dyp.data(), detail::idx(k_), detail::idx(mp));
        Eigen::Map<detail::row_matrix<T>> Cp(col.data() + vec, detail::idx(crs), detail::idx(mp));
        Cp.noalias() = W.transpose() * dYp;
        std::fill_n(col.data(), vec, T(0));
        col2im_gather(col.data() + vec, i0, i1, out, *dx);
      } else if (dx != nullptr) {
        C.noalias() = W.transpose() * dY;
        col2im(col.data(), i0, i1, out, *dx);
      }
    }
  }

  // dyp[k][(i − i0)·OH·vec + oh·vec + ow] = dy[k, i, oh, ow] for the images [i0, i1), lanes ow ≥ OW zero.
  void pad_output_rows(const activation<T>& dy, std::size_t i0, std::size_t i1, shape3 out,
                       std::vector<T>& dyp) const {
    const std::size_t P = out.h * out.w, Pp = out.h * vec, mp = (i1 - i0) * Pp;
    dyp.assign(k_ * mp, T(0));
    for (std::size_t k = 0; k < k_; ++k)
      for (std::size_t i = i0; i < i1; ++i)
        for (std::size_t oh = 0; oh < out.h; ++oh)
          std::copy_n(dy.channel(k) + i * P + oh * out.w, out.w, dyp.data() + k * mp + (i - i0) * Pp + oh * vec);
  }

  // The output columns [lo, hi) whose input column ow·σ − p + s lies inside [0, W).
  struct column_range {
    std::size_t lo, hi;
  };
  column_range valid_columns(std::size_t s, std::size_t out_w, std::size_t in_w) const {
    const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(s) - static_cast<std::ptrdiff_t>(pad_);
    std::size_t lo = 0, hi = out_w;
    while (lo < out_w && static_cast<std::ptrdiff_t>(lo * stride_) + off < 0) ++lo;
    while (hi > lo && static_cast<std::ptrdiff_t>((hi - 1) * stride_) + off >= static_cast<std::ptrdiff_t>(in_w)) --hi;
    return {lo, hi};
  }

  // col[(c·R + r)·S + s][(i − i0)·P + oh·OW + ow] = x[c, i, oh·σ − p + r, ow·σ − p + s] (0 outside the image), for
  // the images [i0, i1); col has a vector of slack after its crs·(i1 − i0)·P values.
  void im2col(const thread_context& ctx, const activation<T>& x, std::size_t i0, std::size_t i1, shape3 out,
              T* col) {
    if (stride_ != 1) return im2col_strided(x, i0, i1, out, col);
    // Stride 1: the chunk's images are copied once into zero-padded planes xp[c][i][Hp][Wp], so that every row of
    // a column block is a branch-free copy of OW values from a padded row.
    const std::size_t n = i1 - i0, Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_;
    std::vector<T>& xp = images_[ctx.thread];
    xp.assign(c_ * n * Hp * Wp + vec, T(0));  // + vec: the row copies' whole-vector loads past the last row
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t h = 0; h < x.h; ++h)
          std::copy_n(x.channel(c) + ((i0 + i) * x.h + h) * x.w, x.w,
                      xp.data() + ((c * n + i) * Hp + h + pad_) * Wp + pad_);
    constexpr std::size_t v16 = 16 / sizeof(T), v32 = 32 / sizeof(T);
    if (out.w <= v16) return im2col_rows<16>(xp.data(), Hp, Wp, n, out, col);
    if (out.w <= v32) return im2col_rows<32>(xp.data(), Hp, Wp, n, out, col);
    im2col_rows<64>(xp.data(), Hp, Wp, n, out, col);
  }

  // The row copies of im2col at stride 1, in vectors of B bytes: a row of OW values is copied as ⌈OW / L⌉ whole
  // vectors (L = B / sizeof(T)), the last one running past the row's end into the next row's place. The rows are
  // written in memory order, so that a later store overwrites what an earlier one ran over, and the last one runs
  // into col's slack. The loads read at most L − 1 values past a padded row (xp's slack at the end).
  template <std::size_t B>
  void im2col_rows(const T* xp, std::size_t Hp, std::size_t Wp, std::size_t n, shape3 out, T* col) const {
    using row_vector [[gnu::vector_size(B)]] = T;
    constexpr std::size_t L = B / sizeof(T);
    T* d = col;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r)
        for (std::size_t s = 0; s < r_; ++s)
          for (std::size_t i = 0; i < n; ++i) {
            const T* src = xp + ((c * n + i) * Hp + r) * Wp + s;
            for (std::size_t oh = 0; oh < out.h; ++oh, d += out.w)
              for (std::size_t ow = 0; ow < out.w; ow += L) {
                row_vector v;
                std::memcpy(&v, src + oh * Wp + ow, B);
                std::memcpy(d + ow, &v, B);
              }
          }
  }

  // im2col at any stride, from the unpadded images.
  void im2col_strided(const activation<T>& x, std::size_t i0, std::size_t i1, shape3 out, T* col) const {
    const std::size_t H = x.h, Wd = x.w, P = out.h * out.w, m = (i1 - i0) * P;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r)
        for (std::size_t s = 0; s < r_; ++s) {
          T* dst = col + ((c * r_ + r) * r_ + s) * m;
          const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(s) - static_cast<std::ptrdiff_t>(pad_);
          const auto [ow_lo, ow_hi] = valid_columns(s, out.w, Wd);
          for (std::size_t i = i0; i < i1; ++i) {
            const T* src = x.channel(c) + i * H * Wd;
            for (std::size_t oh = 0; oh < out.h; ++oh) {
              T* __restrict d = dst + (i - i0) * P + oh * out.w;
              const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * stride_ + r) - static_cast<std::ptrdiff_t>(pad_);
              if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(H)) {
                for (std::size_t ow = 0; ow < out.w; ++ow) d[ow] = T(0);
                continue;
              }
              const T* __restrict srow = src + static_cast<std::size_t>(ih) * Wd;
              for (std::size_t ow = 0; ow < ow_lo; ++ow) d[ow] = T(0);
              if (stride_ == 1) {
                const T* __restrict s0 = srow + off;
                for (std::size_t ow = ow_lo; ow < ow_hi; ++ow) d[ow] = s0[ow];
              } else {
                for (std::size_t ow = ow_lo; ow < ow_hi; ++ow) d[ow] = srow[static_cast<std::ptrdiff_t>(ow * stride_) + off];
              }
              for (std::size_t ow = ow_hi; ow < out.w; ++ow) d[ow] = T(0);
            }
          }
        }
  }

  // dx[c, i, ih, :] = Σ_{r,s} col[(c·R + r)·R + s][i, ih − r, · − s] for stride 1 and no padding, with the columns
  // on rows of one vector whose lanes ≥ OW are 0 (and a vector of zeros before the first row): the load shifted by
  // −s brings lane iw − s to lane iw, and lanes outside [0, OW) read zeros. The sum is accumulated in a register and
  // each row of dx written once.
  void col2im_gather(const T* col, std::size_t i0, std::size_t i1, shape3 out, activation<T>& dx) const {
    const std::size_t HW = dx.h * dx.w, Pp = out.h * vec, mp = (i1 - i0) * Pp;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t i = i0; i < i1; ++i)
        for (std::size_t ih = 0; ih < dx.h; ++ih) {
          vector_type acc{};
          for (std::size_t r = 0; r < r_ && r <= ih; ++r) {
            const std::size_t oh = ih - r;
            if (oh >= out.h) continue;
            const T* src = col + ((c * r_ + r) * r_) * mp + (i - i0) * Pp + oh * vec;
            for (std::size_t s = 0; s < r_; ++s) acc += load(src + s * mp - s);
          }
          std::memcpy(dx.data.data() + (c * dx.n + i) * HW + ih * dx.w, &acc, dx.w * sizeof(T));
        }
  }

  // The adjoint of im2col: dx[c, i, ih, iw] += col[...] for every column that read it.
  void col2im(const T* col, std::size_t i0, std::size_t i1, shape3 out, activation<T>& dx) const {
    const std::size_t H = dx.h, Wd = dx.w, P = out.h * out.w, m = (i1 - i0) * P;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r)
        for (std::size_t s = 0; s < r_; ++s) {
          const T* src = col + ((c * r_ + r) * r_ + s) * m;
          const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(s) - static_cast<std::ptrdiff_t>(pad_);
          const auto [ow_lo, ow_hi] = valid_columns(s, out.w, Wd);
          for (std::size_t i = i0; i < i1; ++i) {
            T* dst = dx.channel(c) + i * H * Wd;
            for (std::size_t oh = 0; oh < out.h; ++oh) {
              const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * stride_ + r) - static_cast<std::ptrdiff_t>(pad_);
              if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(H)) continue;
              const T* __restrict srow = src + (i - i0) * P + oh * out.w;
              T* __restrict drow = dst + static_cast<std::size_t>(ih) * Wd;
              if (stride_ == 1) {
                T* __restrict d0 = drow + off;
                for (std::size_t ow = ow_lo; ow < ow_hi; ++ow) d0[ow] += srow[ow];
              } else {
                for (std::size_t ow = ow_lo; ow < ow_hi; ++ow) drow[static_cast<std::ptrdiff_t>(ow * stride_) + off] += srow[ow];
              }
            }
          }
        }
  }

  // ---- direct kernels (stride 1) -------------------------------------------------------------------------------
  // Each image is first copied into a zero-padded buffer xp[c][H + 2p][W + 2p] (plus a vector of slack, so that the
  // last 16-wide load of a row stays inside the buffer); output rows are computed in blocks of 16 columns × KB output
  // channels held in registers.

  void pad_image(const activation<T>& x, std::size_t i, std::vector<T>& xp) const {
    const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_;
    xp.assign(c_ * Hp * Wp + vec, T(0));
    for (std::size_t c = 0; c < c_; ++c) {
      const T* src = x.channel(c) + i * x.h * x.w;
      for (std::size_t h = 0; h < x.h; ++h) std::copy_n(src + h * x.w, x.w, xp.data() + (c * Hp + h + pad_) * Wp + pad_);
    }
  }

  // y[k0 .. k0+KB)[oh][ow0 .. ow0+len) = b + Σ_{c,r,s} W[k][c][r][s] xp[c][oh + r][ow + s]. With `whole`, each row
  // is stored as a whole vector even if len < vec: the lanes past the row land where later blocks write (see
  // direct_rows).
  template <std::size_t KB>
  void direct_block(const T* xp, std::size_t Hp, std::size_t Wp, std::size_t k0, std::size_t oh, std::size_t ow0,
                    std::size_t len, bool whole, T* const* yrows) const {
    const T* w = this->params_[0].value.data();
    const std::size_t crs = c_ * r_ * r_;
    vector_type acc[KB];
    for (std::size_t kk = 0; kk < KB; ++kk) {
      const T b = bias_ ? this->params_[1].value[k0 + kk] : T(0);
      acc[kk] = vector_type{} + b;
    }
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r) {
        const T* xr = xp + (c * Hp + oh + r) * Wp + ow0;
        for (std::size_t s = 0; s < r_; ++s) {
          const vector_type xv = load(xr + s);
          const std::size_t q = (c * r_ + r) * r_ + s;
          for (std::size_t kk = 0; kk < KB; ++kk) acc[kk] += w[(k0 + kk) * crs + q] * xv;
        }
      }
    for (std::size_t kk = 0; kk < KB; ++kk) {
      if (whole) {
        std::memcpy(yrows[kk] + ow0, &acc[kk], sizeof acc[kk]);
        continue;
      }
      T out[vec];
      std::memcpy(out, &acc[kk], sizeof out);
      std::copy_n(out, len, yrows[kk] + ow0);
    }
  }

  // The output rows of image i, channels [k0, k0 + KB). A row's last block is stored as a whole vector where the
  // lanes past the row stay inside the channel's n·P values: they land on later rows of the image or on later
  // images, which are written after it (images in order, rows in order within a channel).
  template <std::size_t KB>
  void direct_rows(const T* xp, std::size_t Hp, std::size_t Wp, std::size_t k0, std::size_t i, activation<T>& y) const {
    const std::size_t P = y.h * y.w;
    for (std::size_t oh = 0; oh < y.h; ++oh) {
      T* rows[KB];
      for (std::size_t kk = 0; kk < KB; ++kk) rows[kk] = y.channel(k0 + kk) + i * P + oh * y.w;
      for (std::size_t ow0 = 0; ow0 < y.w; ow0 += vec) {
        const bool whole = i * P + oh * y.w + ow0 + vec <= y.n * P;
        direct_block<KB>(xp, Hp, Wp, k0, oh, ow0, std::min(vec, y.w - ow0), whole, rows);
      }
    }
  }

  void direct_forward(const thread_context& ctx, const activation<T>& x, activation<T>& y,
                      std::span<const layer<T>* const> then) {
    std::vector<T>& xp = cols_[ctx.thread];
    const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_;
    for (std::size_t i = 0; i < x.n; ++i) {
      pad_image(x, i, xp);
      for (std::size_t k0 = 0; k0 < k_;) {
        const std::size_t left = k_ - k0;
        if (left >= 8) direct_rows<8>(xp.data(), Hp, Wp, k0, i, y), k0 += 8;
        else if (left >= 6) direct_rows<6>(xp.data(), Hp, Wp, k0, i, y), k0 += 6;
        else if (left >= 4) direct_rows<4>(xp.data(), Hp, Wp, k0, i, y), k0 += 4;
        else if (left >= 2) direct_rows<2>(xp.data(), Hp, Wp, k0, i, y), k0 += 2;
        else direct_rows<1>(xp.data(), Hp, Wp, k0, i, y), k0 += 1;
      }
      for (const layer<T>* l : then) l->map_samples(ctx, y, i, i + 1);
    }
  }

  // ga[s] += Σ_{oh, lanes} g[oh][·] ⊙ xr[oh][· + s] for s < S (S independent accumulators, one load of g each).
  template <std::size_t S>
  static void weight_row_gradient(const T* g, std::size_t row, const T* xr, std::size_t Wp, std::size_t OH, T* ga) {
    vector_type acc[S] = {};
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t b = 0; b < row; b += vec) {
        const vector_type gv = load(g + oh * row + b);
        const T* xs = xr + oh * Wp + b;
        for (std::size_t s = 0; s < S; ++s) acc[s] += gv * load(xs + s);
      }
    for (std::size_t s = 0; s < S; ++s) {
      const vector_type v = acc[s] + load(ga + s * vec);
      std::memcpy(ga + s * vec, &v, sizeof v);
    }
  }

  // The lane partial sums of ∂ℓ/∂W[k][·] for one image: gacc[(k·CRS + q)·vec + lane] += Σ_{oh, ow ≡ lane}
  // dyp[oh][ow] xp[c][oh + r][ow + s], with dyp = ∂ℓ/∂y[k] of the image on rows of `row` lanes (lanes ≥ OW zero).
  void direct_weight_gradient(const T* dyp, std::size_t row, const T* xp, std::size_t Hp, std::size_t Wp,
                              std::size_t OH, std::size_t k, T* gacc) const {
    const std::size_t crs = c_ * r_ * r_;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r) {
        const T* xr = xp + (c * Hp + r) * Wp;
        T* ga = gacc + (k * crs + (c * r_ + r) * r_) * vec;
        switch (r_) {  // the usual kernel sizes: one ∂ℓ/∂y load serves the whole kernel row
          case 3: weight_row_gradient<3>(dyp, row, xr, Wp, OH, ga); break;
          case 5: weight_row_gradient<5>(dyp, row, xr, Wp, OH, ga); break;
          default:
            for (std::size_t s = 0; s < r_; ++s) weight_row_gradient<1>(dyp, row, xr + s, Wp, OH, ga + s * vec);
        }
      }
  }

  // dxp[c][oh + r][ow + s] += W[k][c][r][s] · g[oh][ow]: output channel k's share of ∂ℓ/∂x, scattered into the
  // padded image.
  void direct_input_gradient(const T* g, std::size_t OH, std::size_t OW, std::size_t Hp, std::size_t Wp,
                             std::size_t k, T* dxp) const {
    const T* w = this->params_[0].value.data();
    const std::size_t crs = c_ * r_ * r_;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r)
        for (std::size_t oh = 0; oh < OH; ++oh) {
          T* dr = dxp + (c * Hp + oh + r) * Wp;
          const T* wr = w + k * crs + (c * r_ + r) * r_;
          for (std::size_t s = 0; s < r_; ++s)
            for (std::size_t ow = 0; ow < OW; ++ow) dr[ow + s] += wr[s] * g[oh * OW + ow];
        }
  }

  // dx[c, i] = the interior of the padded image dxp[c] (the inverse of pad_image).
  void crop_image(const T* dxp, std::size_t Hp, std::size_t Wp, std::size_t i, activation<T>& dx) const {
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t h = 0; h < dx.h; ++h)
        std::copy_n(dxp + (c * Hp + h + pad_) * Wp + pad_, dx.w, dx.channel(c) + i * dx.h * dx.w + h * dx.w);
  }

  // ∂ℓ/∂W[k][c][r][s] = Σ_{i,oh,ow} dy[k,i,oh,ow] xp[c][oh+r][ow+s], accumulated in vectors over the slice and
  // summed across lanes once at the end; ∂ℓ/∂b_k = Σ_i Σ dy[k,i]; ∂ℓ/∂x by scattering W[k][c][r][s]·dy[k][oh][ow]
  // into a padded buffer, then cropping.
  void direct_backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y,
                       const activation<T>& dy, activation<T>* dx) {
    std::vector<T>& xp = cols_[ctx.thread];
    std::vector<T>& gw = this->thread_grad(0, ctx);
    std::vector<T>* gb = bias_ ? &this->thread_grad(1, ctx) : nullptr;
    const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_, P = y.h * y.w, OW = y.w, OH = y.h;
    const std::size_t crs = c_ * r_ * r_, blocks = (OW + vec - 1) / vec, row = blocks * vec;
    std::vector<T> gacc(k_ * crs * vec, T(0));  // one vector of partial sums per weight
    std::vector<T> dyp(OH * row, T(0)), dxp;
    if (dx != nullptr) dx->resize(x.sample_shape(), x.n);
    for (std::size_t i = 0; i < x.n; ++i) {
      pad_image(x, i, xp);
      if (dx != nullptr) dxp.assign(c_ * Hp * Wp, T(0));
      for (std::size_t k = 0; k < k_; ++k) {
        const T* g = dy.channel(k) + i * P;
        for (std::size_t oh = 0; oh < OH; ++oh) std::copy_n(g + oh * OW, OW, dyp.data() + oh * row);  // lanes ≥ OW stay 0
        if (gb != nullptr) {
          T sum = T(0);
          for (std::size_t j = 0; j < P; ++j) sum += g[j];
          (*gb)[k] += sum;
        }
        direct_weight_gradient(dyp.data(), row, xp.data(), Hp, Wp, OH, k, gacc.data());
        if (dx != nullptr) direct_input_gradient(g, OH, OW, Hp, Wp, k, dxp.data());
      }
      if (dx != nullptr) crop_image(dxp.data(), Hp, Wp, i, *dx);
    }
    for (std::size_t q = 0; q < k_ * crs; ++q) {
      T sum = T(0);
      for (std::size_t j = 0; j < vec; ++j) sum += gacc[q * vec + j];
      gw[q] = sum;
    }
  }
};

}  // namespace bipq::eigen

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
