// Data-parallel pruning over MPI, run on 2 ranks (also passes on 1): every rank ends every driver with the same
// bits; the result depends on the number of shards, not of ranks; sharded data gives the bits of replicated data;
// OMP's masks at 1 and 2 ranks agree; rank 0's callback decisions hold on every rank; batch-norm statistics agree
// after evaluate().
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/callbacks/time_limit.hpp"
#include "bipq/distributed/data_parallel.hpp"
#include "bipq/distributed/mpi.hpp"
#include "bipq/distributed/root_callback.hpp"
#include "bipq/prune/bip.hpp"
#include "bipq/prune/gmp.hpp"
#include "bipq/prune/imp.hpp"
#include "bipq/prune/omp.hpp"
#include "bipq/prune/sap.hpp"
#include "sliced_mlp.hpp"

namespace mpi = bipq::mpi;
using bipq::testing::slice;
using bipq::testing::sliced_mlp;

namespace {

constexpr std::size_t train_size = 240, test_size = 120;
constexpr std::uint64_t data_seed = 11;

int world_rank() { return mpi::rank(MPI_COMM_WORLD); }
int world_size() { return mpi::size(MPI_COMM_WORLD); }

/// Rank r's part of n samples: [⌊n r / p⌋, ⌊n (r+1) / p⌋).
slice part(std::size_t n, int r, int p) {
  return {n * std::size_t(r) / std::size_t(p), n * std::size_t(r + 1) / std::size_t(p)};
}

/// The whole data set, initialised from `seed`.
struct whole_mlp : sliced_mlp {
  explicit whole_mlp(std::uint64_t seed)
      : sliced_mlp(seed, data_seed, train_size, test_size, {0, train_size}, {0, test_size}) {}
};

/// This rank's shard of the training and test sets.
struct shard_mlp : sliced_mlp {
  explicit shard_mlp(std::uint64_t seed)
      : sliced_mlp(seed, data_seed, train_size, test_size, part(train_size, world_rank(), world_size()),
                   part(test_size, world_rank(), world_size())) {}
};

mpi::data_parallel_options sharded_options(const sliced_mlp& m) {
  mpi::data_parallel_options o;
  o.train = mpi::data_layout::sharded;
  o.test = mpi::data_layout::sharded;
  o.local_test_samples = m.num_test_samples();
  return o;
}

bipq::train_params short_training() {
  bipq::train_params t;
  t.epochs = 2;
  t.batch_size = 32;
  t.sgd.learning_rate = 0.05;
  t.seed = 3;
  return t;
}

bipq::mask_spec density_of(double d) {
  bipq::mask_spec m;
  m.density = d;
  return m;
}

bipq::bip_params small_bip() {
  bipq::bip_params p{.mask = density_of(0.2), .pretrain = short_training(), .finetune = short_training()};
  p.bilevel.seed = 3;
  p.bilevel_epochs = 3.0;
  return p;
}

/// Hashes the weights and masks every end_epoch shows (every epoch of every training run, every BiP iteration).
struct epoch_hash {
  std::uint64_t h = mpi::fingerprint(std::span<const std::byte>{});
  std::size_t epochs = 0;
  template <class T>
  void end_epoch(const bipq::epoch_info<T>& e) {
    ++epochs;
    for (auto w : e.weights) h = mpi::fingerprint(w, h);
    for (auto m : e.masks) h = mpi::fingerprint(m, h);
    const double losses[2] = {e.train_loss, e.upper_loss};
    h = mpi::fingerprint(std::span<const double>(losses), h);
  }
};

/// What a driver run leaves: its final masks, the model's weights, and the hash of every epoch.
struct run_hashes {
  std::uint64_t masks = 0, weights = 0, epochs = 0;
  std::size_t epoch_count = 0;
  std::vector<double> mask_values, weight_values;
  double accuracy = 0.0;
  bool operator==(const run_hashes& o) const {
    return masks == o.masks && weights == o.weights && epochs == o.epochs;
  }
};

template <class P>
run_hashes run_driver(const std::string& method, P& problem) {
  epoch_hash eh;
  bipq::prune_result<double> r;
  const bipq::train_params t = short_training();
  if (method == "imp") r = bipq::imp(problem, bipq::imp_params{.mask = density_of(0.4), .train = t, .rate = 0.5}, eh);
  if (method == "omp") r = bipq::omp(problem, bipq::omp_params{.mask = density_of(0.2), .train = t}, eh);
  if (method == "gmp")
    r = bipq::gmp(problem, bipq::gmp_params{.mask = density_of(0.2), .train = t, .frequency = 3}, eh);
  if (method == "sap") {
    bipq::sap_params s{.min_density = 0.1, .train = t};
    s.rounds = 2;
    r = bipq::sap(problem, s, eh);
  }
  if (method == "bip") r = bipq::bip(problem, small_bip(), eh);
  run_hashes out;
  out.masks = mpi::fingerprint(r.masks);
  out.weights = mpi::fingerprint(std::span<const bipq::parameter<double>>(problem.parameters()));
  out.epochs = eh.h;
  out.epoch_count = eh.epochs;
  for (const auto& m : r.masks) out.mask_values.insert(out.mask_values.end(), m.begin(), m.end());
  for (const auto& p : problem.parameters()) out.weight_values.insert(out.weight_values.end(), p.value.begin(), p.value.end());
  out.accuracy = r.final_record().test_accuracy;
  return out;
}

const std::vector<std::string> drivers{"imp", "omp", "gmp", "sap", "bip"};

}  // namespace

