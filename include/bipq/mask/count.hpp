#pragma once
// The one place where a density (a fraction of entries kept) becomes a count of entries. Every mask operator, solver
// and driver calls kept_count, so a density means the same number of weights everywhere.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace bipq {

/// How kept_count rounds density · n.
///   nearest: to the nearest integer, halves away from zero (std::llround) — a target: "keep 5%";
///   up:      to the smallest integer ≥ density · n, with a 1e-9 slack so that 0.05 · 200 = 10.000000000000002 is
///            10, not 11 — a floor: "never keep fewer than 5%" (SAP's density floor).
enum class count_rounding { nearest, up };

/// The number of the n entries kept at `density`: round(density · n) (see count_rounding), clamped to [1, n] for
/// n ≥ 1 so that a positive density never empties a tensor and never keeps more than it has; 0 when n = 0.
/// density = 1 gives n; a tiny density gives 1.
/// Throws std::invalid_argument("kept_count(): 'density' must be in (0, 1], got ...") otherwise (NaN included).
inline std::size_t kept_count(double density, std::size_t n, count_rounding rounding = count_rounding::nearest) {
  if (!(density > 0.0 && density <= 1.0))
    throw std::invalid_argument("kept_count(): 'density' must be in (0, 1], got " + std::to_string(density));
  if (n == 0) return 0;
  const double x = density * static_cast<double>(n);
  const double r = rounding == count_rounding::nearest ? static_cast<double>(std::llround(x)) : std::ceil(x - 1e-9);
  return std::clamp<std::size_t>(static_cast<std::size_t>(r), 1, n);  // r > −1: the cast truncates to ≥ 0
}

}  // namespace bipq
