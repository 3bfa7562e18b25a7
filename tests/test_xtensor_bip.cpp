// BiP runs on the xtensor MLP unchanged: on a small slice of data it reaches the density asked for exactly, keeps
// the pruned weights at zero in the model, records dense / bilevel / finetune, and is deterministic.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/prune/bip.hpp"
#include "xtensor_test_data.hpp"

namespace xa = bipq::xtensor_adapter;

namespace {

bipq::prune_result<float> run_bip(double density, std::vector<float>* weights = nullptr) {
  auto [train, test] = bipq::testing::gaussian_clusters<float>(16, 4, 256, 128, 99);
  xa::classifier<float> model(xa::mlp<float>({16, 24, 16, 4}, 1), std::move(train), std::move(test));
  bipq::bip_params p;
  p.mask.density = density;
  bipq::train_params t;
  t.batch_size = 32;
  t.sgd.learning_rate = 0.05;
  t.seed = 3;
  t.epochs = 2;
  p.pretrain = t;
  t.epochs = 1;
  p.finetune = t;
  p.bilevel.batch_size = 32;
  p.bilevel.seed = 3;
  p.bilevel_epochs = 1.0;
  auto r = bipq::bip(model, p);
  // Pruned weights are exactly zero in the model.
  for (std::size_t j = 0; j < r.masks.size(); ++j) {
    const auto& w = model.parameters()[r.masks.prunable()[j]].value;
    for (std::size_t i = 0; i < w.size(); ++i)
      if (r.masks[j][i] == 0.0f) REQUIRE(w[i] == 0.0f);
  }
  if (weights != nullptr)
    for (const auto& q : model.parameters()) weights->insert(weights->end(), q.value.begin(), q.value.end());
  return r;
}

}  // namespace

TEST_CASE("BiP on the xtensor MLP: exact density, pruned weights zero, three phases, same seed same bits") {
  constexpr std::size_t total = 24 * 16 + 16 * 24 + 4 * 16;
  for (double density : {0.1, 0.35}) {
    std::vector<float> w1, w2;
    const auto r = run_bip(density, &w1);
    REQUIRE(r.masks.prunable() == std::vector<std::size_t>{0, 2, 4});
    std::size_t kept = 0, n = 0;
    for (const auto& m : r.masks) {
      for (float v : m) REQUIRE((v == 0.0f || v == 1.0f));
      kept += static_cast<std::size_t>(std::count(m.begin(), m.end(), 1.0f));
      n += m.size();
    }
    CHECK(n == total);
    CHECK(kept == static_cast<std::size_t>(std::llround(density * double(total))));
    REQUIRE(r.history.size() == 3);
    CHECK(r.history[0].phase == "dense");
    CHECK(r.history[1].phase == "bilevel");
    CHECK(r.history[2].phase == "finetune");
    CHECK(r.final_record().density == doctest::Approx(double(kept) / double(total)).epsilon(1e-12));
    CHECK(std::isfinite(r.final_record().test_accuracy));
    if (density > 0.3) CHECK(r.final_record().test_accuracy > 0.9);  // 4 separable classes: chance is 0.25
    const auto again = run_bip(density, &w2);
    CHECK(again.masks == r.masks);
    CHECK(w1 == w2);
  }
}