TEST_CASE("every rank ends every driver with the same masks, weights and per-epoch states (sharded data)") {
  for (const std::string& method : drivers) {
    CAPTURE(method);
    shard_mlp local(7 + std::uint64_t(world_rank()));  // different initial weights: rank 0's are broadcast
    mpi::data_parallel model(local, MPI_COMM_WORLD, sharded_options(local));
    const run_hashes h = run_driver(method, model);
    CHECK(h.epoch_count > 0);
    CHECK(local.calls() > 0);  // every rank computed its own shard
    CHECK(mpi::same_on_all_ranks(h.masks));
    CHECK(mpi::same_on_all_ranks(h.weights));
    CHECK(mpi::same_on_all_ranks(h.epochs));
  }
}

TEST_CASE("sharded training data gives the bits of replicated data cut into the same shards") {
  for (const std::string& method : {std::string("omp"), std::string("bip")}) {
    CAPTURE(method);
    whole_mlp all(7);
    mpi::data_parallel replicated(all);  // S = number of ranks, the shards of the sharded layout
    const run_hashes a = run_driver(method, replicated);
    shard_mlp mine(7);
    mpi::data_parallel_options o = sharded_options(mine);
    o.test = mpi::data_layout::replicated;  // test records do not feed back into training
    mpi::data_parallel sharded(mine, MPI_COMM_WORLD, o);
    const run_hashes b = run_driver(method, sharded);
    CHECK(a.masks == b.masks);
    CHECK(a.weights == b.weights);
  }
}

TEST_CASE("the result depends on the number of shards, not on the number of ranks") {
  for (const std::string& method : drivers) {
    CAPTURE(method);
    mpi::data_parallel_options two_shards;
    two_shards.shards = 2;
    whole_mlp alone(5);
    mpi::data_parallel one_rank(alone, MPI_COMM_SELF, two_shards);
    const run_hashes a = run_driver(method, one_rank);
    whole_mlp shared(5);
    mpi::data_parallel all_ranks(shared, MPI_COMM_WORLD, two_shards);
    const run_hashes b = run_driver(method, all_ranks);
    CHECK(a == b);
  }
}

TEST_CASE("on one rank with one shard the wrapper is the wrapped model bit for bit") {
  whole_mlp plain(5);
  const run_hashes a = run_driver("bip", plain);
  whole_mlp wrapped(5);
  mpi::data_parallel one(wrapped, MPI_COMM_SELF);
  const run_hashes b = run_driver("bip", one);
  CHECK(a == b);
}

TEST_CASE("OMP finds the same masks on 1 rank and on all ranks (one shard per rank)") {
  whole_mlp plain(9);
  const run_hashes one = run_driver("omp", plain);
  whole_mlp shared(9);
  mpi::data_parallel model(shared);
  const run_hashes all = run_driver("omp", model);
  CHECK(one.masks == all.masks);
  double dw = 0.0;
  for (std::size_t i = 0; i < one.weight_values.size(); ++i)
    dw = std::max(dw, std::abs(one.weight_values[i] - all.weight_values[i]));
  if (mpi::is_root())
    std::printf("OMP, 1 rank vs %d ranks: masks %s, max |weight difference| %.3g\n", world_size(),
                one.masks == all.masks ? "identical" : "DIFFERENT", dw);
}

