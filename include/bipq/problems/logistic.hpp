#pragma once
// Masked logistic regression, a toy bi-level problem with a curved (but convex) loss:
//
//   u_i = x_iᵀw + c,   ℓ_B(w, c) = (1/|B|) Σ_{i∈B} [log(1 + e^{u_i}) − y_i u_i],   y_i ∈ {0, 1},
//   ∇_w ℓ_B = (1/|B|) Σ (σ(u_i) − y_i) x_i,   ∂_c ℓ_B = (1/|B|) Σ (σ(u_i) − y_i),
//   ∇² ℓ_B = (1/|B|) Σ σ(u_i)(1 − σ(u_i)) x̃_i x̃_iᵀ,   x̃_i = (x_i, 1).
// The weight w (kind linear_weight) is prunable; the intercept c (kind bias) is not, so the problem also exercises
// the training of non-prunable parameters. make_planted_classification draws labels from a sparse true model.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/concepts.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/tensor.hpp"

namespace bipq {

/// Masked logistic regression over parameters "w" (linear_weight, shape {d}) and "b" (bias, shape {1}).
/// Models has_hessian_vector_product (over w and b concatenated). Not copyable: parameters() points into it.
template <std::floating_point T>
class logistic_problem {
 public:
  using scalar_type = T;
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  ///< n samples × d features
  using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  /// Features x (n × d) and labels y (n values, each 0 or 1). Throws std::invalid_argument on a size mismatch, an
  /// empty x, NaN/Inf, or a label other than 0 and 1.
  logistic_problem(matrix x, vector y) : x_(std::move(x)), y_(std::move(y)) {
    if (x_.rows() == 0 || x_.cols() == 0) throw std::invalid_argument("logistic_problem(): x must not be empty");
    detail::require_size(static_cast<std::size_t>(y_.size()), static_cast<std::size_t>(x_.rows()), "logistic_problem", "y");
    detail::require_finite(std::span<const T>(x_.data(), static_cast<std::size_t>(x_.size())), "logistic_problem", "x");
    for (Eigen::Index i = 0; i < y_.size(); ++i)
      if (!(y_(i) == T(0) || y_(i) == T(1)))
        throw std::invalid_argument("logistic_problem(): y must hold 0 or 1 (index " + std::to_string(i) + ")");
    const auto d = static_cast<std::size_t>(x_.cols());
    w_.assign(d, T(0));
    gw_.assign(d, T(0));
    params_.push_back(parameter<T>{"w", {d}, parameter_kind::linear_weight, std::span<T>(w_), std::span<T>(gw_)});
    params_.push_back(parameter<T>{"b", {1}, parameter_kind::bias, std::span<T>(c_), std::span<T>(gc_)});
  }
  logistic_problem(const logistic_problem&) = delete;
  logistic_problem& operator=(const logistic_problem&) = delete;

  const std::vector<parameter<T>>& parameters() const noexcept { return params_; }
  std::size_t num_samples() const noexcept { return static_cast<std::size_t>(x_.rows()); }
  std::size_t dimension() const noexcept { return w_.size(); }

  /// ℓ_B and its gradient at the current (w, c), written into the parameters' grad.
  double loss_and_gradient(std::span<const std::size_t> indices) {
    check_batch(indices, "loss_and_gradient");
    const auto d = static_cast<Eigen::Index>(w_.size());
    const Eigen::Map<const vector> w(w_.data(), d);
    Eigen::Map<vector> gw(gw_.data(), d);
    gw.setZero();
    double loss = 0.0, gc = 0.0;
    for (std::size_t i : indices) {
      const auto row = x_.row(static_cast<Eigen::Index>(i));
      const double u = static_cast<double>(row.dot(w)) + static_cast<double>(c_[0]);
      const double y = static_cast<double>(y_(static_cast<Eigen::Index>(i)));
      loss += softplus(u) - y * u;
      const double r = sigmoid(u) - y;
      gw.noalias() += static_cast<T>(r) * row.transpose();
      gc += r;
    }
    const double inv = 1.0 / static_cast<double>(indices.size());
    gw *= static_cast<T>(inv);
    gc_[0] = static_cast<T>(gc * inv);
    return loss * inv;
  }

