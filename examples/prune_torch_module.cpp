// Prune your own torch::nn::Module with bipq: a LeNet-5 written as a LibTorch module (not a Sequential), trained on
// Fashion-MNIST and pruned with BiP and IMP through bipq::torch_adapter::classifier, with the table of the main demo
// (prune_fashion_mnist). With --save DIR, every parameter and every mask goes to DIR/<method>/ as .npy with an
// index.json, which examples/load_torch_masks.py loads back into the same module in PyTorch.
//
//   prune_torch_module --method bip,imp --density 0.05 --epochs 3 --save masks
//   /usr/bin/python3 examples/load_torch_masks.py masks/bip

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "bipq/adapters/torch/classifier.hpp"
#include "bipq/callbacks/progress_bar.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/io/npy.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/prune/imp.hpp"
#include "command_line.hpp"

namespace {

const char* usage = R"(usage: prune_torch_module [options]

Prunes a LibTorch module (LeNet-5 written as a torch::nn::Module) trained on Fashion-MNIST with BiP and IMP and
prints, per method: density reached, test and validation accuracy, PQ Index of the surviving weights, training cost
in passes over the training set, wall time, and time relative to IMP.

  --method M        bip | imp | all, or a comma-separated list      (default: all)
  --density D       fraction of prunable weights kept, in (0, 1]     (default: 0.05)
  --epochs E        epochs of every training run                     (default: 3)
  --bilevel-epochs B  BiP: length of the bi-level phase in epochs   (default: 6)
  --finetune-epochs F BiP: fine-tuning epochs with the mask fixed   (default: 3)
  --seed N          initialisation, shuffling and solver seed        (default: 0)
  --threads N       LibTorch intra-op threads                        (default: 2)
  --validation N    hold out the last N training images for validation (default: 5000)
  --train-size N    use the first N of the other training images (0 = all) (default: 0)
  --test-size N     evaluate on the first N test images (0 = all)    (default: 0)
  --save DIR        write every parameter and mask as .npy into DIR/<method>/, with an index.json
  --data DIR        Fashion-MNIST directory (default: $BIPQ_FASHION_MNIST or /usr/share/datasets/fashion-mnist)
  --help            this text
)";

namespace F = torch::nn::functional;

// LeNet-5 (conv 1→6 5×5 pad 2, ReLU, max-pool 2, conv 6→16 5×5, ReLU, max-pool 2, fc 400-120-84-10): the module a
// PyTorch user would write; examples/load_torch_masks.py defines the same one.
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

struct options {
  std::vector<std::string> methods{"bip", "imp"};
  double density = 0.05;
  std::size_t epochs = 3;
  double bilevel_epochs = 6.0;
  std::size_t finetune_epochs = 3;
  std::uint64_t seed = 0;
  std::size_t threads = 2;
  std::size_t validation = 5000, train_size = 0, test_size = 0;
  std::string save, data;
};

const examples::command_line cli{"prune_torch_module", usage};

