#pragma once
// --checkpoint DIR and --resume for the demos: one checkpoint file per method, DIR/<method>.ckpt, written after every
// epoch, round and ten solver iterations. With --resume a method continues from its file (a finished one returns
// its result at once, weights and records included), so a killed demo rerun with --resume ends with the tables,
// CSV rows and masks of a run never interrupted (the wall times aside).

#include <filesystem>
#include <string>

#include "bipq/io/checkpoint.hpp"

namespace examples {

/// The checkpoint of `method` in `dir` (a disabled one when `dir` is empty): resumed from when `resume`, else
/// overwritten. Creates `dir`.
inline bipq::checkpoint method_checkpoint(const std::string& dir, const std::string& method, bool resume) {
  if (dir.empty()) return bipq::checkpoint{};
  std::filesystem::create_directories(dir);
  return bipq::checkpoint(std::filesystem::path(dir) / (method + ".ckpt"),
                          resume ? bipq::checkpoint_mode::resume : bipq::checkpoint_mode::fresh);
}

}  // namespace examples