TEST_CASE("BiP's masks agree across ranks; how far they are from the 1-rank run") {
  whole_mlp plain(9);
  const run_hashes one = run_driver("bip", plain);
  whole_mlp shared(9);
  mpi::data_parallel model(shared);
  const run_hashes all = run_driver("bip", model);
  CHECK(mpi::same_on_all_ranks(all.masks));
  CHECK(mpi::same_on_all_ranks(all.weights));
  std::size_t differ = 0, kept = 0;
  for (std::size_t i = 0; i < one.mask_values.size(); ++i) {
    differ += one.mask_values[i] != all.mask_values[i];
    kept += one.mask_values[i] != 0.0;
  }
  double dw = 0.0, w = 0.0;
  for (std::size_t i = 0; i < one.weight_values.size(); ++i) {
    dw = std::max(dw, std::abs(one.weight_values[i] - all.weight_values[i]));
    w = std::max(w, std::abs(one.weight_values[i]));
  }
  if (mpi::is_root())
    std::printf("BiP, 1 rank vs %d ranks: %zu of %zu mask entries differ (%zu kept), max |weight difference| %.3g "
                "(max |weight| %.3g), test accuracy %.4f vs %.4f\n",
                world_size(), differ, one.mask_values.size(), kept, dw, w, one.accuracy, all.accuracy);
}

TEST_CASE("evaluate() combines the ranks' test shards into the whole test set's evaluation") {
  whole_mlp all(4);
  const bipq::evaluation whole = all.evaluate();
  shard_mlp mine(4);
  mpi::data_parallel model(mine, MPI_COMM_WORLD, sharded_options(mine));
  const bipq::evaluation combined = model.evaluate();
  CHECK(combined.loss == doctest::Approx(whole.loss).epsilon(1e-12));
  CHECK(combined.accuracy == doctest::Approx(whole.accuracy).epsilon(1e-12));
  CHECK(mpi::same_on_all_ranks(mpi::fingerprint(std::span<const double>(&combined.loss, 1))));
}

TEST_CASE("owner() maps every global index to the rank and local index that hold it") {
  shard_mlp mine(4);
  mpi::data_parallel sharded(mine, MPI_COMM_WORLD, sharded_options(mine));
  REQUIRE(sharded.num_samples() == train_size);
  for (std::size_t i = 0; i < train_size; ++i) {
    int r = 0;
    while (!(part(train_size, r, world_size()).begin <= i && i < part(train_size, r, world_size()).end)) ++r;
    const auto [rank, local] = sharded.owner(i);
    CHECK(rank == r);
    CHECK(local == i - part(train_size, r, world_size()).begin);
  }
  CHECK_THROWS_AS(sharded.owner(train_size), std::out_of_range);

  // Replicated, 5 shards: local index = global index; each rank owns one contiguous range; together they cover all.
  whole_mlp all(4);
  mpi::data_parallel_options five;
  five.shards = 5;
  mpi::data_parallel replicated(all, MPI_COMM_WORLD, five);
  std::vector<std::size_t> owned(std::size_t(world_size()), 0);
  int previous = 0;
  for (std::size_t i = 0; i < train_size; ++i) {
    const auto [rank, local] = replicated.owner(i);
    CHECK(local == i);
    CHECK(rank >= previous);
    previous = rank;
    ++owned[std::size_t(rank)];
  }
  for (int r = 0; r < world_size(); ++r) {
    const std::size_t shards = 5 * std::size_t(r + 1) / std::size_t(world_size()) - 5 * std::size_t(r) / std::size_t(world_size());
    CHECK(owned[std::size_t(r)] >= shards * (train_size / 5));
    CHECK(owned[std::size_t(r)] <= shards * (train_size / 5 + 1));
  }
}

namespace {
/// Stops at its own step: a different one on every rank.
struct stop_at_step {
  std::size_t step;
  std::size_t calls = 0, begins = 0;
  void begin(const bipq::run_info&) { ++begins; }
  bool step_taken(const bipq::step_info& s) {
    ++calls;
    return s.step >= step;
  }
};
}  // namespace

TEST_CASE("on_root: rank 0 alone runs the callback, and its stop decision ends every rank after the same step") {
  whole_mlp all(2);
  mpi::data_parallel model(all);
  stop_at_step stop{3 + 2 * std::size_t(world_rank())};
  const bipq::train_result r = bipq::train(model, short_training(), {}, mpi::on_root(stop));
  CHECK(r.reason == bipq::termination::callback_stop);
  CHECK(r.steps == 4);  // rank 0 stops after step 3
  CHECK(stop.calls == (world_rank() == 0 ? 4u : 0u));
  CHECK(stop.begins == (world_rank() == 0 ? 1u : 0u));
  // An rvalue callback is held by value; time_limit(0) expires on rank 0 at the first step.
  const bipq::train_result t = bipq::train(model, short_training(), {}, mpi::on_root(bipq::time_limit(0.0)));
  CHECK(t.steps == 1);
}

