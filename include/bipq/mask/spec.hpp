#pragma once
// What a mask is: which parameters it covers, how many weights it keeps, where they are chosen and what one entry
// covers. One struct, `mask_spec`, shared by the bi-level solver and every pruning driver.
//
// By default the weights of convolutions and linear layers are pruned; biases and normalisation parameters never
// are (they are few, and pruning them hurts accuracy for no gain: Han et al. 2015; Frankle & Carbin 2019).

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/detail/field_count.hpp"

namespace bipq {

/// The parameters a pruning method may mask: those whose kind is listed in `kinds` and whose name is not in
/// `exclude_names` (e.g. the last classifier layer, "fc3.weight", so that no class loses all its inputs).
struct prunable_selection {
  std::vector<parameter_kind> kinds{parameter_kind::conv_weight, parameter_kind::linear_weight};
  std::vector<std::string> exclude_names;  ///< exact parameter names never pruned
};

/// Where the kept entries are chosen: among all prunable entries together (one threshold), or in every tensor
/// separately (each tensor keeps the same fraction).
enum class mask_scope { global, per_tensor };

/// What a mask entry covers: single weights; whole filters / output neurons (rows of the weight seen as
/// [shape[0], rest]); or N kept out of every M consecutive weights along the input dimension (N:M sparsity).
enum class mask_structure { unstructured, filter, n_m };

/// The mask to find: density or exact count, scope, structure and the parameters it covers.
///
/// | field | meaning | default |
/// |---|---|---|
/// | density | fraction of the prunable weights kept, in (0, 1]; unused with n_m (whose density is n/m) | 0.05 |
/// | k | if > 0, the exact number kept over all prunable weights instead (global unstructured only) | 0 |
/// | scope | global: one threshold over all prunable tensors; per_tensor: each keeps `density` | global |
/// | structure | unstructured; filter: round(density · shape[0]) whole rows per tensor; n_m | unstructured |
/// | n, m | N:M: n kept of every m consecutive weights along the last dimension, 1 ≤ n ≤ m | 2, 4 |
/// | prunable | which parameters are masked | conv and linear weights |
///
/// The pruning drivers (prune/*.hpp) read `prunable` left at its default as conv weights only when
/// `structure` is filter: removing output neurons of the last linear layer would remove classes.
struct mask_spec {
  double density = 0.05;
  std::size_t k = 0;
  mask_scope scope = mask_scope::global;
  mask_structure structure = mask_structure::unstructured;
  std::size_t n = 2;
  std::size_t m = 4;
  prunable_selection prunable{};

  /// The kept fraction over `total` prunable weights: k / total when k > 0, else `density`.
  double kept_fraction(std::size_t total) const noexcept {
    return k > 0 && total > 0 ? static_cast<double>(k) / static_cast<double>(total) : density;
  }

  /// Throws std::invalid_argument("<owner>: 'mask.<field>' ...") naming the first invalid field.
  void validate(std::string_view owner) const {
    auto fail = [&](const char* what) { throw std::invalid_argument(std::string(owner) + ": " + what); };
    if (!(density > 0.0 && density <= 1.0)) fail("'mask.density' must be in (0, 1]");
    if (k > 0 && scope != mask_scope::global) fail("'mask.k' can only be given with scope global (use 'density')");
    if (k > 0 && structure != mask_structure::unstructured)
      fail("'mask.k' can only be given with structure unstructured (use 'density')");
    if (structure == mask_structure::n_m && (n == 0 || m == 0 || n > m))
      fail("'mask.n' and 'mask.m' must satisfy 1 <= n <= m");
    if (prunable.kinds.empty()) fail("'mask.prunable.kinds' must not be empty");
  }
};

/// Every field of a mask as "name=value" lines, through `d` (a settings_text, io/checkpoint.hpp): what a checkpoint
/// compares before resuming.
template <class D>
void describe_settings(D& d, const prunable_selection& s) {
  static_assert(detail::field_count<prunable_selection>() == 2, "describe every field of prunable_selection");
  d("kinds", s.kinds);
  d("exclude_names", s.exclude_names);
}
template <class D>
void describe_settings(D& d, const mask_spec& m) {
  static_assert(detail::field_count<mask_spec>() == 7, "describe every field of mask_spec");
  d("density", m.density);
  d("k", m.k);
  d("scope", m.scope);
  d("structure", m.structure);
  d("n", m.n);
  d("m", m.m);
  d.nested("prunable", [&] { describe_settings(d, m.prunable); });
}

}  // namespace bipq
