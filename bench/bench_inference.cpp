// Inference throughput (images per second, batch 128) of pruned LeNet-5 and `cnn` (make_pqi_cnn, default widths):
// the dense model, the masked model (zeros multiplied), the sparse model of unstructured masks (sparsify) and the
// compact model of filter masks (compact), at densities 50% .. 1%, on 1 and 2 threads. The masks come from OMP
// (one epoch on 256 training images, batch 64: realistic per-layer densities, computed once per benchmark in its
// setup). Fashion-MNIST is used if installed, else random images of its shape.
//
//   nice -n 5 bench_inference --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Rates are per CPU-second of the whole process (MeasureProcessCPUTime: the time of every thread, summed), so that
// they measure the work done and not the share of a loaded machine the process got; "Time" is the wall time.
//
// Also: fc1 of LeNet-5 (120×400) alone on a [400, 128] activation, dense GEMM against Eigen's row-major CSR on both
// layouts and bipq's sparse_linear, which decides the sparse format (docs/performance.md, "Sparse and compact
// inference").

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include <Eigen/SparseCore>
#include <benchmark/benchmark.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/compact.hpp"
#include "bipq/adapters/eigen/inference.hpp"
#include "bipq/adapters/eigen/sparse.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/prune/omp.hpp"

namespace {

using bipq::eigen::sequential;
constexpr std::size_t batch = 128;

bipq::io::image_dataset synthetic_data(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::io::image_dataset d;
  d.images.resize(n * 28 * 28);
  for (float& v : d.images) v = static_cast<float>(g.uniform());
  d.labels.resize(n);
  for (auto& l : d.labels) l = static_cast<std::uint8_t>(g.below(10));
  return d;
}

struct data_sets {
  bipq::io::image_dataset train, test;
};

const data_sets& data() {
  static const data_sets d = [] {
    const auto dir = bipq::io::fashion_mnist_directory();
    if (std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") || std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
      const auto f = bipq::io::load_fashion_mnist();
      return data_sets{bipq::io::head(f.train, 256), bipq::io::head(f.test, batch)};
    }
    return data_sets{synthetic_data(256, 1), synthetic_data(batch, 2)};
  }();
  return d;
}

sequential make_model(int which) { return which == 0 ? bipq::eigen::make_lenet5(0) : bipq::eigen::make_pqi_cnn({}, 0); }

// The model after OMP at `density` (its weights masked) and its masks.
struct pruned {
  sequential model;
  bipq::mask_set<float> masks;
};

const pruned& omp_model(int which, bipq::mask_structure structure, int density_percent) {
  static std::map<std::tuple<int, int, int>, std::unique_ptr<pruned>> cache;
  auto& slot = cache[{which, static_cast<int>(structure), density_percent}];
  if (!slot) {
    sequential m = make_model(which);
    bipq::eigen::classifier problem(m, data().train, data().test, 2);
    bipq::omp_params p;
    p.mask.density = density_percent / 100.0;
    p.mask.structure = structure;
    p.train.epochs = 1;
    p.train.batch_size = 64;
    p.train.seed = 1;
    auto r = bipq::omp(problem, p);
    r.masks.apply(m.parameters());
    slot = std::make_unique<pruned>(pruned{std::move(m), std::move(r.masks)});
  }
  return *slot;
}

void run(benchmark::State& state, sequential& model, std::size_t threads) {
  bipq::eigen::inference infer(model, threads);
  std::vector<float> logits(batch * infer.outputs());
  const auto& images = data().test.images;
  for (auto _ : state) {
    infer.run(images, batch, logits);
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

// Args: model (0 = LeNet-5, 1 = cnn), threads.
void dense(benchmark::State& state) {
  sequential m = make_model(static_cast<int>(state.range(0)));
  run(state, m, static_cast<std::size_t>(state.range(1)));
}

// Args: model, threads. The dense model with every convolution forced to im2col + GEMM (the automatic choice takes
// the direct kernel for the first layers, C·R·S ≤ 32).
void dense_gemm(benchmark::State& state) {
  sequential m = make_model(static_cast<int>(state.range(0)));
  for (std::size_t l = 0; l < m.size(); ++l)
    if (auto* c = dynamic_cast<bipq::eigen::conv2d<float>*>(&m[l])) c->set_algorithm(bipq::eigen::conv_algorithm::gemm);
  run(state, m, static_cast<std::size_t>(state.range(1)));
}

// Args: model, threads. The dense model with every conv and linear weight in sparse_conv2d / sparse_linear at
// density 1 (the direct row-compressed kernel on dense weights: a reference for what the kernel alone is worth).
void dense_direct(benchmark::State& state) {
  sequential m = make_model(static_cast<int>(state.range(0)));
  const bipq::mask_set<float> ones(std::span<const bipq::parameter<float>>(m.parameters()), bipq::prunable_selection{}, "bench");
  sequential d = bipq::eigen::sparsify(m, ones, bipq::eigen::sparse_options{1.0, 1.0});
  run(state, d, static_cast<std::size_t>(state.range(1)));
}

// Args: model, density in percent, threads. Unstructured masks, zeros multiplied.
void masked(benchmark::State& state) {
  const pruned& p = omp_model(static_cast<int>(state.range(0)), bipq::mask_structure::unstructured, static_cast<int>(state.range(1)));
  sequential m = bipq::eigen::copy_model(p.model);
  run(state, m, static_cast<std::size_t>(state.range(2)));
}

// Args: model, density in percent, threads. Unstructured masks, sparsify().
void sparse(benchmark::State& state) {
  const pruned& p = omp_model(static_cast<int>(state.range(0)), bipq::mask_structure::unstructured, static_cast<int>(state.range(1)));
  sequential m = bipq::eigen::sparsify(p.model, p.masks);
  std::size_t nonzeros = 0;
  for (const auto& w : p.masks)
    for (float v : w) nonzeros += v != 0.0f;
  state.counters["weights_kept"] = static_cast<double>(nonzeros);
  run(state, m, static_cast<std::size_t>(state.range(2)));
}

// Args: model, density in percent, limit in percent, small plane (positions). Unstructured masks, sparsify() with
// max_density = max_density_small_conv = limit (denser layers stay dense), or with max_density at its default and
// max_density_small_conv = limit for the convolutions with output planes below `small plane`, one thread: what the
// sparse_options defaults are chosen from.
void sparse_limit(benchmark::State& state) {
  const pruned& p = omp_model(static_cast<int>(state.range(0)), bipq::mask_structure::unstructured, static_cast<int>(state.range(1)));
  const double limit = static_cast<double>(state.range(2)) / 100.0;
  bipq::eigen::sparse_options o;
  o.small_plane = static_cast<std::size_t>(state.range(3));
  o.max_density_small_conv = limit;
  if (o.small_plane == 0) o.max_density = limit;
  sequential m = bipq::eigen::sparsify(p.model, p.masks, o);
  run(state, m, 1);
}

// Args: model, density of the filters in percent, threads. Filter masks, compact().
void compact(benchmark::State& state) {
  const pruned& p = omp_model(static_cast<int>(state.range(0)), bipq::mask_structure::filter, static_cast<int>(state.range(1)));
  sequential m = bipq::eigen::compact(p.model, p.masks);
  state.counters["parameters"] = static_cast<double>(m.num_parameters());
  run(state, m, static_cast<std::size_t>(state.range(2)));
}

// Args: model, density of the filters in percent, threads. Filter masks, compact(), then every conv and linear
// layer run by the row-compressed kernel (sparsify at max_density 1).
void compact_direct(benchmark::State& state) {
  const pruned& p = omp_model(static_cast<int>(state.range(0)), bipq::mask_structure::filter, static_cast<int>(state.range(1)));
  sequential c = bipq::eigen::compact(p.model, p.masks);
  const bipq::mask_set<float> ones(std::span<const bipq::parameter<float>>(c.parameters()), bipq::prunable_selection{}, "bench");
  sequential m = bipq::eigen::sparsify(c, ones, bipq::eigen::sparse_options{1.0, 1.0});
  run(state, m, static_cast<std::size_t>(state.range(2)));
}

void pruned_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"model", "density", "threads"});
  for (int model : {0, 1})
    for (int d : {50, 20, 10, 5, 2, 1})
      for (int t : {1, 2}) b->Args({model, d, t});
}

