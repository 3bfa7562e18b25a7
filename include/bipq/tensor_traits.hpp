#pragma once
// tensor_traits: the customisation point through which an adapter tells the core how a container family lays out
// its elements. The core knows only the standard library; what makes an Eigen block or an xtensor view unfit to be
// read as one flat array is said by specialisations in bipq/adapters/eigen/tensor.hpp and
// bipq/adapters/xtensor/tensor.hpp.

#include <concepts>
#include <type_traits>

namespace bipq {

namespace detail {
/// A type that reports an offset or strides (xtensor containers and views, Eigen matrices, blocks and maps) may be a
/// view whose `data()` points into storage that its elements do not fill in order.
template <class T>
concept exposes_layout = requires(const T& t) { t.data_offset(); } || requires(const T& t) { t.strides(); } ||
                         requires(const T& t) { t.innerStride(); } || requires(const T& t) { t.outerStride(); };
}  // namespace detail

/// tensor_traits<T>: what bipq knows of the layout of T (cv-qualifiers and references removed) beyond `data()` and
/// `size()`. A specialisation, full or partial with a constraint (`template <class T> requires my_family<T>
/// struct bipq::tensor_traits<T>`), has
///   1. `static constexpr bool flat`: true if, for a T with a floating-point `data()` and a `size()`, the elements
///      `data()[0 .. size())` are the tensor in storage order (false for views that expose the data() of their
///      parent with an offset and strides: such a T is not a flat_tensor);
///   2. optionally `static bool contiguous(const T& t)`: for a family where only some objects are flat (an Eigen
///      block, a map with a stride), checked by as_span at run time, which throws when it is false.
/// The primary template takes a type that exposes no layout (std::vector, std::array, std::span, Eigen::Tensor, a
/// user's own type with data() and size()) as flat. A type that exposes a layout — it has `data_offset()`,
/// `strides()`, `innerStride()` or `outerStride()` — may be a view, so without a specialisation it is *not* flat: an
/// Eigen or xtensor type used without its adapter is rejected at compile time, never read as flat by mistake.
/// Include bipq/adapters/eigen/tensor.hpp or bipq/adapters/xtensor/tensor.hpp (every header of an adapter does).
template <class T>
struct tensor_traits {
  static constexpr bool flat = !detail::exposes_layout<T>;
};

namespace detail {
template <class T>
using tensor_traits_of = tensor_traits<std::remove_cvref_t<T>>;

/// T is flat according to its tensor_traits. The comment on the line below is what a compiler shows when it is not.
template <class T>
concept flat_layout = tensor_traits_of<T>::flat;  // false? Eigen, xtensor types: #include bipq/adapters/*/tensor.hpp

/// T's tensor_traits check contiguity at run time.
template <class T>
concept layout_checked_at_run_time = requires(const T& t) {
  { tensor_traits_of<T>::contiguous(t) } -> std::same_as<bool>;
};
}  // namespace detail

}  // namespace bipq
