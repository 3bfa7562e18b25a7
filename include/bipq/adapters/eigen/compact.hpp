#pragma once
// Compact export of structured masks: a physically smaller model that computes what the masked model computes.
//
// A filter (conv output channel, linear output neuron) whose masked weights are all zero outputs a constant: its
// bias, or 0. compact() removes it, and everything downstream of it that only carries it along: the batch-norm
// entries of its channel (γ, β, running mean and variance), and the matching input channels of the next conv or
// linear layer (through max pooling, ReLU, global average pooling and flatten, where one channel becomes H·W
// features). The constant is not lost: it is pushed through the layers between (batch norm in inference mode,
// ReLU, pooling) exactly as they compute it, and its contribution W[:, c] · const to the next conv or linear layer is
// added to that layer's bias. With zero padding that contribution is smaller at the border, so there it becomes a
// per-position map (a spatial_bias layer after the conv) unless it is the same at every position.
//
// The last conv or linear layer keeps all its outputs (they are the model's outputs). The result's outputs equal
// the masked model's in inference mode up to float rounding (fewer terms are summed, in another order).

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/copy.hpp"
#include "bipq/adapters/eigen/layers.hpp"
#include "bipq/adapters/eigen/layers/spatial_bias.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/mask/mask_set.hpp"

namespace bipq::eigen {

/// The compact model of `model` with `masks` applied (masks made for model.parameters(), e.g. a pruning driver's
/// result): every conv filter and linear output neuron whose masked weights are all zero removed, with what depends
/// on it (see the top of this file). Unstructured zeros elsewhere stay, as zeros. The layers keep their names; a
/// spatial_bias layer, if one is needed after conv layer "x", is named "x_border". Throws std::invalid_argument if
/// the masks were not made for the model or a layer is of a type compact() does not know.
template <std::floating_point T>
basic_sequential<T> compact(const basic_sequential<T>& model, const mask_set<T>& masks);

/// The compact model of `model` as it is: the filters whose weights are all zero removed.
template <std::floating_point T>
basic_sequential<T> compact(const basic_sequential<T>& model) {
  return compact(model, mask_set<T>{});
}

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

/// The units (channels, or features of a flat activation) of the masked model's activation between two layers:
/// which are kept, and the constant value of each removed one.
template <class T>
struct unit_stream {
  std::vector<char> kept;
  std::vector<T> constant;  // meaningful where !kept

