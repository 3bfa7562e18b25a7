// Sparsity measures against the memory-bound reference, a plain sum of |x|.
// Targets: on one core at n = 1e7 floats, pq_index within 2× of BM_sum_abs, for (0.5, 1) and (1, 2) and for general
// pairs such as (1, 3) (one pass with a running scale), half-integer pairs (0.5, 1.5), (1.5, 2.5) and a pair of
// other exponents, (0.7, 1.3).
// Run: bench_sparsity --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <vector>

#if __has_include(<experimental/simd>)
#include <experimental/simd>
#endif

#include "bipq/detail/random.hpp"
#include "bipq/sparsity/measures.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace {

std::vector<float> weights(std::size_t n) {
  bipq::detail::rng g(42);
  std::vector<float> w(n);
  for (auto& x : w) x = static_cast<float>(0.05 * g.normal());
  return w;
}

/// Σ|x_i| accumulated in double: the same loads, conversions and adds as pq_index's fast paths minus the second sum
/// and the max. Vectorised the same way (std::experimental::simd, 4 independent accumulators), because without
/// -ffast-math a compiler keeps a scalar `s += std::fabs(x)` loop in order, one add at a time.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // false reports from GCC 12's AVX-512 intrinsics
#endif
double sum_abs(const std::vector<float>& x) {
#if __has_include(<experimental/simd>)
  namespace stdx = std::experimental;
  using vf = stdx::native_simd<float>;
  using vd = stdx::rebind_simd_t<double, vf>;
  constexpr std::size_t lanes = vf::size();
  vd acc[4] = {vd(0), vd(0), vd(0), vd(0)};
  std::size_t i = 0;
  for (; i + 4 * lanes <= x.size(); i += 4 * lanes) {
    for (int u = 0; u < 4; ++u) {
      const vf a(x.data() + i + u * lanes, stdx::element_aligned);
      acc[u] += stdx::static_simd_cast<vd>(stdx::abs(a));
    }
  }
  double s = stdx::reduce(acc[0] + acc[1] + acc[2] + acc[3]);
#else
  double s = 0;
  std::size_t i = 0;
#endif
  for (; i < x.size(); ++i) s += std::fabs(static_cast<double>(x[i]));
  return s;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void set_counters(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n * sizeof(float)));
}

void BM_sum_abs(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(sum_abs(w));
  set_counters(state, w.size());
}

/// The cost of a separate first pass for max|w| (what a two-pass scaled computation would add).
void BM_max_abs(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    double check = 0;
    benchmark::DoNotOptimize(
        bipq::detail::simd_sums<bipq::detail::pq_path::general, float, void>(std::span<const float>(w), nullptr, check));
  }
  set_counters(state, w.size());
}

template <int P10, int Q10>  // p = P10/10, q = Q10/10
void BM_pq_index(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(bipq::pq_index(w, P10 / 10.0, Q10 / 10.0));
  set_counters(state, w.size());
}

void BM_pq_index_masked(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  std::vector<float> mask(w.size());
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 3 == 0) ? 0.0f : 1.0f;
  for (auto _ : state) benchmark::DoNotOptimize(bipq::pq_index(w, mask, 0.5, 1.0));
  set_counters(state, w.size());
}

void BM_hoyer(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(bipq::hoyer(w));
  set_counters(state, w.size());
}

void BM_gini_index(benchmark::State& state) {
  const auto w = weights(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(bipq::gini_index(w));
  set_counters(state, w.size());
}

}  // namespace

BENCHMARK(BM_sum_abs)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_max_abs)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<5, 10>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<10, 20>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<10, 30>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<5, 15>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<15, 25>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index<7, 13>)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pq_index_masked)->RangeMultiplier(10)->Range(1000, 10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_hoyer)->Arg(10'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_gini_index)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);
