#pragma once
// Checks shared by the mask operators: shapes of structured operators (group top-k, N:M), and a vectorised
// finiteness test.

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <span>
#include <stdexcept>
#include <string>

namespace bipq::detail {

/// "[a, b, c]" for messages.
inline std::string shape_string(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t d = 0; d < shape.size(); ++d) s += (d ? ", " : "") + std::to_string(shape[d]);
  return s + "]";
}

/// Product of the dimensions; throws std::invalid_argument naming `func` if the rank is below `min_rank`, the
/// product overflows, or it differs from `size` (the number of elements of the tensor).
inline std::size_t checked_shape_size(std::span<const std::size_t> shape, std::size_t size, std::size_t min_rank,
                                      const char* func) {
  if (shape.size() < min_rank) {
    throw std::invalid_argument(std::string(func) + "(): shape must have at least " + std::to_string(min_rank) +
                                " dimensions (got " + shape_string(shape) + ")");
  }
  std::size_t n = 1;
  for (std::size_t d : shape) {
    if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) {
      throw std::invalid_argument(std::string(func) + "(): shape " + shape_string(shape) + " overflows size_t");
    }
    n *= d;
  }
  if (n != size) {
    throw std::invalid_argument(std::string(func) + "(): shape " + shape_string(shape) + " has " + std::to_string(n) +
                                " elements but w has " + std::to_string(size));
  }
  return n;
}

/// True if every entry is finite; branch-free on the bits for float and double, so that it vectorises (the
/// message with the offending index comes from require_finite, called only when this fails).
template <class T>
bool all_finite(const T* x, std::size_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    using U = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
    constexpr U magnitude = std::numeric_limits<U>::max() >> 1;
    constexpr U exponent = std::is_same_v<T, float> ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    U bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad |= U((std::bit_cast<U>(x[i]) & magnitude) >= exponent);
    return bad == 0;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) return false;
    }
    return true;
  }
}

}  // namespace bipq::detail
