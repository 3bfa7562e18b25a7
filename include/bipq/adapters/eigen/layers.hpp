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

#include <algorithm>
#include <barrier>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"

// The direct convolution kernels pass 64-byte vectors (gnu::vector_size) between inline helpers. Without AVX-512,
// GCC notes (-Wpsabi) at every such call that the calling convention differs from an AVX-512 build's. These helpers
// are inline and never called across translation units built with different flags, so the note is moot here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

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

/// How conv2d computes: chosen by shape, or forced.
enum class conv_algorithm { automatic, gemm, direct };

/// 2-D convolution (cross-correlation, as in PyTorch): y[k,i,oh,ow] = b_k + Σ_{c,r,s} W[k,c,r,s] x[c,i,oh·σ−p+r,ow·σ−p+s]
/// with zero padding p and stride σ; OH = (H + 2p − R)/σ + 1. Weight shape [K, C, R, S] (kind conv_weight), bias [K].
/// Computed by im2col + GEMM on chunks of images small enough for the column buffer to stay in cache.
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

  void reset_parameters(bipq::detail::rng& g) override {
    this->kaiming_normal(0, c_ * r_ * r_, g);
    if (bias_) std::fill(this->params_[1].value.begin(), this->params_[1].value.end(), T(0));
  }

  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    cols_.resize(threads);
    padded_.resize(threads);
  }

  /// True when the layer uses the direct kernel rather than im2col + GEMM. Automatic choice: stride 1 and
  /// C·R·S ≤ 32 (a first layer on grey images), where the GEMM's inner dimension is too short to run at speed
  /// (bench/bench_cnn.cpp, conv_train_step: LeNet's conv1 1.8× faster direct, conv2 4.5× faster with GEMM).
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

  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    const shape3 out = output_shape(x.sample_shape());
    y.resize(out, x.n);
    if (direct()) return direct_forward(ctx, x, y);
    const std::size_t P = out.h * out.w, crs = c_ * r_ * r_, chunk = images_per_chunk(P);
    std::vector<T>& col = cols_[ctx.thread];
    col.resize(crs * chunk * P);
    const Eigen::Map<const detail::row_matrix<T>> W(this->params_[0].value.data(), detail::idx(k_), detail::idx(crs));
    for (std::size_t i0 = 0; i0 < x.n; i0 += chunk) {
      const std::size_t i1 = std::min(x.n, i0 + chunk), m = (i1 - i0) * P;
      im2col(x, i0, i1, out, col.data());
      const Eigen::Map<const detail::row_matrix<T>> C(col.data(), detail::idx(crs), detail::idx(m));
      detail::matrix_map<T> Y(y.data.data() + i0 * P, detail::idx(k_), detail::idx(m), Eigen::OuterStride<>(detail::idx(x.n * P)));
      Y.noalias() = W * C;
    }
    if (bias_) {
      const T* b = this->params_[1].value.data();
      for (std::size_t k = 0; k < k_; ++k) {
        T* yk = y.channel(k);
        const std::size_t len = x.n * P;
        for (std::size_t j = 0; j < len; ++j) yk[j] += b[k];
      }
    }
  }

  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y, const activation<T>& dy,
                activation<T>* dx) override {
    if (direct()) return direct_backward(ctx, x, y, dy, dx);
    const shape3 out = y.sample_shape();
    const std::size_t P = out.h * out.w, crs = c_ * r_ * r_, chunk = images_per_chunk(P);
    // Without padding, with stride 1 and input rows of at most one vector, ∂ℓ/∂x is gathered rather than scattered:
    // the output rows are padded with at least R − 1 zeros to one vector (OWp), so that every input row of dx is the
    // sum of R·R whole-vector loads from the columns, shifted by s, kept in a register (see col2im_gather).
    const std::size_t OWp = vec, Pp = out.h * OWp;
    const bool padded_rows = dx != nullptr && pad_ == 0 && stride_ == 1 && x.w <= vec && OWp - out.w >= r_ - 1;
    std::vector<T>& col = cols_[ctx.thread];
    col.resize(crs * chunk * (padded_rows ? Pp : P) + vec);  // + vec: zeros read before the first padded row
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
      im2col(x, i0, i1, out, col.data());  // recomputed: cheaper than keeping the forward's columns out of cache
      Eigen::Map<detail::row_matrix<T>> C(col.data(), detail::idx(crs), detail::idx(m));
      dW.noalias() += dY * C.transpose();
      if (padded_rows) {
        std::vector<T>& dyp = padded_[ctx.thread];
        const std::size_t mp = (i1 - i0) * Pp;
        dyp.assign(k_ * mp, T(0));
        for (std::size_t k = 0; k < k_; ++k)
          for (std::size_t i = i0; i < i1; ++i)
            for (std::size_t oh = 0; oh < out.h; ++oh)
              std::copy_n(dy.channel(k) + i * P + oh * out.w, out.w, dyp.data() + k * mp + (i - i0) * Pp + oh * OWp);
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
    if (bias_) {
      std::vector<T>& gb = this->thread_grad(1, ctx);
      for (std::size_t k = 0; k < k_; ++k) {
        const T* d = dy.channel(k);
        T s = T(0);
        for (std::size_t j = 0; j < x.n * P; ++j) s += d[j];
        gb[k] = s;
      }
    }
  }

 private:
  std::size_t c_, k_, r_, stride_, pad_;
  bool bias_;
  conv_algorithm algorithm_ = conv_algorithm::automatic;
  std::vector<std::vector<T>> cols_;     // per-thread im2col buffer
  std::vector<std::vector<T>> padded_;   // per-thread ∂ℓ/∂y on zero-padded rows

  // Direct kernels (stride 1). Each image is first copied into a zero-padded buffer xp[c][H + 2p][W + 2p] (plus a
  // vector of slack, so that the last 16-wide load of a row stays inside the buffer); output rows are computed in
  // blocks of 16 columns × KB output channels held in registers.
  static constexpr std::size_t vec = 64 / sizeof(T);  // one 512-bit vector (two or four narrower ones elsewhere)
  using vector_type [[gnu::vector_size(64)]] = T;

  static vector_type load(const T* p) noexcept {
    vector_type v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }

  void pad_image(const activation<T>& x, std::size_t i, std::vector<T>& xp) const {
    const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_;
    xp.assign(c_ * Hp * Wp + vec, T(0));
    for (std::size_t c = 0; c < c_; ++c) {
      const T* src = x.channel(c) + i * x.h * x.w;
      for (std::size_t h = 0; h < x.h; ++h) std::copy_n(src + h * x.w, x.w, xp.data() + (c * Hp + h + pad_) * Wp + pad_);
    }
  }

  // y[k0 .. k0+KB)[oh][ow0 .. ow0+len) = b + Σ_{c,r,s} W[k][c][r][s] xp[c][oh + r][ow + s]
  template <std::size_t KB>
  void direct_block(const T* xp, std::size_t Hp, std::size_t Wp, std::size_t k0, std::size_t oh, std::size_t ow0,
                    std::size_t len, T* const* yrows) const {
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
      T out[vec];
      std::memcpy(out, &acc[kk], sizeof out);
      std::copy_n(out, len, yrows[kk] + ow0);
    }
  }

  template <std::size_t KB>
  void direct_rows(const T* xp, std::size_t Hp, std::size_t Wp, std::size_t k0, std::size_t i, activation<T>& y) const {
    const std::size_t P = y.h * y.w;
    for (std::size_t oh = 0; oh < y.h; ++oh) {
      T* rows[KB];
      for (std::size_t kk = 0; kk < KB; ++kk) rows[kk] = y.channel(k0 + kk) + i * P + oh * y.w;
      for (std::size_t ow0 = 0; ow0 < y.w; ow0 += vec)
        direct_block<KB>(xp, Hp, Wp, k0, oh, ow0, std::min(vec, y.w - ow0), rows);
    }
  }

  void direct_forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) {
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

  // ∂ℓ/∂W[k][c][r][s] = Σ_{i,oh,ow} dy[k,i,oh,ow] xp[c][oh+r][ow+s], accumulated in vectors over the slice and
  // summed across lanes once at the end; ∂ℓ/∂b_k = Σ dy[k]; ∂ℓ/∂x by scattering W[k][c][r][s]·dy[k][oh][ow] into a
  // padded buffer, then cropping.
  void direct_backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y,
                       const activation<T>& dy, activation<T>* dx) {
    std::vector<T>& xp = cols_[ctx.thread];
    std::vector<T>& gw = this->thread_grad(0, ctx);
    std::vector<T>* gb = bias_ ? &this->thread_grad(1, ctx) : nullptr;
    const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_, P = y.h * y.w, OW = y.w, OH = y.h;
    const std::size_t crs = c_ * r_ * r_, blocks = (OW + vec - 1) / vec, row = blocks * vec;
    const T* w = this->params_[0].value.data();
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
        for (std::size_t c = 0; c < c_; ++c)
          for (std::size_t r = 0; r < r_; ++r) {
            const T* xr = xp.data() + (c * Hp + r) * Wp;
            T* ga = gacc.data() + (k * crs + (c * r_ + r) * r_) * vec;
            switch (r_) {  // the usual kernel sizes: one ∂ℓ/∂y load serves the whole kernel row
              case 3: weight_row_gradient<3>(dyp.data(), row, xr, Wp, OH, ga); break;
              case 5: weight_row_gradient<5>(dyp.data(), row, xr, Wp, OH, ga); break;
              default:
                for (std::size_t s = 0; s < r_; ++s) weight_row_gradient<1>(dyp.data(), row, xr + s, Wp, OH, ga + s * vec);
            }
          }
        if (dx != nullptr)
          for (std::size_t c = 0; c < c_; ++c)
            for (std::size_t r = 0; r < r_; ++r)
              for (std::size_t oh = 0; oh < OH; ++oh) {
                T* dr = dxp.data() + (c * Hp + oh + r) * Wp;
                const T* wr = w + k * crs + (c * r_ + r) * r_;
                for (std::size_t s = 0; s < r_; ++s)
                  for (std::size_t ow = 0; ow < OW; ++ow) dr[ow + s] += wr[s] * g[oh * OW + ow];
              }
      }
      if (dx != nullptr)
        for (std::size_t c = 0; c < c_; ++c)
          for (std::size_t h = 0; h < x.h; ++h)
            std::copy_n(dxp.data() + (c * Hp + h + pad_) * Wp + pad_, x.w, dx->channel(c) + i * x.h * x.w + h * x.w);
    }
    for (std::size_t q = 0; q < k_ * crs; ++q) {
      T sum = T(0);
      for (std::size_t j = 0; j < vec; ++j) sum += gacc[q * vec + j];
      gw[q] = sum;
    }
  }

  // Images per GEMM: the column buffer (C·R·S × images·OH·OW) is kept near 64K values (256 KB in float), inside L2.
  std::size_t images_per_chunk(std::size_t P) const {
    const std::size_t per_image = c_ * r_ * r_ * P;
    return std::max<std::size_t>(1, (std::size_t(1) << 16) / per_image);
  }

  // col[(c·R + r)·S + s][(i − i0)·P + oh·OW + ow] = x[c, i, oh·σ − p + r, ow·σ − p + s] (0 outside the image).
  void im2col(const activation<T>& x, std::size_t i0, std::size_t i1, shape3 out, T* col) const {
    const std::size_t H = x.h, Wd = x.w, P = out.h * out.w, m = (i1 - i0) * P;
    for (std::size_t c = 0; c < c_; ++c)
      for (std::size_t r = 0; r < r_; ++r)
        for (std::size_t s = 0; s < r_; ++s) {
          T* dst = col + ((c * r_ + r) * r_ + s) * m;
          // Output columns whose input column ow·σ − p + s is inside [0, W).
          const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(s) - static_cast<std::ptrdiff_t>(pad_);
          std::size_t ow_lo = 0, ow_hi = out.w;
          while (ow_lo < out.w && static_cast<std::ptrdiff_t>(ow_lo * stride_) + off < 0) ++ow_lo;
          while (ow_hi > ow_lo && static_cast<std::ptrdiff_t>((ow_hi - 1) * stride_) + off >= static_cast<std::ptrdiff_t>(Wd)) --ow_hi;
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
          std::size_t ow_lo = 0, ow_hi = out.w;
          while (ow_lo < out.w && static_cast<std::ptrdiff_t>(ow_lo * stride_) + off < 0) ++ow_lo;
          while (ow_hi > ow_lo && static_cast<std::ptrdiff_t>((ow_hi - 1) * stride_) + off >= static_cast<std::ptrdiff_t>(Wd)) --ow_hi;
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
};

/// Fully connected layer: y = W x + b, W of shape [out, in] (kind linear_weight), b [out]. The input must be flat
/// ({in, 1, 1}; put a `flatten` before it).
template <std::floating_point T = float>
class linear : public layer<T> {
 public:
  linear(std::size_t in_features, std::size_t out_features, bool bias = true)
      : in_(in_features), out_(out_features), bias_(bias) {
    if (in_ == 0 || out_ == 0) throw std::invalid_argument("linear(): in_features and out_features must be > 0");
    this->params_.emplace_back("weight", std::vector<std::size_t>{out_, in_}, parameter_kind::linear_weight);
    if (bias_) this->params_.emplace_back("bias", std::vector<std::size_t>{out_}, parameter_kind::bias);
  }

  shape3 output_shape(shape3 in) const override {
    if (in.h != 1 || in.w != 1) detail::bad_shape("linear", "input is not flat (add a flatten layer before it)");
    if (in.c != in_) detail::bad_shape("linear", "input has " + std::to_string(in.c) + " features, expected " + std::to_string(in_));
    return {out_, 1, 1};
  }

  void reset_parameters(bipq::detail::rng& g) override {
    this->kaiming_normal(0, in_, g);
    if (bias_) std::fill(this->params_[1].value.begin(), this->params_[1].value.end(), T(0));
  }

  void forward(const thread_context&, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    const auto n = detail::idx(x.n);
    const Eigen::Map<const detail::row_matrix<T>> W(this->params_[0].value.data(), detail::idx(out_), detail::idx(in_));
    const Eigen::Map<const detail::row_matrix<T>> X(x.data.data(), detail::idx(in_), n);
    Eigen::Map<detail::row_matrix<T>> Y(y.data.data(), detail::idx(out_), n);
    Y.noalias() = W * X;
    if (bias_) Y.colwise() += Eigen::Map<const Eigen::Vector<T, Eigen::Dynamic>>(this->params_[1].value.data(), detail::idx(out_));
  }

  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    const auto n = detail::idx(x.n);
    const Eigen::Map<const detail::row_matrix<T>> W(this->params_[0].value.data(), detail::idx(out_), detail::idx(in_));
    const Eigen::Map<const detail::row_matrix<T>> X(x.data.data(), detail::idx(in_), n);
    const Eigen::Map<const detail::row_matrix<T>> dY(dy.data.data(), detail::idx(out_), n);
    std::vector<T>& gw = this->thread_grad(0, ctx);
    Eigen::Map<detail::row_matrix<T>>(gw.data(), detail::idx(out_), detail::idx(in_)).noalias() = dY * X.transpose();
    if (bias_) {
      std::vector<T>& gb = this->thread_grad(1, ctx);
      // A plain loop: Eigen's vectorised reductions peel by address alignment, so their rounding would depend on
      // where the buffers happen to be allocated.
      for (std::size_t o = 0; o < out_; ++o) {
        const T* g = dy.data.data() + o * x.n;
        T sum = T(0);
        for (std::size_t i = 0; i < x.n; ++i) sum += g[i];
        gb[o] = sum;
      }
    }
    if (dx != nullptr) {
      dx->resize(x.sample_shape(), x.n);
      Eigen::Map<detail::row_matrix<T>>(dx->data.data(), detail::idx(in_), n).noalias() = W.transpose() * dY;
    }
  }

 private:
  std::size_t in_, out_;
  bool bias_;
};

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

