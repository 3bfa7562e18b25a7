#pragma once
// Sparse inference of unstructured masks: conv and linear layers that store only the nonzero weights and skip the
// zeros, built from a masked model.
//
// Format: row-compressed (CSR) weights, one row per output channel / neuron, each entry the weight and the offset of
// the input it multiplies. The kernel (detail::sparse_rows) computes, for every row k,
//   y[k][j] = b_k + Σ_e w_e · x[offset_e + j]      for j over a run of contiguous outputs,
// with 32 consecutive outputs held in registers across the whole row, so that every stored weight costs one load
// of x and one multiply-add per 8 outputs, and y is written once. The layout makes the runs long:
// - linear: activations are [features, n] (layers/layer.hpp), so input feature f of the n samples is the row
//   x[f·n .. f·n + n): offset_e = column_e · n and the run is the n samples (Y = W X on a [features, batch] layout;
//   the transposed layout, one sample per row, would gather scattered columns instead).
// - conv2d, stride 1: each image is copied into a zero-padded buffer xp[C][H + 2p][W + 2p]; output (oh, ow) read at
//   xp[c][oh + r][ow + s], so with the output computed on rows of the padded width, position j = oh·Wp + ow reads
//   xp[c·Hp·Wp + r·Wp + s + j]: offset_e = c·Hp·Wp + r·Wp + s and the run is the OH·Wp positions of the image (the
//   Wp − OW columns past the right edge are computed and dropped). A direct sparse kernel: no im2col, whose
//   C·R·S × OH·OW copy would cost more than the product at low density.
// - conv2d with stride > 1: a plain loop over the stored weights (no model here uses it).
// Measured against dense im2col + GEMM and Eigen's SparseMatrix in bench/bench_inference.cpp (docs/performance.md).
//
// The layers compute the forward pass only (inference); backward throws std::logic_error.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/copy.hpp"
#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/mask/mask_set.hpp"

namespace bipq::eigen {

/// The nonzero weights of a [rows, cols] row-major matrix, row by row: row r holds entries [start[r], start[r+1]),
/// entry e the weight value[e] at column column[e].
template <std::floating_point T>
struct csr_weights {
  std::size_t rows = 0, cols = 0;
  std::vector<std::uint32_t> start{0}, column;
  std::vector<T> value;

  /// From a dense row-major [rows, cols] matrix `w` (w.size() == rows·cols): every entry != 0 is stored.
  static csr_weights from_dense(std::span<const T> w, std::size_t rows, std::size_t cols) {
    if (w.size() != rows * cols) throw std::invalid_argument("csr_weights::from_dense(): w.size() != rows * cols");
    csr_weights m;
    m.rows = rows, m.cols = cols;
    m.start.reserve(rows + 1);
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t c = 0; c < cols; ++c)
        if (w[r * cols + c] != T(0)) m.column.push_back(static_cast<std::uint32_t>(c)), m.value.push_back(w[r * cols + c]);
      m.start.push_back(static_cast<std::uint32_t>(m.value.size()));
    }
    return m;
  }
  std::size_t nonzeros() const noexcept { return value.size(); }
  double density() const noexcept { return rows * cols == 0 ? 0.0 : double(nonzeros()) / double(rows * cols); }
};

/// A fully connected layer y = W x + b with W stored as csr_weights (forward only).
template <std::floating_point T = float>
class sparse_linear : public layer<T> {
 public:
  /// `w` row-major [out, in] (its zeros are not stored), `b` [out] or empty for no bias.
  sparse_linear(std::span<const T> w, std::span<const T> b, std::size_t in_features, std::size_t out_features);
  shape3 output_shape(shape3 in) const override;
  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    scratch_.resize(threads);
  }
  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override;
  void backward(const thread_context&, const activation<T>&, const activation<T>&, const activation<T>&,
                activation<T>*) override {
    throw std::logic_error("sparse_linear::backward(): a sparse layer is for inference only");
  }
  const csr_weights<T>& weights() const noexcept { return w_; }
  std::span<const T> bias() const noexcept { return bias_; }

 private:
  csr_weights<T> w_;
  std::vector<T> bias_;
  struct thread_scratch {
    std::vector<std::uint32_t> offsets;  // column · np for the last n
    std::vector<T> xp, yp;               // inputs and outputs on rows of np samples, when np != n
  };
  std::vector<thread_scratch> scratch_;
};

