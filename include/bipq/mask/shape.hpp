#pragma once
// Shape checks shared by the structured mask operators (group top-k, N:M).

#include <cstddef>
#include <limits>
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

}  // namespace bipq::detail
