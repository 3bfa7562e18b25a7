#pragma once
// Flat views over tensors: `as_span(t)` sees any flat_tensor as a std::span in storage order.

#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bipq/concepts.hpp"

namespace bipq {

/// The elements of `t` as a span, in storage order; const if `t` is. Throws std::invalid_argument if the
/// tensor_traits of `t` check contiguity at run time and `t` is not contiguous (an Eigen block or strided map:
/// `as_span(): tensor is not contiguous`).
template <flat_tensor T>
auto as_span(T& t) {
  using pointer = detail::data_pointer_t<T>;
  using element = std::remove_pointer_t<pointer>;
  if constexpr (detail::layout_checked_at_run_time<T>) {
    if (!detail::tensor_traits_of<T>::contiguous(t))
      throw std::invalid_argument("as_span(): tensor is not contiguous (a block or a strided map)");
  }
  return std::span<element>(t.data(), static_cast<std::size_t>(t.size()));
}

/// Overload for rvalue views (std::span, map temporaries): they refer to storage that outlives them.
template <flat_tensor T>
  requires(!std::is_lvalue_reference_v<T>)
auto as_span(T&& t) {
  return as_span(static_cast<T&>(t));
}

/// Spans over a list of tensors (a std::vector of matrices, say), for the functions that work across tensors.
template <class Range>
auto as_spans(Range& tensors) {
  using span_type = decltype(as_span(*std::begin(tensors)));
  std::vector<span_type> spans;
  for (auto& t : tensors) spans.push_back(as_span(t));
  return spans;
}

namespace detail {

/// Throws std::invalid_argument("<func>(): <arg> contains NaN or Inf (index i)") if some element is not finite.
template <class T>
void require_finite(std::span<const T> x, const char* func, const char* arg) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      throw std::invalid_argument(std::string(func) + "(): " + arg + " contains NaN or Inf (index " +
                                  std::to_string(i) + ")");
    }
  }
}

/// Throws std::invalid_argument("<func>(): <arg> has size a, expected b") on mismatch.
inline void require_size(std::size_t actual, std::size_t expected, const char* func, const char* arg) {
  if (actual != expected) {
    throw std::invalid_argument(std::string(func) + "(): " + arg + " has size " + std::to_string(actual) +
                                ", expected " + std::to_string(expected));
  }
}

}  // namespace detail
}  // namespace bipq
