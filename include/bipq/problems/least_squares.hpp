#pragma once
// Masked least squares, a toy bi-level problem with known answers:
//
//   ℓ_B(z) = (1 / 2|B|) Σ_{i∈B} (a_iᵀz − b_i)²,     ∇_z ℓ_B = (1/|B|) Σ a_i (a_iᵀz − b_i),     ∇²_z ℓ_B = (1/|B|) Σ a_i a_iᵀ,
//
// with the lower-level solution of BiP in closed form (a ridge regression on the kept columns, D = diag(m)):
//   θ*(m) = (D AᵀA D / n + γI)⁻¹ D Aᵀ b / n = D Aᵀ (A D² Aᵀ / n + γI)⁻¹ b / n   (push-through identity; the smaller
//   of the two systems is solved).
// make_planted_regression draws the classic sparse-recovery instance: Gaussian A, a planted k-sparse x with
// magnitudes in [lo, hi] and random signs, b = A x + noise at a given signal-to-noise ratio.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
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

/// Masked least squares over one parameter "w" (kind linear_weight, shape {d}). Models has_hessian_vector_product.
/// Not copyable or movable: parameters() points into the object.
template <std::floating_point T>
class least_squares_problem {
 public:
  using scalar_type = T;
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  ///< n samples × d features
  using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  /// Takes A (n × d, n ≥ 1, d ≥ 1) and b (n). Starts at z = 0. Throws std::invalid_argument on a size mismatch,
  /// an empty A, or NaN/Inf ("least_squares_problem(): b has size 3, expected 4").
  least_squares_problem(matrix a, vector b) : a_(std::move(a)), b_(std::move(b)) {
    if (a_.rows() == 0 || a_.cols() == 0) throw std::invalid_argument("least_squares_problem(): a must not be empty");
    detail::require_size(static_cast<std::size_t>(b_.size()), static_cast<std::size_t>(a_.rows()),
                         "least_squares_problem", "b");
    detail::require_finite(std::span<const T>(a_.data(), static_cast<std::size_t>(a_.size())), "least_squares_problem", "a");
    detail::require_finite(std::span<const T>(b_.data(), static_cast<std::size_t>(b_.size())), "least_squares_problem", "b");
    const auto d = static_cast<std::size_t>(a_.cols());
    z_.assign(d, T(0));
    g_.assign(d, T(0));
    params_.push_back(parameter<T>{"w", {d}, parameter_kind::linear_weight, std::span<T>(z_), std::span<T>(g_)});
  }
  least_squares_problem(const least_squares_problem&) = delete;
  least_squares_problem& operator=(const least_squares_problem&) = delete;

  const std::vector<parameter<T>>& parameters() const noexcept { return params_; }
  std::size_t num_samples() const noexcept { return static_cast<std::size_t>(a_.rows()); }
  std::size_t dimension() const noexcept { return z_.size(); }
  const matrix& a() const noexcept { return a_; }
  const vector& b() const noexcept { return b_; }

  /// Precomputes G = AᵀA/n, c = Aᵀb/n and ‖b‖²/n (in double; O(n d²) time, d² memory) so that a full-batch
  /// loss_and_gradient with a sparse z costs O(d · nnz(z)) instead of O(n d):
  ///   ∇ℓ = G z − c,   ℓ = (zᵀ∇ℓ − cᵀz + ‖b‖²/n) / 2   (the same quantities, rounded differently).
  /// Used when the batch is 0, 1, ..., n−1 in order and nnz(z) ≤ 2n; other batches take the row-wise path.
  void cache_gram() {
    const Eigen::MatrixXd a = a_.template cast<double>();
    const double nn = static_cast<double>(a.rows());
    gram_ = Eigen::MatrixXd::Zero(a.cols(), a.cols());
    gram_.template selfadjointView<Eigen::Lower>().rankUpdate(a.transpose(), 1.0 / nn);
    gram_ = gram_.template selfadjointView<Eigen::Lower>();
    gram_c_ = a.transpose() * b_.template cast<double>() / nn;
    gram_bb_ = b_.template cast<double>().squaredNorm() / nn;
  }
  bool has_gram() const noexcept { return gram_.size() > 0; }