  explicit unit_stream(std::size_t n) : kept(n, 1), constant(n, T(0)) {}
  std::size_t count() const { return static_cast<std::size_t>(std::count(kept.begin(), kept.end(), char(1))); }
  std::vector<std::size_t> kept_indices() const {
    std::vector<std::size_t> v;
    for (std::size_t u = 0; u < kept.size(); ++u)
      if (kept[u]) v.push_back(u);
    return v;
  }
  bool any_nonzero_removed() const {
    for (std::size_t u = 0; u < kept.size(); ++u)
      if (!kept[u] && constant[u] != T(0)) return true;
    return false;
  }
};

/// Which of `rows` rows of `rows × cols` values are not all zero; all of them if `keep_all`; at least the first.
template <class T>
std::vector<char> nonzero_rows(const std::vector<T>& w, std::size_t rows, bool keep_all) {
  std::vector<char> keep(rows, keep_all ? 1 : 0);
  const std::size_t cols = w.size() / rows;
  for (std::size_t r = 0; r < rows && !keep_all; ++r)
    keep[r] = std::any_of(w.begin() + static_cast<std::ptrdiff_t>(r * cols),
                          w.begin() + static_cast<std::ptrdiff_t>((r + 1) * cols), [](T v) { return v != T(0); });
  if (std::find(keep.begin(), keep.end(), char(1)) == keep.end()) keep[0] = 1;
  return keep;
}

template <class T>
void compact_conv(basic_sequential<T>& out, const std::string& name, const conv2d<T>& cv, shape3 in,
                  const std::vector<T>* values, unit_stream<T>& units, bool last) {
  const std::size_t C = cv.in_channels(), K = cv.out_channels(), R = cv.kernel_size(), st = cv.stride(),
                    pad = cv.padding();
  const shape3 os = cv.output_shape(in);
  const std::vector<T>& W = values[0];
  std::vector<T> b = cv.has_bias() ? values[1] : std::vector<T>(K, T(0));
  const std::vector<char> keep_out = nonzero_rows(W, K, last);
  const std::vector<std::size_t> ci = units.kept_indices();
  std::vector<std::size_t> ko;
  for (std::size_t k = 0; k < K; ++k)
    if (keep_out[k]) ko.push_back(k);
  auto w = [&](std::size_t k, std::size_t c, std::size_t r, std::size_t s) { return W[((k * C + c) * R + r) * R + s]; };

  // The removed input channels' contribution map[k][oh][ow] = Σ_c const_c Σ_{r,s inside the image} W[k,c,r,s].
  const std::size_t P = os.h * os.w;
  std::vector<double> map;
  bool uniform = true;
  if (units.any_nonzero_removed()) {
    map.assign(ko.size() * P, 0.0);
    for (std::size_t kk = 0; kk < ko.size(); ++kk)
      for (std::size_t oh = 0; oh < os.h; ++oh)
        for (std::size_t ow = 0; ow < os.w; ++ow) {
          double sum = 0.0;
          for (std::size_t c = 0; c < C; ++c) {
            if (units.kept[c] || units.constant[c] == T(0)) continue;
            for (std::size_t r = 0; r < R; ++r) {
              const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * st + r) - static_cast<std::ptrdiff_t>(pad);
              if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(in.h)) continue;
              for (std::size_t s = 0; s < R; ++s) {
                const std::ptrdiff_t iw = static_cast<std::ptrdiff_t>(ow * st + s) - static_cast<std::ptrdiff_t>(pad);
                if (iw < 0 || iw >= static_cast<std::ptrdiff_t>(in.w)) continue;
                sum += double(units.constant[c]) * double(w(ko[kk], c, r, s));
              }
            }
          }
          map[kk * P + oh * os.w + ow] = sum;
        }
    for (std::size_t kk = 0; kk < ko.size() && uniform; ++kk)
      for (std::size_t p = 1; p < P; ++p)
        if (map[kk * P + p] != map[kk * P]) {
          uniform = false;
          break;
        }
  }
  const bool bias = cv.has_bias() || (!map.empty() && uniform);
  conv2d<T> copy(ci.size(), ko.size(), R, st, pad, bias);
  if (cv.algorithm() != conv_algorithm::automatic) copy.set_algorithm(cv.algorithm());
  std::vector<std::vector<T>> v(bias ? 2 : 1);
  v[0].resize(ko.size() * ci.size() * R * R);
  for (std::size_t kk = 0; kk < ko.size(); ++kk)
    for (std::size_t cc = 0; cc < ci.size(); ++cc)
      for (std::size_t r = 0; r < R; ++r)
        for (std::size_t s = 0; s < R; ++s) v[0][((kk * ci.size() + cc) * R + r) * R + s] = w(ko[kk], ci[cc], r, s);
  if (bias) {
    v[1].resize(ko.size());
    for (std::size_t kk = 0; kk < ko.size(); ++kk)
      v[1][kk] = static_cast<T>(double(b[ko[kk]]) + (map.empty() ? 0.0 : map[kk * P]));
  }
  out.add(name, std::move(copy));
  set_values<T>(out[out.size() - 1], v);
  if (!map.empty() && !uniform) {
    const shape3 ms{ko.size(), os.h, os.w};
    out.add(name + "_border", spatial_bias<T>(ms));
    std::vector<std::vector<T>> mv(1, std::vector<T>(map.size()));
    for (std::size_t j = 0; j < map.size(); ++j) mv[0][j] = static_cast<T>(map[j]);
    set_values<T>(out[out.size() - 1], mv);
  }
  unit_stream<T> next(K);
  for (std::size_t k = 0; k < K; ++k) next.kept[k] = keep_out[k], next.constant[k] = keep_out[k] ? T(0) : b[k];
  units = std::move(next);
}

template <class T>
void compact_linear(basic_sequential<T>& out, const std::string& name, const linear<T>& fc,
                    const std::vector<T>* values, unit_stream<T>& units, bool last) {
  const std::size_t F = fc.in_features(), O = fc.out_features();
  const std::vector<T>& W = values[0];
  const std::vector<T> b = fc.has_bias() ? values[1] : std::vector<T>(O, T(0));
  const std::vector<char> keep_out = nonzero_rows(W, O, last);
  const std::vector<std::size_t> fi = units.kept_indices();
  std::vector<std::size_t> oo;
  for (std::size_t o = 0; o < O; ++o)
    if (keep_out[o]) oo.push_back(o);
  const bool fold = units.any_nonzero_removed(), bias = fc.has_bias() || fold;
  std::vector<std::vector<T>> v(bias ? 2 : 1);
  v[0].resize(oo.size() * fi.size());
  for (std::size_t a = 0; a < oo.size(); ++a)
    for (std::size_t f = 0; f < fi.size(); ++f) v[0][a * fi.size() + f] = W[oo[a] * F + fi[f]];
  if (bias) {
    v[1].resize(oo.size());
    for (std::size_t a = 0; a < oo.size(); ++a) {
      double sum = double(b[oo[a]]);
      for (std::size_t f = 0; f < F; ++f)
        if (!units.kept[f]) sum += double(W[oo[a] * F + f]) * double(units.constant[f]);
      v[1][a] = static_cast<T>(sum);
    }
  }
  out.add(name, linear<T>(fi.size(), oo.size(), bias));
  set_values<T>(out[out.size() - 1], v);
  unit_stream<T> next(O);
  for (std::size_t o = 0; o < O; ++o) next.kept[o] = keep_out[o], next.constant[o] = keep_out[o] ? T(0) : b[o];
  units = std::move(next);
}