/// Max pooling over kernel×kernel windows with the given stride (default: the kernel), no padding:
/// y[c,i,oh,ow] = max_{r,s < k} x[c,i,oh·σ+r,ow·σ+s]; OH = (H − k)/σ + 1. The gradient flows to the first maximum
/// of each window (row-major order), as PyTorch's.
template <std::floating_point T = float>
class max_pool2d : public layer<T> {
 public:
  explicit max_pool2d(std::size_t kernel = 2, std::size_t stride = 0) : k_(kernel), stride_(stride == 0 ? kernel : stride) {
    if (k_ == 0) throw std::invalid_argument("max_pool2d(): kernel must be > 0");
  }
  shape3 output_shape(shape3 in) const override {
    if (in.h < k_ || in.w < k_) detail::bad_shape("max_pool2d", "input is smaller than the kernel");
    return {in.c, (in.h - k_) / stride_ + 1, (in.w - k_) / stride_ + 1};
  }
  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    argmax_.resize(threads);
  }
  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    const shape3 out = output_shape(x.sample_shape());
    y.resize(out, x.n);
    std::vector<std::uint32_t>& arg = argmax_[ctx.thread];
    arg.resize(y.data.size());
    const std::size_t planes = x.c * x.n, H = x.h, Wd = x.w, OH = out.h, OW = out.w;
    if (k_ == 2 && stride_ == 2) {  // the common case, without the generic window loops
      for (std::size_t pl = 0; pl < planes; ++pl) {
        const T* src = x.data.data() + pl * H * Wd;
        T* __restrict dst = y.data.data() + pl * OH * OW;
        std::uint32_t* __restrict a = arg.data() + pl * OH * OW;
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
      std::uint32_t* a = arg.data() + pl * OH * OW;
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
          a[oh * OW + ow] = static_cast<std::uint32_t>(best);
        }
    }
  }
  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>& y, const activation<T>& dy,
                activation<T>* dx) override {
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    std::fill(dx->data.begin(), dx->data.end(), T(0));
    const std::vector<std::uint32_t>& arg = argmax_[ctx.thread];
    const std::size_t planes = x.c * x.n, in_plane = x.h * x.w, out_plane = y.h * y.w;
    for (std::size_t pl = 0; pl < planes; ++pl) {
      T* d = dx->data.data() + pl * in_plane;
      const T* g = dy.data.data() + pl * out_plane;
      const std::uint32_t* a = arg.data() + pl * out_plane;
      for (std::size_t j = 0; j < out_plane; ++j) d[a[j]] += g[j];
    }
  }

 private:
  std::size_t k_, stride_;
  std::vector<std::vector<std::uint32_t>> argmax_;  // per thread: flat index of each window's maximum in its plane
};

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

