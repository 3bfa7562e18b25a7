#pragma once
// Seeds as a protocol: the list of seeds a command line asks for, and the summary over seeds of a comparison —
// per method mean ± standard deviation, and each method against a reference (IMP) by the paired mean difference with
// its 95% Student t interval, plus the ratios of wall time and of passes over the training samples.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "command_line.hpp"

namespace examples {

/// "3", "0-4" (inclusive) or "0,2,7": the seeds in the order given, without repeats.
inline std::vector<std::uint64_t> parse_seeds(const command_line& cli, const std::string& flag, const std::string& v) {
  std::vector<std::uint64_t> seeds;
  std::set<std::uint64_t> seen;
  auto add = [&](std::uint64_t s) {
    if (seen.insert(s).second) seeds.push_back(s);
  };
  const std::size_t dash = v.find('-');
  if (dash != std::string::npos && dash > 0 && v.find(',') == std::string::npos) {
    const auto first = cli.number<std::uint64_t>(flag, v.substr(0, dash));
    const auto last = cli.number<std::uint64_t>(flag, v.substr(dash + 1));
    if (last < first) cli.fail("invalid range '" + v + "' for " + flag + " (first > last)");
    if (last - first >= 1000) cli.fail("range '" + v + "' for " + flag + " has more than 1000 seeds");
    for (std::uint64_t s = first;; ++s) {
      add(s);
      if (s == last) break;
    }
    return seeds;
  }
  std::istringstream list(v);
  std::string item;
  std::size_t items = 0;
  while (std::getline(list, item, ',')) {
    ++items;
    add(cli.number<std::uint64_t>(flag, item));
  }
  if (items == 0 || v.back() == ',') cli.fail("invalid value '" + v + "' for " + flag);
  return seeds;
}

/// The 0.975 quantile of Student's t with `df` ≥ 1 degrees of freedom: the table to 30, the Cornish–Fisher
/// expansion beyond (error below 1e-4 there).
inline double student_t_975(std::size_t df) {
  static constexpr double table[30] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                                       2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                       2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (df == 0) throw std::invalid_argument("student_t_975(): df must be >= 1");
  if (df <= 30) return table[df - 1];
  const double z = 1.959963984540054, n = static_cast<double>(df), z3 = z * z * z, z5 = z3 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n);
}

/// Mean, sample standard deviation and the 95% t interval of the mean of `x` (the interval is NaN for one value).
struct sample_summary {
  double mean = 0, sd = 0, low = 0, high = 0;
  std::size_t n = 0;
};

inline sample_summary summarize(const std::vector<double>& x) {
  sample_summary s;
  s.n = x.size();
  if (x.empty()) throw std::invalid_argument("summarize(): x is empty");
  for (double v : x) s.mean += v;
  s.mean /= static_cast<double>(s.n);
  if (s.n < 2) {
    s.sd = s.low = s.high = std::nan("");
    return s;
  }
  for (double v : x) s.sd += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(s.sd / static_cast<double>(s.n - 1));
  const double half = student_t_975(s.n - 1) * s.sd / std::sqrt(static_cast<double>(s.n));
  s.low = s.mean - half;
  s.high = s.mean + half;
  return s;
}

/// One method's final result on one seed.
struct seed_run {
  std::uint64_t seed = 0;
  std::string method;
  double density = 0, test_accuracy = 0, validation_accuracy = 0, seconds = 0;
  double passes = 0;  ///< forward/backward passes over the training samples, in epochs (samples / training size)
};

/// Prints, for runs over several seeds: per method mean ± sd of test (and validation) accuracy, passes and time;
/// then each method against `reference` paired by seed: mean difference of test accuracy (points) with its 95%
/// t interval, how many seeds it is ahead, and the mean ratios of time and passes.
inline void print_seed_summary(const std::vector<seed_run>& runs, const std::vector<std::string>& methods,
                               const std::string& reference) {
  std::map<std::string, std::map<std::uint64_t, const seed_run*>> by;
  for (const seed_run& r : runs) by[r.method][r.seed] = &r;
  auto pm = [](const sample_summary& s, double scale) {
    char b[64];
    if (std::isnan(s.sd)) std::snprintf(b, sizeof b, "%.2f", scale * s.mean);
    else std::snprintf(b, sizeof b, "%.2f ± %.2f", scale * s.mean, scale * s.sd);
    return std::string(b);
  };
  std::printf("\n| method | seeds | density | test accuracy (mean ± sd) | validation accuracy | passes (epochs) | "
              "wall time (s) |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& m : methods) {
    std::vector<double> d, acc, val, passes, secs;
    for (const auto& [seed, r] : by[m]) {
      d.push_back(r->density);
      acc.push_back(r->test_accuracy);
      val.push_back(r->validation_accuracy);
      passes.push_back(r->passes);
      secs.push_back(r->seconds);
    }
    if (acc.empty()) continue;
    std::printf("| %s | %zu | %.4f | %s%% | %s%% | %.1f | %.1f |\n", m.c_str(), acc.size(), summarize(d).mean,
                pm(summarize(acc), 100).c_str(), std::isnan(val[0]) ? "-" : pm(summarize(val), 100).c_str(),
                summarize(passes).mean, summarize(secs).mean);
  }
  if (by.count(reference) == 0) return;
  std::printf("\n| method − %s | paired seeds | mean difference (points) | 95%% interval | ahead on | time ratio | "
              "passes ratio |\n|---|---:|---:|---:|---:|---:|---:|\n", reference.c_str());
  for (const std::string& m : methods) {
    if (m == reference) continue;
    std::vector<double> diff, time_ratio, pass_ratio;
    std::size_t ahead = 0;
    for (const auto& [seed, r] : by[m]) {
      const auto ref = by[reference].find(seed);
      if (ref == by[reference].end()) continue;
      diff.push_back(100.0 * (r->test_accuracy - ref->second->test_accuracy));
      ahead += r->test_accuracy > ref->second->test_accuracy ? 1u : 0u;
      time_ratio.push_back(r->seconds / ref->second->seconds);
      pass_ratio.push_back(r->passes / ref->second->passes);
    }
    if (diff.empty()) continue;
    const sample_summary s = summarize(diff);
    char interval[64] = "-";
    if (!std::isnan(s.low)) std::snprintf(interval, sizeof interval, "[%+.2f, %+.2f]", s.low, s.high);
    std::printf("| %s | %zu | %+.2f | %s | %zu of %zu | %.2f | %.2f |\n", m.c_str(), diff.size(), s.mean, interval, ahead,
                diff.size(), summarize(time_ratio).mean, summarize(pass_ratio).mean);
  }
}

}  // namespace examples