template <class T>
void compact_batch_norm(basic_sequential<T>& out, const std::string& name, const batch_norm2d<T>& bn,
                        const std::vector<T>* values, unit_stream<T>& units) {
  const std::vector<std::size_t> ci = units.kept_indices();
  std::vector<std::vector<T>> v(2, std::vector<T>(ci.size()));
  std::vector<double> mean(ci.size()), var(ci.size());
  for (std::size_t a = 0; a < ci.size(); ++a) {
    v[0][a] = values[0][ci[a]], v[1][a] = values[1][ci[a]];
    mean[a] = bn.running_mean()[ci[a]], var[a] = bn.running_var()[ci[a]];
  }
  for (std::size_t c = 0; c < units.kept.size(); ++c) {  // as batch_norm2d::forward in inference mode
    if (units.kept[c]) continue;
    const T gamma = values[0][c], beta = values[1][c];
    const T m = static_cast<T>(bn.running_mean()[c]), is = static_cast<T>(1.0 / std::sqrt(bn.running_var()[c] + bn.eps()));
    const T scale = gamma * is, shift = beta - gamma * is * m;
    units.constant[c] = units.constant[c] * scale + shift;
  }
  batch_norm2d<T> copy(ci.size(), bn.momentum(), bn.eps());
  copy.set_running_statistics(mean, var);
  out.add(name, std::move(copy));
  set_values<T>(out[out.size() - 1], v);
}

}  // namespace detail

template <std::floating_point T>
basic_sequential<T> compact(const basic_sequential<T>& model, const mask_set<T>& masks) {
  const std::vector<std::vector<T>> z = detail::effective_values(model, masks, "compact");
  const std::vector<std::size_t> off = detail::parameter_offsets(model);
  std::size_t last = model.size();  // the last conv or linear layer
  for (std::size_t l = 0; l < model.size(); ++l)
    if (dynamic_cast<const conv2d<T>*>(&model[l]) || dynamic_cast<const linear<T>*>(&model[l])) last = l;

  basic_sequential<T> out(model.input_shape());
  shape3 shape = model.input_shape();
  detail::unit_stream<T> units(shape.c);
  for (std::size_t l = 0; l < model.size(); ++l) {
    const layer<T>& ly = model[l];
    const std::string& name = model.name(l);
    const std::vector<T>* values = z.data() + off[l];
    const shape3 next = ly.output_shape(shape);
    if (const auto* cv = dynamic_cast<const conv2d<T>*>(&ly)) {
      detail::compact_conv(out, name, *cv, shape, values, units, l == last);
    } else if (const auto* fc = dynamic_cast<const linear<T>*>(&ly)) {
      detail::compact_linear(out, name, *fc, values, units, l == last);
    } else if (const auto* bn = dynamic_cast<const batch_norm2d<T>*>(&ly)) {
      detail::compact_batch_norm(out, name, *bn, values, units);
    } else if (const auto* mp = dynamic_cast<const max_pool2d<T>*>(&ly)) {
      out.add(name, max_pool2d<T>(mp->kernel_size(), mp->stride()));  // the max of a constant is the constant
    } else if (dynamic_cast<const relu<T>*>(&ly) != nullptr) {
      for (T& c : units.constant) c = c > T(0) ? c : T(0);
      out.add(name, relu<T>());
    } else if (dynamic_cast<const global_avg_pool<T>*>(&ly) != nullptr) {
      const std::size_t P = shape.h * shape.w;
      const T scale = T(1) / static_cast<T>(P);
      for (T& c : units.constant) {  // as global_avg_pool::forward
        T s = T(0);
        for (std::size_t p = 0; p < P; ++p) s += c;
        c = s * scale;
      }
      out.add(name, global_avg_pool<T>());
    } else if (dynamic_cast<const flatten<T>*>(&ly) != nullptr) {
      const std::size_t P = shape.h * shape.w;
      detail::unit_stream<T> flat(shape.c * P);
      for (std::size_t c = 0; c < shape.c; ++c)
        for (std::size_t p = 0; p < P; ++p) flat.kept[c * P + p] = units.kept[c], flat.constant[c * P + p] = units.constant[c];
      units = std::move(flat);
      out.add(name, flatten<T>());
    } else {
      throw std::invalid_argument("compact(): layer '" + name + "' is of a type compact() does not know");
    }
    shape = next;
  }
  return out;
}

}  // namespace bipq::eigen
