#pragma once
// The number of fields of an aggregate, for static_asserts that keep a list of a struct's fields complete.

#include <cstddef>
#include <utility>

namespace bipq::detail {

/// The number of fields of aggregate A (counted by initialising it from that many values convertible to anything):
/// the settings descriptions assert it, so a field added to a params struct fails to compile until it is described.
struct any_field {
  template <class U>
  operator U() const;
};
template <class A, std::size_t... I>
constexpr bool initialisable_from(std::index_sequence<I...>) {
  return requires { A{(void(I), any_field{})...}; };
}
template <class A, std::size_t N = 32>
constexpr std::size_t field_count() {
  if constexpr (N == 0) return 0;
  else if constexpr (initialisable_from<A>(std::make_index_sequence<N>{})) return N;
  else return field_count<A, N - 1>();
}

}  // namespace bipq::detail
