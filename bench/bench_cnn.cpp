// Training and inference throughput of LeNet-5 on the Eigen CNN adapter (images per second), on synthetic
// Fashion-MNIST-shaped data, so that the benchmark needs no dataset.
//
//   bench_cnn --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Training step = loss_and_gradient on a mini-batch + one SGD-momentum step on every parameter (what bipq::train
// does per step); compare with bench/pytorch_lenet.py, which times the same step in PyTorch.

#include <cstddef>
#include <numeric>
#include <vector>

#include <benchmark/benchmark.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/optim/sgd.hpp"

namespace {

bipq::io::image_dataset synthetic_data(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::io::image_dataset d;
  d.images.resize(n * 28 * 28);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<float>(g.uniform());
  d.labels.resize(n);
  for (auto& l : d.labels) l = static_cast<std::uint8_t>(g.below(10));
  return d;
}

// Args: batch size, threads.
void lenet5_train_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  const bipq::io::image_dataset data = synthetic_data(16 * batch, 1);
  auto model = bipq::eigen::make_lenet5(0);
  bipq::eigen::classifier problem(model, data, data, threads);
  const auto& ps = problem.parameters();
  std::vector<std::size_t> sizes;
  for (const auto& p : ps) sizes.push_back(p.value.size());
  bipq::sgd<float> opt(bipq::sgd_params{}, sizes);
  std::vector<std::size_t> indices(batch);
  std::size_t offset = 0;
  for (auto _ : state) {
    std::iota(indices.begin(), indices.end(), offset);
    offset = (offset + batch) % (data.size() - batch + 1);
    benchmark::DoNotOptimize(problem.loss_and_gradient(indices));
    for (std::size_t i = 0; i < ps.size(); ++i) opt.step(i, ps[i].value, ps[i].grad, 0.01, 5e-4);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(lenet5_train_step)->ArgNames({"batch", "threads"})->Args({128, 1})->Args({128, 2})->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Args: images evaluated, threads.
void lenet5_inference(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  const bipq::io::image_dataset data = synthetic_data(n, 2);
  auto model = bipq::eigen::make_lenet5(0);
  bipq::eigen::classifier problem(model, data, data, threads);
  for (auto _ : state) benchmark::DoNotOptimize(problem.evaluate());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(lenet5_inference)->ArgNames({"images", "threads"})->Args({2048, 1})->Args({2048, 2})->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One convolution layer, forward + backward (with the input gradient) on a 64-image slice, one thread, with the
// kernel forced: Args: algorithm (1 = im2col + GEMM, 2 = direct), input channels, output channels, size, padding,
// whether the input gradient is computed. LeNet's conv1 (1→6, 5×5, 28×28, pad 2, first layer: no input gradient)
// and conv2 (6→16, 5×5, 14×14) decide the automatic choice.
void conv_train_step(benchmark::State& state) {
  const auto algorithm = static_cast<bipq::eigen::conv_algorithm>(state.range(0));
  const auto c = static_cast<std::size_t>(state.range(1)), k = static_cast<std::size_t>(state.range(2));
  const auto size = static_cast<std::size_t>(state.range(3)), pad = static_cast<std::size_t>(state.range(4));
  const bool input_gradient = state.range(5) != 0;
  constexpr std::size_t n = 64;
  bipq::eigen::conv2d<float> conv(c, k, 5, 1, pad);
  conv.set_algorithm(algorithm);
  conv.set_threads(1);
  bipq::detail::rng g(3);
  conv.reset_parameters(g);
  bipq::eigen::activation<float> x, y, dy, dx;
  x.resize({c, size, size}, n);
  for (float& v : x.data) v = static_cast<float>(g.uniform());
  const bipq::eigen::thread_context ctx{0, true, nullptr};
  conv.forward(ctx, x, y);
  dy = y;
  for (auto _ : state) {
    conv.forward(ctx, x, y);
    conv.backward(ctx, x, y, dy, input_gradient ? &dx : nullptr);
    benchmark::DoNotOptimize(dx.data.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(conv_train_step)->ArgNames({"algorithm", "c", "k", "size", "pad", "dx"})
    ->Args({1, 1, 6, 28, 2, 0})->Args({2, 1, 6, 28, 2, 0})->Args({1, 6, 16, 14, 0, 1})->Args({2, 6, 16, 14, 0, 1})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
