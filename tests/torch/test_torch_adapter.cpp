// The LibTorch adapter: parameters as named_parameters() names them, kinds from the owning module, spans over the
// tensors' storage, gradients that stay in place, modes restored; every pruning driver runs on a torch module; and
// LeNet-5 in libtorch agrees with bipq's Eigen LeNet-5 (loss, gradient, and the masks OMP and BiP find).

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/modules/container/sequential.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/adapters/torch/classifier.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/mask/count.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"

namespace {

namespace F = torch::nn::functional;
using bipq::parameter_kind;
using bipq::torch_adapter::tensor_dataset;

// LeNet-5 as bipq::eigen::make_lenet5 builds it, as a user's module (not a Sequential).
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
    x = x.flatten(1);
    x = F::relu(fc1->forward(x));
    x = F::relu(fc2->forward(x));
    return fc3->forward(x);
  }
};
TORCH_MODULE_IMPL(lenet5, lenet5_impl);

// A module with every parameter kind, nested: conv (no bias), batch norm, a child module holding a linear layer and
// a layer norm, and a bare parameter of its own.
struct block_impl : torch::nn::Module {
  torch::nn::Linear fc{8, 3};
  torch::nn::LayerNorm ln{torch::nn::LayerNormOptions({8})};
  block_impl() {
    register_module("ln", ln);
    register_module("fc", fc);
  }
  at::Tensor forward(const at::Tensor& x) { return fc->forward(ln->forward(x)); }
};
TORCH_MODULE_IMPL(block, block_impl);

struct mixed_impl : torch::nn::Module {
  torch::nn::Conv2d conv{torch::nn::Conv2dOptions(1, 2, 3).padding(1).bias(false)};
  torch::nn::BatchNorm2d bn{2};
  block head;
  at::Tensor scale;
  mixed_impl() {
    register_module("conv", conv);
    register_module("bn", bn);
    register_module("head", head);
    scale = register_parameter("scale", at::ones({1}));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = F::relu(bn->forward(conv->forward(x)));  // [B, 2, 2, 2]
    return head->forward(h.flatten(1)) * scale;
  }
};
TORCH_MODULE_IMPL(mixed, mixed_impl);

// n random images of shape c×h×w with labels in 0..classes-1.
tensor_dataset synthetic(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t classes,
                         std::uint64_t seed) {
  bipq::detail::rng g(seed);
  tensor_dataset d;
  d.images = at::empty({n, c, h, w}, at::kFloat);
  d.labels = at::empty({n}, at::kLong);
  d.num_classes = classes;
  float* x = d.images.data_ptr<float>();
  for (std::int64_t i = 0; i < d.images.numel(); ++i) x[i] = static_cast<float>(g.uniform());
  std::int64_t* y = d.labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(classes)));
  return d;
}

// Fashion-MNIST's first n_train training and n_test test images when the data set is installed, else random images.
struct small_data {
  bipq::io::image_dataset train, test;
};
small_data fashion_mnist_or_synthetic(std::size_t n_train, std::size_t n_test) {
  const auto dir = bipq::io::fashion_mnist_directory();
  small_data s;
  if (std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") ||
      std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
    const bipq::io::fashion_mnist f = bipq::io::load_fashion_mnist();
    s.train = bipq::io::head(f.train, n_train);
    s.test = bipq::io::head(f.test, n_test);
    return s;
  }
  MESSAGE("Fashion-MNIST not found in " << dir.string() << ": random images instead");
  for (auto [d, n, seed] : {std::tuple{&s.train, n_train, 1u}, std::tuple{&s.test, n_test, 2u}}) {
    bipq::detail::rng g(seed);
    d->images.resize(n * 784);
    d->labels.resize(n);
    for (float& v : d->images) v = static_cast<float>(g.uniform());
    for (auto& l : d->labels) l = static_cast<std::uint8_t>(g.below(10));
  }
  return s;
}

// Copies the Eigen model's parameter values into the module's parameters of the same names.
void copy_weights(const bipq::eigen::sequential& from, torch::nn::Module& to) {
  auto named = to.named_parameters();
  std::size_t copied = 0;
  for (const auto& p : from.parameters()) {
    at::Tensor* t = named.find(p.name);
    REQUIRE(t != nullptr);
    REQUIRE(static_cast<std::size_t>(t->numel()) == p.value.size());
    std::copy(p.value.begin(), p.value.end(), t->data_ptr<float>());
    ++copied;
  }
  REQUIRE(copied == named.size());
}

