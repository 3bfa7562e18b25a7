// Compact export of filter masks: the smaller model computes what the masked model computes.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <vector>

#include <doctest/doctest.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/compact.hpp"
#include "bipq/adapters/eigen/inference.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/prune/omp.hpp"

using namespace bipq::eigen;
using bipq::io::image_dataset;

namespace {


image_dataset random_images(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  image_dataset d;
  d.images.resize(n * 28 * 28);
  for (float& v : d.images) v = static_cast<float>(g.uniform());
  d.labels.assign(n, 0);
  return d;
}

// Filter masks keeping round(density · K) filters of largest L2 norm in every masked tensor of `selection`.
bipq::mask_set<float> filter_masks(const sequential& m, double density, const bipq::prunable_selection& selection) {
  const auto& ps = m.parameters();
  bipq::mask_set<float> masks(std::span<const bipq::parameter<float>>(ps), selection, "test");
  for (std::size_t j = 0; j < masks.size(); ++j) {
    const auto& p = ps[masks.prunable()[j]];
    const auto k = static_cast<std::size_t>(std::lround(density * double(p.shape[0])));
    bipq::group_top_k_mask<float>(p.value, p.shape, k, masks[j]);
  }
  return masks;
}

// Random biases, norm parameters and running statistics, so that the removed filters' constants are nonzero.
void randomise_non_weights(sequential& m, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  for (std::size_t l = 0; l < m.size(); ++l) {
    for (auto& p : m[l].parameters())
      if (p.kind == bipq::parameter_kind::bias || p.kind == bipq::parameter_kind::norm)
        for (float& v : p.value) v = static_cast<float>(p.kind == bipq::parameter_kind::norm && p.suffix == "weight" ? 0.5 + g.uniform() : g.normal() * 0.3);
    if (auto* bn = dynamic_cast<batch_norm2d<float>*>(&m[l])) {
      std::vector<double> mean(bn->channels()), var(bn->channels());
      for (auto& v : mean) v = 0.2 * g.normal();
      for (auto& v : var) v = 0.5 + g.uniform();
      bn->set_running_statistics(mean, var);
    }
  }
}

// The masked model: a copy with w ← m ⊙ w.
sequential masked_copy(const sequential& m, const bipq::mask_set<float>& masks) {
  sequential c = copy_model(m);
  masks.apply(c.parameters());
  return c;
}

struct comparison {
  double max_abs_diff = 0.0, max_abs = 0.0;
  std::size_t disagreements = 0;
};

comparison compare_logits(sequential& a, sequential& b, const image_dataset& d) {
  const std::vector<float> la = predict_logits(a, d), lb = predict_logits(b, d);
  REQUIRE(la.size() == lb.size());
  comparison c;
  const std::size_t k = la.size() / d.size();
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto* pa = la.data() + i * k;
    const auto* pb = lb.data() + i * k;
    if (std::max_element(pa, pa + k) - pa != std::max_element(pb, pb + k) - pb) ++c.disagreements;
    for (std::size_t j = 0; j < k; ++j) {
      c.max_abs_diff = std::max(c.max_abs_diff, double(std::abs(pa[j] - pb[j])));
      c.max_abs = std::max(c.max_abs, double(std::abs(pa[j])));
    }
  }
  return c;
}

std::size_t count_values(const sequential& m) { return m.num_parameters(); }

}  // namespace

TEST_CASE("compact LeNet-5: filters removed, next layers' inputs sliced, outputs equal the masked model's") {
  sequential m = make_lenet5(7);
  randomise_non_weights(m, 8);
  bipq::prunable_selection selection;  // conv and linear weights, but not the classifier's
  selection.exclude_names = {"fc3.weight"};
  const auto masks = filter_masks(m, 0.5, selection);
  sequential masked = masked_copy(m, masks);
  sequential small = compact(m, masks);
  // conv1 6 → 3, conv2 16 → 8, fc1 120 → 60, fc2 84 → 42, fc3 keeps its 10 outputs.
  CHECK(small[0].parameters()[0].shape == std::vector<std::size_t>{3, 1, 5, 5});
  CHECK(small[3].parameters()[0].shape == std::vector<std::size_t>{8, 3, 5, 5});
  CHECK(small[7].parameters()[0].shape == std::vector<std::size_t>{60, 8 * 25});
  CHECK(small[9].parameters()[0].shape == std::vector<std::size_t>{42, 60});
  CHECK(small[11].parameters()[0].shape == std::vector<std::size_t>{10, 42});
  CHECK(small.output_shape() == masked.output_shape());
  const image_dataset d = random_images(300, 9);
  const comparison c = compare_logits(masked, small, d);
  CHECK(c.max_abs_diff <= 1e-4 * std::max(1.0, c.max_abs));
  CHECK(c.disagreements == 0);
}

