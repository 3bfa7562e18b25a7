// Mask operators against the memory-bound reference, a plain Σ|x| over the same floats (BM_sum_abs).
// Sizes 1e3 .. 1e7 floats; the targets at 1e7 on one core: top_k within 10×, capped_simplex within 15× of
// BM_sum_abs.
// Run: taskset -c 1 bench_mask --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "bipq/mask/apply.hpp"
#include "bipq/mask/capped_simplex.hpp"
#include "bipq/mask/n_m.hpp"
#include "bipq/mask/top_k.hpp"

namespace {

std::vector<float> normal_floats(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

void set_counters(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(n));
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(n * sizeof(float)));
}

/// Σ|x_i| with 32 independent partial sums, so that the compiler vectorises it without -ffast-math and the loop
/// runs at memory speed: the reference a one-pass operator cannot beat.
float sum_abs(const std::vector<float>& x) {
  constexpr std::size_t lanes = 32;
  float acc[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= x.size(); i += lanes) {
    for (std::size_t j = 0; j < lanes; ++j) acc[j] += std::abs(x[i + j]);
  }
  float s = 0.0f;
  for (; i < x.size(); ++i) s += std::abs(x[i]);
  for (float a : acc) s += a;
  return s;
}

void BM_sum_abs(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::vector<float> x = normal_floats(n, 1);
  for (auto _ : state) benchmark::DoNotOptimize(sum_abs(x));
  set_counters(state, n);
}

// Keep 10% by value of the scores.
void BM_top_k(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::vector<float> scores = normal_floats(n, 2);
  std::vector<float> mask(n);
  for (auto _ : state) {
    bipq::top_k_mask<float>(scores, n / 10, mask);
    benchmark::DoNotOptimize(mask.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// Keep 10% by |w|.
void BM_magnitude_mask(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::vector<float> w = normal_floats(n, 3);
  std::vector<float> mask(n);
  for (auto _ : state) {
    bipq::magnitude_mask<float>(w, n / 10, mask);
    benchmark::DoNotOptimize(mask.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// The alternative selection, for comparison: std::nth_element on a copy of the values, then one pass writing the
// mask with the same tie rule.
void BM_top_k_nth_element(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::size_t k = n / 10;
  const std::vector<float> scores = normal_floats(n, 2);
  std::vector<float> mask(n), work(n);
  for (auto _ : state) {
    std::copy(scores.begin(), scores.end(), work.begin());
    std::nth_element(work.begin(), work.begin() + std::ptrdiff_t(k - 1), work.end(), std::greater<float>());
    const float t = work[k - 1];
    std::size_t above = 0;
    for (std::size_t i = 0; i + 1 < k; ++i) above += work[i] > t;
    std::size_t ties = k - above;
    for (std::size_t i = 0; i < n; ++i) {
      const bool keep = scores[i] > t || (scores[i] == t && ties > 0 && ties--);
      mask[i] = keep ? 1.0f : 0.0f;
    }
    benchmark::DoNotOptimize(mask.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// Ten tensors of n / 10 each, 10% kept globally.
void BM_top_k_global(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  std::vector<std::vector<float>> scores, masks;
  for (std::uint64_t j = 0; j < 10; ++j) {
    scores.push_back(normal_floats(n / 10, 10 + j));
    masks.emplace_back(n / 10);
  }
  std::vector<std::span<const float>> s(scores.begin(), scores.end());
  std::vector<std::span<float>> m(masks.begin(), masks.end());
  for (auto _ : state) {
    bipq::top_k_mask_global<float>(s, n / 10, m);
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// Relaxed mask: projection onto {m ∈ [0,1]^n : 1ᵀm ≤ 0.1 n} of scores around 0.5.
void BM_capped_simplex(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  std::vector<float> v = normal_floats(n, 4);
  for (auto& x : v) x = 0.5f + 0.5f * x;
  std::vector<float> out(n);
  for (auto _ : state) {
    bipq::capped_simplex_projection<float>(v, 0.1 * double(n), out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// 2:4 on a linear weight [n / 1000, 1000].
void BM_n_m(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::vector<float> w = normal_floats(n, 5);
  const std::size_t shape[2] = {n / 1000, 1000};
  std::vector<float> mask(n);
  for (auto _ : state) {
    bipq::n_m_mask<float>(w, shape, 2, 4, mask);
    benchmark::DoNotOptimize(mask.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// 2:4 on a conv weight [K, 64, 3, 3] (groups strided by 9 along C).
void BM_n_m_conv(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  const std::size_t k = std::max<std::size_t>(1, n / (64 * 9));
  const std::vector<float> w = normal_floats(k * 64 * 9, 6);
  const std::size_t shape[4] = {k, 64, 3, 3};
  std::vector<float> mask(w.size());
  for (auto _ : state) {
    bipq::n_m_mask<float>(w, shape, 2, 4, mask);
    benchmark::DoNotOptimize(mask.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, w.size());
}

void BM_apply_mask(benchmark::State& state) {
  const std::size_t n = std::size_t(state.range(0));
  std::vector<float> w = normal_floats(n, 7), mask(n);
  bipq::magnitude_mask<float>(w, n / 10, mask);
  for (auto _ : state) {
    bipq::apply_mask<float>(w, mask);
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

}  // namespace

BENCHMARK(BM_sum_abs)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_k)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_magnitude_mask)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_k_nth_element)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_k_global)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_capped_simplex)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_n_m)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_n_m_conv)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_apply_mask)->RangeMultiplier(10)->Range(1000, 10000000)->Unit(benchmark::kMicrosecond);
