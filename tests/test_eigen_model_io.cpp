// A whole Eigen model on disk: write then read gives the same outputs bit for bit (dense and sparse storage, batch
// norm statistics included, and a compact model with its spatial_bias border map), sparse storage of a 5%-density LeNet-5 is at least 8x smaller than the dense model, and
// every kind of bad file is refused with a message naming the file and the field.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/compact.hpp"
#include "bipq/adapters/eigen/model_io.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/version.hpp"

namespace fs = std::filesystem;
namespace be = bipq::eigen;

namespace {
fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bipq_test_model_io_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }
void replace_in(const fs::path& p, const std::string& from, const std::string& to) {
  std::string s = slurp(p);
  const auto at = s.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  s.replace(at, from.size(), to);
  spit(p, s);
}

// Random weights everywhere (biases and batch-norm affine parameters included), random running statistics.
void randomize(be::sequential& m, std::uint64_t seed) {
  bipq::detail::rng g(seed);
  for (const auto& p : m.parameters())
    for (float& v : p.value) v = static_cast<float>(0.3 * g.normal());
  for (std::size_t l = 0; l < m.size(); ++l)
    if (auto* bn = dynamic_cast<be::batch_norm2d<float>*>(&m[l])) {
      std::vector<double> mean(bn->channels()), var(bn->channels());
      for (std::size_t k = 0; k < mean.size(); ++k) mean[k] = 0.1 * g.normal(), var[k] = 0.5 + g.uniform();
      bn->set_running_statistics(mean, var);
    }
}

// Masks keeping the `density` fraction of largest-|w| conv and linear weights (global), applied to the weights.
bipq::mask_set<float> magnitude_masks(be::sequential& m, double density) {
  bipq::mask_set<float> masks(std::span<const bipq::parameter<float>>(m.parameters()), bipq::prunable_selection{}, "test");
  const auto w = masks.weights(m.parameters());
  const std::vector<std::span<const float>> ws(w.begin(), w.end());
  const auto out = masks.spans();
  bipq::magnitude_mask_global<float>(ws, static_cast<std::size_t>(density * double(masks.total())), out);
  masks.apply(m.parameters());
  return masks;
}

// Filter masks keeping the half of every conv weight's filters of largest L2 norm, applied to the weights.
bipq::mask_set<float> half_filter_masks(be::sequential& m) {
  bipq::mask_set<float> masks(std::span<const bipq::parameter<float>>(m.parameters()),
                              bipq::prunable_selection{{bipq::parameter_kind::conv_weight}, {}}, "test");
  for (std::size_t j = 0; j < masks.size(); ++j) {
    const auto& p = m.parameters()[masks.prunable()[j]];
    bipq::group_top_k_mask<float>(p.value, p.shape, p.shape[0] / 2, masks[j]);
  }
  masks.apply(m.parameters());
  return masks;
}

// The compact model of the PQI CNN {4, 8} with half its filters removed: bn1's shift β = 1 makes conv1's removed
// channels constant and positive after ReLU, so conv2 (zero padding) is followed by the border map "conv2_border".
be::sequential compact_cnn_with_border_map() {
  be::sequential m = be::make_pqi_cnn({4, 8}, 2);
  randomize(m, 13);
  for (auto& p : m.parameters())
    if (p.name == "bn1.bias") std::fill(p.value.begin(), p.value.end(), 1.0f);
  const bipq::mask_set<float> masks = half_filter_masks(m);
  be::sequential small = be::compact(m, masks);
  bool has_border = false;
  for (std::size_t l = 0; l < small.size(); ++l)
    has_border |= dynamic_cast<const be::spatial_bias<float>*>(&small[l]) != nullptr;
  REQUIRE(has_border);
  return small;
}

