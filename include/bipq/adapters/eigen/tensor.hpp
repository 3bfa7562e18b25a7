#pragma once
// Eigen dense types as bipq tensors: Matrix, Array, Map, Ref and Block are flat_tensor, with their contiguity checked
// at run time (a block of a few rows, or a map with a stride, is not one flat array and as_span refuses it).
// Every header of the Eigen adapter, and bipq/problems/, include this one; include it (or bipq/adapters/eigen.hpp)
// before passing Eigen types to the core. Eigen::Tensor and TensorMap expose no strides and need no adapter.

#include <type_traits>

#include <Eigen/Core>

#include "bipq/tensor_traits.hpp"

namespace bipq {

namespace eigen {
/// An Eigen dense expression, matrix or array (anything derived from Eigen::DenseBase).
template <class T>
concept dense_type = std::is_base_of_v<Eigen::DenseBase<T>, T>;
}  // namespace eigen

/// Eigen dense types with direct access: their data() holds the elements in storage order when the inner stride is
/// 1 and the outer stride equals the inner size (or there is one outer slice). Lazy expressions have no data() and
/// are not flat_tensor whatever this says.
template <eigen::dense_type T>
struct tensor_traits<T> {
  static constexpr bool flat = true;
  static bool contiguous(const T& t) {
    if constexpr (requires { t.innerStride(); t.outerStride(); t.innerSize(); t.outerSize(); }) {
      return t.size() == 0 || (t.innerStride() == 1 && (t.outerSize() <= 1 || t.outerStride() == t.innerSize()));
    } else {
      return true;
    }
  }
};

}  // namespace bipq
