// Prune a CNN on Fashion-MNIST with BiP, SAP, IMP, OMP and GMP, and compare them in one table.
//
//   prune_fashion_mnist --method all --model lenet5 --density 0.05 --epochs 3
//
// Every method starts from the same initialisation (same seed); every training run has the same length, batch,
// optimiser and schedule. The last 5,000 training images are held out for validation (choosing settings); the test
// set is for the final table only. With several seeds (--seeds 0-4) the run ends with a paired comparison against
// IMP. See --help and docs/results.md.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/callbacks/csv_log.hpp"
#include "bipq/callbacks/progress_bar.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/io/npy.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"
#include "bipq/callbacks/pq_monitor.hpp"
#include "checkpoint_dir.hpp"
#include "command_line.hpp"
#include "distributed.hpp"
#include "model_export.hpp"
#include "inference_speed.hpp"
#include "seed_protocol.hpp"

namespace {

const char* usage = R"(usage: prune_fashion_mnist [options]

Prunes a CNN trained on Fashion-MNIST and prints, per method: density reached, test and validation accuracy, PQ
Index of the surviving weights, cost in passes over the training samples, wall time, and time relative to IMP. With
several seeds it ends with each method's mean and standard deviation, and its paired difference to IMP with a 95%
Student t interval.

  --method M        bip | sap | imp | omp | gmp | all, or a comma-separated list (default: all)
  --model M         lenet5 | cnn | mlp                             (default: lenet5)
  --density D       fraction of prunable weights kept, in (0, 1]   (default: 0.05; SAP: a floor)
  --epochs E        epochs of every training run                   (default: 3)
  --scope S         global | layer | neuron (neuron: SAP only)    (default: global)
  --structure S     unstructured | filter (BiP, IMP, OMP, GMP)     (default: unstructured)
  --seed N          initialisation, shuffling and solver seed      (default: 0)
  --seeds LIST      several seeds: a range 0-4 or a list 0,3,7; every method runs on each
  --threads N       threads of the CNN                             (default: 2)
  --validation N    hold out the last N training images for validation (default: 5000)
  --train-size N    train on the first N of the other images (0 = all) (default: 0)
  --sap-rounds N    SAP's pruning rounds at most (it stops at the floor --density) (default: 30)
  --bip-preset P    default | released: the released BiP code's settings (scores = |weights|, the upper step
                    moving the weights, cosine and step schedules, upper momentum 0.9 and weight decay 1e-4, IG
                    second term 1e-4, no fine-tuning)                                      (default: default)
  --bip-ig M        paper (second term 1/γ) | code (1e-4) | none   (default: none for the default preset,
                    chosen on the validation split, docs/results.md; code for the released one)
  --bip-param P     scores | weights | relaxed                      (default: the preset's)
  --bip-schedules S on | off: cosine lower and step upper rates, upper momentum 0.9, weight decay 1e-4
  --bip-upper-rate R  the upper learning rate                        (default: the preset's)
  --bip-epochs E    length of the bi-level phase in epochs of passes (default: 6)
  --bip-finetune E  fine-tuning epochs after it, 0 for none          (default: the preset's: 3 / 0)
  --summary FILE    write one row per seed and method (final accuracies, passes, time) to FILE
  --csv FILE        write one row per method and round to FILE    (default: prune_results.csv)
  --save-masks DIR  write each method's complete model (architecture, weights, masks, index.json) into
                    DIR/<method>/, replacing that directory atomically (layout: docs/export.md)
  --export DIR      write each method's final model into DIR/<method>/ in deployable form (sparse storage
                    for unstructured masks)
  --checkpoint DIR  write a checkpoint per method into DIR (after every epoch, round, 10 solver iterations)
  --resume          continue every method from its checkpoint in DIR (a finished one is not rerun)
  --data DIR        Fashion-MNIST directory (default: $BIPQ_FASHION_MNIST or /usr/share/datasets/fashion-mnist)
  --distributed M   auto | on | off: data-parallel over MPI ranks (mpirun -np N; auto: when launched by mpirun)
  --help            this text
)";

struct options {
  std::vector<std::string> methods{"bip", "sap", "imp", "omp", "gmp"};
  std::string model = "lenet5";
  double density = 0.05;
  std::size_t epochs = 3;
  bipq::mask_scope scope = bipq::mask_scope::global;
  bipq::sap_scope sap_scope = bipq::sap_scope::global;
  bipq::mask_structure structure = bipq::mask_structure::unstructured;
  std::vector<std::uint64_t> seeds{0};
  std::size_t threads = 2;
  std::size_t train_size = 0;
  std::size_t validation = 5000;
  std::size_t sap_rounds = 30;
  std::string bip_preset = "default";
  std::optional<std::string> bip_ig, bip_param, bip_schedules;
  std::optional<double> bip_upper_rate;
  double bip_epochs = 6.0;
  std::optional<std::size_t> bip_finetune;
  std::string summary;
  std::string csv = "prune_results.csv";
  std::string save_masks;
  std::string export_dir;
  std::string data;
  examples::distributed_mode distributed = examples::distributed_mode::automatic;
  std::string checkpoint;
  bool resume = false;
};

const examples::command_line cli{"prune_fashion_mnist", usage, {"--resume"}};

options parse(int argc, char** argv) {
  options o;
  cli.parse(argc, argv, [&](const std::string& flag, const std::string& v) {
    if (flag == "--method") {
      if (v == "all") {
        o.methods = {"bip", "sap", "imp", "omp", "gmp"};
      } else {
        o.methods.clear();
        for (const std::string& m : examples::split_list(v)) {
          if (m != "bip" && m != "sap" && m != "imp" && m != "omp" && m != "gmp")
            cli.fail("invalid value '" + m + "' for --method");
          o.methods.push_back(m);
        }
        if (o.methods.empty()) cli.fail("empty value for --method");
      }
    } else if (flag == "--model") {
      if (v != "lenet5" && v != "cnn" && v != "mlp") cli.fail("invalid value '" + v + "' for --model");
      o.model = v;
    } else if (flag == "--density") {
      o.density = cli.number<double>(flag, v);
      if (!(o.density > 0.0 && o.density <= 1.0)) cli.fail("--density must be in (0, 1]");
    } else if (flag == "--epochs") {
      o.epochs = cli.number<std::size_t>(flag, v);
      if (o.epochs == 0) cli.fail("--epochs must be >= 1");
    } else if (flag == "--scope") {
      if (v == "global") {
        o.scope = bipq::mask_scope::global;
        o.sap_scope = bipq::sap_scope::global;
      } else if (v == "layer") {
        o.scope = bipq::mask_scope::per_tensor;
        o.sap_scope = bipq::sap_scope::layer;
      } else if (v == "neuron") {
        o.sap_scope = bipq::sap_scope::neuron;
      } else {
        cli.fail("invalid value '" + v + "' for --scope");
      }
    } else if (flag == "--structure") {
      if (v == "unstructured") o.structure = bipq::mask_structure::unstructured;
      else if (v == "filter") o.structure = bipq::mask_structure::filter;
      else cli.fail("invalid value '" + v + "' for --structure");
    } else if (flag == "--seed") {
      o.seeds = {cli.number<std::uint64_t>(flag, v)};
    } else if (flag == "--seeds") {
      o.seeds = examples::parse_seeds(cli, flag, v);
    } else if (flag == "--validation") {
      o.validation = cli.number<std::size_t>(flag, v);
    } else if (flag == "--sap-rounds") {
      o.sap_rounds = cli.number<std::size_t>(flag, v);
      if (o.sap_rounds == 0) cli.fail("--sap-rounds must be >= 1");
    } else if (flag == "--bip-preset") {
      if (v != "default" && v != "released") cli.fail("invalid value '" + v + "' for --bip-preset");
      o.bip_preset = v;
    } else if (flag == "--bip-ig") {
      if (v != "paper" && v != "code" && v != "none") cli.fail("invalid value '" + v + "' for --bip-ig");
      o.bip_ig = v;
    } else if (flag == "--bip-param") {
      if (v != "scores" && v != "weights" && v != "relaxed") cli.fail("invalid value '" + v + "' for --bip-param");
      o.bip_param = v;
    } else if (flag == "--bip-schedules") {
      if (v != "on" && v != "off") cli.fail("invalid value '" + v + "' for --bip-schedules");
      o.bip_schedules = v;
    } else if (flag == "--bip-upper-rate") {
      o.bip_upper_rate = cli.number<double>(flag, v);
      if (!(*o.bip_upper_rate > 0.0 && std::isfinite(*o.bip_upper_rate))) cli.fail("--bip-upper-rate must be > 0");
    } else if (flag == "--bip-epochs") {
      o.bip_epochs = cli.number<double>(flag, v);
      if (!(o.bip_epochs > 0.0 && std::isfinite(o.bip_epochs))) cli.fail("--bip-epochs must be > 0");
    } else if (flag == "--bip-finetune") {
      o.bip_finetune = cli.number<std::size_t>(flag, v);
    } else if (flag == "--summary") {
      o.summary = v;
    } else if (flag == "--threads") {
      o.threads = cli.number<std::size_t>(flag, v);
      if (o.threads == 0) cli.fail("--threads must be >= 1");
    } else if (flag == "--train-size") {
      o.train_size = cli.number<std::size_t>(flag, v);
    } else if (flag == "--csv") {
      o.csv = v;
    } else if (flag == "--save-masks") {
      o.save_masks = v;
    } else if (flag == "--export") {
      o.export_dir = v;
    } else if (flag == "--data") {
      o.data = v;
    } else if (flag == "--distributed") {
      if (!examples::parse_distributed_mode(v, o.distributed)) cli.fail("invalid value '" + v + "' for --distributed");
    } else if (flag == "--checkpoint") {
      o.checkpoint = v;
    } else if (flag == "--resume") {
      o.resume = true;
    } else {
      cli.fail("unknown flag " + flag);
    }
  });
  if (o.resume && o.checkpoint.empty()) cli.fail("--resume needs --checkpoint DIR");
  if (!o.checkpoint.empty() && o.model == "cnn")  // its batch-norm running statistics are not parameters
    cli.fail("--checkpoint is not available for --model cnn (batch-norm running statistics are not checkpointed)");
  if (o.sap_scope == bipq::sap_scope::neuron &&
      std::any_of(o.methods.begin(), o.methods.end(), [](const std::string& m) { return m != "sap"; }))
    cli.fail("--scope neuron is available for --method sap only");
  // Every output path is checked now, before the first epoch, not found bad after all the training.
  if (!o.csv.empty()) cli.check_output_file("--csv", o.csv);
  if (!o.save_masks.empty()) cli.check_output_directory("--save-masks", o.save_masks);
  if (!o.summary.empty()) cli.check_output_file("--summary", o.summary);
  if (!o.export_dir.empty()) cli.check_output_directory("--export", o.export_dir);
  if (!o.checkpoint.empty()) cli.check_output_directory("--checkpoint", o.checkpoint);
  if (o.structure == bipq::mask_structure::filter && std::count(o.methods.begin(), o.methods.end(), "sap") > 0) {
    if (o.methods.size() == 1) cli.fail("--structure filter is not available for --method sap");
    o.methods.erase(std::find(o.methods.begin(), o.methods.end(), "sap"));  // SAP is unstructured
  }
  return o;
}

bipq::eigen::sequential make_model(const options& o, std::uint64_t seed) {
  if (o.model == "lenet5") return bipq::eigen::make_lenet5(seed);
  if (o.model == "cnn") return bipq::eigen::make_pqi_cnn({}, seed);
  return bipq::eigen::make_mlp(seed);
}

bipq::mask_spec mask_of(const options& o) {
  bipq::mask_spec m;
  m.density = o.density;
  m.scope = o.scope;
  m.structure = o.structure;
  return m;
}

bipq::train_params training_of(const options& o, std::uint64_t seed) {
  bipq::train_params t;
  t.epochs = o.epochs;
  t.seed = seed;
  return t;
}

/// BiP's settings: the preset, then each --bip-* flag given.
bipq::bip_params bip_of(const options& o, std::uint64_t seed) {
  const bipq::train_params train = training_of(o, seed);
  bipq::bip_params p{.mask = mask_of(o), .pretrain = train};  // fine-tuning: the default 3 epochs
  if (o.bip_preset == "released") {
    p.bilevel = bipq::bip_params::released_code_bilevel(train.sgd.learning_rate);
    p.finetune = std::nullopt;
  }
  bipq::bilevel_settings& b = p.bilevel;
  // The default preset's IG: no second term, the study's choice on the validation split (docs/results.md).
  const std::string ig = o.bip_ig ? *o.bip_ig : o.bip_preset == "default" ? "none" : "";
  if (ig == "paper" || ig == "code") {
    b.ig_mode = bipq::implicit_gradient_mode::first_order;
    b.second_term_coefficient = ig == "code" ? std::optional<double>(1e-4) : std::nullopt;
  } else if (ig == "none") {
    b.ig_mode = bipq::implicit_gradient_mode::none;
  }
  if (o.bip_param == "scores") b.parametrization = bipq::mask_parametrization::scores;
  if (o.bip_param == "weights") b.parametrization = bipq::mask_parametrization::weights;
  if (o.bip_param == "relaxed") b.parametrization = bipq::mask_parametrization::relaxed;
  if (o.bip_schedules) {
    const bool on = *o.bip_schedules == "on";
    b.lower_schedule = on ? bipq::rate_schedule::cosine : bipq::rate_schedule::constant;
    b.upper_schedule = on ? bipq::rate_schedule::step : bipq::rate_schedule::constant;
    b.upper_momentum = on ? 0.9 : 0.0;
    b.upper_weight_decay = on ? 1e-4 : 0.0;
  }
  if (o.bip_upper_rate) b.upper_learning_rate = *o.bip_upper_rate;
  p.bilevel_epochs = o.bip_epochs;
  if (o.bip_finetune) {
    if (*o.bip_finetune == 0) {
      p.finetune = std::nullopt;
    } else {
      p.finetune = train;
      p.finetune->epochs = *o.bip_finetune;
    }
  }
  if (p.finetune) p.finetune->seed = seed;
  b.seed = seed;
  return p;
}

using result_type = bipq::prune_result<float>;

template <class Problem, class Wrap>
result_type run_method(const std::string& method, const options& o, std::uint64_t seed, Problem& problem,
                       bipq::checkpoint& ck, Wrap wrap) {
  auto bar = wrap(bipq::progress_bar{});
  const bipq::mask_spec mask = mask_of(o);
  const bipq::train_params train = training_of(o, seed);
  if (method == "imp") return bipq::imp(problem, bipq::imp_params{.mask = mask, .train = train}, ck, bar);
  if (method == "omp") return bipq::omp(problem, bipq::omp_params{.mask = mask, .train = train}, ck, bar);
  if (method == "gmp") return bipq::gmp(problem, bipq::gmp_params{.mask = mask, .train = train}, ck, bar);
  if (method == "sap")
    return bipq::sap(problem,
                     bipq::sap_params{.min_density = o.density, .train = train, .rounds = o.sap_rounds,
                                      .scope = o.sap_scope},
                     ck, bar);
  return bipq::bip(problem, bip_of(o, seed), ck, bar);
}

/// The PQ Index of the surviving weights once per pruning round (IMP, SAP), and the turning points of the PQI
/// paper's hypothesis that pq_monitor finds in it: one line, or nothing for a run without rounds.
void print_turning_points(const std::string& method, const result_type& r) {
  if (method != "imp" && method != "sap") return;
  bipq::pq_monitor monitor;
  for (const bipq::prune_record& rec : r.history) monitor.record(rec.round, rec.pq_index, rec.density);
  auto at = [&](std::optional<std::size_t> round) {
    if (!round) return std::string("none");
    char b[64];
    std::snprintf(b, sizeof b, "round %zu (density %.4f)", *round, r.history.at(*round).density);
    return std::string(b);
  };
  std::printf("%s: PQ Index per round: compression from %s, collapse from %s\n", method.c_str(),
              at(monitor.compress_start()).c_str(), at(monitor.collapse_start()).c_str());
}

/// The drivers' per-round records of every seed and method, with the seed as the last column.
void write_csv(const std::string& path, const std::vector<std::pair<std::uint64_t, std::pair<std::string,
               std::vector<bipq::prune_record>>>>& runs) {
  std::ostringstream csv;
  csv << std::setprecision(std::numeric_limits<double>::max_digits10) << bipq::records_csv_header << ",seed\n";
  for (const auto& [seed, run] : runs)
    for (const bipq::prune_record& r : run.second) {
      csv << run.first << ',' << r.round << ',' << r.phase << ',';
      for (double v : {r.density, r.pq_index, r.train_loss, r.test_loss, r.test_accuracy, r.seconds})
        bipq::detail::csv_field(csv, v, ',');
      csv << seed << '\n';
    }
  bipq::io::write_file_atomically(path, csv.str());
}

/// One row per seed and method: final density, test and validation accuracy, passes, time.
void write_summary(const std::string& path, const std::vector<examples::seed_run>& runs) {
  std::ostringstream csv;
  csv << std::setprecision(std::numeric_limits<double>::max_digits10)
      << "seed,method,density,test_accuracy,validation_accuracy,passes,seconds\n";
  for (const auto& r : runs)
    csv << r.seed << ',' << r.method << ',' << r.density << ',' << r.test_accuracy << ',' << r.validation_accuracy << ','
        << r.passes << ',' << r.seconds << '\n';
  bipq::io::write_file_atomically(path, csv.str());
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  examples::distributed dist(argc, argv, o.distributed, "prune_fashion_mnist");
  try {
    auto data = bipq::io::load_fashion_mnist(o.data);
    if (o.validation >= data.train.size())
      examples::fail("prune_fashion_mnist", "--validation " + std::to_string(o.validation) +
                                                " leaves no training images (the training set has " +
                                                std::to_string(data.train.size()) + ")");
    const bipq::io::image_dataset validation = bipq::io::tail(data.train, o.validation);
    std::size_t train_size = data.train.size() - o.validation;
    if (o.train_size > 0) train_size = std::min(train_size, o.train_size);
    data.train = bipq::io::head(data.train, train_size);
    std::string seeds;
    for (std::uint64_t s : o.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(s);
    std::printf("Fashion-MNIST: %zu training, %zu validation and %zu test images; model %s; target density %.3g; "
                "%zu epochs per training run; seed %s; %zu threads\n",
                data.train.size(), validation.size(), data.test.size(), o.model.c_str(), o.density, o.epochs,
                seeds.c_str(), o.threads);
    if (dist.active()) std::printf("data-parallel over %d MPI ranks\n", dist.ranks());
    if (dist.active() && !o.checkpoint.empty())  // every rank would write the same files
      throw std::invalid_argument("--checkpoint is not available in a data-parallel run");
    std::fflush(stdout);

    std::vector<std::pair<std::uint64_t, std::pair<std::string, std::vector<bipq::prune_record>>>> records;
    std::vector<examples::seed_run> runs;
    examples::inference_speed speed;  // the first seed's final models
    for (const std::uint64_t seed : o.seeds) {
      std::vector<std::pair<std::string, result_type>> results;
      std::vector<examples::seed_run> rows;
      std::deque<bipq::eigen::sequential> models;  // kept until the files are written, after the table
      std::deque<bipq::eigen::classifier> problems;
      for (const std::string& method : o.methods) {
        auto& model = models.emplace_back(make_model(o, seed));
        auto& problem = problems.emplace_back(model, data.train, data.test, o.threads);
        const std::string ck_dir =
            o.checkpoint.empty() || o.seeds.size() == 1 ? o.checkpoint : o.checkpoint + "/seed-" + std::to_string(seed);
        bipq::checkpoint ck = examples::method_checkpoint(ck_dir, method, o.resume);
        result_type r =
            dist.run(problem, [&](auto& p, auto wrap) { return run_method(method, o, seed, p, ck, wrap); });
        if (ck.resumed()) std::fprintf(stderr, "%s: resumed from %s\n", method.c_str(), ck.file().c_str());
        records.push_back({seed, {method, r.history}});
        if (seed == o.seeds.front()) speed.add(method, model, r.masks, o.structure == bipq::mask_structure::filter);
        const auto& f = r.final_record();
        examples::seed_run row{seed, method, f.density, f.test_accuracy,
                               validation.size() > 0 ? problem.evaluate(validation).accuracy : std::nan(""),
                               r.seconds,
                               dist.sum(double(problem.samples_processed())) / double(data.train.size())};
        if (dist.is_root())
          std::fprintf(stderr, "%s: density %.4f, test accuracy %.2f%%, validation accuracy %.2f%%, %.1f passes, %.1f s\n",
                       method.c_str(), f.density, 100.0 * f.test_accuracy, 100.0 * row.validation_accuracy, row.passes,
                       r.seconds);
        rows.push_back(row);
        results.emplace_back(method, std::move(r));
      }

      double imp_seconds = 0.0;
      for (const auto& [m, r] : results)
        if (m == "imp") imp_seconds = r.seconds;
      std::printf("\n| method | density | test accuracy | validation accuracy | PQ Index | passes (epochs) | "
                  "wall time (s) | time / IMP |\n");
      std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
      for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& [m, r] = results[i];
        const auto& f = r.final_record();
        char ratio[32] = "-";
        if (imp_seconds > 0.0) std::snprintf(ratio, sizeof ratio, "%.2f", r.seconds / imp_seconds);
        std::printf("| %s | %.4f | %.2f%% | %.2f%% | %.4f | %.1f | %.1f | %s |\n", m.c_str(), f.density,
                    100.0 * f.test_accuracy, 100.0 * rows[i].validation_accuracy, f.pq_index, rows[i].passes,
                    r.seconds, ratio);
      }
      for (const auto& [m, r] : results) print_turning_points(m, r);
      std::fflush(stdout);  // the table is out before any file is written
      auto per_seed = [&](const std::string& dir) {
        return o.seeds.size() > 1 ? dir + "/seed-" + std::to_string(seed) : dir;
      };
      for (std::size_t i = 0; i < results.size() && dist.is_root(); ++i) {
        if (!o.save_masks.empty())
          examples::save_masks(per_seed(o.save_masks), results[i].first, o, seed, models[i], results[i].second);
        if (!o.export_dir.empty())
          examples::export_model(per_seed(o.export_dir), results[i].first, o, seed, models[i], results[i].second);
      }
      runs.insert(runs.end(), rows.begin(), rows.end());
    }
    speed.print(make_model(o, o.seeds.front()), data.test, o.threads);
    if (o.seeds.size() > 1) examples::print_seed_summary(runs, o.methods, "imp");
    if (!o.csv.empty() && dist.is_root()) {
      write_csv(o.csv, records);
      std::printf("\nper-round records written to %s\n", o.csv.c_str());
    }
    if (!o.summary.empty() && dist.is_root()) write_summary(o.summary, runs);
  } catch (const std::exception& e) {
    return dist.fail("prune_fashion_mnist", e.what());
  }
  return 0;
}
