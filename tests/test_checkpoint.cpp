// Checkpoints: a run interrupted at any step (an exception thrown from a callback stands for a kill) and resumed from
// its checkpoint ends bit-identical to a run never interrupted — for train() and every driver; a checkpoint that is
// truncated, corrupt, of another model, method or settings is refused with a message saying which.
#include <doctest/doctest.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "bipq/io/checkpoint.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"
#include "prune_test_model.hpp"

namespace {

namespace fs = std::filesystem;
using bipq::testing::cluster_mlp;

/// A fresh file name in the temporary directory, removed (with any leftover temporaries) at the end of the scope.
struct temp_file {
  fs::path path;
  explicit temp_file(const std::string& name)
      : path(fs::temp_directory_path() / ("bipq_ckpt_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove(path);
  }
  ~temp_file() { fs::remove(path); }
};

/// Stands for a kill: throws at the `at`-th step (counted over every run it sees).
struct kill_at {
  std::size_t at;
  std::size_t* seen;
  void step_taken(const bipq::step_info&) {
    if ((*seen)++ == at) throw std::runtime_error("killed");
  }
};

/// Counts steps, to know how many kill points a run has.
struct count_steps {
  std::size_t* n;
  void step_taken(const bipq::step_info&) { ++*n; }
};

std::vector<std::vector<double>> values_of(const cluster_mlp& m) {
  std::vector<std::vector<double>> v;
  for (const auto& p : m.parameters()) v.emplace_back(p.value.begin(), p.value.end());
  return v;
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

/// Every field of two driver results but the wall times.
void require_same(const bipq::prune_result<double>& a, const bipq::prune_result<double>& b) {
  REQUIRE(a.history.size() == b.history.size());
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    const auto &x = a.history[i], &y = b.history[i];
    CHECK(x.round == y.round);
    CHECK(x.phase == y.phase);
    CHECK(x.density_per_tensor == y.density_per_tensor);
    CHECK(same_bits(x.density, y.density));
    CHECK(same_bits(x.pq_index, y.pq_index));
    CHECK(same_bits(x.train_loss, y.train_loss));
    CHECK(same_bits(x.test_loss, y.test_loss));
    CHECK(same_bits(x.test_accuracy, y.test_accuracy));
  }
  REQUIRE(a.masks.size() == b.masks.size());
  for (std::size_t j = 0; j < a.masks.size(); ++j) CHECK(a.masks[j] == b.masks[j]);
  CHECK(a.reason == b.reason);
}

/// Runs `run(model, checkpoint, callbacks...)` once uninterrupted, then, for kill points spread over its steps,
/// kills it there, resumes it (a new model of the same seed, a new checkpoint object on the same file), kills it
/// again a few steps later and resumes it to the end: results and final weights must equal the uninterrupted run's,
/// and the three runs together must take at most 2 × `interval` steps more than one run (each resume repeats at
/// most the steps since the last checkpoint; a run that silently started over would repeat them all). Returns the
/// number of kill points tried.
template <class Run, class Same>
std::size_t check_resume_everywhere(const std::string& name, Run run, Same same, std::size_t interval,
                                    std::size_t max_points = 12) {
  std::size_t steps = 0;
  cluster_mlp reference_model(7);
  bipq::checkpoint none;
  const auto reference = run(reference_model, none, count_steps{&steps});
  const auto reference_values = values_of(reference_model);
  REQUIRE(steps > 2 * interval);
  std::size_t tried = 0;
  const std::size_t stride = std::max<std::size_t>(1, steps / max_points);
  for (std::size_t at = 0; at < steps; at += stride) {
    INFO(name << ": killed at step " << at << " of " << steps);
    temp_file file(name);
    std::size_t first = 0, second = 0, last = 0;
    {
      cluster_mlp model(7);
      bipq::checkpoint ck(file.path, bipq::checkpoint_mode::resume, 3);
      CHECK_THROWS_WITH(run(model, ck, kill_at{at, &first}), "killed");
    }
    {
      cluster_mlp model(7);
      bipq::checkpoint ck(file.path, bipq::checkpoint_mode::resume, 3);
      try {
        run(model, ck, kill_at{stride / 2 + 1, &second});
      } catch (const std::runtime_error&) {
      }
    }
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path, bipq::checkpoint_mode::resume, 3);
    const auto resumed = run(model, ck, count_steps{&last});
    same(reference, resumed);
    CHECK(values_of(model) == reference_values);
    CHECK(first + second + last <= steps + 2 * interval);
    ++tried;
  }
  return tried;
}

}  // namespace