/// A 2-D convolution (conv2d's definition) with W stored as csr_weights over [K, C·R·S] (forward only).
template <std::floating_point T = float>
class sparse_conv2d : public layer<T> {
 public:
  /// `w` row-major [K, C, R, R] (its zeros are not stored), `b` [K] or empty for no bias.
  sparse_conv2d(std::span<const T> w, std::span<const T> b, std::size_t in_channels, std::size_t out_channels,
                std::size_t kernel, std::size_t stride = 1, std::size_t padding = 0);
  shape3 output_shape(shape3 in) const override;
  void set_threads(std::size_t threads) override {
    layer<T>::set_threads(threads);
    scratch_.resize(threads);
  }
  void forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) override {
    forward_then(ctx, x, y, {});
  }
  /// The pointwise layers `then` run on each image just computed (stride 1) or on the batch (other strides).
  bool forward_then(const thread_context& ctx, const activation<T>& x, activation<T>& y,
                    std::span<const layer<T>* const> then) override;
  void backward(const thread_context&, const activation<T>&, const activation<T>&, const activation<T>&,
                activation<T>*) override {
    throw std::logic_error("sparse_conv2d::backward(): a sparse layer is for inference only");
  }
  const csr_weights<T>& weights() const noexcept { return w_; }
  std::span<const T> bias() const noexcept { return bias_; }

 private:
  struct thread_scratch {
    std::vector<T> xp, out;
    std::vector<std::uint32_t> offsets;
    std::size_t h = 0, w = 0;  // the input size the offsets were computed for
  };
  std::size_t c_, k_, r_, stride_, pad_;
  csr_weights<T> w_;
  std::vector<T> bias_;
  std::vector<thread_scratch> scratch_;
};

/// Options of sparsify(). A masked conv or linear weight is stored sparse when its density (nonzeros / size) is at
/// most the limit for its layer; denser ones stay dense. The sparse conv kernel computes one output row of a plane
/// per weight, so a small plane leaves little work per stored weight; the defaults are measured
/// (bench/bench_inference.cpp, `sparse_limit`; docs/performance.md): on the output planes of 100 to 784 positions
/// of LeNet-5 and `cnn`, sparse convolutions beat the dense ones up to 46–57% density and sparse_linear ties the
/// dense GEMM at 50% (fc1); on `cnn`'s planes of 49 and 9 positions, only below 10–15%.
struct sparse_options {
  /// Linear layers, and convolutions whose output planes have at least `small_plane` positions (OH·OW).
  double max_density = 0.6;
  /// Convolutions whose output planes have fewer than `small_plane` positions.
  double max_density_small_conv = 0.1;
  std::size_t small_plane = 64;
};

