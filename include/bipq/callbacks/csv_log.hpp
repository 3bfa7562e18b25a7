#pragma once
// csv_log: one CSV row per epoch (epoch, losses, density, mask change, test metrics, seconds). The rows go to
// "<path>.tmp" as they come, and the file is renamed to `path` at the end of the run, so `path` is either absent or
// complete; if the run ends by an exception, the temporary file is removed.

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>

#include "bipq/callbacks/callback.hpp"

namespace bipq {

class csv_log {
 public:
  /// The header line of the file.
  static constexpr const char* header = "epoch,train_loss,upper_loss,density,mask_change,test_loss,test_accuracy,seconds";

  /// Will write `path` (replaced if it exists). Throws std::invalid_argument on an empty path.
  explicit csv_log(std::filesystem::path path) : path_(std::move(path)) {
    if (path_.empty()) throw std::invalid_argument("csv_log(): path must not be empty");
    temp_ = path_;
    temp_ += ".tmp";
  }
  csv_log(const csv_log&) = delete;
  csv_log& operator=(const csv_log&) = delete;
  ~csv_log() {
    if (out_.is_open()) {
      out_.close();
      std::error_code ec;
      std::filesystem::remove(temp_, ec);
    }
  }

  /// Opens the temporary file. Throws std::runtime_error("csv_log: cannot open '<path>.tmp'") on failure.
  void begin(const run_info&) {
    out_.open(temp_, std::ios::out | std::ios::trunc);
    if (!out_) throw std::runtime_error("csv_log: cannot open '" + temp_.string() + "' for writing");
    out_ << header << '\n';
    out_ << std::setprecision(std::numeric_limits<double>::max_digits10);
  }

  template <class T>
  void end_epoch(const epoch_info<T>& e) {
    if (!out_.is_open()) return;
    out_ << e.epoch << ',';
    value(e.train_loss);
    value(e.upper_loss);
    value(e.density);
    out_ << e.mask_change << ',';
    value(e.test_loss);
    value(e.test_accuracy);
    if (!std::isnan(e.seconds)) out_ << e.seconds;
    out_ << '\n';
  }

  /// Flushes, closes and renames the file into place. Throws std::runtime_error if writing or renaming failed.
  void end(const run_info&) {
    if (!out_.is_open()) return;
    out_.flush();
    const bool ok = static_cast<bool>(out_);
    out_.close();
    if (!ok) {
      std::error_code ec;
      std::filesystem::remove(temp_, ec);
      throw std::runtime_error("csv_log: writing '" + temp_.string() + "' failed");
    }
    std::error_code ec;
    std::filesystem::rename(temp_, path_, ec);
    if (ec) throw std::runtime_error("csv_log: cannot rename '" + temp_.string() + "' to '" + path_.string() + "': " + ec.message());
  }

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void value(double v) {
    if (!std::isnan(v)) out_ << v;
    out_ << ',';
  }
  std::filesystem::path path_, temp_;
  std::ofstream out_;
};

}  // namespace bipq
