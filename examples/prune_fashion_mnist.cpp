// Prune a CNN on Fashion-MNIST with BiP, SAP, IMP, OMP and GMP, and compare them in one table.
//
//   prune_fashion_mnist --method all --model lenet5 --density 0.05 --epochs 3
//
// Every method starts from the same initialisation (same seed); every training run has the same length, batch,
// optimiser and schedule. See --help and docs/results.md.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
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
#include "command_line.hpp"
#include "inference_speed.hpp"

namespace {

const char* usage = R"(usage: prune_fashion_mnist [options]

Prunes a CNN trained on Fashion-MNIST and prints, per method: density reached, test accuracy, PQ Index of the
surviving weights, wall time, and time relative to IMP.

  --method M        bip | sap | imp | omp | gmp | all, or a comma-separated list (default: all)
  --model M         lenet5 | cnn | mlp                             (default: lenet5)
  --density D       fraction of prunable weights kept, in (0, 1]   (default: 0.05; SAP: a floor)
  --epochs E        epochs of every training run                   (default: 3)
  --scope S         global | layer | neuron (neuron: SAP only)    (default: global)
  --structure S     unstructured | filter (BiP, IMP, OMP, GMP)     (default: unstructured)
  --seed N          initialisation, shuffling and solver seed      (default: 0)
  --threads N       threads of the CNN                             (default: 2)
  --train-size N    use the first N training images (0 = all)      (default: 0)
  --csv FILE        write one row per method and round to FILE    (default: prune_results.csv)
  --save-masks DIR  write masks and pruned weights as .npy into DIR/<method>/, with an index.json
  --data DIR        Fashion-MNIST directory (default: $BIPQ_FASHION_MNIST or /usr/share/datasets/fashion-mnist)
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
  std::uint64_t seed = 0;
  std::size_t threads = 2;
  std::size_t train_size = 0;
  std::string csv = "prune_results.csv";
  std::string save_masks;
  std::string data;
};

const examples::command_line cli{"prune_fashion_mnist", usage};