// max_i |a_i − b_i| / max_i |b_i|.
double relative_max_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return scale > 0.0 ? diff / scale : diff;
}

// The fraction of prunable entries on which two mask sets agree, and |kept ∩ kept'| / |kept ∪ kept'|.
struct mask_agreement {
  double equal = 0.0, jaccard = 0.0;
};
mask_agreement agreement(const bipq::mask_set<float>& a, const bipq::mask_set<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t same = 0, both = 0, either = 0;
  for (std::size_t j = 0; j < a.size(); ++j)
    for (std::size_t i = 0; i < a[j].size(); ++i) {
      const bool x = a[j][i] == 1.0f, y = b[j][i] == 1.0f;
      same += (x == y), both += (x && y), either += (x || y);
    }
  return {double(same) / double(a.total()), either == 0 ? 1.0 : double(both) / double(either)};
}

}  // namespace

TEST_CASE("torch classifier: names, shapes and kinds follow named_parameters() and the owning modules") {
  static_assert(bipq::trainable_model<bipq::torch_adapter::classifier<mixed>>);
  static_assert(bipq::trainable_model<bipq::torch_adapter::classifier<torch::nn::Sequential>>);
  static_assert(!std::is_copy_constructible_v<bipq::torch_adapter::classifier<mixed>>);
  mixed net;
  bipq::torch_adapter::classifier problem(net, synthetic(8, 1, 2, 2, 3, 1), synthetic(4, 1, 2, 2, 3, 2), 1);
  const auto named = net->named_parameters();
  const auto& ps = problem.parameters();
  REQUIRE(ps.size() == named.size());
  for (std::size_t i = 0; i < ps.size(); ++i) {
    CHECK(ps[i].name == named[i].key());
    CHECK(ps[i].shape == std::vector<std::size_t>(named[i].value().sizes().begin(), named[i].value().sizes().end()));
    CHECK(ps[i].value.data() == named[i].value().data_ptr<float>());
    CHECK(ps[i].grad.data() == named[i].value().grad().data_ptr<float>());
    CHECK(ps[i].value.size() == static_cast<std::size_t>(named[i].value().numel()));
  }
  auto kind = [&](const std::string& name) {
    for (const auto& p : ps)
      if (p.name == name) return p.kind;
    FAIL("no parameter " << name);
    return parameter_kind::other;
  };
  CHECK(kind("conv.weight") == parameter_kind::conv_weight);
  CHECK(kind("bn.weight") == parameter_kind::norm);
  CHECK(kind("bn.bias") == parameter_kind::norm);
  CHECK(kind("head.ln.weight") == parameter_kind::norm);
  CHECK(kind("head.fc.weight") == parameter_kind::linear_weight);
  CHECK(kind("head.fc.bias") == parameter_kind::bias);
  CHECK(kind("scale") == parameter_kind::other);

  // A Sequential names its children by position.
  torch::nn::Sequential seq(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)), torch::nn::Flatten(),
                            torch::nn::Linear(2 * 4 * 4, 3));
  bipq::torch_adapter::classifier s(seq, synthetic(4, 1, 6, 6, 3, 3), synthetic(4, 1, 6, 6, 3, 4), 1);
  std::vector<std::string> names;
  for (const auto& p : s.parameters()) names.push_back(p.name + ":" + std::to_string(static_cast<int>(p.kind)));
  const std::vector<std::string> expected{"0.weight:0", "0.bias:2", "2.weight:1", "2.bias:2"};
  CHECK(names == expected);
}

