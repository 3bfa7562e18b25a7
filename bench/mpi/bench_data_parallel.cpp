// The cost of data-parallel training over MPI against the step time, for LeNet-5 and the PQI paper's CNN (narrow
// default widths), on synthetic Fashion-MNIST-shaped data. Run on every rank at once:
//
//   mpirun -np 2 bench_data_parallel --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Every benchmark runs a fixed number of iterations, so that the ranks stay in step through the collectives; the
// figures are rank 0's (the other ranks print nothing). Benchmarks (model: 0 = LeNet-5, 1 = cnn):
//   local_step/model/batch          the model's own loss_and_gradient on `batch` samples (1 thread), on every rank
//                                   at the same time (the compute a rank does per step, with the others busy too)
//   data_parallel_step/model/batch  data_parallel::loss_and_gradient on a global batch: counters compute_ms and
//                                   reduce_ms split each step (reduce includes waiting for the slowest rank)
//   reduction/model                 data_parallel's gather, sum on rank 0 and broadcast alone, on a model with the
//                                   same number of parameters whose gradient costs nothing
//   gather/model, broadcast/model, allreduce/model   MPI_Gather, MPI_Bcast, MPI_Allreduce of the gradient (floats)

#include <mpi.h>

#include <cstddef>
#include <cstdio>
#include <numeric>
#include <span>
#include <vector>

#include <benchmark/benchmark.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/distributed/data_parallel.hpp"
#include "bipq/distributed/mpi.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace {

constexpr int step_iterations = 20, comm_iterations = 300;

bipq::io::image_dataset synthetic_data(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::io::image_dataset d;
  d.images.resize(n * 28 * 28);
  for (auto& v : d.images) v = static_cast<float>(g.uniform());
  d.labels.resize(n);
  for (auto& l : d.labels) l = static_cast<std::uint8_t>(g.below(10));
  return d;
}

const bipq::io::image_dataset& data() {
  static const bipq::io::image_dataset d = synthetic_data(2048, 1);
  return d;
}

bipq::eigen::sequential make_model(std::int64_t which) {
  return which == 0 ? bipq::eigen::make_lenet5(0) : bipq::eigen::make_pqi_cnn({}, 0);
}

std::vector<std::size_t> batch_of(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> all(data().size());
  std::iota(all.begin(), all.end(), std::size_t(0));
  bipq::detail::rng g(seed);
  bipq::detail::shuffle(std::span<std::size_t>(all), g);
  all.resize(n);
  return all;
}

/// A model of `n` float parameters whose loss and gradient cost nothing: data_parallel's own cost alone.
struct null_model {
  using scalar_type = float;
  explicit null_model(std::size_t n) : value(n, 0.5f), grad(n, 0.25f) {
    params.push_back({"w", {n}, bipq::parameter_kind::linear_weight, value, grad});
  }
  const std::vector<bipq::parameter<float>>& parameters() const { return params; }
  std::size_t num_samples() const { return 2048; }
  double loss_and_gradient(std::span<const std::size_t>) { return 1.0; }
  std::vector<float> value, grad;
  std::vector<bipq::parameter<float>> params;
};

void local_step(benchmark::State& state) {
  auto model = make_model(state.range(0));
  bipq::eigen::classifier problem(model, data(), data(), 1);
  const std::vector<std::size_t> batch = batch_of(static_cast<std::size_t>(state.range(1)), 2);
  for (auto _ : state) benchmark::DoNotOptimize(problem.loss_and_gradient(batch));
  state.SetItemsProcessed(state.iterations() * state.range(1));
  state.counters["parameters"] = static_cast<double>(model.num_parameters());
  MPI_Barrier(MPI_COMM_WORLD);
}

void data_parallel_step(benchmark::State& state) {
  auto model = make_model(state.range(0));
  bipq::eigen::classifier problem(model, data(), data(), 1);
  bipq::mpi::data_parallel parallel(problem);
  const std::vector<std::size_t> batch = batch_of(static_cast<std::size_t>(state.range(1)), 2);
  for (auto _ : state) benchmark::DoNotOptimize(parallel.loss_and_gradient(batch));
  const auto& t = parallel.timings();
  state.counters["compute_ms"] = 1e3 * t.compute_seconds / double(t.steps);
  state.counters["reduce_ms"] = 1e3 * t.reduce_seconds / double(t.steps);
  state.counters["ranks"] = parallel.size();
  state.SetItemsProcessed(state.iterations() * state.range(1));
}

std::size_t parameter_count(std::int64_t which) { return make_model(which).num_parameters(); }

void reduction(benchmark::State& state) {
  null_model m(parameter_count(state.range(0)));
  bipq::mpi::data_parallel parallel(m);
  const std::vector<std::size_t> batch = batch_of(128, 2);
  for (auto _ : state) benchmark::DoNotOptimize(parallel.loss_and_gradient(batch));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(m.value.size() * sizeof(float)));
  state.counters["parameters"] = static_cast<double>(m.value.size());
}

void gather(benchmark::State& state) {
  const std::size_t n = parameter_count(state.range(0));
  std::vector<float> mine(n, 1.0f), all(n * std::size_t(bipq::mpi::size()));
  for (auto _ : state)
    MPI_Gather(mine.data(), int(n), MPI_FLOAT, all.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * sizeof(float)));
}

void broadcast(benchmark::State& state) {
  const std::size_t n = parameter_count(state.range(0));
  std::vector<float> v(n, 1.0f);
  for (auto _ : state) MPI_Bcast(v.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * sizeof(float)));
}

void allreduce(benchmark::State& state) {
  const std::size_t n = parameter_count(state.range(0));
  std::vector<float> in(n, 1.0f), out(n);
  for (auto _ : state) MPI_Allreduce(in.data(), out.data(), int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * sizeof(float)));
}

BENCHMARK(local_step)->ArgsProduct({{0, 1}, {8, 16, 32, 64, 128}})->Iterations(step_iterations)->Unit(benchmark::kMillisecond);
BENCHMARK(data_parallel_step)->ArgsProduct({{0, 1}, {128}})->Iterations(step_iterations)->Unit(benchmark::kMillisecond);
BENCHMARK(reduction)->DenseRange(0, 1)->Iterations(comm_iterations)->Unit(benchmark::kMicrosecond);
BENCHMARK(gather)->DenseRange(0, 1)->Iterations(comm_iterations)->Unit(benchmark::kMicrosecond);
BENCHMARK(broadcast)->DenseRange(0, 1)->Iterations(comm_iterations)->Unit(benchmark::kMicrosecond);
BENCHMARK(allreduce)->DenseRange(0, 1)->Iterations(comm_iterations)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  bipq::mpi::environment env(argc, argv);
  if (!env.is_root() && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