options parse(int argc, char** argv) {
  options o;
  cli.parse(argc, argv, [&](const std::string& flag, const std::string& v) {
    if (flag == "--method") {
      o.methods.clear();
      if (v == "all") o.methods = {"bip", "imp"};
      std::istringstream list(v == "all" ? "" : v);
      for (std::string m; std::getline(list, m, ',');) {
        if (m != "bip" && m != "imp") cli.fail("invalid value '" + m + "' for --method");
        o.methods.push_back(m);
      }
      if (o.methods.empty()) cli.fail("empty value for --method");
    } else if (flag == "--density") {
      o.density = cli.number<double>(flag, v);
      if (!(o.density > 0.0 && o.density <= 1.0)) cli.fail("--density must be in (0, 1]");
    } else if (flag == "--epochs") {
      o.epochs = cli.number<std::size_t>(flag, v);
      if (o.epochs == 0) cli.fail("--epochs must be >= 1");
    } else if (flag == "--bilevel-epochs") {
      o.bilevel_epochs = cli.number<double>(flag, v);
      if (!(o.bilevel_epochs > 0.0)) cli.fail("--bilevel-epochs must be > 0");
    } else if (flag == "--finetune-epochs") {
      o.finetune_epochs = cli.number<std::size_t>(flag, v);
      if (o.finetune_epochs == 0) cli.fail("--finetune-epochs must be >= 1");
    } else if (flag == "--seed") {
      o.seed = cli.number<std::uint64_t>(flag, v);
    } else if (flag == "--threads") {
      o.threads = cli.number<std::size_t>(flag, v);
      if (o.threads == 0) cli.fail("--threads must be >= 1");
    } else if (flag == "--validation") {
      o.validation = cli.number<std::size_t>(flag, v);
    } else if (flag == "--train-size") {
      o.train_size = cli.number<std::size_t>(flag, v);
    } else if (flag == "--test-size") {
      o.test_size = cli.number<std::size_t>(flag, v);
    } else if (flag == "--save") {
      o.save = v;
    } else if (flag == "--data") {
      o.data = v;
    } else {
      cli.fail("unknown flag " + flag);
    }
  });
  return o;
}

using result_type = bipq::prune_result<float>;
using problem_type = bipq::torch_adapter::classifier<lenet5>;

result_type run_method(const std::string& method, const options& o, problem_type& problem) {
  bipq::progress_bar bar;
  bipq::mask_spec mask;
  mask.density = o.density;
  bipq::train_params train;
  train.epochs = o.epochs;
  train.seed = o.seed;
  if (method == "imp") return bipq::imp(problem, bipq::imp_params{.mask = mask, .train = train}, bar);
  bipq::bip_params p{.mask = mask, .pretrain = train, .bilevel_epochs = o.bilevel_epochs};
  p.finetune->epochs = o.finetune_epochs;
  p.finetune->seed = o.seed;
  p.bilevel.seed = o.seed;
  return bipq::bip(problem, p, bar);
}

const char* kind_name(bipq::parameter_kind k) {
  switch (k) {
    case bipq::parameter_kind::conv_weight: return "conv_weight";
    case bipq::parameter_kind::linear_weight: return "linear_weight";
    case bipq::parameter_kind::bias: return "bias";
    case bipq::parameter_kind::norm: return "norm";
    default: return "other";
  }
}