  /// ℓ_B and ∇_z ℓ_B at the current z (written into the parameter's grad). Throws on an index ≥ n or an empty batch.
  double loss_and_gradient(std::span<const std::size_t> indices) {
    check_batch(indices, "loss_and_gradient");
    if (has_gram() && is_full_batch(indices)) {
      nonzeros_.clear();
      for (std::size_t j = 0; j < z_.size(); ++j)
        if (z_[j] != T(0)) nonzeros_.push_back(j);
      if (nonzeros_.size() <= 2 * num_samples()) return gram_loss_and_gradient();
    }
    const std::size_t d = z_.size();
    std::fill(g_.begin(), g_.end(), T(0));
    double loss = 0.0;
    const Eigen::Map<const vector> z(z_.data(), static_cast<Eigen::Index>(d));
    Eigen::Map<vector> g(g_.data(), static_cast<Eigen::Index>(d));
    for (std::size_t i : indices) {
      const auto row = a_.row(static_cast<Eigen::Index>(i));
      const T r = row.dot(z) - b_(static_cast<Eigen::Index>(i));
      loss += 0.5 * static_cast<double>(r) * static_cast<double>(r);
      g.noalias() += r * row.transpose();
    }
    const T inv = T(1) / static_cast<T>(indices.size());
    g *= inv;
    return loss / static_cast<double>(indices.size());
  }

  /// out = ∇²_z ℓ_B · v = (1/|B|) Σ a_i (a_iᵀ v).
  void hessian_vector_product(std::span<const std::size_t> indices, std::span<const T> v, std::span<T> out) const {
    check_batch(indices, "hessian_vector_product");
    detail::require_size(v.size(), z_.size(), "least_squares_problem::hessian_vector_product", "v");
    detail::require_size(out.size(), z_.size(), "least_squares_problem::hessian_vector_product", "out");
    const auto d = static_cast<Eigen::Index>(z_.size());
    const Eigen::Map<const vector> vv(v.data(), d);
    Eigen::Map<vector> o(out.data(), d);
    o.setZero();
    for (std::size_t i : indices) {
      const auto row = a_.row(static_cast<Eigen::Index>(i));
      o.noalias() += row.dot(vv) * row.transpose();
    }
    o *= T(1) / static_cast<T>(indices.size());
  }

  /// ℓ(z) = ‖Az − b‖² / 2n over all samples.
  double loss(std::span<const T> z) const {
    detail::require_size(z.size(), z_.size(), "least_squares_problem::loss", "z");
    const Eigen::Map<const vector> zz(z.data(), static_cast<Eigen::Index>(z.size()));
    const vector r = a_ * zz - b_;
    return 0.5 * static_cast<double>(r.squaredNorm()) / static_cast<double>(a_.rows());
  }

  /// θ*(m) = argmin_θ ℓ(m⊙θ) + (γ/2)‖θ‖², in closed form (computed in double). m may be relaxed (any real values).
  Eigen::VectorXd lower_solution(std::span<const T> m, double gamma) const {
    detail::require_size(m.size(), z_.size(), "least_squares_problem::lower_solution", "m");
    if (!(gamma > 0.0) || !std::isfinite(gamma))
      throw std::invalid_argument("least_squares_problem::lower_solution(): gamma must be finite and > 0");
    const Eigen::MatrixXd a = a_.template cast<double>();
    const Eigen::VectorXd b = b_.template cast<double>();
    const Eigen::Index n = a.rows(), d = a.cols();
    Eigen::VectorXd mm(d);
    for (Eigen::Index j = 0; j < d; ++j) mm(j) = static_cast<double>(m[static_cast<std::size_t>(j)]);
    const Eigen::MatrixXd ad = a * mm.asDiagonal();  // A D
    const double nn = static_cast<double>(n);
    if (n < d) {
      Eigen::MatrixXd k = ad * ad.transpose() / nn;
      k.diagonal().array() += gamma;
      return ad.transpose() * k.ldlt().solve(b) / nn;
    }
    Eigen::MatrixXd k = ad.transpose() * ad / nn;
    k.diagonal().array() += gamma;
    return k.ldlt().solve(ad.transpose() * b / nn);
  }

