#pragma once
// Whole-directory atomic output: a set of files replaces an earlier set in one step, so that a reader sees the old
// set or the new set, never a mix, and a failure (an exception, a full disk, a kill) leaves the earlier set intact.
//
// How. The files are written into a temporary sibling directory "<parent>/.<name>.bipq-tmp-<pid>-<n>", each file
// and the directory are fsync'ed, and the temporary is then exchanged with the target in one rename (Linux
// renameat2(RENAME_EXCHANGE); elsewhere, or on a file system without it, the target is first renamed to
// ".<name>.bipq-old-<pid>-<n>" and the temporary renamed into its place, so that for a moment there is no target but
// never a mixed one). The previous set is kept until that rename, then removed. A writer that is destroyed without
// commit() (an exception) removes its temporary. A process killed during the write leaves at most those clearly
// named siblings; the next directory_writer for the same target removes those whose process is gone (restoring a
// ".bipq-old-" one if the kill landed between the two renames of the fallback and the target is missing).
//
// Readers. A committed set never changes in place. A reader that opens the files one by one by path can still
// straddle a replacement (first file from the old set, second from the new); read_directory_consistently() rules
// that out: it reads a stamp file that differs between any two writes (e.g. an index with a unique write id) before
// and after reading the set, and retries until both agree.
//
// One writer per target at a time (concurrent writers of one target are not coordinated).

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bipq::io {

/// Writes a set of files into a temporary sibling of `target` and, on commit(), puts the whole set in place of
/// whatever directory `target` was (see the top of this file).
class directory_writer {
 public:
  /// Prepares an empty temporary directory next to `target` (creating target's parent directories if needed) and
  /// removes stale temporaries of earlier, killed writers of the same target. Throws std::invalid_argument if
  /// `target` has no file name (empty, ".", ".." or "/"), std::runtime_error if the temporary cannot be created.
  explicit directory_writer(std::filesystem::path target);
  directory_writer(const directory_writer&) = delete;
  directory_writer& operator=(const directory_writer&) = delete;
  /// Removes the temporary directory if commit() has not succeeded.
  ~directory_writer();

  /// The directory being replaced.
  const std::filesystem::path& target() const noexcept { return target_; }
  /// The temporary directory: files written here by any means (e.g. write_npy(writer.path() / "w.npy", ...)) are
  /// part of the set.
  const std::filesystem::path& path() const noexcept { return tmp_; }

  /// Writes `bytes` to the file `name` of the set (a relative path without "..", sub-directories created).
  /// Throws std::invalid_argument for a bad name, std::runtime_error naming the file on an I/O error (full disk).
  void write(const std::string& name, std::string_view bytes);

  /// Flushes every file and directory of the set to disk and exchanges the temporary with the target. Afterwards
  /// the writer is spent (a second commit() or write() throws std::logic_error). Throws std::runtime_error if the
  /// target exists and is not a directory, or on an I/O error; the earlier set is then intact.
  void commit();

 private:
  std::filesystem::path target_, tmp_;
  bool committed_ = false;
};

/// Writes the set `fill` produces (it receives the writer) atomically into `target`: a directory_writer and commit().
void write_directory_atomically(const std::filesystem::path& target, const std::function<void(directory_writer&)>& fill);

/// Writes the files {relative name, bytes} atomically as the whole content of `target`.
void write_directory_atomically(const std::filesystem::path& target,
                                const std::vector<std::pair<std::string, std::string>>& files);

/// Removes the temporaries ".<name>.bipq-tmp-*" and ".<name>.bipq-old-*" next to `target` left by writers whose
/// process no longer runs; a ".bipq-old-" one is renamed back to `target` if the target is missing. Returns how
/// many entries it removed or restored. (directory_writer's constructor calls it.)
std::size_t remove_stale_temporaries(const std::filesystem::path& target);

/// A string that differs between any two calls, in this and any other process (pid, time, a counter, a random
/// number): a write id to put in the stamp file of a set.
std::string unique_write_id();

/// Calls `read(dir)` and returns its result, such that everything it read by path under `dir` belongs to one
/// committed set: the file `dir / stamp` (which must differ between any two writes of the set) is read before and
/// after, and the read is repeated while they differ or while a failure coincides with a change. Throws what
/// `read` throws when the stamp did not change (a genuine error), and std::runtime_error naming `dir` when the set
/// changed during every one of `attempts` attempts. When the stamp cannot be read at all, the last attempt is
/// `read(dir)` alone, so that its own error names what is missing.
template <class Read>
auto read_directory_consistently(const std::filesystem::path& dir, const std::string& stamp, Read&& read,
                                 int attempts = 16) -> std::invoke_result_t<Read&, const std::filesystem::path&>;

// ---------------------------------------------------------------------------------------------------------------
namespace detail {

[[noreturn]] inline void directory_fail(const std::string& func, const std::string& what, int err) {
  throw std::runtime_error(func + ": " + what + ": " + std::strerror(err));
}

inline void fsync_path(const std::filesystem::path& p, bool directory, const char* func) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) directory_fail(func, "cannot open " + p.string() + " to flush it", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory (EINVAL): the data is then as safe as that file system makes it.
  if (rc != 0 && !(directory && (err == EINVAL || err == EROFS))) directory_fail(func, "cannot flush " + p.string(), err);
}

inline bool process_is_gone(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// The pid of a temporary named "<prefix><pid>-<n>", or -1.
inline long temporary_pid(std::string_view name, std::string_view prefix) {
  if (name.substr(0, prefix.size()) != prefix) return -1;
  const std::string rest(name.substr(prefix.size()));
  const auto dash = rest.find('-');
  if (dash == 0 || dash == std::string::npos) return -1;
  for (std::size_t i = 0; i < dash; ++i)
    if (rest[i] < '0' || rest[i] > '9') return -1;
  return std::stol(rest.substr(0, dash));
}

inline std::filesystem::path normalized_target(const std::filesystem::path& target, const char* func) {
  std::filesystem::path t = target.lexically_normal();
  if (!t.empty() && !t.has_filename()) t = t.parent_path();  // "dir/" → "dir"
  const std::string name = t.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw std::invalid_argument(std::string(func) + ": 'target' must name a directory, got '" + target.string() + "'");
  return t;
}

inline std::filesystem::path sibling(const std::filesystem::path& target, const std::string& kind) {
  static std::atomic<unsigned long> counter{0};
  return target.parent_path() / ("." + target.filename().string() + ".bipq-" + kind + "-" +
                                 std::to_string(::getpid()) + "-" + std::to_string(counter++));
}

// Exchanges two existing paths atomically; false if the system or file system cannot.
inline bool exchange_paths(const std::filesystem::path& a, const std::filesystem::path& b) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return true;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    directory_fail("directory_writer::commit()", "cannot exchange " + a.string() + " and " + b.string(), errno);
#else
  (void)a, (void)b;
#endif
  return false;
}

inline std::string read_whole_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + p.string());
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("cannot read " + p.string());
  return s;
}

}  // namespace detail

