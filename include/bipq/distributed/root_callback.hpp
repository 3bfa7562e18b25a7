#pragma once
// on_root(callback): a callback that runs on rank 0 only, for a run executed by every rank of a communicator.
//
// In a data-parallel run every rank executes the same driver with the same callbacks. A callback that prints or
// writes (progress_bar, print_loss, csv_log) would do so once per rank; one that decides from the clock
// (time_limit) would stop the ranks at different steps, and the rank that goes on would wait forever in the next
// collective. Wrapped in on_root, the callback's hooks are called on rank 0 alone, and a hook's stop decision
// (a bool result) is broadcast from rank 0, so every rank stops after the same step. A void hook costs no
// communication; a bool step_taken costs one 1-byte MPI_Bcast per step.
//
//   bipq::time_limit limit(60);
//   bipq::omp(model, params, bipq::mpi::on_root(bipq::progress_bar{}), bipq::mpi::on_root(limit));
//
// An lvalue callback is held by reference (query it afterwards: limit.expired() is meaningful on rank 0), an
// rvalue one is moved into the wrapper.

#include <mpi.h>

#include <type_traits>
#include <utility>

#include "bipq/callbacks/callback.hpp"
#include "bipq/distributed/mpi.hpp"

namespace bipq::mpi {

template <class C>
class root_callback {
 public:
  using callback_type = std::remove_reference_t<C>;

  root_callback(C&& callback, MPI_Comm comm) : callback_(std::forward<C>(callback)), comm_(comm) {
    detail::require_initialized("bipq::mpi::on_root()");
    root_ = mpi::rank(comm) == 0;
  }

  void begin(const run_info& r)
    requires bipq::detail::has_begin_hook<callback_type>
  {
    if (root_) bipq::detail::call_hook([&] { return callback_.begin(r); });
  }

  void end(const run_info& r)
    requires bipq::detail::has_end_hook<callback_type>
  {
    if (root_) bipq::detail::call_hook([&] { return callback_.end(r); });
  }

  bool step_taken(const step_info& s)
    requires bipq::detail::has_step_hook<callback_type>
  {
    return decide([&] { return callback_.step_taken(s); });
  }

  template <class T>
    requires bipq::detail::has_epoch_hook<callback_type, T>
  bool end_epoch(const epoch_info<T>& e) {
    return decide([&] { return callback_.end_epoch(e); });
  }

  callback_type& get() noexcept { return callback_; }
  bool is_root() const noexcept { return root_; }

 private:
  C callback_;
  MPI_Comm comm_;
  bool root_ = true;

  // Rank 0 calls the hook; a bool result is broadcast so that every rank returns rank 0's decision.
  template <class Hook>
  bool decide(Hook&& hook) {
    if constexpr (std::is_void_v<decltype(hook())>) {
      if (root_) hook();
      return false;
    } else {
      unsigned char stop = 0;
      if (root_) stop = bipq::detail::call_hook(hook) ? 1 : 0;
      detail::check(MPI_Bcast(&stop, 1, MPI_UNSIGNED_CHAR, 0, comm_), "bipq::mpi::on_root()");
      return stop != 0;
    }
  }
};

/// `callback` run on rank 0 of `comm` only, its stop decisions broadcast (see above). A collective only in the
/// hooks that return bool; constructing it is local.
template <class C>
root_callback<C> on_root(C&& callback, MPI_Comm comm = MPI_COMM_WORLD) {
  return root_callback<C>(std::forward<C>(callback), comm);
}

}  // namespace bipq::mpi
