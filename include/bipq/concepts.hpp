#pragma once
// bipq concepts: what a tensor must offer to be measured and masked, and what a model must offer to be pruned.
//
// The structural fact every problem here shares: a loss depends on the mask m and the weights θ only through
// z = m ⊙ θ. A model therefore never sees masks. It exposes its parameters (name, shape, kind, and storage for the
// effective values z and the gradient ∇_z ℓ) and computes ℓ(z) and ∇_z ℓ on a mini-batch. bipq owns θ and m,
// writes z into the model and applies the product rule itself: ∇_θ ℓ(m⊙θ) = m⊙g, ∇_m ℓ(m⊙θ) = θ⊙g, g = ∇_z ℓ(z).

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/tensor_traits.hpp"

namespace bipq {

namespace detail {
template <class T>
using data_pointer_t = decltype(std::declval<T&>().data());

template <class T>
using data_value_t = std::remove_cv_t<std::remove_pointer_t<data_pointer_t<T>>>;
}  // namespace detail

/// flat_tensor: contiguous storage of a floating-point type, seen as one flat array in storage order.
///   1. `t.data()` returns a pointer to a floating-point element type (float, double, long double);
///   2. `t.size()` returns the number of elements;
///   3. the elements `data()[0 .. size())` are the tensor (no offset, no stride), as `tensor_traits<T>::flat` says:
///      a type that reports an offset or strides is flat only through its adapter's specialisation;
///   4. it is not a lazy expression: Eigen products and cwise expressions, xtensor functions and views, have no
///      usable `data()` and are rejected; evaluate them first (`Eigen::MatrixXf m = a * b;`, `xt::xarray<float> a = v;`).
/// Models: std::vector, std::array, std::span, any type with data() and size() and no layout of its own; with
/// bipq/adapters/eigen/tensor.hpp, Eigen Matrix, Array, Map (and Tensor, TensorMap, which need no adapter); with
/// bipq/adapters/xtensor/tensor.hpp, xtensor xarray, xtensor, xtensor_fixed, adaptors. An Eigen Block or Map with a
/// stride satisfies the syntax but is rejected at run time by `as_span` (bipq never silently reads a
/// non-contiguous block as if it were contiguous).
template <class T>
concept flat_tensor = requires(T& t) {
  { t.data() } -> std::convertible_to<const volatile void*>;
  { t.size() } -> std::convertible_to<std::size_t>;
} && std::is_pointer_v<detail::data_pointer_t<T>> && std::floating_point<detail::data_value_t<T>> &&
                      detail::flat_layout<T>;

/// The element type of a flat tensor (cv-qualifiers removed).
template <flat_tensor T>
using scalar_of_t = detail::data_value_t<T>;

/// A flat tensor whose elements are exactly `Scalar`.
template <class T, class Scalar>
concept flat_tensor_of = flat_tensor<T> && std::same_as<scalar_of_t<T>, Scalar>;

/// What a parameter is, so that drivers can choose what is prunable (by default conv and linear weights; biases and
/// normalisation parameters never).
enum class parameter_kind { conv_weight, linear_weight, bias, norm, other };

/// One named parameter tensor of a model. The storage is owned by the model and must stay valid, at the same
/// address, for the model's lifetime (a model is not moved while bipq holds its parameters).
template <std::floating_point T>
struct parameter {
  std::string name;                ///< e.g. "conv1.weight"
  std::vector<std::size_t> shape;  ///< row-major, e.g. {K, C, R, S} for a conv weight, {out, in} for a linear one
  parameter_kind kind = parameter_kind::other;
  std::span<T> value;  ///< the effective weights z = m ⊙ θ used by the forward pass; bipq writes them
  std::span<T> grad;   ///< ∇_z ℓ, written by the model in `loss_and_gradient`; same size as `value`
};

/// True for the kinds that are pruned unless the user says otherwise.
constexpr bool prunable_by_default(parameter_kind kind) noexcept {
  return kind == parameter_kind::conv_weight || kind == parameter_kind::linear_weight;
}

/// bilevel_problem: a loss ℓ(z) over named parameters z, computed on mini-batches of a training set.
///   1. `P::scalar_type` is the floating-point type of the parameters;
///   2. `p.parameters()` gives the parameters as something convertible to `std::span<const parameter<scalar_type>>`
///      (a `const std::vector<parameter<T>>&` does); the list and the storage it points to do not change;
///   3. `p.num_samples()` is the number of training samples, indexed 0 .. num_samples()-1;
///   4. `p.loss_and_gradient(indices)` evaluates the mean loss over the samples `indices` (a `std::span<const
///      std::size_t>`) at the current values, writes ∇_z of that mean loss into every parameter's `grad`, and
///      returns the loss. It may update internal training state (batch-norm running statistics).
/// Optional, detected with `requires`:
///   - `p.hessian_vector_product(indices, v, out)`: out = ∇²_z ℓ · v over the parameters concatenated in order
///     (`v`, `out` are `std::span<const T>` / `std::span<T>`); used by the exact implicit gradient on toy problems.
template <class P>
concept bilevel_problem = requires(P& p, std::span<const std::size_t> indices) {
  typename P::scalar_type;
  requires std::floating_point<typename P::scalar_type>;
  { p.parameters() } -> std::convertible_to<std::span<const parameter<typename P::scalar_type>>>;
  { p.num_samples() } -> std::convertible_to<std::size_t>;
  { p.loss_and_gradient(indices) } -> std::convertible_to<double>;
};

/// A bilevel_problem that also offers ∇²_z ℓ · v.
template <class P>
concept has_hessian_vector_product =
    bilevel_problem<P> && requires(P& p, std::span<const std::size_t> indices,
                                   std::span<const typename P::scalar_type> v, std::span<typename P::scalar_type> out) {
      p.hessian_vector_product(indices, v, out);
    };

/// Loss and accuracy of a model on held-out data.
struct evaluation {
  double loss = 0.0;
  double accuracy = 0.0;  ///< fraction in [0, 1]
};

/// trainable_model: a bilevel_problem that can also be evaluated on held-out (test) data; what pruning drivers need.
///   1. all of bilevel_problem;
///   2. `m.evaluate()` returns an `evaluation` (loss and accuracy on the test set, inference mode, no state change).
template <class M>
concept trainable_model = bilevel_problem<M> && requires(M& m) {
  { m.evaluate() } -> std::convertible_to<evaluation>;
};

namespace detail {
template <class P>
struct problem_scalar {
  using type = float;  // not a problem: only so that the signature forms and check_bilevel_problem can speak
};
template <class P>
  requires requires { typename P::scalar_type; }
struct problem_scalar<P> {
  using type = typename P::scalar_type;
};
}  // namespace detail

/// P::scalar_type, in the signatures of the solvers and drivers, which take any type and check it in their body
/// with check_bilevel_problem (a readable message instead of "no matching function").
template <class P>
using problem_scalar_t = typename detail::problem_scalar<P>::type;

/// Instantiating this function with a type that does not model `bilevel_problem` says which requirement fails.
template <class P>
constexpr bool check_bilevel_problem() {
  static_assert(requires { typename P::scalar_type; },
                "bipq: a problem must declare `using scalar_type = float;` (or double)");
  if constexpr (requires { typename P::scalar_type; }) {
    using T = typename P::scalar_type;
    static_assert(std::floating_point<T>, "bipq: a problem's scalar_type must be a floating-point type");
    static_assert(requires(P& p) {
      { p.parameters() } -> std::convertible_to<std::span<const parameter<T>>>;
    }, "bipq: a problem must have `parameters()` returning e.g. `const std::vector<bipq::parameter<scalar_type>>&`");
    static_assert(requires(P& p) {
      { p.num_samples() } -> std::convertible_to<std::size_t>;
    }, "bipq: a problem must have `std::size_t num_samples()`");
    static_assert(requires(P& p, std::span<const std::size_t> i) {
      { p.loss_and_gradient(i) } -> std::convertible_to<double>;
    }, "bipq: a problem must have `double loss_and_gradient(std::span<const std::size_t> indices)` that writes "
       "the gradient with respect to z into every parameter's grad");
  }
  return true;
}

}  // namespace bipq
