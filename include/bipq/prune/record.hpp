#pragma once
// What a pruning driver records after each round: the one per-round record of every driver, which csv_log writes.

#include <cstddef>
#include <limits>
#include <string>
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

}  // namespace bipq