options parse(int argc, char** argv) {
  options o;
  cli.parse(argc, argv, [&](const std::string& flag, const std::string& v) {
    if (flag == "--method") {
      if (v == "all") {
        o.methods = {"bip", "sap", "imp", "omp", "gmp"};
      } else {
        o.methods.clear();
        std::istringstream list(v);
        for (std::string m; std::getline(list, m, ',');) {
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
      o.seed = cli.number<std::uint64_t>(flag, v);
    } else if (flag == "--threads") {
      o.threads = cli.number<std::size_t>(flag, v);
      if (o.threads == 0) cli.fail("--threads must be >= 1");
    } else if (flag == "--train-size") {
      o.train_size = cli.number<std::size_t>(flag, v);
    } else if (flag == "--csv") {
      o.csv = v;
    } else if (flag == "--save-masks") {
      o.save_masks = v;
    } else if (flag == "--data") {
      o.data = v;
    } else {
      cli.fail("unknown flag " + flag);
    }
  });
  if (o.sap_scope == bipq::sap_scope::neuron &&
      std::any_of(o.methods.begin(), o.methods.end(), [](const std::string& m) { return m != "sap"; }))
    cli.fail("--scope neuron is available for --method sap only");
  if (o.structure == bipq::mask_structure::filter && std::count(o.methods.begin(), o.methods.end(), "sap") > 0) {
    if (o.methods.size() == 1) cli.fail("--structure filter is not available for --method sap");
    o.methods.erase(std::find(o.methods.begin(), o.methods.end(), "sap"));  // SAP is unstructured
  }
  return o;
}

bipq::eigen::sequential make_model(const options& o) {
  if (o.model == "lenet5") return bipq::eigen::make_lenet5(o.seed);
  if (o.model == "cnn") return bipq::eigen::make_pqi_cnn({}, o.seed);
  return bipq::eigen::make_mlp(o.seed);
}

bipq::mask_spec mask_of(const options& o) {
  bipq::mask_spec m;
  m.density = o.density;
  m.scope = o.scope;
  m.structure = o.structure;
  return m;
}

bipq::train_params training_of(const options& o) {
  bipq::train_params t;
  t.epochs = o.epochs;
  t.seed = o.seed;
  return t;
}

using result_type = bipq::prune_result<float>;

result_type run_method(const std::string& method, const options& o, bipq::eigen::classifier& problem) {
  bipq::progress_bar bar;
  const bipq::mask_spec mask = mask_of(o);
  const bipq::train_params train = training_of(o);
  if (method == "imp") return bipq::imp(problem, bipq::imp_params{.mask = mask, .train = train}, bar);
  if (method == "omp") return bipq::omp(problem, bipq::omp_params{.mask = mask, .train = train}, bar);
  if (method == "gmp") return bipq::gmp(problem, bipq::gmp_params{.mask = mask, .train = train}, bar);
  if (method == "sap")
    return bipq::sap(problem, bipq::sap_params{.min_density = o.density, .train = train, .scope = o.sap_scope}, bar);
  bipq::bip_params p{.mask = mask, .pretrain = train};  // fine-tuning: the default 3 epochs
  p.finetune->seed = o.seed;
  p.bilevel.seed = o.seed;
  return bipq::bip(problem, p, bar);
}

void save_masks(const std::string& dir, const std::string& method, const bipq::eigen::classifier& problem,
                const result_type& r) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(dir) / method;
  fs::create_directories(out);
  const auto& ps = problem.parameters();
  std::string index = "{\n  \"method\": \"" + method + "\",\n  \"tensors\": [\n";
  for (std::size_t j = 0; j < r.masks.size(); ++j) {
    const auto& p = ps[r.masks.prunable()[j]];
    bipq::io::write_npy<float>(out / (p.name + ".mask.npy"), r.masks[j], p.shape);
    bipq::io::write_npy<float>(out / (p.name + ".weight.npy"), std::span<const float>(p.value), p.shape);
    std::string shape;
    for (std::size_t s : p.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
    index += "    {\"name\": \"" + p.name + "\", \"shape\": [" + shape + "], \"mask\": \"" + p.name +
             ".mask.npy\", \"weight\": \"" + p.name + ".weight.npy\"}" + (j + 1 < r.masks.size() ? ",\n" : "\n");
  }
  index += "  ]\n}\n";
  bipq::io::write_file_atomically(out / "index.json", index);
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    auto data = bipq::io::load_fashion_mnist(o.data);
    if (o.train_size > 0 && o.train_size < data.train.size()) data.train = bipq::io::head(data.train, o.train_size);
    std::printf("Fashion-MNIST: %zu training and %zu test images; model %s; target density %.3g; %zu epochs per "
                "training run; seed %llu; %zu threads\n\n",
                data.train.size(), data.test.size(), o.model.c_str(), o.density, o.epochs,
                static_cast<unsigned long long>(o.seed), o.threads);
    std::fflush(stdout);

    std::vector<std::pair<std::string, result_type>> results;
    std::vector<std::pair<std::string, std::vector<bipq::prune_record>>> records;
    examples::inference_speed speed;
    for (const std::string& method : o.methods) {
      auto model = make_model(o);
      bipq::eigen::classifier problem(model, data.train, data.test, o.threads);
      result_type r = run_method(method, o, problem);
      records.emplace_back(method, r.history);
      speed.add(method, model, r.masks, o.structure == bipq::mask_structure::filter);
      if (!o.save_masks.empty()) save_masks(o.save_masks, method, problem, r);
      std::fprintf(stderr, "%s: density %.4f, test accuracy %.2f%%, %.1f s\n", method.c_str(),
                   r.final_record().density, 100.0 * r.final_record().test_accuracy, r.seconds);
      results.emplace_back(method, std::move(r));
    }
    if (!o.csv.empty()) bipq::write_records_csv(o.csv, records);

    double imp_seconds = 0.0;
    for (const auto& [m, r] : results)
      if (m == "imp") imp_seconds = r.seconds;
    std::printf("| method | density | test accuracy | PQ Index | wall time (s) | time / IMP |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (const auto& [m, r] : results) {
      const auto& f = r.final_record();
      if (imp_seconds > 0.0)
        std::printf("| %s | %.4f | %.2f%% | %.4f | %.1f | %.2f |\n", m.c_str(), f.density, 100.0 * f.test_accuracy,
                    f.pq_index, r.seconds, r.seconds / imp_seconds);
      else
        std::printf("| %s | %.4f | %.2f%% | %.4f | %.1f | - |\n", m.c_str(), f.density, 100.0 * f.test_accuracy,
                    f.pq_index, r.seconds);
    }
    speed.print(make_model(o), data.test, o.threads);
    if (!o.csv.empty()) std::printf("\nper-round records written to %s\n", o.csv.c_str());
  } catch (const std::exception& e) {
    std::cerr << "prune_fashion_mnist: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