TEST_CASE("a checkpoint file round-trips its fields, and its reader refuses every truncation and corruption") {
  bipq::io::checkpoint_data d;
  const std::vector<double> x{1.5, -2.25, 1e-300};
  const std::vector<float> y{3.0f, 0.0f};
  const std::vector<std::uint64_t> z{7, 1ull << 63};
  d.put<double>("x", x);
  d.put<float>("y", y);
  d.put<std::uint64_t>("z", z);
  d.put_text("t", "text\nlines");
  const std::string bytes = d.serialize();
  const bipq::io::checkpoint_data back = bipq::io::parse_checkpoint(bytes);
  CHECK(back.get<double>("x") == x);
  CHECK(back.get<float>("y") == y);
  CHECK(back.get<std::uint64_t>("z") == z);
  CHECK(back.get_text("t") == "text\nlines");
  CHECK_THROWS_AS(back.get<float>("x"), bipq::io::checkpoint_error);  // another type
  CHECK_THROWS_WITH_AS(back.get<double>("w"), "checkpoint: missing field 'w'", bipq::io::checkpoint_error);

  // Every proper prefix is refused (none parses), and so is every single flipped bit.
  for (std::size_t n = 0; n < bytes.size(); ++n)
    CHECK_THROWS_AS(bipq::io::parse_checkpoint(std::string_view(bytes).substr(0, n)), bipq::io::checkpoint_error);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      CHECK_THROWS_AS(bipq::io::parse_checkpoint(bad), bipq::io::checkpoint_error);
    }
  CHECK_THROWS_WITH_AS(bipq::io::parse_checkpoint(bytes.substr(0, bytes.size() - 1), "f"),
                       doctest::Contains("f: truncated"), bipq::io::checkpoint_error);
  CHECK_THROWS_WITH_AS(bipq::io::parse_checkpoint(bytes + "x", "f"), doctest::Contains("1 bytes after the payload"),
                       bipq::io::checkpoint_error);
  std::string flipped = bytes;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  CHECK_THROWS_WITH_AS(bipq::io::parse_checkpoint(flipped, "f"), doctest::Contains("corrupt: the checksum"),
                       bipq::io::checkpoint_error);
  CHECK_THROWS_WITH_AS(bipq::io::parse_checkpoint("BIPQCKPX", "f"), doctest::Contains("not a bipq checkpoint"),
                       bipq::io::checkpoint_error);
}

TEST_CASE("a field whose count exceeds the payload is refused before any allocation") {
  // A valid header and checksum around a field that claims 2^61 doubles: the reader must refuse, not allocate.
  std::string payload;
  auto put32 = [&](std::uint32_t v) { payload.append(reinterpret_cast<const char*>(&v), 4); };
  auto put64 = [&](std::string& s, std::uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); };
  put32(1);
  payload += 'a';
  payload += static_cast<char>(2);
  put64(payload, 1ull << 61);
  std::string file = "BIPQCKPT";
  const std::uint32_t version = 1, reserved = 0;
  file.append(reinterpret_cast<const char*>(&version), 4);
  file.append(reinterpret_cast<const char*>(&reserved), 4);
  put64(file, payload.size());
  put64(file, bipq::io::checkpoint_data::fnv1a(payload));
  CHECK_THROWS_WITH_AS(bipq::io::parse_checkpoint(file + payload), doctest::Contains("field 'a' runs past the end"),
                       bipq::io::checkpoint_error);
}

TEST_CASE("train() killed at any step and resumed from its checkpoint ends bit-identical") {
  auto run = [](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
    bipq::train_params t = bipq::testing::short_training();
    t.epochs = 4;
    return bipq::train(model, t, {}, ck, callback);
  };
  auto same = [](const bipq::train_result& a, const bipq::train_result& b) {
    CHECK(a.epoch_loss == b.epoch_loss);
    CHECK(a.steps == b.steps);
  };
  CHECK(check_resume_everywhere("train", run, same, 8) >= 10);
}