inline std::size_t remove_stale_temporaries(const std::filesystem::path& target_in) {
  namespace fs = std::filesystem;
  const fs::path target = detail::normalized_target(target_in, "remove_stale_temporaries()");
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string base = "." + target.filename().string() + ".bipq-";
  std::error_code ec;
  std::vector<std::pair<fs::path, bool>> stale;  // path, is an old set
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const long tmp_pid = detail::temporary_pid(name, base + "tmp-");
    const long old_pid = detail::temporary_pid(name, base + "old-");
    if (detail::process_is_gone(tmp_pid)) stale.emplace_back(it->path(), false);
    if (detail::process_is_gone(old_pid)) stale.emplace_back(it->path(), true);
  }
  std::size_t n = 0;
  for (const auto& [p, old] : stale) {
    std::error_code e;
    if (old && !fs::exists(target, e)) {
      fs::rename(p, target, e);
      if (!e) {
        ++n;
        continue;
      }
    }
    fs::remove_all(p, e);
    if (!e) ++n;
  }
  return n;
}

inline directory_writer::directory_writer(std::filesystem::path target)
    : target_(detail::normalized_target(target, "directory_writer()")) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!target_.parent_path().empty()) fs::create_directories(target_.parent_path(), ec);
  if (ec) throw std::runtime_error("directory_writer(): cannot create " + target_.parent_path().string() + ": " + ec.message());
  remove_stale_temporaries(target_);
  tmp_ = detail::sibling(target_, "tmp");
  if (::mkdir(tmp_.c_str(), 0755) != 0) detail::directory_fail("directory_writer()", "cannot create " + tmp_.string(), errno);
}

inline directory_writer::~directory_writer() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