/// Batch normalisation over channels (Ioffe & Szegedy 2015): in training mode, with μ_c, σ²_c the mean and biased
/// variance of channel c over the whole mini-batch (all threads) and positions, x̂ = (x − μ_c)/√(σ²_c + ε),
/// y = γ_c x̂ + β_c, and the running statistics move as PyTorch's: r ← (1 − m) r + m μ (variance: unbiased).
/// In inference mode x̂ uses the running statistics. γ ("weight") and β ("bias") have kind norm.
template <std::floating_point T = float>
class batch_norm2d : public layer<T> {
 public:
  explicit batch_norm2d(std::size_t channels, double momentum = 0.1, double eps = 1e-5)
      : c_(channels), momentum_(momentum), eps_(eps), running_mean_(channels, 0.0), running_var_(channels, 1.0) {
    if (c_ == 0) throw std::invalid_argument("batch_norm2d(): channels must be > 0");
    if (!(momentum >= 0.0 && momentum <= 1.0)) throw std::invalid_argument("batch_norm2d(): momentum must be in [0, 1]");
    if (!(eps > 0.0)) throw std::invalid_argument("batch_norm2d(): eps must be > 0");
    this->params_.emplace_back("weight", std::vector<std::size_t>{c_}, parameter_kind::norm);
    this->params_.emplace_back("bias", std::vector<std::size_t>{c_}, parameter_kind::norm);
    std::fill(this->params_[0].value.begin(), this->params_[0].value.end(), T(1));
  }
  shape3 output_shape(shape3 in) const override {
    if (in.c != c_) detail::bad_shape("batch_norm2d", "input has " + std::to_string(in.c) + " channels, expected " + std::to_string(c_));
    return in;
  }
  void reset_parameters(bipq::detail::rng&) override {
    std::fill(this->params_[0].value.begin(), this->params_[0].value.end(), T(1));
    std::fill(this->params_[1].value.begin(), this->params_[1].value.end(), T(0));
    std::fill(running_mean_.begin(), running_mean_.end(), 0.0);
    std::fill(running_var_.begin(), running_var_.end(), 1.0);
  }
  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    state_.resize(threads);
  }
  const std::vector<double>& running_mean() const noexcept { return running_mean_; }
  const std::vector<double>& running_var() const noexcept { return running_var_; }

  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    y.resize(output_shape(x.sample_shape()), x.n);
    thread_state& st = state_[ctx.thread];
    st.inv_std.assign(c_, 0.0);
    std::vector<double> mean(c_);
    const std::size_t len = x.n * x.plane();
    if (ctx.training) {
      std::vector<double>& sums = st.sums;
      sums.assign(2 * c_ + 1, 0.0);
      for (std::size_t k = 0; k < c_; ++k) {
        const T* a = x.channel(k);
        double s = 0.0, s2 = 0.0;
        for (std::size_t j = 0; j < len; ++j) s += a[j], s2 += double(a[j]) * a[j];
        sums[2 * k] = s, sums[2 * k + 1] = s2;
      }
      sums[2 * c_] = static_cast<double>(len);
      ctx.all_reduce(sums);
      const double count = sums[2 * c_];
      for (std::size_t k = 0; k < c_; ++k) {
        mean[k] = sums[2 * k] / count;
        const double var = std::max(0.0, sums[2 * k + 1] / count - mean[k] * mean[k]);
        st.inv_std[k] = 1.0 / std::sqrt(var + eps_);
        if (ctx.thread == 0) {
          running_mean_[k] = (1.0 - momentum_) * running_mean_[k] + momentum_ * mean[k];
          const double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
          running_var_[k] = (1.0 - momentum_) * running_var_[k] + momentum_ * unbiased;
        }
      }
    } else {
      for (std::size_t k = 0; k < c_; ++k) mean[k] = running_mean_[k], st.inv_std[k] = 1.0 / std::sqrt(running_var_[k] + eps_);
    }
    const T* gamma = this->params_[0].value.data();
    const T* beta = this->params_[1].value.data();
    for (std::size_t k = 0; k < c_; ++k) {
      const T* a = x.channel(k);
      T* b = y.channel(k);
      const T m = static_cast<T>(mean[k]), is = static_cast<T>(st.inv_std[k]);
      const T scale = gamma[k] * is, shift = beta[k] - gamma[k] * is * m;
      for (std::size_t j = 0; j < len; ++j) b[j] = a[j] * scale + shift;
    }
    st.mean = std::move(mean);
  }

  // ∂ℓ/∂γ = Σ dy·x̂, ∂ℓ/∂β = Σ dy; training: ∂ℓ/∂x = γ/σ · (dy − mean(dy) − x̂ · mean(dy·x̂)) with batch means;
  // inference: ∂ℓ/∂x = γ/σ · dy.
  void backward(const thread_context& ctx, const activation<T>& x, const activation<T>&, const activation<T>& dy,
                activation<T>* dx) override {
    thread_state& st = state_[ctx.thread];
    const std::size_t len = x.n * x.plane();
    std::vector<double>& sums = st.sums;
    sums.assign(2 * c_ + 1, 0.0);
    for (std::size_t k = 0; k < c_; ++k) {
      const T* a = x.channel(k);
      const T* g = dy.channel(k);
      const double m = st.mean[k], is = st.inv_std[k];
      double sg = 0.0, sgx = 0.0;
      for (std::size_t j = 0; j < len; ++j) sg += g[j], sgx += double(g[j]) * ((a[j] - m) * is);
      sums[2 * k] = sg, sums[2 * k + 1] = sgx;
    }
    sums[2 * c_] = static_cast<double>(len);
    std::vector<T>& gg = this->thread_grad(0, ctx);
    std::vector<T>& gb = this->thread_grad(1, ctx);
    for (std::size_t k = 0; k < c_; ++k) gg[k] = static_cast<T>(sums[2 * k + 1]), gb[k] = static_cast<T>(sums[2 * k]);
    if (ctx.training) ctx.all_reduce(sums);
    if (dx == nullptr) return;
    dx->resize(x.sample_shape(), x.n);
    const T* gamma = this->params_[0].value.data();
    const double count = sums[2 * c_];
    for (std::size_t k = 0; k < c_; ++k) {
      const T* a = x.channel(k);
      const T* g = dy.channel(k);
      T* d = dx->channel(k);
      const double is = st.inv_std[k];
      const T scale = static_cast<T>(gamma[k] * is);
      if (ctx.training) {
        const T mg = static_cast<T>(sums[2 * k] / count), mgx = static_cast<T>(sums[2 * k + 1] / count);
        const T m = static_cast<T>(st.mean[k]), ist = static_cast<T>(is);
        for (std::size_t j = 0; j < len; ++j) d[j] = scale * (g[j] - mg - (a[j] - m) * ist * mgx);
      } else {
        for (std::size_t j = 0; j < len; ++j) d[j] = scale * g[j];
      }
    }
  }

 private:
  struct thread_state {
    std::vector<double> mean, inv_std, sums;
  };
  std::size_t c_;
  double momentum_, eps_;
  std::vector<double> running_mean_, running_var_;
  std::vector<thread_state> state_;
};

}  // namespace bipq::eigen

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
