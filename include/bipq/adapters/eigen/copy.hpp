#pragma once
// Copies of a sequential model, layer by layer: what compact() and sparsify() build their models from.

#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/layers/spatial_bias.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/mask/mask_set.hpp"

namespace bipq::eigen {

/// A copy of `model`: the same layers, names, parameter values and batch-norm running statistics. Throws
/// std::invalid_argument naming the layer if a layer is of a type other than those of layers.hpp and spatial_bias.
template <std::floating_point T>
basic_sequential<T> copy_model(const basic_sequential<T>& model);

namespace detail {

/// The values the masked model computes with, one vector per parameter of `model`: z = m ⊙ θ for the masked
/// parameters, θ for the others. Throws std::invalid_argument("<func>(): 'masks' ...") if the masks were not made
/// for this model.
template <std::floating_point T>
std::vector<std::vector<T>> effective_values(const basic_sequential<T>& model, const mask_set<T>& masks,
                                             const char* func) {
  const auto& ps = model.parameters();
  std::vector<std::vector<T>> z;
  z.reserve(ps.size());
  for (const auto& p : ps) z.emplace_back(p.value.begin(), p.value.end());
  for (std::size_t j = 0; j < masks.size(); ++j) {
    const std::size_t i = masks.prunable()[j];
    if (i >= ps.size() || masks[j].size() != ps[i].value.size())
      throw std::invalid_argument(std::string(func) + "(): 'masks' were not made for this model");
    for (std::size_t e = 0; e < z[i].size(); ++e) z[i][e] *= masks[j][e];
  }
  return z;
}

/// Index of the first parameter of each layer in model.parameters(), and one past the last at the end.
template <std::floating_point T>
std::vector<std::size_t> parameter_offsets(const basic_sequential<T>& model) {
  std::vector<std::size_t> off{0};
  for (std::size_t l = 0; l < model.size(); ++l) off.push_back(off.back() + model[l].parameters().size());
  return off;
}

/// Sets the values of layer `l` of `m` from `values` (one vector per parameter of the layer, sizes checked).
template <std::floating_point T>
void set_values(layer<T>& l, std::span<const std::vector<T>> values) {
  auto& ps = l.parameters();
  if (ps.size() != values.size()) throw std::logic_error("set_values(): parameter count mismatch");
  for (std::size_t j = 0; j < ps.size(); ++j) {
    if (ps[j].value.size() != values[j].size()) throw std::logic_error("set_values(): parameter size mismatch");
    std::copy(values[j].begin(), values[j].end(), ps[j].value.begin());
  }
}

/// Appends to `out` a copy of `l` named `name` with parameter values `values` (one per parameter of l). Returns
/// false, appending nothing, if l is of a type this function does not know.
template <std::floating_point T>
bool append_copy(basic_sequential<T>& out, const std::string& name, const layer<T>& l,
                 std::span<const std::vector<T>> values) {
  if (const auto* c = dynamic_cast<const conv2d<T>*>(&l)) {
    conv2d<T> copy(c->in_channels(), c->out_channels(), c->kernel_size(), c->stride(), c->padding(), c->has_bias());
    copy.set_algorithm(c->algorithm());
    out.add(name, std::move(copy));
  } else if (const auto* f = dynamic_cast<const linear<T>*>(&l)) {
    out.add(name, linear<T>(f->in_features(), f->out_features(), f->has_bias()));
  } else if (const auto* b = dynamic_cast<const batch_norm2d<T>*>(&l)) {
    batch_norm2d<T> copy(b->channels(), b->momentum(), b->eps());
    copy.set_running_statistics(b->running_mean(), b->running_var());
    out.add(name, std::move(copy));
  } else if (const auto* p = dynamic_cast<const max_pool2d<T>*>(&l)) {
    out.add(name, max_pool2d<T>(p->kernel_size(), p->stride()));
  } else if (dynamic_cast<const relu<T>*>(&l) != nullptr) {
    out.add(name, relu<T>());
  } else if (dynamic_cast<const global_avg_pool<T>*>(&l) != nullptr) {
    out.add(name, global_avg_pool<T>());
  } else if (dynamic_cast<const flatten<T>*>(&l) != nullptr) {
    out.add(name, flatten<T>());
  } else if (const auto* s = dynamic_cast<const spatial_bias<T>*>(&l)) {
    const auto& shape = s->parameters()[0].shape;
    out.add(name, spatial_bias<T>(shape3{shape[0], shape[1], shape[2]}));
  } else {
    return false;
  }
  set_values(out[out.size() - 1], values);
  return true;
}

}  // namespace detail

template <std::floating_point T>
basic_sequential<T> copy_model(const basic_sequential<T>& model) {
  basic_sequential<T> out(model.input_shape());
  for (std::size_t l = 0; l < model.size(); ++l) {
    std::vector<std::vector<T>> values;
    for (const auto& p : model[l].parameters()) values.push_back(p.value);
    if (!detail::append_copy<T>(out, model.name(l), model[l], values))
      throw std::invalid_argument("copy_model(): layer '" + model.name(l) + "' is of a type copy_model() does not know");
  }
  return out;
}

}  // namespace bipq::eigen
