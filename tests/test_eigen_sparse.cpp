// Sparse inference of unstructured masks: the sparse layers compute what the dense layers compute with the same
// (masked) weights, and sparsify() keeps the masked model's outputs.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <vector>

#include <doctest/doctest.h>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/inference.hpp"
#include "bipq/adapters/eigen/sparse.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/prune/omp.hpp"

using namespace bipq::eigen;
using bipq::io::image_dataset;

namespace {

// Zeroes all but a random fraction `density` of v (each entry kept with that probability).
void sparsen(std::vector<float>& v, double density, bipq::detail::rng& g) {
  for (float& x : v)
    if (g.uniform() >= density) x = 0.0f;
}

activation<float> random_activation(shape3 s, std::size_t n, bipq::detail::rng& g) {
  activation<float> a;
  a.resize(s, n);
  for (float& v : a.data) v = static_cast<float>(g.normal());
  return a;
}

double max_abs_diff(const activation<float>& a, const activation<float>& b) {
  REQUIRE(a.data.size() == b.data.size());
  REQUIRE(a.sample_shape() == b.sample_shape());
  double d = 0.0;
  for (std::size_t i = 0; i < a.data.size(); ++i) d = std::max(d, double(std::abs(a.data[i] - b.data[i])));
  return d;
}

image_dataset random_images(std::size_t n, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  image_dataset d;
  d.images.resize(n * 28 * 28);
  for (float& v : d.images) v = static_cast<float>(g.uniform());
  d.labels.assign(n, 0);
  return d;
}

// Global magnitude masks keeping `density` of the conv and linear weights.
bipq::mask_set<float> magnitude_masks(const sequential& m, double density) {
  const auto& ps = m.parameters();
  bipq::mask_set<float> masks(std::span<const bipq::parameter<float>>(ps), bipq::prunable_selection{}, "test");
  std::vector<std::span<const float>> w;
  for (std::size_t i : masks.prunable()) w.push_back(ps[i].value);
  const auto out = masks.spans();
  bipq::magnitude_mask_global<float>(w, static_cast<std::size_t>(density * double(masks.total())), out);
  return masks;
}

void check_same_outputs(sequential& a, sequential& b, const image_dataset& d) {
  const std::vector<float> la = predict_logits(a, d, 100), lb = predict_logits(b, d, 100);
  REQUIRE(la.size() == lb.size());
  const std::size_t k = la.size() / d.size();
  double diff = 0.0, scale = 1.0;
  std::size_t disagreements = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const float* pa = la.data() + i * k;
    const float* pb = lb.data() + i * k;
    disagreements += std::max_element(pa, pa + k) - pa != std::max_element(pb, pb + k) - pb;
    for (std::size_t j = 0; j < k; ++j) diff = std::max(diff, double(std::abs(pa[j] - pb[j]))), scale = std::max(scale, double(std::abs(pa[j])));
  }
  CHECK(diff <= 1e-4 * scale);
  CHECK(disagreements == 0);
}

}  // namespace

TEST_CASE("csr_weights stores exactly the nonzero entries, row by row") {
  bipq::detail::rng g(1);
  std::vector<float> w(7 * 13);
  for (float& v : w) v = static_cast<float>(g.normal());
  sparsen(w, 0.3, g);
  const auto m = csr_weights<float>::from_dense(w, 7, 13);
  std::vector<float> back(w.size(), 0.0f);
  for (std::size_t r = 0; r < m.rows; ++r)
    for (std::uint32_t e = m.start[r]; e < m.start[r + 1]; ++e) back[r * 13 + m.column[e]] = m.value[e];
  CHECK(back == w);
  CHECK(m.nonzeros() == static_cast<std::size_t>(std::count_if(w.begin(), w.end(), [](float v) { return v != 0.0f; })));
  CHECK_THROWS_AS(csr_weights<float>::from_dense(w, 7, 12), std::invalid_argument);
}

TEST_CASE("sparse_linear equals linear with the same weights, for batch sizes that are not whole vectors") {
  bipq::detail::rng g(2);
  for (std::size_t n : {1u, 7u, 32u, 37u, 128u}) {
    for (bool bias : {true, false}) {
      CAPTURE(n);
      linear<float> dense(45, 19, bias);
      dense.reset_parameters(g);
      for (auto& p : dense.parameters()) {
        for (float& v : p.value) v = static_cast<float>(g.normal());
        if (p.suffix == "weight") sparsen(p.value, 0.2, g);
      }
      const std::span<const float> b = bias ? std::span<const float>(dense.parameters()[1].value) : std::span<const float>();
      sparse_linear<float> sparse(dense.parameters()[0].value, b, 45, 19);
      dense.set_threads(1), sparse.set_threads(1);
      const activation<float> x = random_activation({45, 1, 1}, n, g);
      activation<float> y0, y1;
      dense.forward({}, x, y0);
      sparse.forward({}, x, y1);
      CHECK(max_abs_diff(y0, y1) <= 1e-5);
    }
  }
}

