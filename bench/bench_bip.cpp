// BiP step cost on masked least squares: one upper + one lower step (two gradient evaluations, the implicit
// gradient, the score update and a global top-k), against one bare gradient evaluation of the same batch.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <vector>

#include "bipq/problems/least_squares.hpp"
#include "bipq/solver/bilevel.hpp"

namespace {

constexpr std::size_t samples = 64;
constexpr std::size_t batch = 16;

bipq::least_squares_problem<float>::matrix random_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::least_squares_problem<float>::matrix a(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(g.normal());
  return a;
}

bipq::least_squares_problem<float>::vector random_vector(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::least_squares_problem<float>::vector b(static_cast<Eigen::Index>(n));
  for (Eigen::Index i = 0; i < b.size(); ++i) b(i) = static_cast<float>(g.normal());
  return b;
}

/// One BiP iteration (lower_steps = 1) on d = state.range(0) weights, density 5%, first-order IG; each benchmark
/// iteration runs `state.range(1)` BiP iterations in one optimize() call, so the set-up (copying θ, the initial
/// top-k) is amortised over them. Items = BiP iterations.
void BM_bip_step(benchmark::State& state) {
  const auto d = static_cast<std::size_t>(state.range(0));
  const auto iterations = static_cast<std::size_t>(state.range(1));
  bipq::least_squares_problem<float> problem(random_matrix(samples, d, 1), random_vector(samples, 2));
  const std::vector<float> start = [&] {
    std::vector<float> v(d);
    bipq::detail::rng g(3);
    for (auto& x : v) x = static_cast<float>(g.normal());
    return v;
  }();
  bipq::bilevel_params p;
  p.iterations = iterations;
  p.lower_steps = 1;
  p.batch_size = batch;
  p.mask.density = 0.05;
  p.gamma = 1e-3;
  p.lower_learning_rate = 1e-3;
  p.upper_learning_rate = 1e-3;
  const bipq::bilevel_solver solver(p);
  for (auto _ : state) {
    state.PauseTiming();
    std::copy(start.begin(), start.end(), problem.parameters()[0].value.begin());
    state.ResumeTiming();
    auto r = bipq::bilevel_solver(solver).optimize(problem);
    benchmark::DoNotOptimize(r.masks[0].data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(iterations));
  // Bytes of A streamed per BiP iteration: two passes over a batch of rows.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(iterations) *
                          static_cast<std::int64_t>(2 * batch * d * sizeof(float)));
}
BENCHMARK(BM_bip_step)->Args({100000, 20})->Args({100000, 1})->Unit(benchmark::kMicrosecond);

/// One loss_and_gradient on the same batch size: the floor a BiP iteration (two of them) is measured against.
void BM_least_squares_gradient(benchmark::State& state) {
  const auto d = static_cast<std::size_t>(state.range(0));
  bipq::least_squares_problem<float> problem(random_matrix(samples, d, 1), random_vector(samples, 2));
  std::vector<std::size_t> idx(batch);
  for (std::size_t i = 0; i < batch; ++i) idx[i] = (i * 7) % samples;
  for (auto _ : state) {
    benchmark::DoNotOptimize(problem.loss_and_gradient(idx));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(batch * d * sizeof(float)));
}
BENCHMARK(BM_least_squares_gradient)->Arg(100000)->Unit(benchmark::kMicrosecond);

}  // namespace
