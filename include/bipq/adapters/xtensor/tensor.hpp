#pragma once
// xtensor types as bipq tensors: containers (xarray, xtensor, xtensor_fixed, adaptors) are flat_tensor; views
// (xview, strided views) expose the data() of the container they look into, with an offset and strides, and are not.
// Every header of the xtensor adapter includes this one; include it (or bipq/adapters/xtensor.hpp) before passing
// xtensor types to the core.

#include <type_traits>

#if __has_include(<xtensor/containers/xcontainer.hpp>)  // newer xtensor keeps its headers in subfolders
#include <xtensor/containers/xcontainer.hpp>
#else
#include <xtensor/xcontainer.hpp>
#endif

#include "bipq/tensor_traits.hpp"

namespace bipq {

namespace xtensor_adapter {
/// An xtensor expression: a container, a view or a lazy function.
template <class T>
concept expression = xt::is_xexpression<T>::value;
}  // namespace xtensor_adapter

/// xtensor expressions: flat if they are containers, or if they report no offset (lazy functions have no data()
/// and are rejected by flat_tensor anyway).
template <xtensor_adapter::expression T>
struct tensor_traits<T> {
  static constexpr bool flat = std::is_base_of_v<xt::xcontainer<T>, T> || !requires(const T& t) { t.data_offset(); };
};

}  // namespace bipq