/// A copy of `model` with the masks applied in which every masked conv and linear weight whose density is at most
/// its limit in `options` is a sparse_conv2d / sparse_linear; the other layers are copies. Its outputs equal the
/// masked model's up to float rounding. Throws std::invalid_argument if the masks were not made for the model, a
/// layer is of a type sparsify() does not know, or a limit is not in [0, 1].
template <std::floating_point T>
basic_sequential<T> sparsify(const basic_sequential<T>& model, const mask_set<T>& masks, sparse_options options = {});

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// y[k·y_stride + j] = bias[k] + Σ_{e ∈ row k} value[e] · x[offset[e] + j] for k < rows, j < len. Reads
/// x[offset[e] + j] for j < len rounded up to a multiple of 32 / sizeof(T) lanes and writes y as far, so both
/// must have that much room.
template <class T>
void sparse_rows(const std::uint32_t* start, const std::uint32_t* offset, const T* value, const T* bias,
                 std::size_t rows, const T* x, std::size_t len, T* y, std::size_t y_stride) noexcept {
  constexpr std::size_t lanes = 32 / sizeof(T);
  using vec [[gnu::vector_size(32)]] = T;
  auto load = [](const T* p) {
    vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  auto store = [](T* p, vec v) { std::memcpy(p, &v, sizeof v); };
  constexpr std::size_t block = 4 * lanes;
  const std::size_t full = len - len % block;
  for (std::size_t k = 0; k < rows; ++k) {
    const std::uint32_t e0 = start[k], e1 = start[k + 1];
    const T b = bias != nullptr ? bias[k] : T(0);
    T* yk = y + k * y_stride;
    for (std::size_t j = 0; j < full; j += block) {
      vec a0 = vec{} + b, a1 = a0, a2 = a0, a3 = a0;
      for (std::uint32_t e = e0; e < e1; ++e) {
        const T* xe = x + offset[e] + j;
        const T w = value[e];
        a0 += w * load(xe), a1 += w * load(xe + lanes), a2 += w * load(xe + 2 * lanes), a3 += w * load(xe + 3 * lanes);
      }
      store(yk + j, a0), store(yk + j + lanes, a1), store(yk + j + 2 * lanes, a2), store(yk + j + 3 * lanes, a3);
    }
    for (std::size_t j = full; j < len; j += lanes) {
      vec a = vec{} + b;
      for (std::uint32_t e = e0; e < e1; ++e) a += value[e] * load(x + offset[e] + j);
      store(yk + j, a);
    }
  }
}

inline std::size_t round_up(std::size_t v, std::size_t m) { return (v + m - 1) / m * m; }

}  // namespace detail

template <std::floating_point T>
sparse_linear<T>::sparse_linear(std::span<const T> w, std::span<const T> b, std::size_t in_features,
                                std::size_t out_features)
    : w_(csr_weights<T>::from_dense(w, out_features, in_features)), bias_(b.begin(), b.end()) {
  if (in_features == 0 || out_features == 0)
    throw std::invalid_argument("sparse_linear(): in_features and out_features must be > 0");
  if (!b.empty() && b.size() != out_features) throw std::invalid_argument("sparse_linear(): b must have out_features entries");
}

template <std::floating_point T>
shape3 sparse_linear<T>::output_shape(shape3 in) const {
  if (in.h != 1 || in.w != 1) detail::bad_shape("sparse_linear", "input is not flat (add a flatten layer before it)");
  if (in.c != w_.cols)
    detail::bad_shape("sparse_linear", "input has " + std::to_string(in.c) + " features, expected " + std::to_string(w_.cols));
  return {w_.rows, 1, 1};
}

template <std::floating_point T>
void sparse_linear<T>::forward(const thread_context& ctx, const activation<T>& x, activation<T>& y) {
  const std::size_t n = x.n, np = detail::round_up(n, 32 / sizeof(T));
  y.resize(output_shape(x.sample_shape()), x.n);
  thread_scratch& st = scratch_[ctx.thread];
  std::vector<std::uint32_t>& off = st.offsets;
  off.resize(w_.column.size());
  for (std::size_t e = 0; e < off.size(); ++e) off[e] = static_cast<std::uint32_t>(w_.column[e] * np);
  // The kernel runs whole vectors: inputs and outputs on rows of np ≥ n samples, then the outputs cropped.
  std::vector<T>& xp = st.xp;
  std::vector<T>& yp = st.yp;
  const T* xs = x.data.data();
  if (np != n) {
    xp.assign(w_.cols * np, T(0));
    for (std::size_t f = 0; f < w_.cols; ++f) std::copy_n(x.data.data() + f * n, n, xp.data() + f * np);
    xs = xp.data();
  }
  if (np == n) {
    detail::sparse_rows(w_.start.data(), off.data(), w_.value.data(), bias_.empty() ? nullptr : bias_.data(), w_.rows,
                        xs, n, y.data.data(), n);
    return;
  }
  yp.resize(w_.rows * np);
  detail::sparse_rows(w_.start.data(), off.data(), w_.value.data(), bias_.empty() ? nullptr : bias_.data(), w_.rows,
                      xs, n, yp.data(), np);
  for (std::size_t o = 0; o < w_.rows; ++o) std::copy_n(yp.data() + o * np, n, y.data.data() + o * n);
}

