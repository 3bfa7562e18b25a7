// The pruning drivers on a small model: densities reached exactly, pruned weights stay zero, schedules followed,
// results reproducible bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "bipq/prune/bip.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "prune_test_model.hpp"

using bipq::testing::cluster_mlp;
using bipq::testing::short_training;

namespace {
bipq::mask_spec density_of(double density) {
  bipq::mask_spec m;
  m.density = density;
  return m;
}

/// BiP with the small training runs, its mini-batches seeded as theirs.
bipq::bip_params small_bip(double density) {
  bipq::bip_params p{.mask = density_of(density), .pretrain = short_training(), .finetune = short_training()};
  p.bilevel.seed = 3;
  return p;
}

/// Every masked weight of every prunable tensor is exactly zero in the model.
template <class Model, class Result>
void check_pruned_weights_are_zero(const Model& model, const Result& result) {
  const auto& ps = model.parameters();
  for (std::size_t j = 0; j < result.masks.size(); ++j) {
    const auto& value = ps[result.masks.prunable()[j]].value;
    const auto& mask = result.masks[j];
    REQUIRE(mask.size() == value.size());
    for (std::size_t i = 0; i < mask.size(); ++i) {
      CHECK((mask[i] == 0.0 || mask[i] == 1.0));
      if (mask[i] == 0.0) CHECK(value[i] == 0.0);
    }
  }
}

std::size_t total_prunable(const cluster_mlp& m) { return m.parameters()[0].value.size() + m.parameters()[2].value.size(); }

std::size_t kept(const bipq::mask_set<double>& masks) { return masks.kept(); }
}  // namespace

TEST_CASE("imp: rounds follow round(n 0.8^t), the last keeps exactly the target, pruned weights stay zero") {
  cluster_mlp model(1);
  const std::size_t n = total_prunable(model);  // 128 + 64 = 192
  bipq::imp_params p{.mask = density_of(0.1), .train = short_training()};
  const auto result = bipq::imp(model, p);
  const std::size_t target = static_cast<std::size_t>(std::lround(0.1 * double(n)));
  REQUIRE(result.history.size() == 1 + bipq::geometric_rounds(double(target) / double(n), 0.2));
  CHECK(result.history[0].density == 1.0);
  for (std::size_t t = 1; t + 1 < result.history.size(); ++t) {
    const double expected = std::round(double(n) * std::pow(0.8, double(t))) / double(n);
    CHECK(result.history[t].density == doctest::Approx(expected).epsilon(1e-12));
  }
  CHECK(kept(result.masks) == target);
  CHECK(result.final_record().density == doctest::Approx(double(target) / double(n)));
  check_pruned_weights_are_zero(model, result);
  // biases are never pruned
  CHECK(result.masks.prunable() == std::vector<std::size_t>{0, 2});
  // training between rounds works: the dense and the lightly pruned models classify the clusters well
  CHECK(result.history[0].test_accuracy > 0.9);
  CHECK(result.history[1].test_accuracy > 0.85);
}

