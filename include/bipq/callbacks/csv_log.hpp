#pragma once
// csv_log: one CSV row per epoch (epoch, losses, density, mask change, test metrics, seconds). The rows go to
// "<path>.tmp" as they come, and the file is renamed to `path` at the end of the run, so `path` is either absent or
// complete; if the run ends by an exception, the temporary file is removed.
// write_records_csv: the same for what the drivers record (prune_record, one row per method and round).

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <sstream>
#include <string>
#include <system_error>

#include "bipq/callbacks/callback.hpp"
#include "bipq/io/npy.hpp"
#include "bipq/prune/record.hpp"

namespace bipq {

namespace detail {
/// One CSV field: the number (empty when NaN), then `end`.
inline void csv_field(std::ostream& out, double v, char end) {
  if (!std::isnan(v)) out << v;
  out << end;
}
}  // namespace detail

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
  void value(double v) { detail::csv_field(out_, v, ','); }
  std::filesystem::path path_, temp_;
  std::ofstream out_;
};

/// The header of write_records_csv's file.
inline constexpr const char* records_csv_header =
    "method,round,phase,density,pq_index,train_loss,test_loss,test_accuracy,seconds";

/// Writes `runs` (pairs of a method name and the records a driver returned in its result's `history`) as CSV: the
/// header, then one row per record in order; numbers with max_digits10 digits, NaN as an empty field. The file is
/// replaced atomically (io::write_file_atomically), so `path` is either its old self or complete.
/// Throws std::invalid_argument on an empty path, std::runtime_error if writing or renaming fails.
template <class Runs>
void write_records_csv(const std::filesystem::path& path, const Runs& runs) {
  if (path.empty()) throw std::invalid_argument("write_records_csv(): path must not be empty");
  std::ostringstream csv;
  csv << std::setprecision(std::numeric_limits<double>::max_digits10) << records_csv_header << '\n';
  for (const auto& [method, history] : runs)
    for (const prune_record& r : history) {
      csv << method << ',' << r.round << ',' << r.phase << ',';
      for (double v : {r.density, r.pq_index, r.train_loss, r.test_loss, r.test_accuracy}) detail::csv_field(csv, v, ',');
      detail::csv_field(csv, r.seconds, '\n');
    }
  io::write_file_atomically(path, csv.str());
}

}  // namespace bipq
