// The pruning drivers run on the xtensor MLP unchanged: SAP, IMP, OMP and GMP (and BiP) on a small slice of data
// reach the density asked for exactly (SAP: the density its rule chose), keep the pruned weights exactly zero in the
// model, and are deterministic.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"
#include "prune_test_model.hpp"
#include "xtensor_test_data.hpp"

namespace xa = bipq::xtensor_adapter;

namespace {

using bipq::testing::short_training;

xa::classifier<float> small_model(std::uint64_t seed = 1) {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(16, 4, 256, 128, 99);
  return xa::classifier<float>(xa::mlp<float>({16, 24, 16, 4}, seed), std::move(train), std::move(test));
}

/// Number of prunable weights of small_model(): fc1, fc2, fc3 weights.
constexpr std::size_t prunable_total = 24 * 16 + 16 * 24 + 4 * 16;

/// The result's masks are 0/1 over the three weight tensors (never the biases), `kept` ones in all, the model's
/// weights are exactly zero wherever the mask is, and the final record's density is kept / total.
void check_masks(const xa::classifier<float>& model, const bipq::prune_result<float>& r, std::size_t kept) {
  REQUIRE(r.masks.prunable() == std::vector<std::size_t>{0, 2, 4});
  std::size_t ones = 0, total = 0;
  for (std::size_t j = 0; j < r.masks.size(); ++j) {
    const auto& m = r.masks[j];
    const auto& w = model.parameters()[r.masks.prunable()[j]].value;
    REQUIRE(m.size() == w.size());
    for (std::size_t i = 0; i < m.size(); ++i) {
      REQUIRE((m[i] == 0.0f || m[i] == 1.0f));
      if (m[i] == 0.0f) REQUIRE(w[i] == 0.0f);
      ones += m[i] == 1.0f;
    }
    total += m.size();
  }
  CHECK(total == prunable_total);
  CHECK(ones == kept);
  CHECK(r.final_record().density == doctest::Approx(double(kept) / double(total)).epsilon(1e-12));
  CHECK(std::isfinite(r.final_record().test_accuracy));
}

}  // namespace

TEST_CASE("IMP on the xtensor MLP reaches the target density exactly and keeps pruned weights at zero") {
  auto model = small_model();
  bipq::imp_params p;
  p.mask.density = 0.2;
  p.train = short_training();
  p.rate = 0.5;
  const auto r = bipq::imp(model, p);
  check_masks(model, r, static_cast<std::size_t>(std::lround(0.2 * prunable_total)));
  // Densities fall round after round (geometric schedule, rate 0.5): 1, 0.5, 0.25, 0.2.
  REQUIRE(r.history.size() == 4);
  for (std::size_t t = 1; t < r.history.size(); ++t) CHECK(r.history[t].density < r.history[t - 1].density);
}

TEST_CASE("OMP and GMP on the xtensor MLP reach the target density exactly") {
  {
    auto model = small_model();
    bipq::omp_params p;
    p.mask.density = 0.1;
    p.train = short_training();
    check_masks(model, bipq::omp(model, p), static_cast<std::size_t>(std::lround(0.1 * prunable_total)));
  }
  {
    auto model = small_model();
    bipq::gmp_params p;
    p.mask.density = 0.3;
    p.train = short_training();
    p.train.epochs = 3;
    p.frequency = 4;
    check_masks(model, bipq::gmp(model, p), static_cast<std::size_t>(std::lround(0.3 * prunable_total)));
  }
}

TEST_CASE("SAP on the xtensor MLP: each round prunes what the PQ Index rule says, the floor holds, same seed same mask") {
  auto run = [](bipq::sap_scope scope) {
    auto model = small_model();
    bipq::sap_params p;
    p.train = short_training();
    p.min_density = 0.3;  // the floor
    p.rounds = 3;
    p.scope = scope;
    auto r = bipq::sap(model, p);
    std::size_t kept = 0;
    for (const auto& m : r.masks) kept += static_cast<std::size_t>(std::count(m.begin(), m.end(), 1.0f));
    check_masks(model, r, kept);
    return r;
  };
  const auto global = run(bipq::sap_scope::global);
  REQUIRE(global.history.size() >= 2);
  CHECK(global.history.front().phase == "dense");
  CHECK(global.history.front().density == 1.0);
  std::size_t floor_kept = static_cast<std::size_t>(std::ceil(0.3 * prunable_total - 1e-9));
  std::size_t kept = 0;
  for (const auto& m : global.masks) kept += static_cast<std::size_t>(std::count(m.begin(), m.end(), 1.0f));
  CHECK(kept >= floor_kept);
  CHECK(kept < prunable_total);
  // Round 1 prunes c = ⌊d · min(γ(1 − r/d), β)⌋ of the d = all prunable weights, r from the dense PQ Index
  // (Algorithm 1 with the default rule), unless the floor stops it.
  const bipq::sap_rule rule{};
  const std::size_t c1 = bipq::sap_prune_count(prunable_total, global.history[0].pq_index, rule);
  const std::size_t kept1 = prunable_total - std::min(c1, prunable_total - floor_kept);
  CHECK(global.history[1].density == doctest::Approx(double(kept1) / double(prunable_total)).epsilon(1e-12));
  for (std::size_t t = 1; t < global.history.size(); ++t) CHECK(global.history[t].density < global.history[t - 1].density);
  CHECK(run(bipq::sap_scope::global).masks == global.masks);  // deterministic
  const auto neuron = run(bipq::sap_scope::neuron);
  CHECK(neuron.final_record().density < 1.0);
}