// DIR/<method>/: <name>.npy for every parameter (the pruned weights z = m ⊙ θ), <name>.mask.npy for every masked one,
// and index.json listing them with the test accuracy bipq measured. Written to DIR/<method>.partial and renamed, so a
// reader never sees half a set.
void save(const std::string& dir, const std::string& method, const problem_type& problem, const result_type& r,
          std::size_t test_size) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(dir) / method, tmp = fs::path(dir) / (method + ".partial");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const auto& ps = problem.parameters();
  std::vector<int> mask_of(ps.size(), -1);
  for (std::size_t j = 0; j < r.masks.size(); ++j) mask_of[r.masks.prunable()[j]] = static_cast<int>(j);
  char accuracy[64];
  std::snprintf(accuracy, sizeof accuracy, "%.17g", r.final_record().test_accuracy);
  std::string index = "{\n  \"method\": \"" + method + "\",\n  \"test_accuracy\": " + accuracy +
                      ",\n  \"test_size\": " + std::to_string(test_size) + ",\n  \"threads\": " +
                      std::to_string(problem.threads()) + ",\n  \"parameters\": [\n";
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    bipq::io::write_npy<float>(tmp / (p.name + ".npy"), std::span<const float>(p.value), p.shape);
    std::string mask = "null";
    if (mask_of[i] >= 0) {
      bipq::io::write_npy<float>(tmp / (p.name + ".mask.npy"), r.masks[static_cast<std::size_t>(mask_of[i])],
                                 p.shape);
      mask = "\"" + p.name + ".mask.npy\"";
    }
    std::string shape;
    for (std::size_t s : p.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
    index += "    {\"name\": \"" + p.name + "\", \"shape\": [" + shape + "], \"kind\": \"" + kind_name(p.kind) +
             "\", \"value\": \"" + p.name + ".npy\", \"mask\": " + mask + "}" + (i + 1 < ps.size() ? ",\n" : "\n");
  }
  index += "  ]\n}\n";
  bipq::io::write_file_atomically(tmp / "index.json", index);
  fs::remove_all(out);
  fs::rename(tmp, out);
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    auto data = bipq::io::load_fashion_mnist(o.data);
    if (o.validation >= data.train.size())
      examples::fail("prune_torch_module", "--validation " + std::to_string(o.validation) +
                                               " leaves no training images");
    const bipq::io::image_dataset validation_images = bipq::io::tail(data.train, o.validation);
    std::size_t train_size = data.train.size() - o.validation;
    if (o.train_size > 0 && o.train_size < train_size) train_size = o.train_size;
    data.train = bipq::io::head(data.train, train_size);
    if (o.test_size > 0 && o.test_size < data.test.size()) data.test = bipq::io::head(data.test, o.test_size);
    const bipq::torch_adapter::tensor_dataset train = bipq::torch_adapter::to_tensors(data.train),
                                              test = bipq::torch_adapter::to_tensors(data.test);
    const bipq::torch_adapter::tensor_dataset validation =
        validation_images.size() > 0 ? bipq::torch_adapter::to_tensors(validation_images)
                                     : bipq::torch_adapter::tensor_dataset{};
    std::printf("Fashion-MNIST: %zu training, %zu validation and %zu test images; LibTorch module lenet5; target "
                "density %.3g; %zu epochs per training run; seed %llu; %zu threads\n\n",
                data.train.size(), validation_images.size(), data.test.size(), o.density, o.epochs,
                static_cast<unsigned long long>(o.seed), o.threads);
    std::fflush(stdout);

    struct row {
      std::string method;
      result_type result;
      double validation_accuracy, passes;
    };
    std::vector<row> results;
    for (const std::string& method : o.methods) {
      torch::manual_seed(o.seed);  // the same initialisation for every method
      lenet5 net;
      problem_type problem(net, train, test, o.threads);
      result_type r = run_method(method, o, problem);
      if (!o.save.empty()) save(o.save, method, problem, r, data.test.size());
      const double v = validation.size() > 0 ? problem.evaluate(validation).accuracy : std::nan("");
      const double passes = double(problem.samples_processed()) / double(data.train.size());
      std::fprintf(stderr, "%s: density %.4f, test accuracy %.2f%%, validation accuracy %.2f%%, %.1f passes, %.1f s\n",
                   method.c_str(), r.final_record().density, 100.0 * r.final_record().test_accuracy, 100.0 * v, passes,
                   r.seconds);
      results.push_back({method, std::move(r), v, passes});
    }

    // The table of prune_fashion_mnist.
    double imp_seconds = 0.0;
    for (const row& x : results)
      if (x.method == "imp") imp_seconds = x.result.seconds;
    std::printf("| method | density | test accuracy | validation accuracy | PQ Index | passes (epochs) | "
                "wall time (s) | time / IMP |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const row& x : results) {
      const auto& f = x.result.final_record();
      char ratio[32] = "-";
      if (imp_seconds > 0.0) std::snprintf(ratio, sizeof ratio, "%.2f", x.result.seconds / imp_seconds);
      std::printf("| %s | %.4f | %.2f%% | %.2f%% | %.4f | %.1f | %.1f | %s |\n", x.method.c_str(), f.density,
                  100.0 * f.test_accuracy, 100.0 * x.validation_accuracy, f.pq_index, x.passes, x.result.seconds,
                  ratio);
    }
    if (!o.save.empty()) std::printf("\nparameters and masks written to %s/<method>/\n", o.save.c_str());
  } catch (const std::exception& e) {
    std::cerr << "prune_torch_module: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