TEST_CASE("compact cnn: batch norm sliced, padded convs get the removed channels' border map") {
  sequential m = make_pqi_cnn({8, 12, 16}, 3);
  randomise_non_weights(m, 4);
  const auto masks = filter_masks(m, 0.5, bipq::prunable_selection{{bipq::parameter_kind::conv_weight}, {}});
  sequential masked = masked_copy(m, masks);
  sequential small = compact(m, masks);
  // conv1 8 → 4 (its input is the image), conv2 12 → 6 with a border map for conv1's removed, nonzero channels.
  bool has_border = false;
  for (std::size_t l = 0; l < small.size(); ++l) has_border |= small.name(l) == "conv2_border";
  CHECK(has_border);
  for (const auto& p : small.parameters()) {
    if (p.name == "conv2.weight") CHECK(p.shape == std::vector<std::size_t>{6, 4, 3, 3});
    if (p.name == "bn3.weight") CHECK(p.shape == std::vector<std::size_t>{8});
    if (p.name == "fc.weight") CHECK(p.shape == std::vector<std::size_t>{10, 8});  // through global average pooling
    if (p.name == "bn2.weight") CHECK(p.shape == std::vector<std::size_t>{6});
  }
  CHECK(count_values(small) < count_values(m));
  const image_dataset d = random_images(200, 5);
  const comparison c = compare_logits(masked, small, d);
  CHECK(c.max_abs_diff <= 1e-4 * std::max(1.0, c.max_abs));
  CHECK(c.disagreements == 0);
}

TEST_CASE("compact of a model without zero filters is a copy computing the same outputs") {
  sequential m = make_mlp(2);
  randomise_non_weights(m, 3);
  sequential same = compact(m);
  CHECK(same.num_parameters() == m.num_parameters());
  const image_dataset d = random_images(50, 1);
  const comparison c = compare_logits(m, same, d);
  CHECK(c.max_abs_diff == 0.0);
}

TEST_CASE("compact rejects masks made for another model") {
  sequential a = make_lenet5(1), b = make_mlp(1);
  const auto masks = filter_masks(b, 0.5, bipq::prunable_selection{});
  CHECK_THROWS_WITH_AS(compact(a, masks), doctest::Contains("compact(): 'masks'"), std::invalid_argument);
}

TEST_CASE("compact of OMP filter masks on Fashion-MNIST: same predictions on the whole test set") {
  const auto dir = bipq::io::fashion_mnist_directory();
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") && !std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
    MESSAGE("Fashion-MNIST not found in " << dir.string() << ": skipped");
    return;
  }
  const bipq::io::fashion_mnist f = bipq::io::load_fashion_mnist();
  const image_dataset train = bipq::io::head(f.train, 256);
  bipq::omp_params params;
  params.mask.structure = bipq::mask_structure::filter;
  params.mask.density = 0.5;
  params.train.epochs = 1;
  params.train.batch_size = 64;
  params.train.seed = 1;
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    sequential m = which == 0 ? make_lenet5(11) : make_pqi_cnn({}, 11);
    classifier problem(m, train, f.test, 2);
    const auto result = bipq::omp(problem, params);
    result.masks.apply(m.parameters());
    sequential small = compact(m, result.masks);
    CHECK(small.num_parameters() < m.num_parameters());
    const comparison c = compare_logits(m, small, f.test);
    CHECK(c.max_abs_diff <= 1e-4 * std::max(1.0, c.max_abs));
    CHECK(c.disagreements == 0);
  }
}

namespace {

// acts.back() after forward() and after infer() in inference mode, bit for bit, for batches of n random images.
void check_infer_equals_forward(sequential& m, std::size_t n, std::uint64_t seed) {
  m.set_threads(1);
  const image_dataset d = random_images(n, seed);
  std::vector<activation<float>> a(m.size() + 1), b(m.size() + 1);
  a[0].resize(m.input_shape(), n);
  std::copy(d.images.begin(), d.images.end(), a[0].data.begin());
  b[0] = a[0];
  const thread_context ctx{0, false, nullptr};
  m.forward(ctx, a);
  m.infer(ctx, b);
  REQUIRE(a.back().data.size() == b.back().data.size());
  CHECK(std::memcmp(a.back().data.data(), b.back().data.data(), a.back().data.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("infer() fuses batch norm, ReLU and border maps into the convolutions with forward()'s values") {
  // cnn: conv (direct, then GEMM) – bn – relu; LeNet-5: conv – relu; the compact cnn: conv – border map – bn – relu.
  sequential cnn = make_pqi_cnn({8, 12, 16}, 3), lenet = make_lenet5(6);
  randomise_non_weights(cnn, 4);
  randomise_non_weights(lenet, 7);
  const auto masks = filter_masks(cnn, 0.5, bipq::prunable_selection{{bipq::parameter_kind::conv_weight}, {}});
  sequential small = compact(cnn, masks);
  for (std::size_t n : {1u, 37u, 130u}) {
    INFO("batch " << n);
    check_infer_equals_forward(cnn, n, 10 + n);
    check_infer_equals_forward(lenet, n, 20 + n);
    check_infer_equals_forward(small, n, 30 + n);
  }
  std::vector<activation<float>> acts(cnn.size() + 1);
  CHECK_THROWS_AS(cnn.infer(thread_context{0, true, nullptr}, acts), std::invalid_argument);
}
