#pragma once
// What a pruning driver records after each round: the one per-round record of every driver, which csv_log writes.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace bipq {

/// One record per round (IMP, OMP, SAP) or epoch (GMP) or phase (BiP: pretrain, bi-level, fine-tune).
struct prune_record {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::size_t round = 0;
  std::string phase;                       ///< "dense", "prune", "bilevel", "finetune", ...
  std::vector<double> density_per_tensor;  ///< kept fraction of each prunable tensor, in order
  double density = 1.0;                    ///< kept fraction over all prunable weights
  double pq_index = nan;                   ///< PQ Index (p = 0.5, q = 1) of the surviving prunable weights, global
  double train_loss = nan;                 ///< mean mini-batch loss of the last training epoch
  double test_loss = nan;
  double test_accuracy = nan;  ///< fraction in [0, 1]
  double seconds = 0.0;        ///< wall time since the driver started
};

/// A history in a checkpoint (io/checkpoint.hpp): one field per column; `a` writes or reads them.
template <class A, class Records>
  requires std::is_same_v<std::remove_const_t<Records>, std::vector<prune_record>>
void checkpoint_fields(A& a, std::string_view name, Records& history) {
  const std::string n(name);
  std::vector<std::uint64_t> round;
  std::string phases;
  std::vector<std::vector<double>> per_tensor;
  std::vector<double> columns[6];
  auto column = [](std::size_t c, auto& r) -> auto& {
    switch (c) {
      case 0: return r.density;
      case 1: return r.pq_index;
      case 2: return r.train_loss;
      case 3: return r.test_loss;
      case 4: return r.test_accuracy;
      default: return r.seconds;
    }
  };
  static constexpr const char* names[6] = {".density", ".pq_index", ".train_loss", ".test_loss", ".test_accuracy",
                                           ".seconds"};
  if constexpr (!A::reading) {
    for (const prune_record& r : history) {
      round.push_back(r.round);
      phases += r.phase + "\n";
      per_tensor.push_back(r.density_per_tensor);
      for (std::size_t c = 0; c < 6; ++c) columns[c].push_back(column(c, r));
    }
  }
  a(n + ".round", round);
  a(n + ".phase", phases);
  a(n + ".density_per_tensor", per_tensor);
  for (std::size_t c = 0; c < 6; ++c) a(n + names[c], columns[c]);
  if constexpr (A::reading) {
    std::vector<std::string> phase;
    for (std::size_t at = 0, nl; (nl = phases.find('\n', at)) != std::string::npos; at = nl + 1)
      phase.push_back(phases.substr(at, nl - at));
    bool same = phase.size() == round.size() && per_tensor.size() == round.size();
    for (const auto& c : columns) same = same && c.size() == round.size();
    if (!same) throw std::runtime_error("checkpoint: the columns of '" + n + "' differ in length");
    history.assign(round.size(), prune_record{});
    for (std::size_t i = 0; i < round.size(); ++i) {
      prune_record& r = history[i];
      r.round = static_cast<std::size_t>(round[i]);
      r.phase = phase[i];
      r.density_per_tensor = per_tensor[i];
      for (std::size_t c = 0; c < 6; ++c) column(c, r) = columns[c][i];
    }
  }
}

}  // namespace bipq