TEST_CASE("invalid input throws std::invalid_argument naming the function and the argument, on every rank alike") {
  whole_mlp all(1);
  mpi::data_parallel_options many;
  many.shards = train_size + 1;
  CHECK_THROWS_WITH_AS(mpi::data_parallel(all, MPI_COMM_WORLD, many),
                       doctest::Contains("data_parallel(): options.shards"), std::invalid_argument);
  mpi::data_parallel model(all);
  CHECK_THROWS_WITH_AS(model.loss_and_gradient({}), doctest::Contains("loss_and_gradient(): indices is empty"),
                       std::invalid_argument);
  const std::size_t out_of_range[1] = {train_size};
  CHECK_THROWS_WITH_AS(model.loss_and_gradient(out_of_range), doctest::Contains("indices holds 240"),
                       std::invalid_argument);
  if (world_size() > 1) {
    // Replicated data must be the same size everywhere: rank r drops r samples.
    sliced_mlp uneven(1, data_seed, train_size, test_size, {0, train_size - std::size_t(world_rank())}, {0, test_size});
    CHECK_THROWS_WITH_AS([&] { mpi::data_parallel<sliced_mlp> m(uneven); }(), doctest::Contains("replicated training data, but rank 1"),
                         std::invalid_argument);
  }
}

TEST_CASE("batch-norm running statistics drift apart across ranks in training and agree after evaluate()") {
  bipq::io::image_dataset train, test;
  for (auto* d : {&train, &test}) {
    d->channels = 1, d->height = 6, d->width = 6, d->num_classes = 3;
    bipq::detail::rng g(d == &train ? 1 : 2);
    const std::size_t n = d == &train ? 96 : 32;
    for (std::size_t i = 0; i < n; ++i) {
      const auto y = static_cast<std::uint8_t>(g.below(3));
      d->labels.push_back(y);
      for (std::size_t k = 0; k < 36; ++k) d->images.push_back(float(0.3 * y + 0.2 * g.normal()));
    }
  }
  auto net = bipq::eigen::make_pqi_cnn<float>({2, 4}, 3, 3, {1, 6, 6});
  bipq::eigen::classifier local(net, train, test, 1);
  mpi::data_parallel_options o;
  o.statistics = bipq::eigen::running_statistics(net);
  REQUIRE(o.statistics.size() == 4);  // two batch norms: mean and variance each
  mpi::data_parallel model(local, MPI_COMM_WORLD, o);
  bipq::train_params t;
  t.epochs = 1;
  t.batch_size = 16;
  t.seed = 1;
  const std::vector<std::span<double>> stats = bipq::eigen::running_statistics(net);
  auto hash = [&] {
    std::uint64_t h = mpi::fingerprint(std::span<const std::byte>{});
    for (auto s : stats) h = mpi::fingerprint(std::span<const double>(s), h);
    return h;
  };
  auto values = [&] {
    std::vector<double> v;
    for (auto s : stats) v.insert(v.end(), s.begin(), s.end());
    return v;
  };
  // One step without evaluation: each rank's statistics come from its own half of the batch.
  const std::vector<std::size_t> batch{0, 5, 17, 33, 48, 50, 61, 70, 77, 80, 85, 90, 91, 93, 94, 95};
  model.loss_and_gradient(batch);
  if (world_size() > 1) CHECK_FALSE(mpi::same_on_all_ranks(hash()));
  const std::vector<double> before = values();
  std::vector<double> all(before.size() * std::size_t(world_size()));
  MPI_Allgather(before.data(), int(before.size()), MPI_DOUBLE, all.data(), int(before.size()), MPI_DOUBLE,
                MPI_COMM_WORLD);
  model.evaluate();
  CHECK(mpi::same_on_all_ranks(hash()));
  const std::vector<double> after = values();
  for (std::size_t j = 0; j < after.size(); ++j) {  // the mean over the ranks, summed in rank order
    double mean = 0.0;
    for (int r = 0; r < world_size(); ++r) mean += all[std::size_t(r) * before.size() + j];
    CHECK(after[j] == mean / world_size());
  }
  // Training through a driver keeps every rank's weights identical; the evaluations it reports agree.
  const bipq::train_result r = bipq::train(model, t, {});
  CHECK(r.steps == 6);
  CHECK(mpi::same_on_all_ranks(mpi::fingerprint(std::span<const bipq::parameter<float>>(net.parameters()))));
  const bipq::evaluation e = model.evaluate();
  CHECK(mpi::same_on_all_ranks(mpi::fingerprint(std::span<const double>(&e.loss, 1))));
}

int main(int argc, char** argv) {
  mpi::environment env(argc, argv);
  doctest::Context context(argc, argv);
  int failed = context.run();
  // The run fails if any rank failed.
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return failed;
}
