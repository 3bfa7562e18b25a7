#pragma once
// A whole Eigen model on disk, and back: the architecture as JSON (layer types, shapes, hyper-parameters), every
// parameter and buffer (batch-norm running statistics) as .npy, the masks, the input preprocessing, and an index
// recording the run — written as one set through io::directory_writer (the previous set survives a failed write, a
// reader never sees a mix) and read back with every shape and dtype checked. The layout is in docs/export.md;
// examples/torch_from_bipq.py rebuilds the same network in PyTorch from it.
//
// Masked tensors are stored dense (the weights, and the 0/1 mask as float32) or sparse: the flat row-major indices
// of the kept entries (the mask is 1 there and 0 elsewhere; uint16 when the tensor has at most 65,536 entries, else
// uint32 or uint64) and the weights at those indices. Sparse storage keeps z = m ⊙ θ, the weights the forward pass
// uses (bipq's parameter values), so the model read back computes the same outputs bit for bit.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/layers/spatial_bias.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/io/directory.hpp"
#include "bipq/io/json.hpp"
#include "bipq/io/npy.hpp"
#include "bipq/mask/mask_set.hpp"
#include "bipq/version.hpp"

namespace bipq::eigen {

/// How a masked tensor is stored.
enum class tensor_storage {
  dense,  ///< "<tensor>.npy" with every entry, and the mask "<tensor>.mask.npy" (float32 0/1)
  sparse  ///< "<tensor>.indices.npy" (kept flat indices, increasing) and "<tensor>.values.npy" (their weights)
};

/// What the model expects as input, from a raw pixel p (0..255): x = (p · pixel_scale − mean) / std. The default
/// is what io::load_fashion_mnist does (p / 255, as the float 1.0f/255.0f, no standardisation).
struct preprocessing {
  double pixel_scale = static_cast<double>(1.0f / 255.0f);
  double mean = 0.0;  ///< subtracted after scaling (io::standardize's mean)
  double std = 1.0;   ///< divided by after subtracting the mean (io::standardize's stddev), > 0
};

/// What write_model writes besides the model.
struct export_options {
  tensor_storage masked_storage = tensor_storage::dense;  ///< how the masked tensors are stored
  preprocessing input{};
  io::json run = io::json::make_object();  ///< the run, recorded in index.json: method, seed, settings, results
};

/// Writes `model` with its `masks` (made for model.parameters(); an empty mask_set: none) into the directory `dir`
/// atomically, replacing what `dir` held: model.json, index.json and the .npy files (docs/export.md). Returns the
/// number of bytes written. Throws std::invalid_argument naming the layer if the model has a layer type the format
/// does not know, if `masks` was not made for this model or holds a value other than 0 and 1, or if
/// options.input.std ≤ 0; std::runtime_error on an I/O error (the previous content of `dir` is then intact).
template <std::floating_point T>
std::uintmax_t write_model(const std::filesystem::path& dir, const basic_sequential<T>& model,
                           const mask_set<T>& masks = {}, const export_options& options = {});

/// A model read back by read_model.
template <std::floating_point T>
struct loaded_model {
  basic_sequential<T> model;
  mask_set<T> masks;          ///< over model.parameters(); empty if none was stored
  preprocessing input;
  io::json index;             ///< index.json as read (index.at("run") is export_options::run)
};

/// Reads what write_model wrote into `dir`, rebuilding the model layer by layer. Every shape, dtype, index and
/// count is checked against the architecture: a missing or malformed file, a missing or wrong field, another
/// dtype, a shape that is not the layer's, an index out of range or not increasing, a mask value other than 0/1
/// throws std::runtime_error("read_model(): <file>: <field>: ..."). A write that replaces `dir` while it is being
/// read is waited out (io::read_directory_consistently).
template <std::floating_point T = float>
loaded_model<T> read_model(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------------------------------
namespace detail {

template <class T>
constexpr const char* dtype_name() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

inline io::json shape_json(std::span<const std::size_t> shape) {
  io::json a = io::json::make_array();
  for (std::size_t s : shape) a.push_back(s);
  return a;
}

inline const char* index_dtype_for(std::size_t numel) {
  if (numel <= (std::size_t(1) << 16)) return "uint16";
  if (numel <= (std::size_t(1) << 32)) return "uint32";
  return "uint64";
}

template <class I>
void write_indices(const std::filesystem::path& file, const std::vector<std::size_t>& idx) {
  std::vector<I> narrow(idx.begin(), idx.end());
  const std::vector<std::size_t> shape{idx.size()};
  io::write_npy<I>(file, narrow, shape);
}

template <class T>
void write_tensor(io::directory_writer& w, io::json& entry, const std::string& stem, std::span<const T> value,
                  std::span<const std::size_t> shape, const std::vector<T>* mask, tensor_storage storage) {
  entry.set("shape", shape_json(shape));
  entry.set("dtype", dtype_name<T>());
  if (mask != nullptr && storage == tensor_storage::sparse) {
    std::vector<std::size_t> kept;
    std::vector<T> values;
    for (std::size_t i = 0; i < mask->size(); ++i)
      if ((*mask)[i] == T(1)) kept.push_back(i), values.push_back(value[i]);
    const std::string dtype = index_dtype_for(value.size());
    entry.set("storage", "sparse");
    entry.set("indices", stem + ".indices.npy");
    entry.set("index_dtype", dtype);
    entry.set("values", stem + ".values.npy");
    entry.set("nnz", kept.size());
    const auto file = w.path() / (stem + ".indices.npy");
    if (dtype == "uint16") write_indices<std::uint16_t>(file, kept);
    else if (dtype == "uint32") write_indices<std::uint32_t>(file, kept);
    else write_indices<std::uint64_t>(file, kept);
    const std::vector<std::size_t> vshape{values.size()};
    io::write_npy<T>(w.path() / (stem + ".values.npy"), values, vshape);
    return;
  }
  entry.set("storage", "dense");
  entry.set("file", stem + ".npy");
  io::write_npy<T>(w.path() / (stem + ".npy"), value, shape);
  if (mask != nullptr) {
    entry.set("mask", stem + ".mask.npy");
    io::write_npy<T>(w.path() / (stem + ".mask.npy"), std::span<const T>(*mask), shape);
  }
}

// The architecture entry of layer l (its type and hyper-parameters), or throws naming it.
template <class T>
io::json layer_json(const layer<T>& l, const std::string& name) {
  io::json e = io::json::make_object();
  e.set("name", name);
  if (const auto* c = dynamic_cast<const conv2d<T>*>(&l)) {
    e.set("type", "conv2d");
    e.set("in_channels", c->in_channels());
    e.set("out_channels", c->out_channels());
    e.set("kernel_size", c->kernel_size());
    e.set("stride", c->stride());
    e.set("padding", c->padding());
    e.set("bias", c->has_bias());
  } else if (const auto* f = dynamic_cast<const linear<T>*>(&l)) {
    e.set("type", "linear");
    e.set("in_features", f->in_features());
    e.set("out_features", f->out_features());
    e.set("bias", f->has_bias());
  } else if (const auto* b = dynamic_cast<const batch_norm2d<T>*>(&l)) {
    e.set("type", "batch_norm2d");
    e.set("num_features", b->channels());
    e.set("momentum", b->momentum());
    e.set("eps", b->eps());
  } else if (const auto* p = dynamic_cast<const max_pool2d<T>*>(&l)) {
    e.set("type", "max_pool2d");
    e.set("kernel_size", p->kernel_size());
    e.set("stride", p->stride());
  } else if (dynamic_cast<const relu<T>*>(&l)) {
    e.set("type", "relu");
  } else if (dynamic_cast<const flatten<T>*>(&l)) {
    e.set("type", "flatten");
  } else if (dynamic_cast<const global_avg_pool<T>*>(&l)) {
    e.set("type", "global_avg_pool");
  } else if (const auto* s = dynamic_cast<const spatial_bias<T>*>(&l)) {
    e.set("type", "spatial_bias");
    e.set("shape", shape_json(s->parameters()[0].shape));
  } else {
    throw std::invalid_argument("write_model(): layer '" + name + "' has a type the model format does not know");
  }
  return e;
}

// Reading: every failure names the file and the field.
struct model_reader {
  std::filesystem::path dir;

  [[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& what) const {
    throw std::runtime_error("read_model(): " + (dir / file).string() + ": " + field + ": " + what);
  }

  std::size_t size_field(const io::json& obj, const std::string& key, const std::string& field) const {
    try {
      return obj.at(key, field).as_size(field + "." + key);
    } catch (const std::invalid_argument& e) {
      fail("model.json", field + "." + key, e.what());
    }
  }
  const std::string& string_field(const io::json& obj, const std::string& key, const std::string& field,
                                  const std::string& file = "model.json") const {
    try {
      return obj.at(key, field).as_string(field + "." + key);
    } catch (const std::invalid_argument& e) {
      fail(file, field + "." + key, e.what());
    }
  }
  double number_field(const io::json& obj, const std::string& key, const std::string& field) const {
    try {
      return obj.at(key, field).as_number(field + "." + key);
    } catch (const std::invalid_argument& e) {
      fail("model.json", field + "." + key, e.what());
    }
  }
  bool bool_field(const io::json& obj, const std::string& key, const std::string& field) const {
    try {
      return obj.at(key, field).as_bool(field + "." + key);
    } catch (const std::invalid_argument& e) {
      fail("model.json", field + "." + key, e.what());
    }
  }
  std::vector<std::size_t> shape_field(const io::json& obj, const std::string& key, const std::string& field) const {
    std::vector<std::size_t> s;
    try {
      for (const io::json& d : obj.at(key, field).as_array(field + "." + key)) s.push_back(d.as_size(field + "." + key));
    } catch (const std::invalid_argument& e) {
      fail("model.json", field + "." + key, e.what());
    }
    return s;
  }
  // A file name of the set: a plain name, no directory part.
  std::string file_field(const io::json& obj, const std::string& key, const std::string& field) const {
    const std::string f = string_field(obj, key, field);
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      fail("model.json", field + "." + key, "'" + f + "' is not a file name inside the directory");
    return f;
  }
  template <class V>
  io::npy_array<V> npy(const std::string& file, const std::string& field, std::span<const std::size_t> shape) const {
    try {
      auto a = io::read_npy<V>(dir / file, shape);
      if (a.shape.size() != shape.size())  // read_npy compares only when the expected shape is not empty
        throw std::runtime_error("shape " + std::to_string(a.shape.size()) + "-dimensional, expected 0-dimensional");
      return a;
    } catch (const std::exception& e) {
      fail(file, field, e.what());
    }
  }

  // The tensor described by `entry` into `value` (whose size fixes the shape); its mask, if stored, into `mask`.
  template <class T>
  void tensor(const io::json& entry, const std::string& field, std::span<const std::size_t> shape, std::span<T> value,
              std::optional<std::vector<T>>& mask) const {
    if (!entry.is_object()) fail("model.json", field, "is not an object");
    if (shape_field(entry, "shape", field) != std::vector<std::size_t>(shape.begin(), shape.end()))
      fail("model.json", field + ".shape", "differs from the layer's shape " + io::detail::npy_shape_string(shape));
    if (string_field(entry, "dtype", field) != dtype_name<T>())
      fail("model.json", field + ".dtype", "is '" + string_field(entry, "dtype", field) + "', expected '" +
                                               dtype_name<T>() + "'");
    const std::string storage = string_field(entry, "storage", field);
    if (storage == "dense") {
      const std::string file = file_field(entry, "file", field);
      const auto a = npy<T>(file, field + ".file", shape);
      std::copy(a.data.begin(), a.data.end(), value.begin());
      if (entry.find("mask") != nullptr) {
        const std::string mfile = file_field(entry, "mask", field);
        auto m = npy<T>(mfile, field + ".mask", shape);
        for (std::size_t i = 0; i < m.data.size(); ++i)
          if (m.data[i] != T(0) && m.data[i] != T(1))
            fail(mfile, field + ".mask", "entry " + std::to_string(i) + " is neither 0 nor 1");
        mask = std::move(m.data);
      }
      return;
    }
    if (storage != "sparse") fail("model.json", field + ".storage", "is '" + storage + "', expected 'dense' or 'sparse'");
    const std::size_t nnz = size_field(entry, "nnz", field);
    if (nnz > value.size()) fail("model.json", field + ".nnz", "exceeds the tensor's " + std::to_string(value.size()) + " entries");
    const std::string ifile = file_field(entry, "indices", field), vfile = file_field(entry, "values", field);
    const std::string dtype = string_field(entry, "index_dtype", field);
    const std::vector<std::size_t> count{nnz};
    std::vector<std::size_t> idx;
    if (dtype == "uint16") {
      const auto a = npy<std::uint16_t>(ifile, field + ".indices", count);
      idx.assign(a.data.begin(), a.data.end());
    } else if (dtype == "uint32") {
      const auto a = npy<std::uint32_t>(ifile, field + ".indices", count);
      idx.assign(a.data.begin(), a.data.end());
    } else if (dtype == "uint64") {
      const auto a = npy<std::uint64_t>(ifile, field + ".indices", count);
      for (std::uint64_t v : a.data) {
        if (v > std::numeric_limits<std::size_t>::max()) fail(ifile, field + ".indices", "an index exceeds size_t");
        idx.push_back(static_cast<std::size_t>(v));
      }
    } else {
      fail("model.json", field + ".index_dtype", "is '" + dtype + "', expected uint16, uint32 or uint64");
    }
    const auto vals = npy<T>(vfile, field + ".values", count);
    std::vector<T> m(value.size(), T(0));
    std::fill(value.begin(), value.end(), T(0));
    for (std::size_t j = 0; j < idx.size(); ++j) {
      if (idx[j] >= value.size())
        fail(ifile, field + ".indices", "index " + std::to_string(idx[j]) + " at position " + std::to_string(j) +
                                            " is out of range for " + std::to_string(value.size()) + " entries");
      if (j > 0 && idx[j] <= idx[j - 1])
        fail(ifile, field + ".indices", "indices are not increasing at position " + std::to_string(j));
      value[idx[j]] = vals.data[j];
      m[idx[j]] = T(1);
    }
    mask = std::move(m);
  }
};

template <class T>
loaded_model<T> read_model_once(const std::filesystem::path& dir) {
  const model_reader r{dir};
  auto parse = [&](const std::string& file) {
    std::string text;
    try {
      text = io::detail::read_whole_file(dir / file);
    } catch (const std::exception& e) {
      r.fail(file, "(file)", e.what());
    }
    try {
      return io::json::parse(text, "JSON");
    } catch (const std::invalid_argument& e) {
      r.fail(file, "(file)", e.what());
    }
  };
  io::json index = parse("index.json");
  if (!index.is_object()) r.fail("index.json", "(file)", "is not a JSON object");
  if (r.string_field(index, "format", "index", "index.json") != "bipq-model")
    r.fail("index.json", "index.format", "is not 'bipq-model'");
  {
    const io::json* v = index.find("format_version");
    if (v == nullptr || !v->is_number() || v->as_number() != 1.0)
      r.fail("index.json", "index.format_version", "missing or not 1 (this reader reads version 1)");
  }
  const std::string arch_file = r.string_field(index, "architecture", "index", "index.json");
  if (arch_file != "model.json") r.fail("index.json", "index.architecture", "is '" + arch_file + "', expected 'model.json'");
  const io::json arch = parse("model.json");
  if (!arch.is_object()) r.fail("model.json", "(file)", "is not a JSON object");
  if (r.string_field(arch, "dtype", "model") != dtype_name<T>())
    r.fail("model.json", "model.dtype", "is '" + r.string_field(arch, "dtype", "model") + "', expected '" + dtype_name<T>() + "'");
  const std::vector<std::size_t> in = r.shape_field(arch, "input_shape", "model");
  if (in.size() != 3 || in[0] == 0 || in[1] == 0 || in[2] == 0)
    r.fail("model.json", "model.input_shape", "must be [channels, height, width], all > 0");

  preprocessing pre;
  {
    const io::json* p = arch.find("preprocessing");
    if (p == nullptr) r.fail("model.json", "model.preprocessing", "missing");
    pre.pixel_scale = r.number_field(*p, "pixel_scale", "model.preprocessing");
    pre.mean = r.number_field(*p, "mean", "model.preprocessing");
    pre.std = r.number_field(*p, "std", "model.preprocessing");
    if (!(pre.std > 0.0)) r.fail("model.json", "model.preprocessing.std", "must be > 0");
  }

  loaded_model<T> out{basic_sequential<T>(shape3{in[0], in[1], in[2]}), mask_set<T>{}, pre, index};
  basic_sequential<T>& m = out.model;
  const io::json* layers = arch.find("layers");
  if (layers == nullptr || !layers->is_array()) r.fail("model.json", "model.layers", "missing or not an array");
  std::vector<std::pair<std::string, std::vector<T>>> masks;  // parameter name, mask
  for (std::size_t i = 0; i < layers->as_array().size(); ++i) {
    const io::json& e = layers->as_array()[i];
    const std::string field = "layers[" + std::to_string(i) + "]";
    if (!e.is_object()) r.fail("model.json", field, "is not an object");
    const std::string name = r.string_field(e, "name", field), type = r.string_field(e, "type", field);
    // Hyper-parameters within what a layer can hold: the shape checks below compare against them.
    auto dim = [&](const std::string& key) {
      const std::size_t v = r.size_field(e, key, field);
      if (v == 0 || v > (std::size_t(1) << 24)) r.fail("model.json", field + "." + key, "must be in [1, 2^24]");
      return v;
    };
    try {
      if (type == "conv2d") {
        const std::size_t pad = r.size_field(e, "padding", field);
        if (pad > (std::size_t(1) << 24)) r.fail("model.json", field + ".padding", "must be at most 2^24");
        m.add(name, conv2d<T>(dim("in_channels"), dim("out_channels"), dim("kernel_size"), dim("stride"), pad,
                              r.bool_field(e, "bias", field)));
      } else if (type == "linear") {
        m.add(name, linear<T>(dim("in_features"), dim("out_features"), r.bool_field(e, "bias", field)));
      } else if (type == "batch_norm2d") {
        m.add(name, batch_norm2d<T>(dim("num_features"), r.number_field(e, "momentum", field), r.number_field(e, "eps", field)));
      } else if (type == "max_pool2d") {
        m.add(name, max_pool2d<T>(dim("kernel_size"), dim("stride")));
      } else if (type == "relu") {
        m.add(name, relu<T>());
      } else if (type == "flatten") {
        m.add(name, flatten<T>());
      } else if (type == "global_avg_pool") {
        m.add(name, global_avg_pool<T>());
      } else if (type == "spatial_bias") {
        // Checked against the activation it is added to before the map is allocated.
        const std::vector<std::size_t> s = r.shape_field(e, "shape", field);
        const shape3 at = m.output_shape();
        const std::vector<std::size_t> input{at.c, at.h, at.w};
        if (s != input)
          r.fail("model.json", field + ".shape", "differs from its input's [channels, height, width] " +
                                                     io::detail::npy_shape_string(input));
        m.add(name, spatial_bias<T>(shape3{s[0], s[1], s[2]}));
      } else {
        r.fail("model.json", field + ".type", "unknown layer type '" + type + "'");
      }
    } catch (const std::invalid_argument& ex) {  // the layer's or the model's own check
      r.fail("model.json", field, ex.what());
    }
    layer<T>& l = m[m.size() - 1];
    const io::json* tensors = e.find("tensors");
    const std::size_t expected = l.parameters().size() + (type == "batch_norm2d" ? 2 : 0);
    const std::size_t present = tensors == nullptr ? 0 : (tensors->is_object() ? tensors->as_object().size() : 1);
    if (present != expected || (tensors != nullptr && !tensors->is_object()))
      r.fail("model.json", field + ".tensors", "has " + std::to_string(present) + " entries, the layer has " +
                                                   std::to_string(expected));
    for (auto& p : l.parameters()) {
      const std::string tfield = field + ".tensors." + p.suffix;
      if (tensors->find(p.suffix) == nullptr) r.fail("model.json", tfield, "missing");
      std::optional<std::vector<T>> mask;
      r.tensor<T>(*tensors->find(p.suffix), tfield, p.shape, std::span<T>(p.value), mask);
      if (mask) masks.emplace_back(name + "." + p.suffix, std::move(*mask));
    }
    if (auto* bn = dynamic_cast<batch_norm2d<T>*>(&l)) {
      std::vector<double> stats[2];
      const char* keys[2] = {"running_mean", "running_var"};
      const std::vector<std::size_t> shape{bn->channels()};
      for (int k = 0; k < 2; ++k) {
        const std::string tfield = field + ".tensors." + keys[k];
        const io::json* t = tensors->find(keys[k]);
        if (t == nullptr) r.fail("model.json", tfield, "missing");
        if (r.string_field(*t, "dtype", tfield) != "float64") r.fail("model.json", tfield + ".dtype", "must be float64");
        if (r.shape_field(*t, "shape", tfield) != shape) r.fail("model.json", tfield + ".shape", "differs from [num_features]");
        const std::string file = r.file_field(*t, "file", tfield);
        stats[k] = r.npy<double>(file, tfield, shape).data;
      }
      try {
        bn->set_running_statistics(stats[0], stats[1]);
      } catch (const std::invalid_argument& ex) {
        r.fail("model.json", field + ".tensors", ex.what());
      }
    }
  }
  const std::vector<std::size_t> out_shape = r.shape_field(arch, "output_shape", "model");
  const shape3 o = m.output_shape();
  if (out_shape != std::vector<std::size_t>{o.c, o.h, o.w})
    r.fail("model.json", "model.output_shape", "differs from the layers' output " + std::to_string(o.c) + "x" +
                                                   std::to_string(o.h) + "x" + std::to_string(o.w));
  if (!masks.empty()) {
    prunable_selection all{{parameter_kind::conv_weight, parameter_kind::linear_weight, parameter_kind::bias,
                            parameter_kind::norm, parameter_kind::other},
                           {}};
    for (const auto& p : m.parameters())
      if (std::none_of(masks.begin(), masks.end(), [&](const auto& nm) { return nm.first == p.name; }))
        all.exclude_names.push_back(p.name);
    out.masks = mask_set<T>(std::span<const parameter<T>>(m.parameters()), all, "read_model()");
    for (std::size_t j = 0; j < out.masks.size(); ++j) {
      const std::string& pname = m.parameters()[out.masks.prunable()[j]].name;
      const auto it = std::find_if(masks.begin(), masks.end(), [&](const auto& nm) { return nm.first == pname; });
      std::copy(it->second.begin(), it->second.end(), out.masks[j].begin());
    }
  }
  return out;
}

}  // namespace detail

template <std::floating_point T>
std::uintmax_t write_model(const std::filesystem::path& dir, const basic_sequential<T>& model, const mask_set<T>& masks,
                           const export_options& options) {
  namespace fs = std::filesystem;
  if (!(options.input.std > 0.0)) throw std::invalid_argument("write_model(): 'options.input.std' must be > 0");
  const auto& params = model.parameters();
  for (std::size_t j = 0; j < masks.size(); ++j) {
    const std::size_t i = masks.prunable()[j];
    if (i >= params.size() || params[i].value.size() != masks[j].size())
      throw std::invalid_argument("write_model(): 'masks' was not made for this model");
    for (T v : masks[j])
      if (v != T(0) && v != T(1))
        throw std::invalid_argument("write_model(): 'masks' entry for " + params[i].name + " is neither 0 nor 1");
  }
  io::directory_writer w(dir);
  io::json arch = io::json::make_object();
  arch.set("format", "bipq-model-architecture");
  arch.set("dtype", detail::dtype_name<T>());
  const shape3 in = model.input_shape(), out = model.output_shape();
  arch.set("input_shape", io::json(io::json::array{in.c, in.h, in.w}));
  arch.set("output_shape", io::json(io::json::array{out.c, out.h, out.w}));
  io::json pre = io::json::make_object();
  pre.set("pixel_scale", options.input.pixel_scale);
  pre.set("mean", options.input.mean);
  pre.set("std", options.input.std);
  pre.set("formula", "x = (pixel * pixel_scale - mean) / std, pixel in 0..255, images NCHW");
  arch.set("preprocessing", pre);
  io::json layers = io::json::make_array();
  std::size_t param_index = 0;
  for (std::size_t l = 0; l < model.size(); ++l) {
    const layer<T>& layer = model[l];
    const std::string& name = model.name(l);
    io::json e = detail::layer_json(layer, name);
    if (!layer.parameters().empty() || dynamic_cast<const batch_norm2d<T>*>(&layer)) {
      io::json tensors = io::json::make_object();
      for (const auto& p : layer.parameters()) {
        const std::vector<T>* mask = nullptr;
        for (std::size_t j = 0; j < masks.size(); ++j)
          if (masks.prunable()[j] == param_index) mask = &masks[j];
        io::json t = io::json::make_object();
        detail::write_tensor<T>(w, t, name + "." + p.suffix, std::span<const T>(p.value), p.shape, mask,
                                options.masked_storage);
        tensors.set(p.suffix, std::move(t));
        ++param_index;
      }
      if (const auto* bn = dynamic_cast<const batch_norm2d<T>*>(&layer)) {
        const std::vector<std::size_t> shape{bn->channels()};
        const std::pair<const char*, const std::vector<double>*> stats[2] = {{"running_mean", &bn->running_mean()},
                                                                             {"running_var", &bn->running_var()}};
        for (const auto& [key, v] : stats) {
          io::json t = io::json::make_object();
          t.set("shape", detail::shape_json(shape));
          t.set("dtype", "float64");
          t.set("storage", "dense");
          t.set("file", name + "." + key + ".npy");
          io::write_npy<double>(w.path() / (name + "." + key + ".npy"), *v, shape);
          tensors.set(key, std::move(t));
        }
      }
      e.set("tensors", std::move(tensors));
    }
    layers.push_back(std::move(e));
  }
  arch.set("layers", std::move(layers));
  w.write("model.json", arch.dump());

  io::json index = io::json::make_object();
  index.set("format", "bipq-model");
  index.set("format_version", 1);
  index.set("bipq_version", std::string(bipq::version));
  index.set("write_id", io::unique_write_id());
  index.set("architecture", "model.json");
  index.set("masked_storage", options.masked_storage == tensor_storage::sparse ? "sparse" : "dense");
  if (masks.size() > 0) {
    index.set("mask_density", masks.density());
    index.set("masked_entries", masks.total());
  }
  index.set("run", options.run);
  io::json files = io::json::make_array();
  std::uintmax_t bytes = 0;
  std::vector<std::pair<std::string, std::uintmax_t>> listed;
  for (const auto& f : fs::directory_iterator(w.path())) listed.emplace_back(f.path().filename().string(), f.file_size());
  std::sort(listed.begin(), listed.end());
  for (const auto& [name, size] : listed) {
    io::json f = io::json::make_object();
    f.set("name", name);
    f.set("bytes", static_cast<std::size_t>(size));
    files.push_back(std::move(f));
    bytes += size;
  }
  index.set("files", std::move(files));
  const std::string text = index.dump();
  w.write("index.json", text);
  w.commit();
  return bytes + text.size();
}

template <std::floating_point T>
loaded_model<T> read_model(const std::filesystem::path& dir) {
  return io::read_directory_consistently(dir, "index.json",
                                         [](const std::filesystem::path& d) { return detail::read_model_once<T>(d); });
}

}  // namespace bipq::eigen