TEST_CASE("IMP killed at any step and resumed ends bit-identical (masks, weights, records)") {
  auto run = [](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
    bipq::imp_params p;
    p.mask.density = 0.3;
    p.train = bipq::testing::short_training();
    p.rewind_epoch = 1;
    return bipq::imp(model, p, ck, callback);
  };
  CHECK(check_resume_everywhere("imp", run, require_same, 8) >= 10);
}

TEST_CASE("OMP killed at any step and resumed ends bit-identical") {
  auto run = [](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
    bipq::omp_params p;
    p.mask.density = 0.2;
    p.train = bipq::testing::short_training();
    return bipq::omp(model, p, ck, callback);
  };
  CHECK(check_resume_everywhere("omp", run, require_same, 8) >= 10);
}

TEST_CASE("GMP killed at any step and resumed ends bit-identical") {
  auto run = [](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
    bipq::gmp_params p;
    p.mask.density = 0.2;
    p.train = bipq::testing::short_training();
    p.train.epochs = 4;
    p.frequency = 5;
    return bipq::gmp(model, p, ck, callback);
  };
  CHECK(check_resume_everywhere("gmp", run, require_same, 8) >= 10);
}

TEST_CASE("SAP killed at any step and resumed ends bit-identical") {
  for (bipq::sap_scope scope : {bipq::sap_scope::global, bipq::sap_scope::neuron}) {
    auto run = [scope](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
      bipq::sap_params p;
      p.train = bipq::testing::short_training();
      p.rounds = 3;
      p.scope = scope;
      return bipq::sap(model, p, ck, callback);
    };
    CHECK(check_resume_everywhere("sap", run, require_same, 8) >= 10);
  }
}

TEST_CASE("BiP killed at any step (pretraining, solver, fine-tuning) and resumed ends bit-identical") {
  for (auto parametrization : {bipq::mask_parametrization::scores, bipq::mask_parametrization::relaxed,
                                bipq::mask_parametrization::weights}) {
    auto run = [parametrization](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
      bipq::bip_params p;
      p.mask.density = 0.2;
      p.pretrain = bipq::testing::short_training();
      p.finetune = bipq::testing::short_training();
      p.bilevel.batch_size = 32;
      p.bilevel.upper_momentum = 0.5;
      p.bilevel.lower_schedule = bipq::rate_schedule::cosine;
      if (parametrization == bipq::mask_parametrization::weights) {  // the upper step moves the weights themselves
        p.bilevel.upper_learning_rate = 1e-3;
        p.bilevel.ig_mode = bipq::implicit_gradient_mode::none;
      } else {
        p.bilevel.upper_weight_decay = 1e-4;
        p.bilevel.upper_schedule = bipq::rate_schedule::step;
      }
      p.bilevel.parametrization = parametrization;
      p.bilevel_epochs = 2.0;
      return bipq::bip(model, p, ck, callback);
    };
    CHECK(check_resume_everywhere("bip", run, require_same, 8, 16) >= 10);
  }
}

