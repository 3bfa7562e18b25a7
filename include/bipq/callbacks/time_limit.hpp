#pragma once
// time_limit: stops a run once `seconds` of wall time (steady clock) have passed since it began; checked after
// every step and every epoch.

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "bipq/callbacks/callback.hpp"

namespace bipq {

class time_limit {
 public:
  /// Throws std::invalid_argument if seconds is negative, NaN or infinite.
  explicit time_limit(double seconds) : limit_(seconds) {
    if (!(seconds >= 0.0) || !std::isfinite(seconds))
      throw std::invalid_argument("time_limit(): seconds must be finite and >= 0");
  }

  void begin(const run_info&) {
    start_ = clock::now();
    expired_ = false;
  }
  bool step_taken(const step_info&) { return check(); }
  template <class T>
  bool end_epoch(const epoch_info<T>&) {
    return check();
  }

  bool expired() const noexcept { return expired_; }  ///< true if this callback asked to stop
  double elapsed() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  bool check() {
    expired_ = expired_ || elapsed() >= limit_;
    return expired_;
  }
  double limit_;
  clock::time_point start_ = clock::now();
  bool expired_ = false;
};

}  // namespace bipq