TEST_CASE("torch classifier: the gradient is autograd's, written in place, and a moved gradient is an error") {
  mixed net;
  const tensor_dataset train = synthetic(16, 1, 2, 2, 3, 5);
  bipq::torch_adapter::classifier problem(net, train, synthetic(4, 1, 2, 2, 3, 6), 2);
  const std::vector<std::size_t> idx{3, 1, 4, 1, 5, 9};
  const double loss = problem.loss_and_gradient(idx);
  // Twice: the gradient is zeroed, not accumulated.
  CHECK(problem.loss_and_gradient(idx) != 0.0);

  // Independently: the same batch through the module, gradients by torch::autograd::grad (which writes no .grad).
  {
    auto named = net->named_parameters();
    const at::Tensor index = at::tensor(std::vector<std::int64_t>(idx.begin(), idx.end()));
    const at::Tensor z = net->forward(train.images.index_select(0, index));
    const at::Tensor l = F::cross_entropy(z, train.labels.index_select(0, index));
    CHECK(l.item<double>() == doctest::Approx(loss).epsilon(1e-6));
    const auto g = torch::autograd::grad({l}, named.values());
    for (std::size_t i = 0; i < named.size(); ++i) {
      const auto& p = problem.parameters()[i];
      const std::span<const float> expected(g[i].contiguous().data_ptr<float>(), p.grad.size());
      CHECK(relative_max_error(p.grad, expected) <= 1e-6);
    }
  }

  // Setting the gradients to none and letting autograd reallocate them would leave stale spans: detected.
  // (named_parameters() lists the module's own parameter first, then its children's.)
  net->zero_grad(/*set_to_none=*/true);
  CHECK_THROWS_WITH_AS(problem.loss_and_gradient(idx), doctest::Contains("'scale'"), std::logic_error);
  // A gradient replaced by another tensor is detected after backward().
  mixed other;
  bipq::torch_adapter::classifier second(other, train, synthetic(4, 1, 2, 2, 3, 6), 1);
  other->named_parameters()["head.fc.bias"].mutable_grad() = at::zeros({3});
  CHECK_THROWS_WITH_AS(second.loss_and_gradient(idx), doctest::Contains("'head.fc.bias'"), std::logic_error);
}

TEST_CASE("torch classifier: bad input is rejected naming the argument or the parameter") {
  mixed net;
  const tensor_dataset d = synthetic(8, 1, 2, 2, 3, 1);
  CHECK_THROWS_WITH_AS(bipq::torch_adapter::classifier(net, d, d, 0), doctest::Contains("threads"),
                       std::invalid_argument);
  tensor_dataset bad = d;
  bad.images = d.images.to(at::kDouble);
  CHECK_THROWS_WITH_AS(bipq::torch_adapter::classifier(net, bad, d, 1), doctest::Contains("train.images"),
                       std::invalid_argument);
  bad = d;
  bad.labels = d.labels.clone();
  bad.labels[0] = 3;
  CHECK_THROWS_WITH_AS(bipq::torch_adapter::classifier(net, d, bad, 1), doctest::Contains("test.labels"),
                       std::invalid_argument);

  mixed as_double;
  as_double->to(at::kDouble);
  CHECK_THROWS_WITH_AS(bipq::torch_adapter::classifier(as_double, d, d, 1), doctest::Contains("'scale'"),
                       std::invalid_argument);
  mixed strided;
  strided->register_parameter("extra", at::ones({2, 3}).t());
  CHECK_THROWS_WITH_AS(bipq::torch_adapter::classifier(strided, d, d, 1), doctest::Contains("'extra'"),
                       std::invalid_argument);

  bipq::torch_adapter::classifier problem(net, d, d, 1);
  CHECK_THROWS_WITH_AS(problem.loss_and_gradient(std::vector<std::size_t>{0, 8}), doctest::Contains("indices"),
                       std::invalid_argument);
  CHECK_THROWS_AS(problem.loss_and_gradient(std::span<const std::size_t>{}), std::invalid_argument);
}

TEST_CASE("torch classifier: evaluate() runs in eval mode under no-grad and restores the training flag") {
  mixed net;
  const tensor_dataset train = synthetic(32, 1, 2, 2, 3, 7), test = synthetic(24, 1, 2, 2, 3, 8);
  bipq::torch_adapter::classifier problem(net, train, test, 1);
  const std::vector<std::size_t> idx{0, 1, 2, 3, 4, 5, 6, 7};
  problem.loss_and_gradient(idx);  // moves the batch norm's running statistics away from (0, 1)
  const at::Tensor mean = net->bn->running_mean.clone(), var = net->bn->running_var.clone();
  CHECK(net->is_training());
  const bipq::evaluation e = problem.evaluate();
  CHECK(net->is_training());
  CHECK(at::equal(mean, net->bn->running_mean));  // eval mode: running statistics read, not updated
  CHECK(at::equal(var, net->bn->running_var));

  // The same numbers by hand, in eval mode.
  net->eval();
  const at::Tensor z = net->forward(test.images);
  CHECK(e.loss == doctest::Approx(F::cross_entropy(z, test.labels).item<double>()).epsilon(1e-6));
  CHECK(e.accuracy == doctest::Approx(z.argmax(1).eq(test.labels).to(at::kDouble).mean().item<double>()));
  // A module in eval mode stays there after evaluate(), and loss_and_gradient trains and restores it too.
  problem.evaluate();
  CHECK(!net->is_training());
  problem.loss_and_gradient(idx);
  CHECK(!net->is_training());
  CHECK(!at::equal(mean, net->bn->running_mean));  // the training step did update them
}

