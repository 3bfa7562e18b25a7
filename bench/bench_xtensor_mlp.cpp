// The xtensor MLP: its matrix kernel against an xtensor broadcast-and-reduce expression and a dot-product loop, and
// one training step (forward, loss, backward) of the PQI paper's 784-128-256-10 MLP.

#include <benchmark/benchmark.h>

#include <numeric>
#include <vector>

#include <xtensor/xreducer.hpp>
#include <xtensor/xview.hpp>

#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/detail/random.hpp"

namespace xa = bipq::xtensor_adapter;

namespace {

xt::xtensor<float, 2> random_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  auto m = xt::xtensor<float, 2>::from_shape({rows, cols});
  for (float& v : m) v = static_cast<float>(g.normal());
  return m;
}

/// Y = X Wᵀ for X [batch, in], W [out, in] (a linear layer's forward product), as the MLP computes it: transpose W,
/// then the register-tiled kernel. Items = multiply-adds.
void BM_linear_forward_kernel(benchmark::State& state) {
  const auto batch = std::size_t(state.range(0)), in = std::size_t(state.range(1)), out = std::size_t(state.range(2));
  const auto x = random_matrix(batch, in, 1), w = random_matrix(out, in, 2);
  xt::xtensor<float, 2> wt, y = xt::zeros<float>({batch, out});
  for (auto _ : state) {
    xa::detail::transpose_into(w, wt);
    std::fill(y.begin(), y.end(), 0.0f);
    xa::detail::gemm_accumulate(x.data(), wt.data(), y.data(), batch, in, out);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(batch * in * out));
}

/// The same product as one xtensor expression: sum over k of X[b, newaxis, k] * W[newaxis, o, k].
void BM_linear_forward_xtensor_expression(benchmark::State& state) {
  const auto batch = std::size_t(state.range(0)), in = std::size_t(state.range(1)), out = std::size_t(state.range(2));
  const auto x = random_matrix(batch, in, 1), w = random_matrix(out, in, 2);
  xt::xtensor<float, 2> y;
  for (auto _ : state) {
    xt::noalias(y) = xt::sum(xt::view(x, xt::all(), xt::newaxis(), xt::all()) *
                                 xt::view(w, xt::newaxis(), xt::all(), xt::all()),
                             {2}, xt::evaluation_strategy::immediate);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(batch * in * out));
}

/// The same product as one dot product per output (rows of X and W are both contiguous).
void BM_linear_forward_dot_products(benchmark::State& state) {
  const auto batch = std::size_t(state.range(0)), in = std::size_t(state.range(1)), out = std::size_t(state.range(2));
  const auto x = random_matrix(batch, in, 1), w = random_matrix(out, in, 2);
  xt::xtensor<float, 2> y = xt::zeros<float>({batch, out});
  for (auto _ : state) {
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t o = 0; o < out; ++o)
        y(b, o) = std::inner_product(x.data() + b * in, x.data() + (b + 1) * in, w.data() + o * in, 0.0f);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(batch * in * out));
}

/// One loss_and_gradient call of the 784-128-256-10 MLP on a batch of `range(0)` random images. Items = samples.
void BM_mlp_step(benchmark::State& state) {
  const auto batch = std::size_t(state.range(0));
  const std::size_t n = 1024;
  bipq::detail::rng g(3);
  std::vector<float> pixels(n * 784);
  std::vector<int> labels(n);
  for (float& p : pixels) p = static_cast<float>(g.uniform());
  for (int& l : labels) l = static_cast<int>(g.below(10));
  auto train = xa::make_dataset<float, float, int>(pixels, 784, labels, 10);
  auto test = xa::head(train, 16);
  auto model = xa::make_fashion_mnist_mlp<float>(std::move(train), std::move(test), 1);
  std::vector<std::size_t> idx(batch);
  for (auto _ : state) {
    for (std::size_t i = 0; i < batch; ++i) idx[i] = static_cast<std::size_t>(g.below(n));
    benchmark::DoNotOptimize(model.loss_and_gradient(idx));
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(batch));
}

}  // namespace

BENCHMARK(BM_linear_forward_kernel)->Args({128, 784, 128})->Args({128, 128, 256})->Args({128, 256, 10});
BENCHMARK(BM_linear_forward_xtensor_expression)->Args({128, 784, 128})->Args({128, 128, 256});
BENCHMARK(BM_linear_forward_dot_products)->Args({128, 784, 128})->Args({128, 128, 256});
BENCHMARK(BM_mlp_step)->Arg(32)->Arg(128);
