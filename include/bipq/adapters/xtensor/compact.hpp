#pragma once
// Compact export of structured masks for the xtensor MLP: the hidden neurons whose masked incoming weights are all
// zero removed, with the matching columns of the next layer.
//
// A hidden neuron h of layer l with W_l[h, :] = 0 computes a_l[h] = b_l[h] for every input, so h_l[h] = max(b_l[h], 0)
// is a constant; removing it and adding its contribution to the next layer's bias, b_{l+1} += W_{l+1}[:, h] ·
// max(b_l[h], 0), leaves every output unchanged up to float rounding. The output layer keeps all its neurons.

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/adapters/xtensor/mlp.hpp"
#include "bipq/mask/mask_set.hpp"

namespace bipq::xtensor_adapter {

/// The compact network of `net` with `masks` applied (masks made for net.parameter_list(), e.g. a pruning driver's
/// result on the classifier): hidden neurons whose masked weights are all zero removed (at least one kept per
/// layer). Throws std::invalid_argument("compact(): 'masks' were not made for this network") on a mismatch.
template <std::floating_point T>
mlp<T> compact(const mlp<T>& net, const mask_set<T>& masks) {
  const std::size_t L = net.num_layers();
  std::vector<std::vector<T>> w(L), b(L);
  for (std::size_t l = 0; l < L; ++l) {
    w[l].assign(net.weight(l).begin(), net.weight(l).end());
    b[l].assign(net.bias(l).begin(), net.bias(l).end());
  }
  for (std::size_t j = 0; j < masks.size(); ++j) {
    const std::size_t i = masks.prunable()[j], l = i / 2;
    std::vector<T>& target = i % 2 == 0 ? w.at(l < L ? l : 0) : b.at(l < L ? l : 0);
    if (l >= L || masks[j].size() != target.size())
      throw std::invalid_argument("compact(): 'masks' were not made for this network");
    for (std::size_t e = 0; e < target.size(); ++e) target[e] *= masks[j][e];
  }
  const std::vector<std::size_t>& widths = net.widths();
  // kept[l][u]: unit u of activation l (0 = the input) is kept.
  std::vector<std::vector<char>> kept(L + 1);
  kept[0].assign(widths[0], 1);
  std::vector<std::size_t> new_widths{widths[0]};
  for (std::size_t l = 0; l < L; ++l) {
    const std::size_t in = widths[l], out = widths[l + 1];
    kept[l + 1].assign(out, 1);
    if (l + 1 < L) {
      for (std::size_t o = 0; o < out; ++o)
        kept[l + 1][o] = std::any_of(w[l].begin() + static_cast<std::ptrdiff_t>(o * in),
                                     w[l].begin() + static_cast<std::ptrdiff_t>((o + 1) * in), [](T v) { return v != T(0); });
      if (std::find(kept[l + 1].begin(), kept[l + 1].end(), char(1)) == kept[l + 1].end()) kept[l + 1][0] = 1;
    }
    new_widths.push_back(static_cast<std::size_t>(std::count(kept[l + 1].begin(), kept[l + 1].end(), char(1))));
  }
  mlp<T> small(new_widths, 0);
  for (std::size_t l = 0; l < L; ++l) {
    const std::size_t in = widths[l], out = widths[l + 1];
    T* wd = small.weight(l).data();
    T* bd = small.bias(l).data();
    for (std::size_t o = 0, oo = 0; o < out; ++o) {
      if (!kept[l + 1][o]) continue;
      double bias = double(b[l][o]);
      for (std::size_t i = 0, ii = 0; i < in; ++i) {
        const T v = w[l][o * in + i];
        if (kept[l][i]) {
          wd[oo * new_widths[l] + ii++] = v;
        } else if (l > 0) {
          bias += double(v) * double(std::max(b[l - 1][i], T(0)));  // the removed neuron's constant output
        }
      }
      bd[oo++] = static_cast<T>(bias);
    }
  }
  return small;
}

}  // namespace bipq::xtensor_adapter