TEST_CASE("torch classifier: every pruning driver prunes a torch module, and the module's tensors carry the masks") {
  const small_data data = fashion_mnist_or_synthetic(512, 256);
  const tensor_dataset train = bipq::torch_adapter::to_tensors(data.train), test = bipq::torch_adapter::to_tensors(data.test);
  bipq::train_params t;
  t.epochs = 1;
  t.batch_size = 64;
  bipq::mask_spec mask;
  mask.density = 0.2;
  for (const std::string method : {"imp", "omp", "gmp", "sap", "bip"}) {
    CAPTURE(method);
    lenet5 net;
    bipq::torch_adapter::classifier problem(net, train, test, 2);
    bipq::prune_result<float> r;
    if (method == "imp") r = bipq::imp(problem, bipq::imp_params{.mask = mask, .train = t, .rate = 0.6});
    if (method == "omp") r = bipq::omp(problem, bipq::omp_params{.mask = mask, .train = t});
    if (method == "gmp") r = bipq::gmp(problem, bipq::gmp_params{.mask = mask, .train = t, .frequency = 2});
    if (method == "sap") r = bipq::sap(problem, bipq::sap_params{.min_density = 0.2, .train = t, .rounds = 2});
    if (method == "bip") {
      bipq::bip_params p{.mask = mask, .pretrain = t, .bilevel_epochs = 0.5, .finetune = t};
      r = bipq::bip(problem, p);
    }
    // Conv and linear weights are pruned, to the target density (SAP: not below its floor).
    REQUIRE(r.masks.size() == 5);
    const std::size_t kept = r.masks.kept();
    if (method == "sap")
      CHECK(kept >= bipq::kept_count(0.2, r.masks.total()));
    else
      CHECK(kept == bipq::kept_count(0.2, r.masks.total()));
    // Read through the module, not the spans: every masked weight is zero in the tensor itself.
    auto named = net->named_parameters();
    for (std::size_t j = 0; j < r.masks.size(); ++j) {
      const auto& p = problem.parameters()[r.masks.prunable()[j]];
      CHECK((p.kind == parameter_kind::conv_weight || p.kind == parameter_kind::linear_weight));
      const float* w = named[p.name].data_ptr<float>();
      std::size_t nonzero_where_pruned = 0;
      for (std::size_t i = 0; i < r.masks[j].size(); ++i) nonzero_where_pruned += (r.masks[j][i] == 0.0f && w[i] != 0.0f);
      CHECK(nonzero_where_pruned == 0);
    }
    CHECK(r.final_record().test_accuracy == doctest::Approx(problem.evaluate().accuracy));
  }
}

TEST_CASE("torch classifier: the same seed gives the same masks and weights bit for bit") {
  const small_data data = fashion_mnist_or_synthetic(512, 128);
  const tensor_dataset train = bipq::torch_adapter::to_tensors(data.train), test = bipq::torch_adapter::to_tensors(data.test);
  const bipq::eigen::sequential init = bipq::eigen::make_lenet5(11);
  bipq::train_params t;
  t.epochs = 1;
  t.batch_size = 64;
  std::vector<std::vector<float>> weights[2];
  bipq::mask_set<float> masks[2];
  for (int run = 0; run < 2; ++run) {
    lenet5 net;
    copy_weights(init, *net);
    bipq::torch_adapter::classifier problem(net, train, test, 2);
    bipq::bip_params p{.mask = {.density = 0.1}, .pretrain = t, .bilevel_epochs = 0.5, .finetune = t};
    masks[run] = bipq::bip(problem, p).masks;
    for (const auto& q : problem.parameters()) weights[run].emplace_back(q.value.begin(), q.value.end());
  }
  CHECK(weights[0] == weights[1]);
  for (std::size_t j = 0; j < masks[0].size(); ++j)
    CHECK(std::ranges::equal(std::as_const(masks[0])[j], std::as_const(masks[1])[j]));
}

