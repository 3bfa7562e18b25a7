#pragma once
// Fully connected layer on Eigen (layout: layers/layer.hpp).

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/layers/layer.hpp"

namespace bipq::eigen {

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

  /// The layer's geometry (what a copy of the layer is built from).
  std::size_t in_features() const noexcept { return in_; }
  std::size_t out_features() const noexcept { return out_; }
  bool has_bias() const noexcept { return bias_; }

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

}  // namespace bipq::eigen