BENCHMARK(dense)->ArgNames({"model", "threads"})->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})
    ->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(dense_gemm)->ArgNames({"model", "threads"})->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})
    ->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(dense_direct)->ArgNames({"model", "threads"})->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})
    ->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(masked)->Apply(pruned_args)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(sparse)->Apply(pruned_args)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(sparse_limit)->ArgNames({"model", "density", "limit", "small_plane"})
    ->ArgsProduct({{0, 1}, {50, 20, 10, 5, 2, 1}, {0, 5, 10, 20, 40, 60}, {0, 64}})
    ->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(compact)->Apply(pruned_args)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(compact_direct)->Apply(pruned_args)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

// ---- fc1 (120×400) alone, batch 128, one thread: which sparse format --------------------------------------------

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

row_matrix random_weights(double density, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  row_matrix w(120, 400);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = g.uniform() < density ? static_cast<float>(g.normal()) : 0.0f;
  return w;
}

// Args: kernel (0 = dense GEMM, 1 = Eigen CSR on [features, batch], 2 = Eigen CSR on [batch, features],
// 3 = bipq sparse_linear), density in percent.
void fc1(benchmark::State& state) {
  const int kernel = static_cast<int>(state.range(0));
  const row_matrix w = random_weights(state.range(1) / 100.0, 5);
  bipq::detail::rng g(6);
  row_matrix x(400, batch);  // [features, batch]
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(g.normal());
  const row_matrix xt = x.transpose();  // [batch, features]
  const Eigen::SparseMatrix<float, Eigen::RowMajor> ws = w.sparseView();
  const Eigen::SparseMatrix<float, Eigen::RowMajor> wst = w.transpose().sparseView();
  row_matrix y(120, batch), yt(batch, 120);
  bipq::eigen::sparse_linear<float> layer(std::span<const float>(w.data(), static_cast<std::size_t>(w.size())), {}, 400, 120);
  layer.set_threads(1);
  bipq::eigen::activation<float> xa, ya;
  xa.resize({400, 1, 1}, batch);
  std::copy(x.data(), x.data() + x.size(), xa.data.begin());
  for (auto _ : state) {
    switch (kernel) {
      case 0: y.noalias() = w * x; break;
      case 1: y.noalias() = ws * x; break;
      case 2: yt.noalias() = xt * wst; break;
      default: layer.forward({}, xa, ya);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(yt.data());
    benchmark::DoNotOptimize(ya.data.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(fc1)->ArgNames({"kernel", "density"})->ArgsProduct({{0, 1, 2, 3}, {50, 20, 5, 1}})->Unit(benchmark::kMicrosecond);

}  // namespace
