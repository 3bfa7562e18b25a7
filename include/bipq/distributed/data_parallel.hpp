#pragma once
// data_parallel<M>: any trainable model, trained data-parallel over the ranks of an MPI communicator, as a model of
// the same concept — so every solver and pruning driver of bipq runs distributed unchanged.
//
// Every rank runs the same driver with the same seeds, so every rank draws the same mini-batch of global indices.
// The training set's global index range is cut into S contiguous shards, shard s = [b_s, b_{s+1}); rank r computes
// the shards [S r / p, S (r+1) / p) (p ranks). For a batch B of size |B|, the samples of shard s, in batch order,
// form the group B_s; the rank owning s calls the wrapped model's loss_and_gradient on B_s (mapped to its local
// indices) and gets ℓ_s and g_s. Then, in a fixed order that does not depend on the MPI library's algorithms:
//   1. MPI_Gatherv of every shard's (|B_s|, ℓ_s, g_s) to rank 0, in rank order = shard order;
//   2. rank 0 sums in shard order, in double:  ℓ = Σ_s (|B_s|/|B|) ℓ_s,  g = Σ_s (|B_s|/|B|) g_s  (empty B_s skipped);
//   3. MPI_Bcast of (ℓ, g) from rank 0; every rank writes g into the parameters' grad and returns ℓ.
// Every rank therefore takes bit-identical steps, and masks, scores and weights stay identical on every rank. The
// result depends on S, not on p: with the same S, 1 rank and p ranks give the same bits. With S = 1 (one rank,
// default) it is bit for bit the wrapped model alone. The default S = p makes 1 and p ranks differ by rounding
// (docs/distributed.md measures how far).
//
// Data layouts: `replicated` (every rank holds the whole training set: local index = global index; S may be chosen)
// or `sharded` (rank r holds only shard r, S = p: the shard sizes are the ranks' num_samples(), the global index
// space is their concatenation in rank order, local index = global − b_r). A sharded rank computes only the batch
// samples it owns, so its share varies from batch to batch (binomially around |B|/p).
//
// evaluate(): `replicated` test data: rank 0 evaluates and broadcasts; `sharded`: every rank evaluates its test
// shard and rank 0 combines, weighting by the ranks' test sample counts, in rank order.
//
// Batch normalisation: in training, each group B_s is normalised with its own statistics (as PyTorch's
// DistributedDataParallel without SyncBatchNorm), and each rank updates its running statistics from its own groups,
// so they differ across ranks. Pass them as `options.statistics` (for bipq::eigen models:
// bipq::eigen::running_statistics(model)) and evaluate() first replaces them on every rank by their mean over the
// ranks, summed in rank order. The running mean is linear in the batch means, so with groups of equal size this
// mean is the running mean of the whole batches; the running variance omits the spread of the group means.
//
// Errors: invalid input the ranks share (an empty batch, an index out of range) throws std::invalid_argument on
// every rank alike. An exception of the wrapped model on one rank cannot be reported through the collectives: the
// rank prints it and ends every rank with MPI_Abort (mpi::abort_all). Callbacks that decide (time_limit, early_stop)
// or print must be wrapped in mpi::on_root (distributed/root_callback.hpp).

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/distributed/mpi.hpp"