  /// F(m) = ℓ(m⊙θ*(m)), the upper objective of BiP with the lower problem solved exactly.
  double upper_objective(std::span<const T> m, double gamma) const {
    const Eigen::VectorXd theta = lower_solution(m, gamma);
    Eigen::VectorXd z(theta.size());
    for (Eigen::Index j = 0; j < theta.size(); ++j) z(j) = static_cast<double>(m[static_cast<std::size_t>(j)]) * theta(j);
    const Eigen::VectorXd r = a_.template cast<double>() * z - b_.template cast<double>();
    return 0.5 * r.squaredNorm() / static_cast<double>(a_.rows());
  }

  /// The least-norm minimiser of ‖Az − b‖: A⁺b (complete orthogonal decomposition, in double).
  Eigen::VectorXd least_norm_solution() const {
    const Eigen::MatrixXd a = a_.template cast<double>();
    return a.completeOrthogonalDecomposition().solve(b_.template cast<double>());
  }

 private:
  bool is_full_batch(std::span<const std::size_t> indices) const noexcept {
    if (indices.size() != num_samples()) return false;
    for (std::size_t i = 0; i < indices.size(); ++i)
      if (indices[i] != i) return false;
    return true;
  }

  // ∇ℓ = G_{:,S} z_S − c over the non-zeros S of z, with G_{:,S} gathered into a contiguous block that is kept while
  // S stays the same (between upper steps of BiP, the lower steps change z only on the same support).
  double gram_loss_and_gradient() {
    const auto d = static_cast<Eigen::Index>(z_.size()), s = static_cast<Eigen::Index>(nonzeros_.size());
    if (nonzeros_ != block_index_) {
      block_index_ = nonzeros_;
      block_.resize(d, s);
      for (Eigen::Index j = 0; j < s; ++j) block_.col(j) = gram_.col(static_cast<Eigen::Index>(nonzeros_[static_cast<std::size_t>(j)]));
    }
    z_support_.resize(s);
    double zc = 0.0;
    for (Eigen::Index j = 0; j < s; ++j) {
      const auto i = static_cast<Eigen::Index>(nonzeros_[static_cast<std::size_t>(j)]);
      z_support_(j) = static_cast<double>(z_[static_cast<std::size_t>(i)]);
      zc += z_support_(j) * gram_c_(i);
    }
    Eigen::VectorXd& g = gram_g_;
    g = -gram_c_;
    g.noalias() += block_ * z_support_;
    double zg = 0.0;
    for (Eigen::Index j = 0; j < s; ++j) zg += z_support_(j) * g(static_cast<Eigen::Index>(nonzeros_[static_cast<std::size_t>(j)]));
    for (Eigen::Index j = 0; j < d; ++j) g_[static_cast<std::size_t>(j)] = static_cast<T>(g(j));
    return 0.5 * (zg - zc + gram_bb_);
  }

  void check_batch(std::span<const std::size_t> indices, const char* func) const {
    if (indices.empty())
      throw std::invalid_argument(std::string("least_squares_problem::") + func + "(): indices must not be empty");
    for (std::size_t i : indices)
      if (i >= num_samples())
        throw std::invalid_argument(std::string("least_squares_problem::") + func + "(): index " + std::to_string(i) +
                                    " out of range");
  }

