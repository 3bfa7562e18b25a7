#pragma once
// Stochastic gradient descent with momentum, Nesterov momentum and decoupled-from-the-model weight decay, over
// flat parameter tensors, plus the cosine learning-rate schedule. Used by the bi-level solver's lower level, by the
// pruning drivers and by the CNN adapters; it knows nothing of models, only of flat arrays.
//
// Update (PyTorch's convention, Sutskever et al. 2013 for Nesterov), for each tensor with gradient g and θ:
//   d = g + λ θ;   v ← μ v + d;   θ ← θ − α (nesterov ? d + μ v : v)
// With a mask m (0/1), the caller passes g = m ⊙ ∇_z ℓ; entries with m = 0, θ = 0 and v = 0 then stay exactly 0.

#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace bipq {

struct sgd_params {
  double learning_rate = 0.05;  ///< α, the base learning rate (> 0)
  double momentum = 0.9;        ///< μ in [0, 1)
  bool nesterov = false;        ///< Nesterov momentum (requires μ > 0)
  double weight_decay = 5e-4;   ///< λ ≥ 0, L2 penalty (λ/2)‖θ‖² added to the gradient as λθ

  /// Throws std::invalid_argument naming the field.
  void validate() const {
    if (!(learning_rate > 0.0) || !std::isfinite(learning_rate))
      throw std::invalid_argument("sgd_params: 'learning_rate' must be finite and > 0");
    if (!(momentum >= 0.0 && momentum < 1.0)) throw std::invalid_argument("sgd_params: 'momentum' must be in [0, 1)");
    if (nesterov && momentum == 0.0) throw std::invalid_argument("sgd_params: 'nesterov' requires momentum > 0");
    if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay))
      throw std::invalid_argument("sgd_params: 'weight_decay' must be finite and >= 0");
  }
};

/// SGD state (one velocity buffer per tensor). `step` updates one tensor in place.
template <class T>
class sgd {
 public:
  /// `sizes[i]` is the number of elements of tensor i.
  sgd(sgd_params params, const std::vector<std::size_t>& sizes) : params_(params) {
    params_.validate();
    velocity_.reserve(sizes.size());
    for (std::size_t n : sizes) velocity_.emplace_back(n, T(0));
  }

  const sgd_params& params() const noexcept { return params_; }

  /// θ_i ← SGD step with gradient g and learning rate `lr`; `weight_decay` overrides λ for this tensor (biases
  /// and norms are usually not decayed). Throws std::invalid_argument on a size mismatch, or if lr or weight_decay is
  /// NaN, infinite or negative (lr = 0, the end of a cosine schedule, is allowed).
  void step(std::size_t i, std::span<T> theta, std::span<const T> grad, double lr, double weight_decay) {
    if (i >= velocity_.size()) throw std::invalid_argument("sgd::step(): tensor index out of range");
    if (!(lr >= 0.0) || !std::isfinite(lr))
      throw std::invalid_argument("sgd::step(): lr must be finite and >= 0 (lr = " + std::to_string(lr) + ")");
    if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay))
      throw std::invalid_argument("sgd::step(): weight_decay must be finite and >= 0");
    std::vector<T>& v = velocity_[i];
    if (theta.size() != v.size() || grad.size() != v.size())
      throw std::invalid_argument("sgd::step(): theta/grad size differs from the size given at construction");
    const T a = static_cast<T>(lr), mu = static_cast<T>(params_.momentum), wd = static_cast<T>(weight_decay);
    const std::size_t n = v.size();
    T* __restrict th = theta.data();
    const T* __restrict g = grad.data();
    T* __restrict vel = v.data();
    if (params_.nesterov) {
      for (std::size_t j = 0; j < n; ++j) {
        const T d = g[j] + wd * th[j];
        vel[j] = mu * vel[j] + d;
        th[j] -= a * (d + mu * vel[j]);
      }
    } else {
      for (std::size_t j = 0; j < n; ++j) {
        vel[j] = mu * vel[j] + (g[j] + wd * th[j]);
        th[j] -= a * vel[j];
      }
    }
  }

  /// Sets v_i to 0 where mask_i is 0 (after a pruning step, so momentum cannot revive a pruned weight).
  void mask_velocity(std::size_t i, std::span<const T> mask) {
    std::vector<T>& v = velocity_.at(i);
    if (mask.size() != v.size()) throw std::invalid_argument("sgd::mask_velocity(): mask size differs");
    for (std::size_t j = 0; j < v.size(); ++j) v[j] *= mask[j];
  }

  /// The velocity buffers, one per tensor, of fixed sizes (checkpoints save and restore them).
  std::vector<std::span<T>> velocity() { return {velocity_.begin(), velocity_.end()}; }

  /// Forgets all momentum.
  void reset() {
    for (auto& v : velocity_) std::fill(v.begin(), v.end(), T(0));
  }

 private:
  sgd_params params_;
  std::vector<std::vector<T>> velocity_;
};

/// Cosine annealing (Loshchilov & Hutter 2017) from `base` at step 0 to `final_lr` at step `total`:
/// α_t = final + (base − final)(1 + cos(π t / total)) / 2. Steps beyond `total` keep `final_lr`.
inline double cosine_learning_rate(double base, std::size_t t, std::size_t total, double final_lr = 0.0) {
  if (total == 0 || t >= total) return total == 0 ? base : final_lr;
  const double c = std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(total));
  return final_lr + (base - final_lr) * 0.5 * (1.0 + c);
}

}  // namespace bipq