TEST_CASE("LeNet-5 in libtorch and in bipq's Eigen adapter: same loss, same gradient, masks that agree") {
  const small_data data = fashion_mnist_or_synthetic(1024, 256);
  const tensor_dataset train = bipq::torch_adapter::to_tensors(data.train), test = bipq::torch_adapter::to_tensors(data.test);
  const bipq::eigen::sequential init = bipq::eigen::make_lenet5(5);

  SUBCASE("loss and gradient on one batch") {
    bipq::eigen::sequential em = bipq::eigen::make_lenet5(5);  // the same bits as init
    bipq::eigen::classifier ep(em, data.train, data.test, 2);
    lenet5 net;
    copy_weights(init, *net);
    bipq::torch_adapter::classifier tp(net, train, test, 2);
    std::vector<std::size_t> idx(128);
    std::iota(idx.begin(), idx.end(), std::size_t{300});
    const double le = ep.loss_and_gradient(idx), lt = tp.loss_and_gradient(idx);
    const double loss_error = std::abs(le - lt) / std::abs(lt);
    double grad_error = 0.0;
    REQUIRE(ep.parameters().size() == tp.parameters().size());
    for (std::size_t i = 0; i < tp.parameters().size(); ++i) {
      const auto& a = ep.parameters()[i];
      const auto& b = tp.parameters()[i];
      REQUIRE(a.name == b.name);
      REQUIRE(a.shape == b.shape);
      CHECK(a.kind == b.kind);
      grad_error = std::max(grad_error, relative_max_error(a.grad, b.grad));
    }
    MESSAGE("LeNet-5, batch 128: |loss_eigen - loss_torch| / loss = " << loss_error
            << ", max over tensors of max|g_eigen - g_torch| / max|g_torch| = " << grad_error);
    CHECK(loss_error <= 1e-6);
    CHECK(grad_error <= 1e-5);
    const bipq::evaluation ee = ep.evaluate(), et = tp.evaluate();
    CHECK(ee.loss == doctest::Approx(et.loss).epsilon(1e-5));
    CHECK(ee.accuracy == et.accuracy);
  }

  bipq::train_params t;
  t.epochs = 1;
  t.batch_size = 64;
  const bipq::mask_spec mask{.density = 0.1};
  SUBCASE("OMP") {
    bipq::eigen::sequential em = bipq::eigen::make_lenet5(5);  // the same bits as init
    bipq::eigen::classifier ep(em, data.train, data.test, 2);
    lenet5 net;
    copy_weights(init, *net);
    bipq::torch_adapter::classifier tp(net, train, test, 2);
    const auto re = bipq::omp(ep, bipq::omp_params{.mask = mask, .train = t});
    const auto rt = bipq::omp(tp, bipq::omp_params{.mask = mask, .train = t});
    const mask_agreement a = agreement(re.masks, rt.masks);
    MESSAGE("OMP, LeNet-5, density 0.1, 1024 images, 1 epoch: fraction of mask entries equal " << a.equal
            << ", Jaccard index of the kept sets " << a.jaccard << "; test accuracy eigen "
            << re.final_record().test_accuracy << ", torch " << rt.final_record().test_accuracy);
    CHECK(a.jaccard >= 0.99);
  }
  SUBCASE("BiP") {
    bipq::eigen::sequential em = bipq::eigen::make_lenet5(5);  // the same bits as init
    bipq::eigen::classifier ep(em, data.train, data.test, 2);
    lenet5 net;
    copy_weights(init, *net);
    bipq::torch_adapter::classifier tp(net, train, test, 2);
    const bipq::bip_params p{.mask = mask, .pretrain = t, .bilevel_epochs = 1.0, .finetune = std::nullopt};
    const auto re = bipq::bip(ep, p);
    const auto rt = bipq::bip(tp, p);
    const mask_agreement a = agreement(re.masks, rt.masks);
    MESSAGE("BiP, LeNet-5, density 0.1, 1024 images, 1 + 1 epochs: fraction of mask entries equal " << a.equal
            << ", Jaccard index of the kept sets " << a.jaccard << "; test accuracy eigen "
            << re.final_record().test_accuracy << ", torch " << rt.final_record().test_accuracy);
    CHECK(a.jaccard >= 0.99);
  }
}
