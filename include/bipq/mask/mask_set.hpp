#pragma once
// The masks of a model's prunable tensors: which parameters are masked, one 0/1 mask per such parameter, their
// shapes and the density arithmetic. The bi-level solver and every pruning driver keep their masks in a mask_set,
// and results hand it on by move. A mask_set is a value: it refers to no model, so it outlives the one it was made
// for; the functions that touch weights take the model's parameters.

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/apply.hpp"
#include "bipq/mask/spec.hpp"

namespace bipq {

/// Indices into `params` (in order) of the parameters selected by `selection`.
/// Throws std::invalid_argument if a name in `selection.exclude_names` matches no parameter (a misspelt exclusion
/// would otherwise silently prune the layer it meant to protect): "prunable_indices(): exclude_names entry 'x'
/// matches no parameter".
template <class T>
std::vector<std::size_t> prunable_indices(std::span<const parameter<T>> params, const prunable_selection& selection);

/// Overload for a `std::vector<parameter<T>>` (or anything convertible to a span of parameters).
template <class T>
std::vector<std::size_t> prunable_indices(const std::vector<parameter<T>>& params, const prunable_selection& selection) {
  return prunable_indices(std::span<const parameter<T>>(params), selection);
}

/// One 0/1 mask per prunable parameter of a model, in parameters() order.
template <class T>
class mask_set {
 public:
  mask_set() = default;

  /// All-ones masks for the parameters `selection` picks from `params`. Throws std::invalid_argument naming
  /// `owner` if none is picked, or (from prunable_indices) if an excluded name matches no parameter.
  mask_set(std::span<const parameter<T>> params, const prunable_selection& selection, std::string_view owner)
      : prunable_(prunable_indices(params, selection)) {
    if (prunable_.empty()) throw std::invalid_argument(std::string(owner) + ": the problem has no prunable parameter");
    for (std::size_t i : prunable_) {
      const parameter<T>& p = params[i];
      masks_.emplace_back(p.value.size(), T(1));
      shapes_.push_back(tensor_shape(p));
      total_ += p.value.size();
    }
  }

  /// Number of masked tensors.
  std::size_t size() const noexcept { return masks_.size(); }
  /// Indices into parameters() of the masked tensors, increasing.
  const std::vector<std::size_t>& prunable() const noexcept { return prunable_; }
  /// The shape of masked tensor j: the parameter's shape, or {size} when it has none that fits its size.
  const std::vector<std::size_t>& shape(std::size_t j) const { return shapes_.at(j); }

  /// The mask of masked tensor j (of parameter prunable()[j]): its values may be written, its size is fixed.
  std::span<T> operator[](std::size_t j) { return masks_[j]; }
  const std::vector<T>& operator[](std::size_t j) const { return masks_[j]; }
  /// The masks in order, read-only (for range-for).
  auto begin() const noexcept { return masks_.cbegin(); }
  auto end() const noexcept { return masks_.cend(); }

  /// Number of prunable weights, Σ_j size of mask j.
  std::size_t total() const noexcept { return total_; }
  /// Number of entries equal to 1.
  std::size_t kept() const {
    std::size_t n = 0;
    for (const auto& m : masks_) n += static_cast<std::size_t>(std::count(m.begin(), m.end(), T(1)));
    return n;
  }
  /// kept() / total().
  double density() const { return total_ == 0 ? 1.0 : static_cast<double>(kept()) / static_cast<double>(total_); }

  /// Sets every entry of every mask to `v`.
  void fill(T v) {
    for (auto& m : masks_) std::fill(m.begin(), m.end(), v);
  }

  /// One span per masked tensor.
  std::vector<std::span<const T>> spans() const { return {masks_.begin(), masks_.end()}; }
  std::vector<std::span<T>> spans() { return {masks_.begin(), masks_.end()}; }

  /// One span per parameter of a model with `parameter_count` parameters, empty for those not masked: the layout
  /// train() takes.
  std::vector<std::span<const T>> per_parameter(std::size_t parameter_count) const {
    std::vector<std::span<const T>> s(parameter_count);
    for (std::size_t j = 0; j < prunable_.size(); ++j) s.at(prunable_[j]) = masks_[j];
    return s;
  }

  /// The values of the masked parameters of `params` (the model the set was made for), one span per tensor.
  std::vector<std::span<T>> weights(std::span<const parameter<T>> params) const {
    check_model(params, "mask_set::weights()");
    std::vector<std::span<T>> w;
    w.reserve(prunable_.size());
    for (std::size_t i : prunable_) w.push_back(params[i].value);
    return w;
  }

  /// w ← w ⊙ m on every masked parameter of `params`.
  void apply(std::span<const parameter<T>> params) const {
    check_model(params, "mask_set::apply()");
    for (std::size_t j = 0; j < prunable_.size(); ++j)
      apply_mask(params[prunable_[j]].value, std::span<const T>(masks_[j]));
  }

  /// Equal prunable tensors and masks.
  friend bool operator==(const mask_set&, const mask_set&) = default;

 private:
  static std::vector<std::size_t> tensor_shape(const parameter<T>& p) {
    std::size_t product = 1;
    for (std::size_t s : p.shape) product *= s;
    if (p.shape.empty() || product != p.value.size()) return {p.value.size()};
    return p.shape;
  }

  void check_model(std::span<const parameter<T>> params, const char* func) const {
    for (std::size_t j = 0; j < prunable_.size(); ++j)
      if (prunable_[j] >= params.size() || params[prunable_[j]].value.size() != masks_[j].size())
        throw std::invalid_argument(std::string(func) + ": 'params' is not the model the masks were made for");
  }

  std::vector<std::size_t> prunable_;
  std::vector<std::vector<T>> masks_;
  std::vector<std::vector<std::size_t>> shapes_;
  std::size_t total_ = 0;
};

// ------------------------------------------------------------------------------------------------------------------

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

}  // namespace bipq
