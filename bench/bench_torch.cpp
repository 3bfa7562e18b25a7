// Training throughput of LeNet-5 (images per second) three ways, on the same synthetic Fashion-MNIST-shaped data:
// bipq's Eigen CNN (bipq::eigen::classifier), a LibTorch module through bipq's adapter (bipq::torch_adapter::
// classifier), and a plain LibTorch training loop (torch::optim::SGD). Built only with bipq::torch.
//
//   OMP_WAIT_POLICY=PASSIVE bench_torch --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// One step = the loss and gradient on a mini-batch + one SGD step (momentum 0.9, weight decay 5e-4) on every
// parameter: what bipq::train does per step (bipq's SGD on the parameter spans), and what a PyTorch loop does.
// The CPU column is the whole process's CPU time (every thread), which a loaded machine disturbs less than wall time.

#include <cstddef>
#include <numeric>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/optim/sgd.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/torch/classifier.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/optim/sgd.hpp"

namespace {

namespace F = torch::nn::functional;

struct lenet5_impl : torch::nn::Module {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 6, 5).padding(2)};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(6, 16, 5)};
  torch::nn::Linear fc1{400, 120}, fc2{120, 84}, fc3{84, 10};
  lenet5_impl() {
    register_module("conv1", conv1);
    register_module("conv2", conv2);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
    register_module("fc3", fc3);
  }
  at::Tensor forward(const at::Tensor& input) {
    at::Tensor x = F::max_pool2d(F::relu(conv1->forward(input)), F::MaxPool2dFuncOptions(2));
    x = F::max_pool2d(F::relu(conv2->forward(x)), F::MaxPool2dFuncOptions(2));
    x = F::relu(fc1->forward(x.flatten(1)));
    x = F::relu(fc2->forward(x));
    return fc3->forward(x);
  }
};
TORCH_MODULE_IMPL(lenet5, lenet5_impl);

bipq::io::image_dataset synthetic_data(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  bipq::io::image_dataset d;
  d.images.resize(n * 28 * 28);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<float>(g.uniform());
  d.labels.resize(n);
  for (auto& l : d.labels) l = static_cast<std::uint8_t>(g.below(10));
  return d;
}

// Runs `steps` of loss_and_gradient + bipq's SGD on `problem` over consecutive batches.
template <class Problem>
void bipq_steps(benchmark::State& state, Problem& problem, std::size_t n) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto& ps = problem.parameters();
  std::vector<std::size_t> sizes;
  for (const auto& p : ps) sizes.push_back(p.value.size());
  bipq::sgd<float> opt(bipq::sgd_params{}, sizes);
  std::vector<std::size_t> indices(batch);
  std::size_t offset = 0;
  for (auto _ : state) {
    std::iota(indices.begin(), indices.end(), offset);
    offset = (offset + batch) % (n - batch + 1);
    benchmark::DoNotOptimize(problem.loss_and_gradient(indices));
    for (std::size_t i = 0; i < ps.size(); ++i) opt.step(i, ps[i].value, ps[i].grad, 0.01, 5e-4);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

// Args: batch size, threads.
void eigen_train_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const bipq::io::image_dataset data = synthetic_data(16 * batch, 1);
  auto model = bipq::eigen::make_lenet5(0);
  bipq::eigen::classifier problem(model, data, data, static_cast<std::size_t>(state.range(1)));
  bipq_steps(state, problem, data.size());
}

void torch_adapter_train_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const bipq::io::image_dataset data = synthetic_data(16 * batch, 1);
  const auto t = bipq::torch_adapter::to_tensors(data);
  torch::manual_seed(0);
  lenet5 net;
  bipq::torch_adapter::classifier problem(net, t, t, static_cast<std::size_t>(state.range(1)));
  bipq_steps(state, problem, data.size());
}

void libtorch_train_step(benchmark::State& state) {
  const auto batch = static_cast<std::int64_t>(state.range(0));
  const bipq::io::image_dataset data = synthetic_data(16 * static_cast<std::size_t>(batch), 1);
  const auto t = bipq::torch_adapter::to_tensors(data);
  at::set_num_threads(static_cast<int>(state.range(1)));
  torch::manual_seed(0);
  lenet5 net;
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  std::int64_t offset = 0;
  for (auto _ : state) {
    const at::Tensor x = t.images.slice(0, offset, offset + batch), y = t.labels.slice(0, offset, offset + batch);
    offset = (offset + batch) % (t.size() - batch + 1);
    opt.zero_grad();
    const at::Tensor loss = F::cross_entropy(net->forward(x), y);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK(eigen_train_step)->ArgNames({"batch", "threads"})->Args({128, 1})->Args({128, 2})
    ->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(torch_adapter_train_step)->ArgNames({"batch", "threads"})->Args({128, 1})->Args({128, 2})
    ->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(libtorch_train_step)->ArgNames({"batch", "threads"})->Args({128, 1})->Args({128, 2})
    ->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
