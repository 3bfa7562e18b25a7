#pragma once
// Which parameters of a model are pruned, and how their masks are laid out. Shared by the bi-level solver and the
// pruning drivers (IMP, OMP, GMP, SAP).
//
// By default the weights of convolutions and linear layers are pruned; biases and normalisation parameters never
// are (they are few, and pruning them hurts accuracy for no gain: Han et al. 2015; Frankle & Carbin 2019).

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/concepts.hpp"

namespace bipq {

/// The parameters a pruning method may mask: those whose kind is listed in `kinds` and whose name is not in
/// `exclude_names` (e.g. the last classifier layer, "fc3.weight", so that no class loses all its inputs).
struct prunable_selection {
  std::vector<parameter_kind> kinds{parameter_kind::conv_weight, parameter_kind::linear_weight};
  std::vector<std::string> exclude_names;  ///< exact parameter names never pruned
};

/// Where the k kept entries are chosen: among all prunable entries together (one threshold), or in every tensor
/// separately (each tensor keeps the same fraction).
enum class mask_scope { global, per_tensor };

/// What a mask entry covers: single weights; whole filters / output neurons (rows of the weight seen as
/// [shape[0], rest]); or N kept out of every M consecutive weights along the input dimension (N:M sparsity).
enum class mask_structure { unstructured, filter, n_m };

/// Indices into `params` (in order) of the parameters selected by `selection`.
/// Throws std::invalid_argument if a name in `selection.exclude_names` matches no parameter (a misspelt exclusion
/// would otherwise silently prune the layer it meant to protect): "prunable_indices(): exclude_names entry 'x'
/// matches no parameter".
template <class T>
std::vector<std::size_t> prunable_indices(std::span<const parameter<T>> params, const prunable_selection& selection) {
  for (const std::string& name : selection.exclude_names) {
    const bool found = std::any_of(params.begin(), params.end(), [&](const parameter<T>& p) { return p.name == name; });
    if (!found)
      throw std::invalid_argument("prunable_indices(): exclude_names entry '" + name + "' matches no parameter");
  }
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const parameter<T>& p = params[i];
    const bool kind_selected = std::find(selection.kinds.begin(), selection.kinds.end(), p.kind) != selection.kinds.end();
    const bool excluded =
        std::find(selection.exclude_names.begin(), selection.exclude_names.end(), p.name) != selection.exclude_names.end();
    if (kind_selected && !excluded) indices.push_back(i);
  }
  return indices;
}

/// Overload for a `std::vector<parameter<T>>` (or anything convertible to a span of parameters).
template <class T>
std::vector<std::size_t> prunable_indices(const std::vector<parameter<T>>& params, const prunable_selection& selection) {
  return prunable_indices(std::span<const parameter<T>>(params), selection);
}

}  // namespace bipq
