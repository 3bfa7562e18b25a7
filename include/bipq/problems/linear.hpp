#pragma once
// A bi-level problem whose loss is linear in z, so BiP's Hessian-free assumption ∇²_z ℓ = 0 holds exactly and the
// first-order implicit gradient is the exact one:
//
//   ℓ_B(z) = (1/|B|) Σ_{i∈B} c_iᵀ z,   ∇_z ℓ_B = c̄_B = (1/|B|) Σ c_i,   ∇²_z ℓ_B = 0,
//   θ*(m) = −m⊙c̄/γ,   F(m) = ℓ(m⊙θ*(m)) = −Σ_j m_j² c̄_j² / γ,   dF/dm = −2 m⊙c̄²/γ = c̄⊙(θ* − m⊙c̄/γ).

#include <algorithm>
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

/// The linear problem over one parameter "w" (linear_weight, shape {d}); sample i is the row c_i of `c`.
/// Models has_hessian_vector_product (the product is 0). Not copyable: parameters() points into it.
template <std::floating_point T>
class linear_problem {
 public:
  using scalar_type = T;
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  /// Throws std::invalid_argument on an empty `c` or NaN/Inf.
  explicit linear_problem(matrix c) : c_(std::move(c)) {
    if (c_.rows() == 0 || c_.cols() == 0) throw std::invalid_argument("linear_problem(): c must not be empty");
    detail::require_finite(std::span<const T>(c_.data(), static_cast<std::size_t>(c_.size())), "linear_problem", "c");
    const auto d = static_cast<std::size_t>(c_.cols());
    z_.assign(d, T(0));
    g_.assign(d, T(0));
    params_.push_back(parameter<T>{"w", {d}, parameter_kind::linear_weight, std::span<T>(z_), std::span<T>(g_)});
  }
  linear_problem(const linear_problem&) = delete;
  linear_problem& operator=(const linear_problem&) = delete;

  const std::vector<parameter<T>>& parameters() const noexcept { return params_; }
  std::size_t num_samples() const noexcept { return static_cast<std::size_t>(c_.rows()); }

  /// ℓ_B(z) = c̄_Bᵀz; the gradient c̄_B goes into the parameter's grad.
  double loss_and_gradient(std::span<const std::size_t> indices) {
    check_batch(indices, "loss_and_gradient");
    const auto d = static_cast<Eigen::Index>(z_.size());
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> g(g_.data(), d);
    g.setZero();
    for (std::size_t i : indices) g += c_.row(static_cast<Eigen::Index>(i)).transpose();
    g /= static_cast<T>(indices.size());
    double loss = 0.0;
    for (std::size_t j = 0; j < z_.size(); ++j) loss += static_cast<double>(g_[j]) * static_cast<double>(z_[j]);
    return loss;
  }

  /// out = ∇²_z ℓ · v = 0.
  void hessian_vector_product(std::span<const std::size_t> indices, std::span<const T> v, std::span<T> out) const {
    check_batch(indices, "hessian_vector_product");
    detail::require_size(v.size(), z_.size(), "linear_problem::hessian_vector_product", "v");
    detail::require_size(out.size(), z_.size(), "linear_problem::hessian_vector_product", "out");
    std::fill(out.begin(), out.end(), T(0));
  }

 private:
  void check_batch(std::span<const std::size_t> indices, const char* func) const {
    if (indices.empty()) throw std::invalid_argument(std::string("linear_problem::") + func + "(): indices must not be empty");
    for (std::size_t i : indices)
      if (i >= num_samples())
        throw std::invalid_argument(std::string("linear_problem::") + func + "(): index " + std::to_string(i) +
                                    " out of range");
  }

  matrix c_;
  std::vector<T> z_, g_;
  std::vector<parameter<T>> params_;
};

/// A linear problem with n samples of d standard-normal coefficients (portable, seeded).
template <class T>
typename linear_problem<T>::matrix make_linear_coefficients(std::size_t n, std::size_t d, std::uint64_t seed) {
  if (n == 0 || d == 0) throw std::invalid_argument("make_linear_coefficients(): n and d must be >= 1");
  detail::rng g(seed);
  typename linear_problem<T>::matrix c(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  for (Eigen::Index i = 0; i < c.rows(); ++i)
    for (Eigen::Index j = 0; j < c.cols(); ++j) c(i, j) = static_cast<T>(g.normal());
  return c;
}

}  // namespace bipq
