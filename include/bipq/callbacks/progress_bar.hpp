#pragma once
// progress_bar: a terminal progress bar with the rate (steps/s) and the estimated time left, redrawn in place
// with '\r' at most every 0.1 s. By default it draws on stderr only when stderr is a terminal (isatty), so logs
// and pipes stay clean; an explicit stream always gets it.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>

#if __has_include(<unistd.h>)
#include <unistd.h>
#define BIPQ_HAS_ISATTY 1
#endif

#include "bipq/callbacks/callback.hpp"

namespace bipq {

class progress_bar {
 public:
  /// Draws on std::cerr if stderr is a terminal, otherwise stays silent. `width` is the bar's length in cells.
  explicit progress_bar(std::size_t width = 40) : os_(stderr_is_terminal() ? &std::cerr : nullptr), width_(width) {}
  /// Always draws on `os`.
  explicit progress_bar(std::ostream& os, std::size_t width = 40) : os_(&os), width_(width) {}

  /// True when the bar is drawn somewhere.
  bool active() const noexcept { return os_ != nullptr; }

  void begin(const run_info& r) {
    total_ = r.total_epochs * std::max<std::size_t>(r.steps_per_epoch, 1);
    per_epoch_ = r.steps_per_epoch;
    method_ = std::string(r.method);
    done_ = 0;
    start_ = last_draw_ = clock::now();
    draw(true);
  }

  void step_taken(const step_info& s) {
    if (per_epoch_ == 0) return;  // progress is counted in epochs
    done_ = s.step + 1;
    draw(false);
  }

  template <class T>
  void end_epoch(const epoch_info<T>& e) {
    if (per_epoch_ == 0) done_ = e.epoch + 1;
    else done_ = std::max(done_, (e.epoch + 1) * per_epoch_);
    last_loss_ = !std::isnan(e.upper_loss) ? e.upper_loss : e.train_loss;
    draw(false);
  }

  void end(const run_info&) {
    draw(true);
    if (os_) *os_ << '\n' << std::flush;
  }

  /// The line the bar shows now (without '\r'), e.g. "bip [#####-----]  50%  12/24  35.1 it/s  ETA 0:00:01".
  std::string line() const {
    const double fraction = total_ == 0 ? 1.0 : std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(width_));
    const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
    const double rate = elapsed > 0.0 ? static_cast<double>(done_) / elapsed : 0.0;
    std::ostringstream s;
    s << method_ << " [" << std::string(filled, '#') << std::string(width_ - filled, '-') << "] " << std::setw(3)
      << static_cast<int>(fraction * 100.0) << "%  " << done_ << '/' << total_ << "  " << std::fixed
      << std::setprecision(1) << rate << " it/s  ETA ";
    if (rate > 0.0) s << clock_time(static_cast<double>(total_ - std::min(done_, total_)) / rate);
    else s << "?";
    if (!std::isnan(last_loss_)) s << "  loss " << std::setprecision(4) << last_loss_;
    return s.str();
  }

 private:
  using clock = std::chrono::steady_clock;

  static bool stderr_is_terminal() {
#ifdef BIPQ_HAS_ISATTY
    return ::isatty(::fileno(stderr)) != 0;
#else
    return false;
#endif
  }

  static std::string clock_time(double seconds) {
    const auto t = static_cast<long long>(std::llround(seconds));
    std::ostringstream s;
    s << t / 3600 << ':' << std::setw(2) << std::setfill('0') << (t / 60) % 60 << ':' << std::setw(2) << t % 60;
    return s.str();
  }

  void draw(bool force) {
    if (!os_) return;
    const auto now = clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_draw_ = now;
    *os_ << '\r' << line() << std::flush;
  }

  std::ostream* os_;
  std::size_t width_;
  std::size_t total_ = 0, per_epoch_ = 0, done_ = 0;
  double last_loss_ = std::numeric_limits<double>::quiet_NaN();
  std::string method_;
  clock::time_point start_{}, last_draw_{};
};

}  // namespace bipq