inline void directory_writer::write(const std::string& name, std::string_view bytes) {
  namespace fs = std::filesystem;
  static const char* func = "directory_writer::write()";
  if (committed_) throw std::logic_error(std::string(func) + ": the set is already committed");
  const fs::path rel = fs::path(name).lexically_normal();
  if (name.empty() || rel.is_absolute() || rel.empty() || *rel.begin() == ".." || !rel.has_filename())
    throw std::invalid_argument(std::string(func) + ": 'name' must be a relative file path inside the set, got '" + name + "'");
  const fs::path file = tmp_ / rel;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) throw std::runtime_error(std::string(func) + ": cannot create " + file.parent_path().string() + ": " + ec.message());
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) detail::directory_fail(func, "cannot create " + file.string(), errno);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      detail::directory_fail(func, "cannot write " + file.string(), err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    detail::directory_fail(func, "cannot flush " + file.string(), err);
  }
  if (::close(fd) != 0) detail::directory_fail(func, "cannot close " + file.string(), errno);
}

inline void directory_writer::commit() {
  namespace fs = std::filesystem;
  static const char* func = "directory_writer::commit()";
  if (committed_) throw std::logic_error(std::string(func) + ": the set is already committed");
  // 1. Every file and directory of the set on disk, so that the rename never publishes missing data.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(tmp_, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) detail::fsync_path(it->path(), false, func);
    else if (it->is_directory()) detail::fsync_path(it->path(), true, func);
  }
  if (ec) throw std::runtime_error(std::string(func) + ": cannot list " + tmp_.string() + ": " + ec.message());
  detail::fsync_path(tmp_, true, func);
  // 2. The swap.
  const fs::path parent = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
  const fs::file_status st = fs::symlink_status(target_, ec);
  if (st.type() == fs::file_type::not_found) {
    if (::rename(tmp_.c_str(), target_.c_str()) != 0) detail::directory_fail(func, "cannot rename " + tmp_.string() + " to " + target_.string(), errno);
    committed_ = true;
  } else if (st.type() != fs::file_type::directory) {
    throw std::runtime_error(std::string(func) + ": " + target_.string() + " exists and is not a directory");
  } else if (detail::exchange_paths(tmp_, target_)) {
    committed_ = true;  // tmp_ now holds the previous set
    fs::remove_all(tmp_, ec);
  } else {
    const fs::path old = detail::sibling(target_, "old");
    if (::rename(target_.c_str(), old.c_str()) != 0) detail::directory_fail(func, "cannot move " + target_.string() + " aside", errno);
    if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      ::rename(old.c_str(), target_.c_str());  // put the previous set back
      detail::directory_fail(func, "cannot rename " + tmp_.string() + " to " + target_.string(), err);
    }
    committed_ = true;
    fs::remove_all(old, ec);
  }
  detail::fsync_path(parent, true, func);
}

inline void write_directory_atomically(const std::filesystem::path& target,
                                       const std::function<void(directory_writer&)>& fill) {
  directory_writer w(target);
  fill(w);
  w.commit();
}

inline void write_directory_atomically(const std::filesystem::path& target,
                                       const std::vector<std::pair<std::string, std::string>>& files) {
  write_directory_atomically(target, [&](directory_writer& w) {
    for (const auto& [name, bytes] : files) w.write(name, bytes);
  });
}

inline std::string unique_write_id() {
  static std::atomic<unsigned long> counter{0};
  static const unsigned long long salt = std::random_device{}();
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()) + "-" +
         std::to_string(counter++) + "-" + std::to_string(salt);
}

template <class Read>
auto read_directory_consistently(const std::filesystem::path& dir, const std::string& stamp, Read&& read, int attempts)
    -> std::invoke_result_t<Read&, const std::filesystem::path&> {
  auto stamp_now = [&]() -> std::pair<bool, std::string> {
    try {
      return {true, detail::read_whole_file(dir / stamp)};
    } catch (const std::exception&) {
      return {false, {}};
    }
  };
  for (int attempt = 0;; ++attempt) {
    const auto before = stamp_now();
    const bool last = attempt + 1 >= attempts;
    if (!before.first && last) return read(dir);  // no stamp to be found: let `read` report what is missing
    if (before.first) {
      try {
        auto result = read(dir);
        if (stamp_now() == before) return result;
      } catch (...) {
        if (stamp_now() == before || last) throw;  // the set did not change: the failure is the set's own
      }
    }
    if (last)
      throw std::runtime_error("read_directory_consistently(): " + dir.string() + " changed during each of " +
                               std::to_string(attempts) + " attempts to read it");
    std::this_thread::sleep_for(std::chrono::microseconds(100 << std::min(attempt, 6)));
  }
}

}  // namespace bipq::io
