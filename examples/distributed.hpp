#pragma once
// The demo's data-parallel mode: `mpirun -np N prune_fashion_mnist ... [--distributed on]` runs every method on N
// ranks through bipq::mpi::data_parallel (every rank holds the data set; each computes its share of every
// mini-batch), with the progress bar, the table and the files on rank 0 only. Built when bipq::mpi is
// (BIPQ_EXAMPLE_WITH_MPI); without MPI, `--distributed on` is an error and auto means off.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#if BIPQ_EXAMPLE_WITH_MPI
#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/distributed/data_parallel.hpp"
#include "bipq/distributed/mpi.hpp"
#include "bipq/distributed/root_callback.hpp"
#endif

namespace examples {

/// --distributed: auto (on when started by an MPI launcher), on, off.
enum class distributed_mode { automatic, on, off };

inline bool parse_distributed_mode(const std::string& v, distributed_mode& mode) {
  if (v == "auto") mode = distributed_mode::automatic;
  else if (v == "on") mode = distributed_mode::on;
  else if (v == "off") mode = distributed_mode::off;
  else return false;
  return true;
}

/// MPI for the program's lifetime when the mode asks for it. Ranks other than 0 print nothing on stdout.
class distributed {
 public:
  distributed(int& argc, char**& argv, distributed_mode mode, const char* program) {
#if BIPQ_EXAMPLE_WITH_MPI
    if (mode == distributed_mode::on || (mode == distributed_mode::automatic && bipq::mpi::launched_by_mpi())) {
      env_ = std::make_unique<bipq::mpi::environment>(argc, argv);
      if (!env_->is_root() && std::freopen("/dev/null", "w", stdout) == nullptr) std::fclose(stdout);
    }
#else
    (void)argc, (void)argv;
    if (mode == distributed_mode::on) {
      std::fprintf(stderr, "%s: --distributed on: built without MPI (bipq::mpi was not found)\n", program);
      std::exit(2);
    }
#endif
    (void)program;
  }

  bool active() const { return env_ != nullptr; }
  int ranks() const {
#if BIPQ_EXAMPLE_WITH_MPI
    return env_ ? env_->size() : 1;
#else
    return 1;
#endif
  }
  bool is_root() const {
#if BIPQ_EXAMPLE_WITH_MPI
    return !env_ || env_->is_root();
#else
    return true;
#endif
  }

  /// f(problem, wrap) on one process, f(data_parallel(problem), on_root) on every rank; wrap(callback) is the
  /// callback as the run must take it. Batch-norm running statistics are averaged over the ranks at evaluation.
  template <class Classifier, class F>
  decltype(auto) run(Classifier& problem, F&& f) {
#if BIPQ_EXAMPLE_WITH_MPI
    if (env_) {
      bipq::mpi::data_parallel_options o;
      o.statistics = bipq::eigen::running_statistics(problem.model());
      bipq::mpi::data_parallel parallel(problem, MPI_COMM_WORLD, std::move(o));
      return f(parallel, [](auto&& callback) { return bipq::mpi::on_root(std::forward<decltype(callback)>(callback)); });
    }
#endif
    return f(problem, [](auto&& callback) { return std::forward<decltype(callback)>(callback); });
  }

  /// The sum of `v` over the ranks (v itself on one process), e.g. the samples every rank's model computed.
  double sum(double v) const {
#if BIPQ_EXAMPLE_WITH_MPI
    if (env_) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
    return v;
  }

  /// An error on one rank: ends every rank with the message (distributed), else prints it; returns the exit status.
  int fail(const char* program, const char* message) const {
#if BIPQ_EXAMPLE_WITH_MPI
    if (env_ && env_->size() > 1) bipq::mpi::abort_all(MPI_COMM_WORLD, program, message);
#endif
    std::fprintf(stderr, "%s: %s\n", program, message);
    return 1;
  }

 private:
#if BIPQ_EXAMPLE_WITH_MPI
  std::unique_ptr<bipq::mpi::environment> env_;
#else
  std::unique_ptr<int> env_;
#endif
};

}  // namespace examples