TEST_CASE("a checkpoint of another method, other settings or another model is refused, saying which") {
  temp_file file("refuse");
  bipq::imp_params p;
  p.mask.density = 0.3;
  p.train = bipq::testing::short_training();
  {
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path);
    bipq::imp(model, p, ck);
    CHECK(ck.writes() > 0);
  }
  {  // the same run resumes from it (here: finds it complete)
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path);
    bipq::imp(model, p, ck);
    CHECK(ck.resumed());
  }
  {
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path);
    bipq::omp_params o;
    o.train = p.train;
    CHECK_THROWS_WITH_AS(bipq::omp(model, o, ck), doctest::Contains("written by another method: it has 'imp' where this run has 'omp'"),
                         bipq::io::checkpoint_error);
  }
  {
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path);
    bipq::imp_params q = p;
    q.train.sgd.momentum = 0.8;
    CHECK_THROWS_WITH_AS(bipq::imp(model, q, ck),
                         doctest::Contains("from other settings: it has 'train.sgd.momentum=0.90000000000000002' where "
                                           "this run has 'train.sgd.momentum=0.80000000000000004'"),
                         bipq::io::checkpoint_error);
  }
  {
    cluster_mlp model(7, 128);  // another training set
    bipq::checkpoint ck(file.path);
    CHECK_THROWS_WITH_AS(bipq::imp(model, p, ck),
                         doctest::Contains("from other settings: it has 'samples=256' where this run has 'samples=128'"),
                         bipq::io::checkpoint_error);
  }
  {
    // A model with a parameter of another shape.
    struct other {
      using scalar_type = double;
      std::vector<double> w = std::vector<double>(12, 0.1), g = std::vector<double>(12, 0.0);
      std::vector<bipq::parameter<double>> ps{{"fc1.weight", {3, 4}, bipq::parameter_kind::linear_weight, w, g}};
      const std::vector<bipq::parameter<double>>& parameters() const { return ps; }
      std::size_t num_samples() const { return 8; }
      double loss_and_gradient(std::span<const std::size_t>) { return 0.0; }
    } model;
    bipq::checkpoint ck(file.path);
    CHECK_THROWS_WITH_AS(bipq::imp(model, p, ck),
                         doctest::Contains("from another model: it has 'fc1.weight [16, 8]' where this run has "
                                           "'fc1.weight [3, 4]'"),
                         bipq::io::checkpoint_error);
  }
  {  // fresh mode ignores the file and overwrites it
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path, bipq::checkpoint_mode::fresh);
    bipq::omp_params o;
    o.train = p.train;
    bipq::omp(model, o, ck);
    CHECK_FALSE(ck.resumed());
  }
  {  // a truncated file is refused, naming the file
    const std::uintmax_t size = fs::file_size(file.path);
    fs::resize_file(file.path, size / 2);
    cluster_mlp model(7);
    bipq::checkpoint ck(file.path);
    bipq::omp_params o;
    o.train = p.train;
    CHECK_THROWS_WITH_AS(bipq::omp(model, o, ck), doctest::Contains((file.path.string() + ": truncated").c_str()),
                         bipq::io::checkpoint_error);
  }
}

TEST_CASE("the settings text names every field, nested fields with their prefix") {
  bipq::settings_text d;
  bipq::describe_settings(d, bipq::testing::short_training());
  CHECK(d.str().find("epochs=2\nbatch_size=32\nsgd.learning_rate=0.050000000000000003\n") == 0);
  CHECK(d.str().find("seed=3\n") != std::string::npos);
}

TEST_CASE("the bi-level solver alone, killed at any step and resumed, ends bit-identical") {
  auto run = [](cluster_mlp& model, bipq::checkpoint& ck, auto callback) {
    bipq::bilevel_params p;
    p.mask.density = 0.2;
    p.iterations = 30;
    p.batch_size = 32;
    p.lower_steps = 2;
    p.upper_momentum = 0.5;
    return bipq::bilevel_solver(p).optimize(model, ck, callback);
  };
  auto same = [](const bipq::bilevel_result<double>& a, const bipq::bilevel_result<double>& b) {
    CHECK(a.iterations == b.iterations);
    CHECK(a.upper_loss == b.upper_loss);
    CHECK(a.lower_loss == b.lower_loss);
    CHECK(a.mask_change == b.mask_change);
    CHECK(a.density == b.density);
    REQUIRE(a.masks.size() == b.masks.size());
    for (std::size_t j = 0; j < a.masks.size(); ++j) CHECK(a.masks[j] == b.masks[j]);
  };
  // A checkpoint every 3 iterations of 2 lower steps: a resume repeats at most 6 steps.
  CHECK(check_resume_everywhere("solver", run, same, 6, 16) >= 10);
}

TEST_CASE("BiP's settings text names the solver's fields, optional ones included") {
  bipq::bip_params p;
  bipq::settings_text a, b;
  bipq::describe_settings(a, p);
  p.bilevel.second_term_coefficient = 1e-4;
  bipq::describe_settings(b, p);
  CHECK(a.str().find("bilevel.second_term_coefficient=none\n") != std::string::npos);
  CHECK(b.str().find("bilevel.second_term_coefficient=0.0001\n") != std::string::npos);
  CHECK(a.str().find("finetune.sgd.momentum=") != std::string::npos);
  p.finetune = std::nullopt;
  bipq::settings_text c;
  bipq::describe_settings(c, p);
  CHECK(c.str().find("finetune=false\n") != std::string::npos);
  CHECK(c.str().find("finetune.sgd") == std::string::npos);
}
