#pragma once
// The accuracy pq_index documents (docs/measures.md, "Numerics and speed"), as the tolerance of the tests that
// compare it with the definition.

#include <cmath>
#include <type_traits>

namespace bipq_test {

/// Rounding of the double sums and of the log-space combination: a few ulp of the index.
inline constexpr double pq_rounding = 1e-13;

/// |pq_index(w, p, q) − I| allowed for data of type T with index I. Float data take float square roots — relative
/// error ≤ 2^-24, the data's own precision — on the (½, 1) path and on the float pass (both exponents in
/// {½, 1, …, 4}); then S_e is within 2^-24 relatively for an exponent e that needs a root, and I = 1 − R moves by at
/// most R·(ε_p/p + ε_q/q). Every other case is exact to rounding.
template <class T>
double pq_accuracy(double index, double p, double q) {
  auto half_step = [](double e) { return 2 * e == std::floor(2 * e) && 2 * e >= 1 && 2 * e <= 8; };
  const bool float_roots = std::is_same_v<T, float> && ((p == 0.5 && q == 1.0) || (half_step(p) && half_step(q)));
  if (!float_roots) return pq_rounding;
  auto root_error = [](double e) { return e != std::floor(e) ? 0x1p-24 : 0.0; };
  return (1 - index) * (root_error(p) / p + root_error(q) / q) * 1.001 + pq_rounding;
}

}  // namespace bipq_test