template <std::floating_point T>
sparse_conv2d<T>::sparse_conv2d(std::span<const T> w, std::span<const T> b, std::size_t in_channels,
                                std::size_t out_channels, std::size_t kernel, std::size_t stride, std::size_t padding)
    : c_(in_channels), k_(out_channels), r_(kernel), stride_(stride), pad_(padding),
      w_(csr_weights<T>::from_dense(w, out_channels, in_channels * kernel * kernel)), bias_(b.begin(), b.end()) {
  if (c_ == 0 || k_ == 0 || r_ == 0 || stride_ == 0)
    throw std::invalid_argument("sparse_conv2d(): in_channels, out_channels, kernel and stride must be > 0");
  if (!b.empty() && b.size() != k_) throw std::invalid_argument("sparse_conv2d(): b must have out_channels entries");
}

template <std::floating_point T>
shape3 sparse_conv2d<T>::output_shape(shape3 in) const {
  if (in.c != c_)
    detail::bad_shape("sparse_conv2d", "input has " + std::to_string(in.c) + " channels, expected " + std::to_string(c_));
  if (in.h + 2 * pad_ < r_ || in.w + 2 * pad_ < r_) detail::bad_shape("sparse_conv2d", "input is smaller than the kernel");
  return {k_, (in.h + 2 * pad_ - r_) / stride_ + 1, (in.w + 2 * pad_ - r_) / stride_ + 1};
}

template <std::floating_point T>
bool sparse_conv2d<T>::forward_then(const thread_context& ctx, const activation<T>& x, activation<T>& y,
                                    std::span<const layer<T>* const> then) {
  const shape3 os = output_shape(x.sample_shape());
  y.resize(os, x.n);
  const std::size_t Hp = x.h + 2 * pad_, Wp = x.w + 2 * pad_, P = os.h * os.w;
  const T* bias = bias_.empty() ? nullptr : bias_.data();
  thread_scratch& st = scratch_[ctx.thread];
  if (stride_ != 1) {  // y[k,i,oh,ow] = b_k + Σ_e w_e x[c, i, oh·σ − p + r, ow·σ − p + s]
    for (std::size_t k = 0; k < k_; ++k)
      for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t oh = 0; oh < os.h; ++oh)
          for (std::size_t ow = 0; ow < os.w; ++ow) {
            T sum = bias != nullptr ? bias[k] : T(0);
            for (std::uint32_t e = w_.start[k]; e < w_.start[k + 1]; ++e) {
              const std::size_t q = w_.column[e], c = q / (r_ * r_), r = q / r_ % r_, s = q % r_;
              const std::ptrdiff_t ih = std::ptrdiff_t(oh * stride_ + r) - std::ptrdiff_t(pad_),
                                   iw = std::ptrdiff_t(ow * stride_ + s) - std::ptrdiff_t(pad_);
              if (ih >= 0 && iw >= 0 && ih < std::ptrdiff_t(x.h) && iw < std::ptrdiff_t(x.w))
                sum += w_.value[e] * x.channel(c)[i * x.h * x.w + std::size_t(ih) * x.w + std::size_t(iw)];
            }
            y.channel(k)[i * P + oh * os.w + ow] = sum;
          }
    for (const layer<T>* l : then) l->map_samples(ctx, y, 0, x.n);
    return true;
  }
  if (st.h != x.h || st.w != x.w || st.offsets.size() != w_.column.size()) {
    st.offsets.resize(w_.column.size());
    for (std::size_t e = 0; e < w_.column.size(); ++e) {
      const std::size_t q = w_.column[e], c = q / (r_ * r_), r = q / r_ % r_, s = q % r_;
      st.offsets[e] = static_cast<std::uint32_t>(c * Hp * Wp + r * Wp + s);
    }
    st.h = x.h, st.w = x.w;
  }
  // One image at a time: its padded copy and its K output rows stay in L1. The kernel reads and writes whole
  // vectors, up to len rounded up past the end, into the zero slack after xp and out.
  const std::size_t len = os.h * Wp, lanes = 32 / sizeof(T), row = detail::round_up(len, lanes);
  st.xp.assign(c_ * Hp * Wp + Wp + 2 * lanes, T(0));
  st.out.resize(k_ * row);
  for (std::size_t i = 0; i < x.n; ++i) {
    for (std::size_t c = 0; c < c_; ++c) {
      const T* src = x.channel(c) + i * x.h * x.w;
      for (std::size_t h = 0; h < x.h; ++h) std::copy_n(src + h * x.w, x.w, st.xp.data() + (c * Hp + h + pad_) * Wp + pad_);
    }
    detail::sparse_rows(w_.start.data(), st.offsets.data(), w_.value.data(), bias, k_, st.xp.data(), len,
                        st.out.data(), row);
    for (std::size_t k = 0; k < k_; ++k)
      for (std::size_t oh = 0; oh < os.h; ++oh)
        std::copy_n(st.out.data() + k * row + oh * Wp, os.w, y.channel(k) + i * P + oh * os.w);
    for (const layer<T>* l : then) l->map_samples(ctx, y, i, i + 1);
  }
  return true;
}

