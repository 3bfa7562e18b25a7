#pragma once
// What every data-parallel run over MPI needs besides the model wrapper (distributed/data_parallel.hpp):
//
//   environment           MPI_Init / MPI_Finalize as a scope, and an uncaught exception on any rank ends every rank
//                         (the message printed, then MPI_Abort) instead of leaving the others blocked in a collective
//   abort_on_exception    the same for one function call
//   rank, size, is_root   of a communicator; the root is rank 0
//   fingerprint           a 64-bit FNV-1a hash of bytes, values, parameters or masks, and same_on_all_ranks() to
//                         check that every rank holds the same bits
//
// Only the C API of MPI is used (no C++ bindings). Data travel as bytes: the ranks must share one floating-point
// representation and byte order, as the machines of a cluster do.

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/mask/mask_set.hpp"

namespace bipq::mpi {

/// Rank of the calling process in `comm` (throws std::runtime_error if MPI is not initialised).
int rank(MPI_Comm comm = MPI_COMM_WORLD);
/// Number of ranks of `comm`.
int size(MPI_Comm comm = MPI_COMM_WORLD);
/// True on rank 0 of `comm`, the rank that decides and prints; true as well when MPI is not initialised.
bool is_root(MPI_Comm comm = MPI_COMM_WORLD);

/// Prints "bipq: rank <r> of <n>: <what>: <message>" to stderr and ends every rank of `comm` with MPI_Abort (exit
/// status 1). For errors one rank cannot report to the others through a collective.
[[noreturn]] void abort_all(MPI_Comm comm, std::string_view what, std::string_view message);

/// Calls fn(); an exception escaping it ends every rank of `comm` through abort_all, with its message.
template <class F>
decltype(auto) abort_on_exception(MPI_Comm comm, std::string_view what, F&& fn);

/// MPI for the lifetime of the object: MPI_Init_thread (MPI_THREAD_FUNNELED: only the thread that initialised MPI
/// calls it) unless MPI is initialised already, MPI_Finalize at the end if this object initialised it. While it
/// lives, std::terminate (an uncaught exception, on any rank) prints the exception's message and calls MPI_Abort on
/// MPI_COMM_WORLD, so one failing rank ends the run instead of leaving the others waiting.
class environment {
 public:
  environment(int& argc, char**& argv);
  environment() : environment(no_argc_, no_argv_) {}
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;
  ~environment();

  int rank() const { return mpi::rank(MPI_COMM_WORLD); }
  int size() const { return mpi::size(MPI_COMM_WORLD); }
  bool is_root() const { return rank() == 0; }

 private:
  static inline int no_argc_ = 0;
  static inline char** no_argv_ = nullptr;
  bool owns_ = false;
  std::terminate_handler previous_ = nullptr;
};

/// True when the process was started by an MPI launcher (mpirun / mpiexec of Open MPI or MPICH, srun with PMI), from
/// the variables the launcher sets; no MPI call is made.
bool launched_by_mpi();

/// 64-bit FNV-1a hash of bytes, continuing from `h` (chain calls to hash several arrays in order).
std::uint64_t fingerprint(std::span<const std::byte> bytes, std::uint64_t h = 14695981039346656037ull);

/// The hash of the bits of `values`.
template <class T>
std::uint64_t fingerprint(std::span<const T> values, std::uint64_t h = 14695981039346656037ull) {
  return fingerprint(std::as_bytes(values), h);
}

/// The hash of every parameter's values (the effective weights), in order.
template <std::floating_point T>
std::uint64_t fingerprint(std::span<const parameter<T>> params, std::uint64_t h = 14695981039346656037ull) {
  for (const auto& p : params) h = fingerprint(std::span<const T>(p.value), h);
  return h;
}

/// The hash of every mask of the set and of which parameters they belong to.
template <std::floating_point T>
std::uint64_t fingerprint(const mask_set<T>& masks, std::uint64_t h = 14695981039346656037ull) {
  h = fingerprint(std::span<const std::size_t>(masks.prunable()), h);
  for (std::size_t j = 0; j < masks.size(); ++j) h = fingerprint(std::span<const T>(masks[j]), h);
  return h;
}

/// True on every rank if every rank of `comm` passed the same `hash` (a collective: all ranks must call it).
bool same_on_all_ranks(std::uint64_t hash, MPI_Comm comm = MPI_COMM_WORLD);

// ---------------------------------------------------------------------------------------------------------------

namespace detail {

inline bool initialized() {
  int flag = 0;
  MPI_Initialized(&flag);
  int done = 0;
  MPI_Finalized(&done);
  return flag != 0 && done == 0;
}

inline void require_initialized(const char* func) {
  if (!initialized())
    throw std::runtime_error(std::string(func) + ": MPI is not initialised (create a bipq::mpi::environment first)");
}

/// Throws std::runtime_error naming `func` if an MPI call did not return MPI_SUCCESS (communicators in bipq keep
/// MPI's default error handler, which aborts, so this matters only for a communicator set to MPI_ERRORS_RETURN).
inline void check(int code, const char* func) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(func) + ": " + std::string(text, static_cast<std::size_t>(length)));
}

