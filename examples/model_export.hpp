// prune_fashion_mnist's model output: --save-masks and --export write each method's complete model (architecture,
// every parameter and buffer, masks, preprocessing, and an index.json recording the run) through
// bipq::eigen::write_model, which replaces the method's directory atomically. Layout: docs/export.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bipq/adapters/eigen/compact.hpp"
#include "bipq/adapters/eigen/model_io.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/version.hpp"

namespace examples {

inline const char* to_string(bipq::mask_structure s) {
  return s == bipq::mask_structure::unstructured ? "unstructured" : s == bipq::mask_structure::filter ? "filter" : "n_m";
}

/// The run as index.json records it: method, seed, the settings of the demo, and the final record.
template <class Options>
bipq::io::json run_record(const std::string& method, const Options& o, std::uint64_t seed,
                          const bipq::prune_result<float>& r) {
  bipq::io::json run = bipq::io::json::make_object();
  run.set("program", "prune_fashion_mnist");
  run.set("method", method);
  run.set("seed", static_cast<std::size_t>(seed));
  bipq::io::json settings = bipq::io::json::make_object();
  settings.set("model", o.model);
  settings.set("density", o.density);
  settings.set("epochs", o.epochs);
  settings.set("scope", o.scope == bipq::mask_scope::global ? "global" : "per_tensor");
  settings.set("structure", to_string(o.structure));
  settings.set("threads", o.threads);
  settings.set("train_size", o.train_size);
  settings.set("validation", o.validation);
  run.set("settings", settings);
  const bipq::prune_record& f = r.final_record();
  bipq::io::json result = bipq::io::json::make_object();
  auto number = [&](const char* key, double v) { result.set(key, std::isfinite(v) ? bipq::io::json(v) : bipq::io::json()); };
  number("density", f.density);
  number("test_accuracy", f.test_accuracy);
  number("test_loss", f.test_loss);
  number("pq_index", f.pq_index);
  number("seconds", r.seconds);
  run.set("result", result);
  return run;
}

/// --save-masks DIR: the complete model of `method` into DIR/<method>/, masks stored dense (<param>.mask.npy).
template <class Options>
void save_masks(const std::filesystem::path& dir, const std::string& method, const Options& o, std::uint64_t seed,
                const bipq::eigen::sequential& model, const bipq::prune_result<float>& r) {
  bipq::eigen::export_options opt;
  opt.run = run_record(method, o, seed, r);
  bipq::eigen::write_model(dir / method, model, r.masks, opt);
}

/// --export DIR: the final model of `method` into DIR/<method>/ in its deployable form: unstructured masks stored
/// sparse (indices and values); structured (filter) masks as the compact model (bipq::eigen::compact), the pruned
/// filters physically removed, stored dense and without masks.
template <class Options>
void export_model(const std::filesystem::path& dir, const std::string& method, const Options& o, std::uint64_t seed,
                  const bipq::eigen::sequential& model, const bipq::prune_result<float>& r) {
  bipq::eigen::export_options opt;
  opt.run = run_record(method, o, seed, r);
  std::uintmax_t bytes = 0;
  if (o.structure == bipq::mask_structure::unstructured) {
    opt.masked_storage = bipq::eigen::tensor_storage::sparse;
    bytes = bipq::eigen::write_model(dir / method, model, r.masks, opt);
  } else {
    // The pruned filters removed: a smaller model with no masks (docs/export.md).
    bytes = bipq::eigen::write_model(dir / method, bipq::eigen::compact(model, r.masks), {}, opt);
  }
  std::fprintf(stderr, "%s: model exported to %s (%ju bytes)\n", method.c_str(), (dir / method).c_str(),
               static_cast<std::uintmax_t>(bytes));
}

}  // namespace examples