TEST_CASE("imp: a weight once pruned stays exactly zero at every later epoch end, through every round") {
  cluster_mlp model(2);
  bipq::imp_params p{.mask = density_of(0.2), .train = short_training()};
  p.train.epochs = 1;
  struct zero_watch {
    const cluster_mlp* model;
    std::vector<std::vector<bool>> zeros;  // per epoch end: which prunable weights are exactly zero
    void end_epoch(const bipq::epoch_info<double>&) {
      std::vector<bool> z;
      for (std::size_t i : {0u, 2u})
        for (double v : model->parameters()[i].value) z.push_back(v == 0.0);
      zeros.push_back(std::move(z));
    }
  } watch{&model, {}};
  const auto result = bipq::imp(model, p, watch);
  REQUIRE(watch.zeros.size() == result.history.size());  // one epoch per training run
  for (std::size_t e = 1; e < watch.zeros.size(); ++e)
    for (std::size_t i = 0; i < watch.zeros[e].size(); ++i)
      if (watch.zeros[e - 1][i]) CHECK(watch.zeros[e][i]);
  for (std::size_t t = 1; t < result.history.size(); ++t)
    CHECK(result.history[t].density < result.history[t - 1].density);
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("imp with per-tensor scope keeps the same fraction of every tensor") {
  cluster_mlp model(3);
  bipq::imp_params p{.mask = density_of(0.25), .train = short_training()};
  p.mask.scope = bipq::mask_scope::per_tensor;
  p.train.epochs = 1;
  const auto result = bipq::imp(model, p);
  CHECK(std::count(result.masks[0].begin(), result.masks[0].end(), 1.0) == 32);  // 0.25 · 128
  CHECK(std::count(result.masks[1].begin(), result.masks[1].end(), 1.0) == 16);  // 0.25 · 64
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("imp with filter structure removes whole output neurons") {
  cluster_mlp model(4);
  bipq::imp_params p{.mask = density_of(0.5), .train = short_training()};
  p.mask.structure = bipq::mask_structure::filter;
  p.mask.prunable.kinds = {bipq::parameter_kind::linear_weight};
  p.mask.prunable.exclude_names = {"fc2.weight"};  // never remove a class
  p.train.epochs = 1;
  const auto result = bipq::imp(model, p);
  REQUIRE(result.masks.prunable() == std::vector<std::size_t>{0});
  const auto& m = result.masks[0];
  std::size_t rows_kept = 0;
  for (std::size_t r = 0; r < cluster_mlp::hidden; ++r) {
    const auto first = m.begin() + std::ptrdiff_t(r * cluster_mlp::in);
    const auto ones = std::count(first, first + cluster_mlp::in, 1.0);
    CHECK((ones == 0 || ones == std::ptrdiff_t(cluster_mlp::in)));
    rows_kept += ones > 0;
  }
  CHECK(rows_kept == 8);
}

TEST_CASE("omp: one prune to the target, exactly k kept, zeros stay zero") {
  cluster_mlp model(5);
  const auto result = bipq::omp(model, bipq::omp_params{.mask = density_of(0.05), .train = short_training()});
  REQUIRE(result.history.size() == 2);
  CHECK(kept(result.masks) == static_cast<std::size_t>(std::lround(0.05 * 192)));
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("gmp: density decreases along the cubic schedule to exactly the target within one run") {
  cluster_mlp model(6);
  bipq::gmp_params p{.mask = density_of(0.1), .train = short_training()};
  p.train.epochs = 4;
  p.frequency = 5;
  const auto result = bipq::gmp(model, p);
  REQUIRE(result.history.size() == 5);
  for (std::size_t t = 1; t < result.history.size(); ++t)
    CHECK(result.history[t].density <= result.history[t - 1].density);
  CHECK(kept(result.masks) == static_cast<std::size_t>(std::lround(0.1 * 192)));
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("sap: each round prunes c_t = floor(d min(gamma (1 - r/d), beta)) of the d survivors") {
  cluster_mlp model(7);
  bipq::sap_params p{.min_density = 0.01, .train = short_training()};
  p.rounds = 4;
  p.rule.gamma = 0.5;  // slower than the default so that several rounds happen
  const auto result = bipq::sap(model, p);
  const std::size_t n = 192;
  REQUIRE(result.history.size() >= 2);
  for (std::size_t t = 1; t < result.history.size(); ++t) {
    const auto d = static_cast<std::size_t>(std::lround(result.history[t - 1].density * double(n)));
    const auto now = static_cast<std::size_t>(std::lround(result.history[t].density * double(n)));
    // the record's PQ Index (p = 0.5, q = 1) is measured after training: the one the next round prunes from
    const std::size_t c = bipq::sap_prune_count(d, result.history[t - 1].pq_index, p.rule);
    CHECK(d - now == c);
  }
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("sap never prunes below its density floor and handles neuron scope") {
  cluster_mlp model(8);
  bipq::sap_params p{.min_density = 0.3, .train = short_training()};
  p.rounds = 6;
  p.rule.gamma = 3.0;
  p.scope = bipq::sap_scope::neuron;
  p.train.epochs = 1;
  const auto result = bipq::sap(model, p);
  // every neuron (row) keeps at least ceil(0.3 · its fan-in)
  for (std::size_t j = 0; j < result.masks.size(); ++j) {
    const std::size_t cols = j == 0 ? cluster_mlp::in : cluster_mlp::hidden;
    for (std::size_t r = 0; r < result.masks[j].size() / cols; ++r) {
      const auto first = result.masks[j].begin() + std::ptrdiff_t(r * cols);
      CHECK(std::count(first, first + std::ptrdiff_t(cols), 1.0) >= std::ptrdiff_t(std::ceil(0.3 * double(cols))));
    }
  }
  check_pruned_weights_are_zero(model, result);
}

namespace {
/// Records the model's weights when every training run begins, and after the first epoch of the first run.
struct weight_recorder {
  const cluster_mlp* model = nullptr;
  std::vector<std::vector<std::vector<double>>> at_begin{};  // [run][parameter][entry]
  std::vector<std::vector<double>> after_first_epoch{};
  std::vector<std::vector<double>> values() const {
    std::vector<std::vector<double>> v;
    for (const auto& p : model->parameters()) v.emplace_back(p.value.begin(), p.value.end());
    return v;
  }
  void begin(const bipq::run_info&) { at_begin.push_back(values()); }
  void end_epoch(const bipq::epoch_info<double>& e) {
    if (at_begin.size() == 1 && e.epoch == 0) after_first_epoch = values();
  }
};

/// The PQ Index (0.5, 1) of the non-zero weights of each prunable tensor (parameters 0 and 2) when a run ends.
struct layer_pq_recorder {
  const cluster_mlp* model = nullptr;
  std::vector<std::array<double, 2>> pq{};       // [run][layer]
  std::vector<std::array<std::size_t, 2>> alive{}; // [run][layer]: non-zero weights
  void end(const bipq::run_info&) {
    std::array<double, 2> q{};
    std::array<std::size_t, 2> a{};
    for (std::size_t l = 0; l < 2; ++l) {
      std::vector<double> nonzero;
      for (double v : model->parameters()[2 * l].value)
        if (v != 0.0) nonzero.push_back(v);
      q[l] = bipq::pq_index(nonzero, 0.5, 1.0);
      a[l] = nonzero.size();
    }
    pq.push_back(q);
    alive.push_back(a);
  }
};
}  // namespace

TEST_CASE("imp rewinds the survivors to the weights after rewind_epoch dense epochs") {
  cluster_mlp model(5);
  bipq::imp_params p{.mask = density_of(0.4), .train = short_training()};
  p.rewind_epoch = 1;
  weight_recorder rec{&model};
  const auto result = bipq::imp(model, p, rec);
  REQUIRE(rec.at_begin.size() >= 3);  // the dense run and at least two pruning rounds
  REQUIRE(rec.after_first_epoch.size() == model.parameters().size());
  // Every retraining run starts from m ⊙ (weights after dense epoch 1), biases rewound too: the survivors of the
  // first-epoch weights are exactly where each round begins, and no pruned weight is left non-zero.
  for (std::size_t run = 1; run < rec.at_begin.size(); ++run) {
    std::size_t rewound = 0, zero = 0;
    for (std::size_t i = 0; i < model.parameters().size(); ++i) {
      for (std::size_t e = 0; e < rec.after_first_epoch[i].size(); ++e) {
        const double now = rec.at_begin[run][i][e];
        if (now == rec.after_first_epoch[i][e]) ++rewound;
        else if (now == 0.0) ++zero;
        else FAIL_CHECK("run " << run << ", parameter " << i << ", entry " << e << " is neither rewound nor pruned");
      }
    }
    CHECK(rewound > 0);
    CHECK(zero > 0);
  }
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("sap with layer scope prunes each layer by the rule applied to that layer's own PQ Index") {
  cluster_mlp model(9);
  bipq::sap_params p{.min_density = 0.02, .train = short_training()};
  p.rounds = 3;
  p.scope = bipq::sap_scope::layer;
  layer_pq_recorder rec{&model};
  const auto result = bipq::sap(model, p, rec);
  REQUIRE(result.history.size() == 4);
  REQUIRE(rec.pq.size() == 4);  // the dense run and three retraining runs
  for (std::size_t t = 1; t < result.history.size(); ++t) {
    for (std::size_t l = 0; l < 2; ++l) {
      const auto size = double(model.parameters()[2 * l].value.size());
      const auto before = static_cast<std::size_t>(std::lround(result.history[t - 1].density_per_tensor[l] * size));
      const auto after = static_cast<std::size_t>(std::lround(result.history[t].density_per_tensor[l] * size));
      CHECK(rec.alive[t - 1][l] == before);  // trained weights: every survivor is non-zero
      INFO("round " << t << ", layer " << l);
      CHECK(before - after == bipq::sap_prune_count(before, rec.pq[t - 1][l], p.rule));
    }
  }
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("bip: pretrain, bi-level search and fine-tuning reach exactly the target with pruned weights at zero") {
  cluster_mlp model(11);
  bipq::bip_params p = small_bip(0.2);
  p.pretrain->epochs = 2;
  p.bilevel_epochs = 2.0;
  p.bilevel.batch_size = 32;
  p.bilevel.lower_learning_rate = 0.05;
  p.bilevel.upper_learning_rate = 1.0;  // scores start at |θ| ~ 0.5 and IG = g ⊙ (θ − m⊙g/γ) is small here
  p.bilevel.gamma = 1e-2;
  const auto result = bipq::bip(model, p);
  REQUIRE(result.history.size() == 3);
  CHECK(result.history[0].phase == "dense");
  CHECK(result.history[1].phase == "bilevel");
  CHECK(result.history[2].phase == "finetune");
  CHECK(kept(result.masks) == static_cast<std::size_t>(std::lround(0.2 * 192)));
  CHECK(result.final_record().density == doctest::Approx(double(kept(result.masks)) / 192.0));
  check_pruned_weights_are_zero(model, result);
  // at 20% density one-shot magnitude pruning of this model reaches 84%; the bi-level mask does clearly better
  CHECK(result.final_record().test_accuracy > 0.9);
}

TEST_CASE("bip with per-tensor scope keeps the fraction in every tensor") {
  cluster_mlp model(12);
  bipq::bip_params p = small_bip(0.25);
  p.mask.scope = bipq::mask_scope::per_tensor;
  p.pretrain->epochs = 1;
  p.finetune.reset();
  const auto result = bipq::bip(model, p);
  CHECK(std::count(result.masks[0].begin(), result.masks[0].end(), 1.0) == 32);
  CHECK(std::count(result.masks[1].begin(), result.masks[1].end(), 1.0) == 16);
  check_pruned_weights_are_zero(model, result);
}

TEST_CASE("mask.k sets the exact count in IMP, OMP and GMP; a k beyond the model throws before any training") {
  struct step_counter {
    std::size_t steps = 0;
    void step_taken(const bipq::step_info&) { ++steps; }
  };
  const bipq::mask_spec seven = [] {
    bipq::mask_spec m;
    m.k = 7;
    return m;
  }();
  {
    cluster_mlp model(13);
    const auto r = bipq::imp(model, bipq::imp_params{.mask = seven, .train = short_training(), .rate = 0.6});
    CHECK(r.masks.kept() == 7);
    check_pruned_weights_are_zero(model, r);
  }
  {
    cluster_mlp model(13);
    const auto r = bipq::omp(model, bipq::omp_params{.mask = seven, .train = short_training()});
    CHECK(r.masks.kept() == 7);
    check_pruned_weights_are_zero(model, r);
  }
  {
    cluster_mlp model(13);
    const auto r = bipq::gmp(model, bipq::gmp_params{.mask = seven, .train = short_training(), .frequency = 5});
    CHECK(r.masks.kept() == 7);
    check_pruned_weights_are_zero(model, r);
  }
  cluster_mlp model(13);
  bipq::mask_spec too_many;
  too_many.k = 193;  // 192 prunable weights
  step_counter counter;
  CHECK_THROWS_WITH_AS(bipq::omp(model, bipq::omp_params{.mask = too_many, .train = short_training()}, counter),
                       "omp(): params.mask.k = 193 exceeds the number of prunable weights 192", std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::imp(model, bipq::imp_params{.mask = too_many, .train = short_training()}, counter),
                       "imp(): params.mask.k = 193 exceeds the number of prunable weights 192", std::invalid_argument);
  CHECK(counter.steps == 0);
}

TEST_CASE("bip from a trained model (no pretraining) and with an N:M mask keeps n of every m along the input") {
  cluster_mlp model(14);
  bipq::train(model, short_training(), {});
  const auto trained = model.evaluate();
  bipq::bip_params p = small_bip(0.5);
  p.pretrain.reset();
  p.mask.structure = bipq::mask_structure::n_m;  // 2:4
  p.bilevel_epochs = 1.0;
  p.bilevel.batch_size = 32;
  const auto r = bipq::bip(model, p);
  REQUIRE(r.history.size() == 3);
  CHECK(r.history[0].test_accuracy == trained.accuracy);  // no training before the record
  CHECK(r.history[0].density == 1.0);
  for (std::size_t j = 0; j < r.masks.size(); ++j) {
    const auto& m = r.masks[j];
    const std::size_t cols = r.masks.shape(j)[1];
    REQUIRE(cols % 4 == 0);
    for (std::size_t g = 0; g < m.size(); g += 4) CHECK(std::count(m.begin() + std::ptrdiff_t(g), m.begin() + std::ptrdiff_t(g + 4), 1.0) == 2);
  }
  CHECK(r.final_record().density == 0.5);
  check_pruned_weights_are_zero(model, r);
}

TEST_CASE("drivers are deterministic: same seed, same masks and weights, bit for bit") {
  auto run = [](auto driver) {
    cluster_mlp model(9);
    const auto r = driver(model);
    std::vector<double> w;
    for (const auto& prm : model.parameters()) w.insert(w.end(), prm.value.begin(), prm.value.end());
    return std::make_pair(r.masks, w);
  };
  auto imp_run = [](cluster_mlp& m) { return bipq::imp(m, bipq::imp_params{.mask = density_of(0.3), .train = short_training()}); };
  auto sap_run = [](cluster_mlp& m) {
    return bipq::sap(m, bipq::sap_params{.min_density = 0.1, .train = short_training(), .rounds = 2});
  };
  auto gmp_run = [](cluster_mlp& m) { return bipq::gmp(m, bipq::gmp_params{.mask = density_of(0.2), .train = short_training()}); };
  CHECK(run(imp_run) == run(imp_run));
  CHECK(run(sap_run) == run(sap_run));
  CHECK(run(gmp_run) == run(gmp_run));
  auto bip_run = [](cluster_mlp& m) { return bipq::bip(m, small_bip(0.2)); };
  CHECK(run(bip_run) == run(bip_run));
}

TEST_CASE("driver parameters are validated with the field named") {
  cluster_mlp model(10);
  CHECK_THROWS_WITH_AS(bipq::imp(model, bipq::imp_params{.mask = density_of(0.0), .train = short_training()}),
                       doctest::Contains("mask.density"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::imp(model, bipq::imp_params{.mask = density_of(0.1), .train = short_training(), .rate = 1.5}),
                       doctest::Contains("rate"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::sap(model, bipq::sap_params{.min_density = 0.1, .train = short_training(), .rounds = 0}),
                       doctest::Contains("rounds"), std::invalid_argument);
  bipq::sap_params bad_rule{.min_density = 0.1, .train = short_training()};
  bad_rule.rule.q = 0.4;
  CHECK_THROWS_WITH_AS(bipq::sap(model, bad_rule), doctest::Contains("'q'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::imp(model, bipq::imp_params{.mask = density_of(0.1), .train = short_training(), .rate = 0.2,
                                                         .rewind_epoch = 3}),
                       doctest::Contains("'rewind_epoch' must be <= train.epochs"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::sap(model, bipq::sap_params{.min_density = 0.0}), doctest::Contains("'min_density'"),
                       std::invalid_argument);
  bipq::omp_params n_m{.mask = density_of(0.5)};
  n_m.mask.structure = bipq::mask_structure::n_m;
  CHECK_THROWS_WITH_AS(bipq::omp(model, n_m), doctest::Contains("'mask.structure' n_m"), std::invalid_argument);
  bipq::bip_params relaxed_filter = small_bip(0.5);
  relaxed_filter.mask.structure = bipq::mask_structure::filter;
  relaxed_filter.bilevel.parametrization = bipq::mask_parametrization::relaxed;
  CHECK_THROWS_WITH_AS(bipq::bip(model, relaxed_filter), doctest::Contains("bip_params: 'parametrization' relaxed"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(bipq::gmp(model, bipq::gmp_params{.mask = density_of(0.1), .train = short_training(), .frequency = 0}),
                       doctest::Contains("frequency"), std::invalid_argument);
}
