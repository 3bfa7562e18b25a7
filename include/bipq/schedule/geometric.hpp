#pragma once
// Geometric pruning schedule of iterative magnitude pruning (Frankle & Carbin 2019, "The Lottery Ticket
// Hypothesis"): every round removes a fixed fraction `rate` of the surviving weights, so after round t the model
// keeps n (1 − rate)^t of its n prunable weights, until the target count.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace bipq {

/// Kept counts after rounds 1, 2, ..., T: k_t = max(k_target, round(n (1 − rate)^t)), the last one equal to k_target.
/// Throws std::invalid_argument if rate ∉ (0, 1) or k_target > n.
inline std::vector<std::size_t> geometric_schedule(std::size_t n, std::size_t k_target, double rate = 0.2) {
  if (!(rate > 0.0 && rate < 1.0)) throw std::invalid_argument("geometric_schedule(): rate must be in (0, 1)");
  if (k_target > n)
    throw std::invalid_argument("geometric_schedule(): k_target (" + std::to_string(k_target) +
                                ") exceeds n (" + std::to_string(n) + ")");
  std::vector<std::size_t> kept;
  std::size_t previous = n;
  for (int t = 1; previous > k_target; ++t) {
    const double ideal = std::round(static_cast<double>(n) * std::pow(1.0 - rate, t));
    std::size_t k = ideal <= static_cast<double>(k_target) ? k_target : static_cast<std::size_t>(ideal);
    if (k >= previous) k = previous - 1;  // tiny n: always make progress
    kept.push_back(k);
    previous = k;
  }
  return kept;
}

/// Rounds needed to reach a density with per-round rate: ⌈log(density) / log(1 − rate)⌉, the smallest t with
/// (1 − rate)^t ≤ density (log(1 − rate) as log1p(−rate), exact also where 1 − rate rounds to 1). Throws
/// std::invalid_argument if density ∉ (0, 1], rate ∉ (0, 1), or the count exceeds 2^53 (a rate so small that the
/// count is no longer an exact double, let alone a number of training runs).
inline std::size_t geometric_rounds(double density, double rate = 0.2) {
  if (!(density > 0.0 && density <= 1.0)) throw std::invalid_argument("geometric_rounds(): density must be in (0, 1]");
  if (!(rate > 0.0 && rate < 1.0)) throw std::invalid_argument("geometric_rounds(): rate must be in (0, 1)");
  const double rounds = std::ceil(std::log(density) / std::log1p(-rate) - 1e-12);
  if (!(rounds <= 9007199254740992.0))  // 2^53
    throw std::invalid_argument("geometric_rounds(): rate " + std::to_string(rate) +
                                " is too small: reaching density " + std::to_string(density) +
                                " would take more than 2^53 rounds");
  return static_cast<std::size_t>(std::max(rounds, 0.0));
}

}  // namespace bipq