namespace bipq::mpi {

/// Where the data live.
enum class data_layout {
  replicated,  ///< every rank holds the whole set
  sharded,     ///< rank r holds its own part; the global set is the parts concatenated in rank order
};

/// Settings of a data_parallel model.
struct data_parallel_options {
  data_layout train = data_layout::replicated;  ///< training data layout
  /// Number of shards S of the training set (replicated layout only): 0 = the number of ranks. The result depends
  /// on S and not on the number of ranks, so a fixed S makes runs on different numbers of ranks bit-identical.
  std::size_t shards = 0;
  data_layout test = data_layout::replicated;  ///< test data layout (evaluate())
  /// Sharded test data: this rank's number of test samples, the weight of its evaluate() in the combination.
  std::size_t local_test_samples = 0;
  /// Model state averaged over the ranks before every evaluate(), e.g. batch-norm running statistics (the same
  /// total size on every rank).
  std::vector<std::span<double>> statistics{};
  /// Broadcast rank 0's parameter values to every rank at construction (as DistributedDataParallel does), so that
  /// the ranks start from the same weights even if they were initialised differently.
  bool broadcast_initial_parameters = true;
};

/// Timings of the calls so far (seconds of wall time on this rank).
struct data_parallel_timings {
  std::size_t steps = 0;        ///< loss_and_gradient calls
  double compute_seconds = 0.0;  ///< in the wrapped model's loss_and_gradient
  double reduce_seconds = 0.0;   ///< gather, sum on rank 0, broadcast (includes waiting for slower ranks)
};

template <class M>
class data_parallel {
 public:
  using scalar_type = problem_scalar_t<M>;
  static_assert(check_bilevel_problem<M>());
  static_assert(std::is_same_v<scalar_type, float> || std::is_same_v<scalar_type, double>,
                "bipq::mpi::data_parallel: the model's scalar_type must be float or double");

  /// A collective over `comm`: every rank constructs it with its own model (same parameters, same shapes) and the
  /// same options but for local_test_samples and statistics. Holds `model` by reference. Throws
  /// std::invalid_argument (on every rank alike) if the ranks' parameter shapes differ, replicated training sets
  /// differ in size, a sharded set is empty, the statistics differ in size, or shards is invalid.
  explicit data_parallel(M& model, MPI_Comm comm = MPI_COMM_WORLD, data_parallel_options options = {});

  data_parallel(const data_parallel&) = delete;
  data_parallel& operator=(const data_parallel&) = delete;

  /// The wrapped model's parameters (same storage).
  decltype(auto) parameters() const { return model_->parameters(); }
  /// Size of the global training set.
  std::size_t num_samples() const noexcept { return global_samples_; }

  /// Mean loss over the global samples `indices` (the same on every rank), with its gradient in every parameter's
  /// grad, identical on every rank. A collective: every rank calls it with the same indices.
  double loss_and_gradient(std::span<const std::size_t> indices);

  /// Loss and accuracy on the test data (see the layouts above), the same on every rank. A collective.
  evaluation evaluate()
    requires trainable_model<M>;

  /// The rank computing global training sample `i` and its index there (throws std::out_of_range if i ≥ num_samples()).
  std::pair<int, std::size_t> owner(std::size_t i) const;

  std::size_t shards() const noexcept { return bounds_.size() - 1; }
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  MPI_Comm communicator() const noexcept { return comm_; }
  M& local() noexcept { return *model_; }
  const data_parallel_timings& timings() const noexcept { return timings_; }
  void reset_timings() noexcept { timings_ = {}; }

 private:
  using T = scalar_type;
  static constexpr std::size_t header_slots = 2 * sizeof(double) / sizeof(T);  // |B_s| and ℓ_s as doubles

  M* model_;
  MPI_Comm comm_;
  data_parallel_options options_;
  int rank_ = 0, size_ = 1;
  std::size_t global_samples_ = 0, num_values_ = 0;
  std::vector<std::size_t> bounds_;       // shard s = [bounds_[s], bounds_[s+1])
  std::vector<std::size_t> first_shard_;  // rank r computes shards [first_shard_[r], first_shard_[r+1])
  std::vector<int> counts_, displacements_;  // of the gather, in T slots
  std::vector<T> send_, receive_, result_;
  std::vector<double> sum_;
  std::vector<std::vector<std::size_t>> groups_;
  data_parallel_timings timings_;

