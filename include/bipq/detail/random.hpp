#pragma once
// Portable, seeded randomness: the same seed gives the same numbers with every compiler and standard library
// (std::shuffle and std::normal_distribution are implementation-defined, so bipq does not use them).

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

namespace bipq::detail {

/// xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64. Satisfies UniformRandomBitGenerator.
class rng {
 public:
  using result_type = std::uint64_t;
  explicit rng(std::uint64_t seed = 0) noexcept {
    for (auto& s : state_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return ~result_type(0); }
  result_type operator()() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  /// The generator's state, to resume its sequence exactly (checkpoints).
  std::array<std::uint64_t, 4> state() const noexcept { return {state_[0], state_[1], state_[2], state_[3]}; }
  void set_state(const std::array<std::uint64_t, 4>& s) noexcept {
    for (std::size_t i = 0; i < 4; ++i) state_[i] = s[i];
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n > 0, without bias (rejection of the top partial range).
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t limit = max() - max() % n;  // accept values in [0, limit): limit is a multiple of n
    std::uint64_t x = (*this)();
    while (x >= limit) x = (*this)();
    return x % n;
  }
  /// Standard normal by Box–Muller (one value per call; the pair's second value is discarded for simplicity).
  double normal() noexcept {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4]{};
};

/// Fisher–Yates shuffle driven by `g`.
template <class T>
void shuffle(std::span<T> x, rng& g) noexcept {
  for (std::size_t i = x.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(g.below(i));
    std::swap(x[i - 1], x[j]);
  }
}

/// 0, 1, ..., n-1 in a seeded random order.
inline std::vector<std::size_t> permutation(std::size_t n, rng& g) {
  std::vector<std::size_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;
  shuffle(std::span<std::size_t>(p), g);
  return p;
}

}  // namespace bipq::detail