TEST_CASE("sparse_conv2d equals conv2d with the same weights: padding, stride, bias, odd sizes") {
  bipq::detail::rng g(3);
  struct geometry {
    std::size_t c, k, r, stride, pad, h, w;
    bool bias;
  };
  for (const geometry& s : {geometry{1, 6, 5, 1, 2, 28, 28, true}, geometry{6, 16, 5, 1, 0, 14, 14, true},
                            geometry{3, 5, 3, 1, 1, 7, 9, false}, geometry{4, 3, 3, 2, 1, 11, 10, true},
                            geometry{2, 4, 1, 1, 0, 5, 5, false}}) {
    CAPTURE(s.c);
    CAPTURE(s.stride);
    conv2d<float> dense(s.c, s.k, s.r, s.stride, s.pad, s.bias);
    for (auto& p : dense.parameters()) {
      for (float& v : p.value) v = static_cast<float>(g.normal());
      if (p.suffix == "weight") sparsen(p.value, 0.25, g);
    }
    const std::span<const float> b = s.bias ? std::span<const float>(dense.parameters()[1].value) : std::span<const float>();
    sparse_conv2d<float> sparse(dense.parameters()[0].value, b, s.c, s.k, s.r, s.stride, s.pad);
    dense.set_threads(1), sparse.set_threads(1);
    for (std::size_t n : {1u, 3u}) {
      const activation<float> x = random_activation({s.c, s.h, s.w}, n, g);
      activation<float> y0, y1;
      dense.forward({}, x, y0);
      sparse.forward({}, x, y1);
      CHECK(max_abs_diff(y0, y1) <= 1e-4);
      // With a ReLU fused: forward() then relu's forward(), bit for bit.
      relu<float> r;
      activation<float> y2, y3;
      r.forward({}, y1, y2);
      const layer<float>* then[] = {&r};
      REQUIRE(sparse.forward_then({}, x, y3, then));
      CHECK(y2.data == y3.data);
    }
  }
}

TEST_CASE("sparsify LeNet-5 and cnn at 5%: sparse layers where sparse enough, the masked model's outputs") {
  const image_dataset d = random_images(300, 4);
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    sequential m = which == 0 ? make_lenet5(5) : make_pqi_cnn({}, 5);
    const auto masks = magnitude_masks(m, 0.05);
    sequential masked = copy_model(m);
    masks.apply(masked.parameters());
    sequential sparse = sparsify(m, masks);
    std::size_t sparse_layers = 0;
    for (std::size_t l = 0; l < sparse.size(); ++l)
      sparse_layers += dynamic_cast<sparse_conv2d<float>*>(&sparse[l]) != nullptr ||
                       dynamic_cast<sparse_linear<float>*>(&sparse[l]) != nullptr;
    CHECK(sparse_layers >= 3);
    // Each masked layer is sparse exactly when its density is within its limit: max_density_small_conv for
    // convolutions with output planes of fewer than small_plane positions, max_density for the others.
    for (double small_limit : {0.0, 0.1, 1.0}) {
      const sparse_options o{0.6, small_limit, 64};
      sequential s = sparsify(m, masks, o);
      shape3 shape = m.input_shape();
      for (std::size_t l = 0; l < m.size(); ++l) {
        shape = m[l].output_shape(shape);
        if (m[l].parameters().empty()) continue;
        const auto& w = masked[l].parameters()[0].value;
        const double density = double(std::count_if(w.begin(), w.end(), [](float v) { return v != 0.0f; })) / double(w.size());
        const bool small = dynamic_cast<const conv2d<float>*>(&m[l]) != nullptr && shape.h * shape.w < 64;
        if (which == 1 && m.name(l) == "conv4") CHECK(small);  // 3×3 planes
        if (m.name(l) == "conv1") CHECK(!small);               // 28×28
        const double limit = small ? o.max_density_small_conv : o.max_density;
        const bool is_sparse = dynamic_cast<sparse_conv2d<float>*>(&s[l]) != nullptr ||
                               dynamic_cast<sparse_linear<float>*>(&s[l]) != nullptr;
        INFO("layer " << m.name(l) << " density " << density << " limit " << limit);
        CHECK(is_sparse == (density <= limit));
      }
    }
    check_same_outputs(masked, sparse, d);
    {  // infer() (ReLUs fused into the sparse convolutions) gives forward()'s logits
      sparse.set_threads(1);
      std::vector<activation<float>> a(sparse.size() + 1), b(sparse.size() + 1);
      a[0].resize(sparse.input_shape(), 37);
      std::copy_n(d.images.begin(), a[0].data.size(), a[0].data.begin());
      b[0] = a[0];
      sparse.forward({}, a);
      sparse.infer({}, b);
      CHECK(a.back().data == b.back().data);
    }
    sequential all_dense = sparsify(m, masks, sparse_options{0.0, 0.0});  // nothing is that sparse: plain copies
    check_same_outputs(masked, all_dense, d);
  }
  CHECK_THROWS_WITH_AS(sparsify(make_lenet5(1), bipq::mask_set<float>{}, sparse_options{1.5}),
                       "sparsify(): options.max_density must be in [0, 1]", std::invalid_argument);
  CHECK_THROWS_WITH_AS(sparsify(make_lenet5(1), bipq::mask_set<float>{}, sparse_options{0.6, -0.1, 64}),
                       "sparsify(): options.max_density_small_conv must be in [0, 1]", std::invalid_argument);
  sparse_linear<float> l(std::vector<float>(6, 1.0f), {}, 3, 2);
  activation<float> a;
  CHECK_THROWS_AS(l.backward({}, a, a, a, nullptr), std::logic_error);
}

TEST_CASE("sparsify OMP masks of LeNet-5 at 5% on Fashion-MNIST: same predictions on the whole test set") {
  const auto dir = bipq::io::fashion_mnist_directory();
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") && !std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
    MESSAGE("Fashion-MNIST not found in " << dir.string() << ": skipped");
    return;
  }
  const bipq::io::fashion_mnist f = bipq::io::load_fashion_mnist();
  const image_dataset train = bipq::io::head(f.train, 512);
  sequential m = make_lenet5(13);
  classifier problem(m, train, f.test, 2);
  bipq::omp_params params;
  params.mask.density = 0.05;
  params.train.epochs = 1;
  params.train.batch_size = 64;
  params.train.seed = 2;
  const auto result = bipq::omp(problem, params);
  result.masks.apply(m.parameters());
  sequential sparse = sparsify(m, result.masks);
  check_same_outputs(m, sparse, f.test);
}