  std::size_t record_slots() const { return header_slots + num_values_; }
  std::size_t local_offset() const {
    return options_.train == data_layout::sharded ? bounds_[static_cast<std::size_t>(rank_)] : 0;
  }
  void average_statistics();
};

// ---------------------------------------------------------------------------------------------------------------

template <class M>
data_parallel<M>::data_parallel(M& model, MPI_Comm comm, data_parallel_options options)
    : model_(&model), comm_(comm), options_(std::move(options)) {
  constexpr const char* func = "bipq::mpi::data_parallel()";
  detail::require_initialized(func);
  if (comm == MPI_COMM_NULL) throw std::invalid_argument(std::string(func) + ": comm is MPI_COMM_NULL");
  rank_ = mpi::rank(comm);
  size_ = mpi::size(comm);
  const auto p = static_cast<std::size_t>(size_);

  const std::span<const parameter<T>> ps = model.parameters();
  std::uint64_t layout = fingerprint(std::span<const std::byte>{});
  for (const auto& q : ps) {
    num_values_ += q.value.size();
    layout = fingerprint(std::span<const std::size_t>(q.shape), layout);
    const std::size_t n = q.value.size();
    layout = fingerprint(std::span<const std::size_t>(&n, 1), layout);
  }
  std::size_t statistics_size = 0;
  for (const auto& s : options_.statistics) statistics_size += s.size();
  const std::uint64_t mine[5] = {layout, static_cast<std::uint64_t>(model.num_samples()), options_.shards,
                                 statistics_size, static_cast<std::uint64_t>(options_.local_test_samples)};
  const std::vector<std::uint64_t> all = detail::all_gather(mine, comm, func);
  auto field = [&](std::size_t r, std::size_t k) { return all[r * 5 + k]; };
  std::uint64_t test_total = 0;
  for (std::size_t r = 0; r < p; ++r) {
    if (field(r, 0) != field(0, 0))
      throw std::invalid_argument(std::string(func) + ": the model's parameter shapes on rank " + std::to_string(r) +
                                  " differ from rank 0's");
    if (field(r, 2) != field(0, 2))
      throw std::invalid_argument(std::string(func) + ": options.shards differs between ranks");
    if (field(r, 3) != field(0, 3))
      throw std::invalid_argument(std::string(func) + ": options.statistics has a different total size on rank " +
                                  std::to_string(r));
    test_total += field(r, 4);
  }
  if (options_.test == data_layout::sharded && test_total == 0)
    throw std::invalid_argument(std::string(func) +
                                ": options.test is sharded but options.local_test_samples is 0 on every rank");

  if (options_.train == data_layout::replicated) {
    for (std::size_t r = 0; r < p; ++r)
      if (field(r, 1) != field(0, 1))
        throw std::invalid_argument(std::string(func) + ": replicated training data, but rank " + std::to_string(r) +
                                    " has " + std::to_string(field(r, 1)) + " samples and rank 0 has " +
                                    std::to_string(field(0, 1)));
    global_samples_ = static_cast<std::size_t>(field(0, 1));
    const std::size_t S = options_.shards == 0 ? p : options_.shards;
    if (global_samples_ > 0 && S > global_samples_)
      throw std::invalid_argument(std::string(func) + ": options.shards = " + std::to_string(S) +
                                  " exceeds the number of training samples " + std::to_string(global_samples_));
    const std::size_t N = global_samples_, q = N / S, rem = N % S;
    for (std::size_t s = 0; s <= S; ++s) bounds_.push_back(q * s + rem * s / S);  // ⌊N s / S⌋ without overflow
    for (std::size_t r = 0; r <= p; ++r) first_shard_.push_back(S * r / p);
  } else {
    if (options_.shards != 0 && options_.shards != p)
      throw std::invalid_argument(std::string(func) + ": options.shards must be 0 or the number of ranks (" +
                                  std::to_string(p) + ") with sharded training data");
    bounds_.push_back(0);
    for (std::size_t r = 0; r < p; ++r) {
      if (field(r, 1) == 0)
        throw std::invalid_argument(std::string(func) + ": sharded training data, but rank " + std::to_string(r) +
                                    " has no samples");
      bounds_.push_back(bounds_.back() + static_cast<std::size_t>(field(r, 1)));
    }
    global_samples_ = bounds_.back();
    for (std::size_t r = 0; r <= p; ++r) first_shard_.push_back(r);
  }

  const std::size_t rs = record_slots();
  for (std::size_t r = 0; r < p; ++r) {
    const std::size_t slots = (first_shard_[r + 1] - first_shard_[r]) * rs;
    if (slots > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
        rs * shards() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw std::invalid_argument(std::string(func) + ": the model is too large for one MPI_Gatherv");
    counts_.push_back(static_cast<int>(slots * sizeof(T)));
    displacements_.push_back(static_cast<int>(first_shard_[r] * rs * sizeof(T)));
  }
  const std::size_t mine_shards = first_shard_[std::size_t(rank_) + 1] - first_shard_[std::size_t(rank_)];
  send_.assign(mine_shards * rs, T(0));
  if (rank_ == 0) receive_.assign(shards() * rs, T(0));
  result_.assign(rs, T(0));
  sum_.assign(num_values_, 0.0);
  groups_.resize(mine_shards);

  if (options_.broadcast_initial_parameters)
    for (const auto& q : ps) detail::broadcast_bytes(q.value.data(), q.value.size_bytes(), comm, func);
}

template <class M>
std::pair<int, std::size_t> data_parallel<M>::owner(std::size_t i) const {
  if (i >= global_samples_)
    throw std::out_of_range("bipq::mpi::data_parallel::owner(): i = " + std::to_string(i) +
                            " is not below num_samples() = " + std::to_string(global_samples_));
  const std::size_t s = static_cast<std::size_t>(std::upper_bound(bounds_.begin(), bounds_.end(), i) - bounds_.begin()) - 1;
  const std::size_t r = static_cast<std::size_t>(std::upper_bound(first_shard_.begin(), first_shard_.end(), s) -
                                                 first_shard_.begin()) - 1;
  const std::size_t local = options_.train == data_layout::sharded ? i - bounds_[r] : i;
  return {static_cast<int>(r), local};
}

template <class M>
double data_parallel<M>::loss_and_gradient(std::span<const std::size_t> indices) {
  constexpr const char* func = "bipq::mpi::data_parallel::loss_and_gradient()";
  using clock = std::chrono::steady_clock;
  if (indices.empty()) throw std::invalid_argument(std::string(func) + ": indices is empty");
  const auto t0 = clock::now();
  const std::size_t me = static_cast<std::size_t>(rank_), s0 = first_shard_[me], s1 = first_shard_[me + 1];
  const std::size_t lo = bounds_[s0], hi = bounds_[s1], offset = local_offset();
  for (auto& g : groups_) g.clear();
  for (std::size_t i : indices) {
    if (i >= global_samples_)
      throw std::invalid_argument(std::string(func) + ": indices holds " + std::to_string(i) +
                                  ", expected < num_samples() = " + std::to_string(global_samples_));
    if (i < lo || i >= hi) continue;
    const std::size_t s = static_cast<std::size_t>(std::upper_bound(bounds_.begin() + std::ptrdiff_t(s0),
                                                                    bounds_.begin() + std::ptrdiff_t(s1) + 1, i) -
                                                   bounds_.begin()) - 1;
    groups_[s - s0].push_back(i - offset);
  }

  const std::span<const parameter<T>> ps = model_->parameters();
  const std::size_t rs = record_slots();
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    T* record = send_.data() + g * rs;
    double header[2] = {static_cast<double>(groups_[g].size()), 0.0};
    if (!groups_[g].empty()) {
      header[1] = abort_on_exception(comm_, func, [&] {
        return static_cast<double>(model_->loss_and_gradient(std::span<const std::size_t>(groups_[g])));
      });
      T* out = record + header_slots;
      for (const auto& q : ps) out = std::copy(q.grad.begin(), q.grad.end(), out);
    }
    std::memcpy(record, header, sizeof header);
  }
  const auto t1 = clock::now();

  detail::check(MPI_Gatherv(send_.data(), counts_[me], MPI_BYTE, receive_.data(), counts_.data(),
                            displacements_.data(), MPI_BYTE, 0, comm_),
                func);
  if (rank_ == 0) {
    // Σ_s (|B_s|/|B|) g_s in shard order, in double: the fixed reduction order every rank's result comes from.
    std::fill(sum_.begin(), sum_.end(), 0.0);
    double loss = 0.0;
    const double batch = static_cast<double>(indices.size());
    for (std::size_t s = 0; s < shards(); ++s) {
      const T* record = receive_.data() + s * rs;
      double header[2];
      std::memcpy(header, record, sizeof header);
      if (header[0] == 0.0) continue;
      const double w = header[0] / batch;
      loss += w * header[1];
      const T* g = record + header_slots;
      for (std::size_t j = 0; j < num_values_; ++j) sum_[j] += w * static_cast<double>(g[j]);
    }
    std::memcpy(result_.data(), &loss, sizeof loss);
    for (std::size_t j = 0; j < num_values_; ++j) result_[header_slots + j] = static_cast<T>(sum_[j]);
  }
  detail::broadcast_bytes(result_.data(), result_.size() * sizeof(T), comm_, func);
  const T* g = result_.data() + header_slots;
  for (const auto& q : ps) {
    std::copy(g, g + q.grad.size(), q.grad.begin());
    g += q.grad.size();
  }
  double loss = 0.0;
  std::memcpy(&loss, result_.data(), sizeof loss);
  const auto t2 = clock::now();
  ++timings_.steps;
  timings_.compute_seconds += std::chrono::duration<double>(t1 - t0).count();
  timings_.reduce_seconds += std::chrono::duration<double>(t2 - t1).count();
  return loss;
}

template <class M>
void data_parallel<M>::average_statistics() {
  constexpr const char* func = "bipq::mpi::data_parallel::evaluate()";
  std::vector<double> mine;
  for (const auto& s : options_.statistics) mine.insert(mine.end(), s.begin(), s.end());
  if (mine.empty()) return;
  const std::size_t n = mine.size();
  if (n * static_cast<std::size_t>(size_) > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::invalid_argument(std::string(func) + ": options.statistics is too large for one MPI_Gather");
  std::vector<double> all(rank_ == 0 ? n * static_cast<std::size_t>(size_) : 0);
  detail::check(MPI_Gather(mine.data(), static_cast<int>(n), MPI_DOUBLE, all.data(), static_cast<int>(n), MPI_DOUBLE,
                           0, comm_),
                func);
  if (rank_ == 0) {
    std::fill(mine.begin(), mine.end(), 0.0);
    for (int r = 0; r < size_; ++r)
      for (std::size_t j = 0; j < n; ++j) mine[j] += all[std::size_t(r) * n + j];
    for (double& v : mine) v /= static_cast<double>(size_);
  }
  detail::broadcast_bytes(mine.data(), n * sizeof(double), comm_, func);
  const double* v = mine.data();
  for (const auto& s : options_.statistics) {
    std::copy(v, v + s.size(), s.begin());
    v += s.size();
  }
}

template <class M>
evaluation data_parallel<M>::evaluate()
  requires trainable_model<M>
{
  constexpr const char* func = "bipq::mpi::data_parallel::evaluate()";
  average_statistics();
  double out[2] = {0.0, 0.0};
  if (options_.test == data_layout::replicated) {
    if (rank_ == 0) {
      const evaluation e = abort_on_exception(comm_, func, [&] { return evaluation(model_->evaluate()); });
      out[0] = e.loss, out[1] = e.accuracy;
    }
  } else {
    double mine[3] = {static_cast<double>(options_.local_test_samples), 0.0, 0.0};
    if (options_.local_test_samples > 0) {
      const evaluation e = abort_on_exception(comm_, func, [&] { return evaluation(model_->evaluate()); });
      mine[1] = e.loss, mine[2] = e.accuracy;
    }
    std::vector<double> all(rank_ == 0 ? 3 * static_cast<std::size_t>(size_) : 0);
    detail::check(MPI_Gather(mine, 3, MPI_DOUBLE, all.data(), 3, MPI_DOUBLE, 0, comm_), func);
    if (rank_ == 0) {
      double n = 0.0;
      for (int r = 0; r < size_; ++r) n += all[3 * std::size_t(r)];
      for (int r = 0; r < size_; ++r) {
        const double w = all[3 * std::size_t(r)] / n;
        if (w == 0.0) continue;
        out[0] += w * all[3 * std::size_t(r) + 1];
        out[1] += w * all[3 * std::size_t(r) + 2];
      }
    }
  }
  detail::broadcast_bytes(out, sizeof out, comm_, func);
  return {out[0], out[1]};
}

}  // namespace bipq::mpi