  matrix a_;
  vector b_;
  std::vector<T> z_, g_;
  std::vector<parameter<T>> params_;
  Eigen::MatrixXd gram_;    // AᵀA/n when cache_gram() was called
  Eigen::VectorXd gram_c_;  // Aᵀb/n
  Eigen::VectorXd gram_g_;  // G z − c, reused
  double gram_bb_ = 0.0;    // ‖b‖²/n
  std::vector<std::size_t> nonzeros_, block_index_;  // S, and the S that block_ holds
  Eigen::MatrixXd block_;                            // G_{:,S}
  Eigen::VectorXd z_support_;                        // z_S
};

/// The sparse-recovery instance of make_planted_regression.
struct planted_regression_spec {
  std::size_t samples = 200;    ///< n
  std::size_t features = 1000;  ///< d
  std::size_t nonzeros = 20;    ///< k, the size of the planted support
  double min_magnitude = 1.0;   ///< |x_j| uniform in [min_magnitude, max_magnitude] on the support, random sign
  double max_magnitude = 2.0;
  double snr = 10.0;            ///< signal-to-noise power ratio ‖Ax‖² / (n σ²)
};

/// A drawn instance: b = A x_true + σ ε with A_ij, ε_i ~ N(0, 1).
template <class T>
struct planted_regression {
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> a;
  Eigen::Matrix<T, Eigen::Dynamic, 1> b;
  Eigen::VectorXd x_true;
  std::vector<std::size_t> support;  ///< sorted indices of the non-zeros of x_true
  double noise_sd = 0.0;             ///< σ
};

/// Draws a planted regression instance from `seed` (portable: same seed, same bits everywhere).
/// Throws std::invalid_argument on samples/features = 0, nonzeros > features, magnitudes not 0 ≤ lo ≤ hi, snr ≤ 0.
template <class T>
planted_regression<T> make_planted_regression(const planted_regression_spec& spec, std::uint64_t seed) {
  if (spec.samples == 0 || spec.features == 0)
    throw std::invalid_argument("make_planted_regression(): samples and features must be >= 1");
  if (spec.nonzeros > spec.features)
    throw std::invalid_argument("make_planted_regression(): nonzeros must be <= features");
  if (!(spec.min_magnitude >= 0.0 && spec.min_magnitude <= spec.max_magnitude && std::isfinite(spec.max_magnitude)))
    throw std::invalid_argument("make_planted_regression(): magnitudes must satisfy 0 <= min_magnitude <= max_magnitude");
  if (!(spec.snr > 0.0 && std::isfinite(spec.snr)))
    throw std::invalid_argument("make_planted_regression(): snr must be finite and > 0");
  detail::rng g(seed);
  const auto n = static_cast<Eigen::Index>(spec.samples), d = static_cast<Eigen::Index>(spec.features);
  planted_regression<T> out;
  Eigen::MatrixXd a(n, d);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < d; ++j) a(i, j) = g.normal();
  std::vector<std::size_t> perm = detail::permutation(spec.features, g);
  out.support.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(spec.nonzeros));
  std::sort(out.support.begin(), out.support.end());
  out.x_true = Eigen::VectorXd::Zero(d);
  for (std::size_t j : out.support) {
    const double magnitude = spec.min_magnitude + (spec.max_magnitude - spec.min_magnitude) * g.uniform();
    out.x_true(static_cast<Eigen::Index>(j)) = g.uniform() < 0.5 ? -magnitude : magnitude;
  }
  const Eigen::VectorXd signal = a * out.x_true;
  out.noise_sd = std::sqrt(signal.squaredNorm() / (static_cast<double>(n) * spec.snr));
  Eigen::VectorXd b = signal;
  for (Eigen::Index i = 0; i < n; ++i) b(i) += out.noise_sd * g.normal();
  out.a = a.template cast<T>();
  out.b = b.template cast<T>();
  return out;
}

}  // namespace bipq
