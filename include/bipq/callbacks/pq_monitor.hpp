#pragma once
// pq_monitor: records the PQ Index I_{p,q} of the surviving weights at the end of every epoch and flags the
// turning points of the PQI paper's hypothesis (Diao et al., ICLR 2023, Sec. 3.2): along a pruning run the PQI of
// the surviving weights first *decreases* while the model is being regularised, then *increases* once its
// compressibility reaches a limit (the beginning of underfitting), then *decreases* again when the model collapses.
//
// Phases: regularise → compress at the running minimum of the PQI, once a later value exceeds it by more than
// `tolerance`; compress → collapse at the running maximum (since the compress turn), once a later value falls below
// it by more than `tolerance`. The turning epoch is the extremum's, so it is known `tolerance` later.

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

#include "bipq/callbacks/callback.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace bipq {

class pq_monitor {
 public:
  enum class phase { regularise, compress, collapse };

  /// I_{p,q} with 0 < p < q (default p = 0.5, q = 1, the paper's choice); `tolerance` ≥ 0 is the change in PQI
  /// that confirms a turn. Throws std::invalid_argument naming the argument.
  explicit pq_monitor(double p = 0.5, double q = 1.0, double tolerance = 1e-3) : p_(p), q_(q), tolerance_(tolerance) {
    if (!(p > 0.0) || !std::isfinite(p)) throw std::invalid_argument("pq_monitor(): p must be finite and > 0");
    if (!(q > p) || !std::isfinite(q)) throw std::invalid_argument("pq_monitor(): q must be finite and > p");
    if (!(tolerance >= 0.0) || !std::isfinite(tolerance))
      throw std::invalid_argument("pq_monitor(): tolerance must be finite and >= 0");
  }

  /// Computes the PQI of e.weights over the entries where e.masks is nonzero (all entries when masks is empty).
  /// Epochs without weights are not recorded.
  template <class T>
  void end_epoch(const epoch_info<T>& e) {
    if (e.weights.empty()) return;
    const double value = e.masks.empty() ? pq_index_global(e.weights, p_, q_) : pq_index_global(e.weights, e.masks, p_, q_);
    record(e.epoch, value, e.density);
  }

  /// Feeds one value directly (what end_epoch does after computing the PQI).
  void record(std::size_t epoch, double pqi, double density = std::numeric_limits<double>::quiet_NaN()) {
    const std::size_t i = values_.size();
    epochs_.push_back(epoch);
    values_.push_back(pqi);
    densities_.push_back(density);
    if (phase_ == phase::regularise) {
      if (i == 0 || pqi < values_[extremum_]) extremum_ = i;
      else if (pqi > values_[extremum_] + tolerance_) {
        compress_start_ = epochs_[extremum_];
        phase_ = phase::compress;
        extremum_ = i;
      }
    } else if (phase_ == phase::compress) {
      if (pqi > values_[extremum_]) extremum_ = i;
      else if (pqi < values_[extremum_] - tolerance_) {
        collapse_start_ = epochs_[extremum_];
        phase_ = phase::collapse;
      }
    }
  }

  const std::vector<double>& history() const noexcept { return values_; }      ///< PQI per recorded epoch
  const std::vector<std::size_t>& epochs() const noexcept { return epochs_; }  ///< the epoch of each value
  const std::vector<double>& densities() const noexcept { return densities_; } ///< the density reported with it
  phase current_phase() const noexcept { return phase_; }
  /// Epoch of the PQI minimum where compression began (regularise → compress), once confirmed.
  std::optional<std::size_t> compress_start() const noexcept { return compress_start_; }
  /// Epoch of the PQI maximum where the collapse began (compress → collapse), once confirmed.
  std::optional<std::size_t> collapse_start() const noexcept { return collapse_start_; }

 private:
  double p_, q_, tolerance_;
  std::vector<double> values_, densities_;
  std::vector<std::size_t> epochs_;
  phase phase_ = phase::regularise;
  std::size_t extremum_ = 0;
  std::optional<std::size_t> compress_start_, collapse_start_;
};

}  // namespace bipq