// The logits of n random inputs, in inference mode.
std::vector<float> logits(be::sequential& m, std::size_t n, std::uint64_t seed) {
  m.set_threads(1);
  std::vector<be::activation<float>> acts(m.size() + 1);
  acts[0].resize(m.input_shape(), n);
  bipq::detail::rng g(seed);
  for (float& v : acts[0].data) v = static_cast<float>(g.uniform());
  m.forward(be::thread_context{0, false, nullptr}, acts);
  return acts.back().data;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string error_of(const fs::path& dir) {
  try {
    be::read_model<float>(dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("write_model then read_model gives the same outputs bit for bit, dense and sparse") {
  struct named {
    const char* name;
    be::sequential model;
  };
  std::vector<named> models;
  models.push_back({"lenet5", be::make_lenet5(1)});
  models.push_back({"cnn", be::make_pqi_cnn({4, 8}, 2)});
  models.push_back({"mlp", be::make_mlp(3)});
  for (auto& entry : models) {  // not a structured binding: clang 14 cannot capture one in CAPTURE's lambda
    const char* name = entry.name;
    be::sequential& m = entry.model;
    CAPTURE(name);
    randomize(m, 7);
    const bipq::mask_set<float> masks = magnitude_masks(m, 0.1);
    const std::vector<float> want = logits(m, 5, 11);
    for (const auto storage : {be::tensor_storage::dense, be::tensor_storage::sparse}) {
      const fs::path dir = scratch(std::string(name) + (storage == be::tensor_storage::dense ? "_dense" : "_sparse"));
      be::export_options opt;
      opt.masked_storage = storage;
      opt.input = {0.5, 0.25, 2.0};
      opt.run.set("method", "test");
      opt.run.set("seed", 7);
      be::write_model(dir, m, masks, opt);
      be::loaded_model<float> back = be::read_model<float>(dir);
      CHECK(back.masks == masks);
      CHECK(back.input.pixel_scale == 0.5);
      CHECK(back.input.mean == 0.25);
      CHECK(back.input.std == 2.0);
      CHECK(back.index.at("run").at("method").as_string() == "test");
      CHECK(back.index.at("run").at("seed").as_number() == 7.0);
      CHECK(back.index.at("bipq_version").as_string() == std::string(bipq::version));
      REQUIRE(back.model.parameters().size() == m.parameters().size());
      for (std::size_t i = 0; i < m.parameters().size(); ++i) {
        CHECK(back.model.parameters()[i].name == m.parameters()[i].name);
        CHECK(back.model.parameters()[i].shape == m.parameters()[i].shape);
      }
      CHECK(same_bits(logits(back.model, 5, 11), want));
    }
  }
}

TEST_CASE("index.json lists every file of the set with its size, and write_model returns their total") {
  be::sequential m = be::make_pqi_cnn({4, 8}, 2);
  randomize(m, 3);
  const fs::path dir = scratch("index");
  const std::uintmax_t bytes = be::write_model(dir, m);
  const auto index = bipq::io::json::parse(slurp(dir / "index.json"));
  std::uintmax_t listed = 0;
  std::size_t files = 0;
  for (const auto& f : index.at("files").as_array()) {
    CHECK(fs::file_size(dir / f.at("name").as_string()) == f.at("bytes").as_size());
    listed += f.at("bytes").as_size();
    ++files;
  }
  std::uintmax_t on_disk = 0;
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) on_disk += e.file_size(), ++entries;
  CHECK(entries == files + 1);  // + index.json itself
  CHECK(on_disk == bytes);
  CHECK(on_disk == listed + fs::file_size(dir / "index.json"));
  // Batch norm buffers are part of the set, in double precision.
  CHECK(fs::exists(dir / "bn1.running_mean.npy"));
  CHECK(bipq::io::read_npy<double>(dir / "bn2.running_var.npy").data ==
        dynamic_cast<const be::batch_norm2d<float>&>(m[5]).running_var());
}

TEST_CASE("a compact model with a spatial_bias layer reads back with the same outputs bit for bit, and no masks") {
  be::sequential small = compact_cnn_with_border_map();
  const std::vector<float> want = logits(small, 6, 17);
  const fs::path dir = scratch("compact");
  be::write_model(dir, small);
  CHECK(slurp(dir / "model.json").find("\"type\": \"spatial_bias\"") != std::string::npos);
  be::loaded_model<float> back = be::read_model<float>(dir);
  CHECK(back.masks.size() == 0);
  REQUIRE(back.model.size() == small.size());
  for (std::size_t l = 0; l < small.size(); ++l) {
    CHECK(back.model.name(l) == small.name(l));
    CHECK((dynamic_cast<const be::spatial_bias<float>*>(&back.model[l]) != nullptr) ==
          (dynamic_cast<const be::spatial_bias<float>*>(&small[l]) != nullptr));
  }
  REQUIRE(back.model.parameters().size() == small.parameters().size());
  for (std::size_t i = 0; i < small.parameters().size(); ++i)
    CHECK(back.model.parameters()[i].shape == small.parameters()[i].shape);
  CHECK(same_bits(logits(back.model, 6, 17), want));
}

TEST_CASE("the compact export of the demo's CNN with half its filters pruned is smaller than the dense model") {
  be::sequential m = be::make_pqi_cnn({}, 4);
  randomize(m, 4);
  const fs::path dense_dir = scratch("compact_size_dense"), masked_dir = scratch("compact_size_masked"),
                 compact_dir = scratch("compact_size_compact");
  const bipq::mask_set<float> masks = half_filter_masks(m);
  const std::uintmax_t dense = be::write_model(dense_dir, m);            // the masked weights, no masks
  const std::uintmax_t masked = be::write_model(masked_dir, m, masks);   // dense weights + dense masks
  const std::uintmax_t compact = be::write_model(compact_dir, be::compact(m, masks));
  MESSAGE("PQI CNN, half the conv filters pruned, on disk: dense " << dense << " bytes, masked stored dense "
          << masked << " bytes, compact " << compact << " bytes: " << double(dense) / double(compact)
          << "x smaller than dense");
  CHECK(compact < dense);
}

TEST_CASE("sparse storage of a 5%-density LeNet-5 is at least 8x smaller than the dense model") {
  be::sequential m = be::make_lenet5(5);
  randomize(m, 5);
  const fs::path dense_dir = scratch("size_dense"), masked_dir = scratch("size_masked"), sparse_dir = scratch("size_sparse");
  const std::uintmax_t dense = be::write_model(dense_dir, m);  // the unpruned model, no masks
  const bipq::mask_set<float> masks = magnitude_masks(m, 0.05);
  be::export_options opt;
  const std::uintmax_t masked = be::write_model(masked_dir, m, masks, opt);  // dense weights + dense masks
  opt.masked_storage = be::tensor_storage::sparse;
  const std::uintmax_t sparse = be::write_model(sparse_dir, m, masks, opt);
  MESSAGE("LeNet-5 on disk: dense " << dense << " bytes, 5% masked stored dense " << masked << " bytes, stored sparse "
                                    << sparse << " bytes: " << double(dense) / double(sparse) << "x smaller than dense");
  CHECK(double(dense) / double(sparse) >= 8.0);
  CHECK(masked > dense);
}

TEST_CASE("read_model refuses bad files with a message naming the file and the field") {
  be::sequential m = be::make_pqi_cnn({4, 8}, 2);
  randomize(m, 9);
  const bipq::mask_set<float> masks = magnitude_masks(m, 0.2);
  be::export_options sparse;
  sparse.masked_storage = be::tensor_storage::sparse;
  auto fresh = [&](const std::string& name, const be::export_options& opt) {
    const fs::path dir = scratch(name);
    be::write_model(dir, m, masks, opt);
    return dir;
  };
  auto contains = [](const std::string& msg, std::vector<std::string> parts) {
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos) return false;
    return msg.rfind("read_model(): ", 0) == 0;
  };
  SUBCASE("missing directory") { CHECK(contains(error_of(scratch("missing")), {"index.json"})); }
  SUBCASE("malformed JSON") {
    const fs::path d = fresh("json", {});
    spit(d / "model.json", "{\"layers\": [");
    CHECK(contains(error_of(d), {"model.json", "invalid JSON"}));
  }
  SUBCASE("another format version") {
    const fs::path d = fresh("version", {});
    replace_in(d / "index.json", "\"format_version\": 1", "\"format_version\": 2");
    CHECK(contains(error_of(d), {"index.json", "index.format_version"}));
  }
  SUBCASE("missing hyper-parameter") {
    const fs::path d = fresh("field", {});
    replace_in(d / "model.json", "\"kernel_size\": 3,", "");
    CHECK(contains(error_of(d), {"model.json", "layers[0]", "kernel_size"}));
  }
  SUBCASE("hyper-parameter of the wrong type") {
    const fs::path d = fresh("type", {});
    replace_in(d / "model.json", "\"bias\": false", "\"bias\": 0");
    CHECK(contains(error_of(d), {"model.json", "layers[0].bias", "not a boolean"}));
  }
  SUBCASE("unknown layer type") {
    const fs::path d = fresh("layer", {});
    replace_in(d / "model.json", "\"type\": \"relu\"", "\"type\": \"gelu\"");
    CHECK(contains(error_of(d), {"model.json", "layers[2].type", "gelu"}));
  }
  SUBCASE("architecture that does not chain") {
    const fs::path d = fresh("chain", {});
    replace_in(d / "model.json", "\"num_features\": 4", "\"num_features\": 5");
    CHECK(contains(error_of(d), {"model.json", "layers[1]", "channels"}));
  }
  SUBCASE("tensor shape that is not the layer's") {
    const fs::path d = fresh("shape", {});
    const std::vector<float> w(4 * 1 * 3 * 3, 1.0f);
    const std::vector<std::size_t> wrong{4, 9};
    bipq::io::write_npy<float>(d / "conv1.weight.npy", w, wrong);
    CHECK(contains(error_of(d), {"conv1.weight.npy", "layers[0].tensors.weight.file", "shape"}));
  }
  SUBCASE("another dtype in the file") {
    const fs::path d = fresh("dtype", {});
    const std::vector<double> w(4 * 1 * 3 * 3, 1.0);
    const std::vector<std::size_t> shape{4, 1, 3, 3};
    bipq::io::write_npy<double>(d / "conv1.weight.npy", w, shape);
    CHECK(contains(error_of(d), {"conv1.weight.npy", "layers[0].tensors.weight", "dtype"}));
  }
  SUBCASE("truncated tensor file") {
    const fs::path d = fresh("truncated", {});
    const std::string s = slurp(d / "fc.weight.npy");
    spit(d / "fc.weight.npy", s.substr(0, s.size() - 4));
    CHECK(contains(error_of(d), {"fc.weight.npy", "tensors.weight", "truncated"}));
  }
  SUBCASE("mask value other than 0 and 1") {
    const fs::path d = fresh("mask", {});
    auto mk = bipq::io::read_npy<float>(d / "conv2.weight.mask.npy");
    mk.data[3] = 0.5f;
    bipq::io::write_npy<float>(d / "conv2.weight.mask.npy", mk.data, mk.shape);
    CHECK(contains(error_of(d), {"conv2.weight.mask.npy", "tensors.weight.mask", "neither 0 nor 1"}));
  }
  SUBCASE("missing batch-norm statistics") {
    const fs::path d = fresh("stats", {});
    fs::remove(d / "bn2.running_var.npy");
    CHECK(contains(error_of(d), {"bn2.running_var.npy", "layers[5].tensors.running_var"}));
  }
  SUBCASE("sparse index out of range") {
    const fs::path d = fresh("range", sparse);
    auto idx = bipq::io::read_npy<std::uint16_t>(d / "fc.weight.indices.npy");
    idx.data.back() = 60000;
    bipq::io::write_npy<std::uint16_t>(d / "fc.weight.indices.npy", idx.data, idx.shape);
    CHECK(contains(error_of(d), {"fc.weight.indices.npy", "tensors.weight.indices", "out of range"}));
  }
  SUBCASE("sparse indices not increasing") {
    const fs::path d = fresh("order", sparse);
    auto idx = bipq::io::read_npy<std::uint16_t>(d / "conv2.weight.indices.npy");
    REQUIRE(idx.data.size() >= 2);
    std::swap(idx.data[0], idx.data[1]);
    bipq::io::write_npy<std::uint16_t>(d / "conv2.weight.indices.npy", idx.data, idx.shape);
    CHECK(contains(error_of(d), {"conv2.weight.indices.npy", "not increasing"}));
  }
  SUBCASE("sparse count that disagrees with the values") {
    const fs::path d = fresh("count", sparse);
    const std::vector<float> v(3, 1.0f);
    const std::vector<std::size_t> shape{3};
    bipq::io::write_npy<float>(d / "conv1.weight.values.npy", v, shape);
    CHECK(contains(error_of(d), {"conv1.weight.values.npy", "tensors.weight.values", "shape"}));
  }
  SUBCASE("spatial_bias shape that is not its input's") {
    const fs::path d = scratch("border_shape");
    be::write_model(d, compact_cnn_with_border_map());
    replace_in(d / "model.json", "\"type\": \"spatial_bias\",\n      \"shape\": [4, 14, 14]",
               "\"type\": \"spatial_bias\",\n      \"shape\": [4, 14, 13]");
    CHECK(contains(error_of(d), {"model.json", "layers[5].shape", "(4, 14, 14)"}));
  }
  SUBCASE("spatial_bias map of another shape than the layer's") {
    const fs::path d = scratch("border_map");
    be::write_model(d, compact_cnn_with_border_map());
    const std::vector<float> b(4 * 196, 1.0f);
    const std::vector<std::size_t> wrong{4, 196};
    bipq::io::write_npy<float>(d / "conv2_border.bias.npy", b, wrong);
    CHECK(contains(error_of(d), {"conv2_border.bias.npy", "layers[5].tensors.bias.file", "shape"}));
  }
  SUBCASE("file name escaping the directory") {
    const fs::path d = fresh("escape", {});
    replace_in(d / "model.json", "\"file\": \"conv1.weight.npy\"", "\"file\": \"../conv1.weight.npy\"");
    CHECK(contains(error_of(d), {"model.json", "layers[0].tensors.weight.file", "not a file name"}));
  }
}

namespace {
// A layer the file format does not know.
struct identity_layer : be::layer<float> {
  be::shape3 output_shape(be::shape3 in) const override { return in; }
  void forward(const be::thread_context&, const be::activation<float>& x, be::activation<float>& y) override { y = x; }
  void backward(const be::thread_context&, const be::activation<float>&, const be::activation<float>&,
                const be::activation<float>& dy, be::activation<float>* dx) override {
    if (dx) *dx = dy;
  }
};
}  // namespace

TEST_CASE("write_model refuses what it cannot describe, and the previous export survives") {
  be::sequential good = be::make_mlp(1);
  const fs::path dir = scratch("refuse");
  be::write_model(dir, good);
  const std::string before = slurp(dir / "index.json");
  be::sequential odd(be::shape3{1, 28, 28});
  odd.add("flatten", be::flatten<float>()).add("odd", identity_layer{});
  CHECK_THROWS_WITH_AS(be::write_model(dir, odd), doctest::Contains("write_model(): layer 'odd'"), std::invalid_argument);
  CHECK(slurp(dir / "index.json") == before);
  std::size_t siblings = 0;
  for (const auto& e : fs::directory_iterator(dir.parent_path())) siblings += e.path().filename().string().find("refuse") != std::string::npos;
  CHECK(siblings == 1);  // no temporary left
  bipq::mask_set<float> half(std::span<const bipq::parameter<float>>(good.parameters()), bipq::prunable_selection{}, "test");
  half[0][0] = 0.5f;
  CHECK_THROWS_WITH_AS(be::write_model(dir, good, half), doctest::Contains("neither 0 nor 1"), std::invalid_argument);
  be::export_options bad;
  bad.input.std = 0.0;
  CHECK_THROWS_WITH_AS(be::write_model(dir, good, {}, bad), doctest::Contains("options.input.std"), std::invalid_argument);
  CHECK(be::read_model<float>(dir).model.num_parameters() == good.num_parameters());
  fs::remove_all(dir.parent_path());
}
