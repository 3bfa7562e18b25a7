#pragma once
// early_stop: stops a run when the monitored loss has not improved for `patience` epochs. The loss is the test loss
// when the run reports one, else the upper-level loss (BiP), else the training loss. An epoch improves when
// loss < best − min_delta.

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include "bipq/callbacks/callback.hpp"

namespace bipq {

class early_stop {
 public:
  /// Throws std::invalid_argument if patience is 0 or min_delta is negative or not finite.
  explicit early_stop(std::size_t patience = 10, double min_delta = 0.0) : patience_(patience), min_delta_(min_delta) {
    if (patience == 0) throw std::invalid_argument("early_stop(): patience must be >= 1");
    if (!(min_delta >= 0.0) || !std::isfinite(min_delta))
      throw std::invalid_argument("early_stop(): min_delta must be finite and >= 0");
  }

  void begin(const run_info&) {
    best_ = std::numeric_limits<double>::infinity();
    best_epoch_ = 0;
    waited_ = 0;
    stopped_ = false;
  }

  /// True (stop) after `patience` epochs without improvement.
  template <class T>
  bool end_epoch(const epoch_info<T>& e) {
    const double loss = !std::isnan(e.test_loss) ? e.test_loss : !std::isnan(e.upper_loss) ? e.upper_loss : e.train_loss;
    if (std::isnan(loss)) return false;
    if (loss < best_ - min_delta_) {
      best_ = loss;
      best_epoch_ = e.epoch;
      waited_ = 0;
      return false;
    }
    stopped_ = ++waited_ >= patience_;
    return stopped_;
  }

  double best_loss() const noexcept { return best_; }
  std::size_t best_epoch() const noexcept { return best_epoch_; }
  bool stopped() const noexcept { return stopped_; }  ///< true if this callback asked to stop

 private:
  std::size_t patience_;
  double min_delta_;
  double best_ = std::numeric_limits<double>::infinity();
  std::size_t best_epoch_ = 0, waited_ = 0;
  bool stopped_ = false;
};

}  // namespace bipq
