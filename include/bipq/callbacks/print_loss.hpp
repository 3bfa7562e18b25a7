#pragma once
// print_loss: one line per epoch (and optionally every n steps) with the losses, density and mask change.
// Works with every run that takes callbacks (bilevel_solver::optimize, train, the pruning drivers): it uses only
// the structs of callbacks/callback.hpp, and prints only the fields the run filled in (others are NaN).

#include <cmath>
#include <cstddef>
#include <iostream>
#include <ostream>

#include "bipq/callbacks/callback.hpp"

namespace bipq {

class print_loss {
 public:
  /// Prints to `os` (default std::cout) at the end of every epoch, and every `step_every` steps if > 0.
  explicit print_loss(std::ostream& os = std::cout, std::size_t step_every = 0) : os_(&os), step_every_(step_every) {}

  void begin(const run_info& r) {
    *os_ << r.method << ": " << r.total_epochs << " epochs";
    if (r.steps_per_epoch > 0) *os_ << " of " << r.steps_per_epoch << " steps";
    *os_ << '\n';
  }

  void step_taken(const step_info& s) {
    if (step_every_ > 0 && (s.step + 1) % step_every_ == 0)
      *os_ << "  step " << s.step + 1 << " (epoch " << s.epoch + 1 << "): loss " << s.loss << '\n';
  }

  template <class T>
  void end_epoch(const epoch_info<T>& e) {
    *os_ << "epoch " << e.epoch + 1 << ':';
    field("train_loss", e.train_loss);
    field("upper_loss", e.upper_loss);
    field("test_loss", e.test_loss);
    field("test_accuracy", e.test_accuracy);
    field("density", e.density);
    if (!std::isnan(e.density)) *os_ << " mask_change " << e.mask_change;
    field("seconds", e.seconds);
    *os_ << '\n';
  }

 private:
  void field(const char* name, double v) {
    if (!std::isnan(v)) *os_ << ' ' << name << ' ' << v;
  }
  std::ostream* os_;
  std::size_t step_every_;
};

}  // namespace bipq