  /// out = ∇²ℓ_B · v over (w, c) concatenated (v and out have d + 1 entries).
  void hessian_vector_product(std::span<const std::size_t> indices, std::span<const T> v, std::span<T> out) const {
    check_batch(indices, "hessian_vector_product");
    const std::size_t d = w_.size();
    detail::require_size(v.size(), d + 1, "logistic_problem::hessian_vector_product", "v");
    detail::require_size(out.size(), d + 1, "logistic_problem::hessian_vector_product", "out");
    const Eigen::Map<const vector> w(w_.data(), static_cast<Eigen::Index>(d));
    const Eigen::Map<const vector> vw(v.data(), static_cast<Eigen::Index>(d));
    Eigen::Map<vector> ow(out.data(), static_cast<Eigen::Index>(d));
    ow.setZero();
    double oc = 0.0;
    for (std::size_t i : indices) {
      const auto row = x_.row(static_cast<Eigen::Index>(i));
      const double u = static_cast<double>(row.dot(w)) + static_cast<double>(c_[0]);
      const double s = sigmoid(u);
      const double h = s * (1.0 - s) * (static_cast<double>(row.dot(vw)) + static_cast<double>(v[d]));
      ow.noalias() += static_cast<T>(h) * row.transpose();
      oc += h;
    }
    const double inv = 1.0 / static_cast<double>(indices.size());
    ow *= static_cast<T>(inv);
    out[d] = static_cast<T>(oc * inv);
  }

  /// Fraction of all samples classified correctly (σ(u) ≥ 1/2 ⇔ label 1) at the current parameters.
  double accuracy() const {
    const Eigen::Map<const vector> w(w_.data(), static_cast<Eigen::Index>(w_.size()));
    std::size_t right = 0;
    for (Eigen::Index i = 0; i < x_.rows(); ++i) {
      const bool one = static_cast<double>(x_.row(i).dot(w)) + static_cast<double>(c_[0]) >= 0.0;
      right += (one == (y_(i) == T(1))) ? 1u : 0u;
    }
    return static_cast<double>(right) / static_cast<double>(x_.rows());
  }

 private:
  // log(1 + e^u) without overflow, and σ(u) = 1 / (1 + e^{−u}) without overflow.
  static double softplus(double u) { return u > 0.0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u)); }
  static double sigmoid(double u) {
    if (u >= 0.0) return 1.0 / (1.0 + std::exp(-u));
    const double e = std::exp(u);
    return e / (1.0 + e);
  }
  void check_batch(std::span<const std::size_t> indices, const char* func) const {
    if (indices.empty())
      throw std::invalid_argument(std::string("logistic_problem::") + func + "(): indices must not be empty");
    for (std::size_t i : indices)
      if (i >= num_samples())
        throw std::invalid_argument(std::string("logistic_problem::") + func + "(): index " + std::to_string(i) +
                                    " out of range");
  }

  matrix x_;
  vector y_;
  std::vector<T> w_, gw_;
  T c_[1] = {T(0)}, gc_[1] = {T(0)};
  std::vector<parameter<T>> params_;
};

/// A drawn classification instance: x_ij ~ N(0, 1), y_i ~ Bernoulli(σ(x_iᵀw_true)), w_true k-sparse.
template <class T>
struct planted_classification {
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> x;
  Eigen::Matrix<T, Eigen::Dynamic, 1> y;
  Eigen::VectorXd w_true;
  std::vector<std::size_t> support;  ///< sorted
};

/// Draws n samples of d features from a k-sparse logistic model with weights ±magnitude (portable, seeded).
/// Throws std::invalid_argument on n or d = 0, k > d, or a negative / non-finite magnitude.
template <class T>
planted_classification<T> make_planted_classification(std::size_t n, std::size_t d, std::size_t k, double magnitude,
                                                       std::uint64_t seed) {
  if (n == 0 || d == 0) throw std::invalid_argument("make_planted_classification(): n and d must be >= 1");
  if (k > d) throw std::invalid_argument("make_planted_classification(): k must be <= d");
  if (!(magnitude >= 0.0 && std::isfinite(magnitude)))
    throw std::invalid_argument("make_planted_classification(): magnitude must be finite and >= 0");
  detail::rng g(seed);
  planted_classification<T> out;
  out.x.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  for (Eigen::Index i = 0; i < out.x.rows(); ++i)
    for (Eigen::Index j = 0; j < out.x.cols(); ++j) out.x(i, j) = static_cast<T>(g.normal());
  std::vector<std::size_t> perm = detail::permutation(d, g);
  out.support.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(k));
  std::sort(out.support.begin(), out.support.end());
  out.w_true = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(d));
  for (std::size_t j : out.support) out.w_true(static_cast<Eigen::Index>(j)) = g.uniform() < 0.5 ? -magnitude : magnitude;
  out.y.resize(static_cast<Eigen::Index>(n));
  for (Eigen::Index i = 0; i < out.x.rows(); ++i) {
    const double u = out.x.row(i).template cast<double>().dot(out.w_true);
    out.y(i) = g.uniform() < 1.0 / (1.0 + std::exp(-u)) ? T(1) : T(0);
  }
  return out;
}

}  // namespace bipq
