#pragma once
// Batch normalisation over channels, with statistics over the whole mini-batch (layout: layers/layer.hpp).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

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
  std::size_t channels() const noexcept { return c_; }
  double momentum() const noexcept { return momentum_; }
  double eps() const noexcept { return eps_; }
  const std::vector<double>& running_mean() const noexcept { return running_mean_; }
  const std::vector<double>& running_var() const noexcept { return running_var_; }
  /// Sets the running statistics (e.g. read from a file). Throws std::invalid_argument if a size differs from
  /// channels() or a variance is negative or not finite.
  void set_running_statistics(std::span<const double> mean, std::span<const double> var) {
    if (mean.size() != c_ || var.size() != c_)
      throw std::invalid_argument("batch_norm2d::set_running_statistics(): 'mean' and 'var' must have " +
                                  std::to_string(c_) + " entries");
    for (std::size_t k = 0; k < c_; ++k)
      if (!std::isfinite(mean[k]) || !(var[k] >= 0.0 && std::isfinite(var[k])))
        throw std::invalid_argument("batch_norm2d::set_running_statistics(): entry " + std::to_string(k) +
                                    " of 'mean' or 'var' is not finite (or the variance is negative)");
    running_mean_.assign(mean.begin(), mean.end());
    running_var_.assign(var.begin(), var.end());
  }
  /// The running statistics as writable spans (mean, then variance), e.g. to average them across data-parallel ranks.
  std::span<double> running_mean_values() noexcept { return running_mean_; }
  std::span<double> running_var_values() noexcept { return running_var_; }

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
    for (std::size_t k = 0; k < c_; ++k) normalize(k, mean[k], st.inv_std[k], x.channel(k), y.channel(k), len);
    st.mean = std::move(mean);
  }

  /// Pointwise in inference mode (running statistics).
  bool pointwise(const thread_context& ctx) const override { return !ctx.training; }
  void map_samples(const thread_context&, activation<T>& a, std::size_t i0, std::size_t i1) const override {
    const std::size_t P = a.plane();
    for (std::size_t k = 0; k < c_; ++k) {
      T* v = a.channel(k) + i0 * P;
      normalize(k, running_mean_[k], 1.0 / std::sqrt(running_var_[k] + eps_), v, v, (i1 - i0) * P);
    }
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
  // b[j] = γ_k (a[j] − mean)·inv_std + β_k as a[j]·scale + shift, for len values (b may be a).
  void normalize(std::size_t k, double mean, double inv_std, const T* a, T* b, std::size_t len) const {
    const T gamma = this->params_[0].value[k], beta = this->params_[1].value[k];
    const T m = static_cast<T>(mean), is = static_cast<T>(inv_std);
    const T scale = gamma * is, shift = beta - gamma * is * m;
    for (std::size_t j = 0; j < len; ++j) b[j] = a[j] * scale + shift;
  }

  struct thread_state {
    std::vector<double> mean, inv_std, sums;
  };
  std::size_t c_;
  double momentum_, eps_;
  std::vector<double> running_mean_, running_var_;
  std::vector<thread_state> state_;
};

}  // namespace bipq::eigen