template <std::floating_point T>
basic_sequential<T> sparsify(const basic_sequential<T>& model, const mask_set<T>& masks, sparse_options options) {
  if (!(options.max_density >= 0.0 && options.max_density <= 1.0))
    throw std::invalid_argument("sparsify(): options.max_density must be in [0, 1]");
  if (!(options.max_density_small_conv >= 0.0 && options.max_density_small_conv <= 1.0))
    throw std::invalid_argument("sparsify(): options.max_density_small_conv must be in [0, 1]");
  const std::vector<std::vector<T>> z = detail::effective_values(model, masks, "sparsify");
  const std::vector<std::size_t> off = detail::parameter_offsets(model);
  std::vector<char> masked(model.parameters().size(), 0);
  for (std::size_t i : masks.prunable()) masked[i] = 1;
  auto density = [](const std::vector<T>& w) {
    return double(std::count_if(w.begin(), w.end(), [](T v) { return v != T(0); })) / double(w.size());
  };
  basic_sequential<T> out(model.input_shape());
  shape3 shape = model.input_shape();  // layer l's output shape, once it has been updated
  for (std::size_t l = 0; l < model.size(); ++l) {
    const layer<T>& ly = model[l];
    const std::string& name = model.name(l);
    const std::vector<T>* v = z.data() + off[l];
    const auto* cv = dynamic_cast<const conv2d<T>*>(&ly);
    const shape3 in = shape;
    shape = ly.output_shape(in);
    const bool small = cv != nullptr && shape.h * shape.w < options.small_plane;
    const double limit = small ? options.max_density_small_conv : options.max_density;
    const bool sparse = !ly.parameters().empty() && masked[off[l]] && density(v[0]) <= limit;
    const std::span<const T> bias = ly.parameters().size() > 1 ? std::span<const T>(v[1]) : std::span<const T>();
    if (cv != nullptr && sparse) {
      out.add(name, sparse_conv2d<T>(v[0], bias, cv->in_channels(), cv->out_channels(), cv->kernel_size(),
                                     cv->stride(), cv->padding()));
    } else if (const auto* fc = dynamic_cast<const linear<T>*>(&ly); fc != nullptr && sparse) {
      out.add(name, sparse_linear<T>(v[0], bias, fc->in_features(), fc->out_features()));
    } else if (!detail::append_copy<T>(out, name, ly, std::span<const std::vector<T>>(v, ly.parameters().size()))) {
      throw std::invalid_argument("sparsify(): layer '" + name + "' is of a type sparsify() does not know");
    }
  }
  return out;
}

}  // namespace bipq::eigen