inline void broadcast_bytes(void* data, std::size_t bytes, MPI_Comm comm, const char* func) {
  auto* p = static_cast<unsigned char*>(data);
  constexpr std::size_t chunk = std::size_t(1) << 30;  // MPI counts are int
  for (std::size_t o = 0; o < bytes; o += chunk) {
    const std::size_t n = bytes - o < chunk ? bytes - o : chunk;
    check(MPI_Bcast(p + o, static_cast<int>(n), MPI_BYTE, 0, comm), func);
  }
}

/// Every rank's `values` (the same count on each), concatenated in rank order, on every rank.
inline std::vector<std::uint64_t> all_gather(std::span<const std::uint64_t> values, MPI_Comm comm, const char* func) {
  std::vector<std::uint64_t> all(values.size() * static_cast<std::size_t>(size(comm)));
  check(MPI_Allgather(values.data(), static_cast<int>(values.size()), MPI_UINT64_T, all.data(),
                      static_cast<int>(values.size()), MPI_UINT64_T, comm),
        func);
  return all;
}

inline void terminate_with_abort() {
  std::string message = "terminate called without an active exception";
  if (const std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      message = x.what();
    } catch (...) {
      message = "an exception that is not a std::exception";
    }
  }
  if (initialized()) abort_all(MPI_COMM_WORLD, "uncaught exception", message);
  std::fprintf(stderr, "bipq: uncaught exception: %s\n", message.c_str());
  std::abort();
}

}  // namespace detail

inline int rank(MPI_Comm comm) {
  detail::require_initialized("bipq::mpi::rank()");
  int r = 0;
  detail::check(MPI_Comm_rank(comm, &r), "bipq::mpi::rank()");
  return r;
}

inline int size(MPI_Comm comm) {
  detail::require_initialized("bipq::mpi::size()");
  int n = 0;
  detail::check(MPI_Comm_size(comm, &n), "bipq::mpi::size()");
  return n;
}

inline bool is_root(MPI_Comm comm) { return !detail::initialized() || rank(comm) == 0; }

[[noreturn]] inline void abort_all(MPI_Comm comm, std::string_view what, std::string_view message) {
  int r = -1, n = 0;
  if (detail::initialized()) {
    MPI_Comm_rank(comm, &r);
    MPI_Comm_size(comm, &n);
  }
  std::fprintf(stderr, "bipq: rank %d of %d: %.*s: %.*s\n", r, n, static_cast<int>(what.size()), what.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::fflush(stdout);
  if (detail::initialized()) MPI_Abort(comm, 1);
  std::abort();
}

template <class F>
decltype(auto) abort_on_exception(MPI_Comm comm, std::string_view what, F&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    abort_all(comm, what, e.what());
  } catch (...) {
    abort_all(comm, what, "an exception that is not a std::exception");
  }
}

inline environment::environment(int& argc, char**& argv) {
  if (!detail::initialized()) {
    int provided = 0;
    detail::check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "bipq::mpi::environment()");
    owns_ = true;
  }
  previous_ = std::set_terminate(detail::terminate_with_abort);
}

inline environment::~environment() {
  std::set_terminate(previous_);
  if (owns_ && detail::initialized()) MPI_Finalize();
}

inline bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

inline std::uint64_t fingerprint(std::span<const std::byte> bytes, std::uint64_t h) {
  for (std::byte b : bytes) {
    h ^= static_cast<std::uint64_t>(b);
    h *= 1099511628211ull;
  }
  return h;
}

inline bool same_on_all_ranks(std::uint64_t hash, MPI_Comm comm) {
  const std::vector<std::uint64_t> all =
      detail::all_gather(std::span<const std::uint64_t>(&hash, 1), comm, "bipq::mpi::same_on_all_ranks()");
  for (std::uint64_t h : all)
    if (h != all.front()) return false;
  return true;
}

}  // namespace bipq::mpi
