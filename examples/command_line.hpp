#pragma once
// What the command-line examples share: the loop over `--flag value` pairs with --help, a one-line error with a
// non-zero exit, strict number parsing and list splitting, and checks of output paths made before any work starts.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace examples {

/// Prints "<program>: <message> (see --help)" to stderr and exits with status 2.
[[noreturn]] inline void fail(const char* program, const std::string& message) {
  std::cerr << program << ": " << message << " (see --help)\n";
  std::exit(2);
}

/// The whole of `text` as a T, or a one-line error naming the flag (a sign on an unsigned count is an error, not a
/// wrap-around to 2^64 - 1).
template <class T>
T parse_number(const char* program, const std::string& flag, const std::string& text) {
  const bool bad_start = text.empty() || std::isspace(static_cast<unsigned char>(text.front())) ||
                         (std::is_unsigned_v<T> && (text.front() == '-' || text.front() == '+'));
  std::istringstream in(text);
  T value{};
  if (bad_start || !(in >> value) || !in.eof()) fail(program, "invalid value '" + text + "' for " + flag);
  return value;
}

/// The fields of a comma-separated list, empty ones included ("a,,b" and "a," have an empty field), so that a caller
/// can refuse them.
inline std::vector<std::string> split_list(const std::string& text, char separator = ',') {
  std::vector<std::string> fields(1);
  for (const char c : text) {
    if (c == separator) fields.emplace_back();
    else fields.back() += c;
  }
  return fields;
}

/// Why `dir` cannot receive a new file, or nothing if it can: it must be an existing directory in which a file can
/// be created. Tried by creating (and removing) a file in it, since permission bits do not tell (root ignores them,
/// a read-only mount or /proc refuses anyway).
inline std::optional<std::string> directory_problem(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) return "directory " + dir.string() + " does not exist";
  if (!fs::is_directory(st)) return dir.string() + " is not a directory";
  const fs::path probe = dir / (".bipq-write-check-" + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return "cannot create files in " + dir.string() + " (" + std::strerror(errno) + ")";
  ::close(fd);
  ::unlink(probe.c_str());
  return std::nullopt;
}

/// A program's command line of `--flag value` pairs, and of `switches` that take no value (passed to on_flag with an
/// empty value). `--help` (or `-h`) prints the usage text and exits with status 0; a flag without a value, and every
/// error reported through fail(), is one line on stderr and exit status 2.
class command_line {
 public:
  command_line(const char* program, const char* usage, std::vector<std::string> switches = {})
      : program_(program), usage_(usage), switches_(std::move(switches)) {}

  /// Prints "<program>: <message> (see --help)" to stderr and exits with status 2.
  [[noreturn]] void fail(const std::string& message) const { examples::fail(program_, message); }

  /// The whole of `text` as a T (parse_number), or a one-line error naming the flag.
  template <class T>
  T number(const std::string& flag, const std::string& text) const {
    return parse_number<T>(program_, flag, text);
  }

  /// Exits with a one-line error naming `flag` unless a file can be written at `path`: its directory exists and takes
  /// new files, and `path` is not a directory. For every output flag (--csv, --export, --checkpoint's files), called
  /// before the first epoch so that a bad path costs nothing.
  void check_output_file(const std::string& flag, const std::string& path) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (path.empty()) fail("empty path for " + flag);
    const fs::path p(path);
    if (fs::is_directory(p, ec)) fail("cannot write " + flag + " " + path + ": it is a directory");
    const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    if (const auto problem = directory_problem(parent)) fail("cannot write " + flag + " " + path + ": " + *problem);
  }

  /// Exits with a one-line error naming `flag` unless `path` is a directory that takes new files, or can be created:
  /// its nearest existing ancestor is a directory that takes new files. Creates nothing.
  void check_output_directory(const std::string& flag, const std::string& path) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (path.empty()) fail("empty path for " + flag);
    fs::path p = fs::absolute(fs::path(path), ec).lexically_normal();
    if (ec) p = fs::path(path);
    if (fs::exists(p, ec) && !fs::is_directory(p, ec)) fail("cannot write " + flag + " " + path + ": not a directory");
    fs::path existing = p;
    while (!fs::exists(existing, ec) && existing.has_parent_path() && existing.parent_path() != existing)
      existing = existing.parent_path();
    if (const auto problem = directory_problem(existing)) fail("cannot write " + flag + " " + path + ": " + *problem);
  }

  /// Calls on_flag(flag, value) for each pair of argv in order. on_flag handles an unknown flag itself (with fail()),
  /// so that each program words that error as it always has.
  template <class OnFlag>
  void parse(int argc, char** argv, OnFlag&& on_flag) const {
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        std::cout << usage_;
        std::exit(0);
      }
      if (std::find(switches_.begin(), switches_.end(), flag) != switches_.end()) {
        on_flag(flag, std::string());
        continue;
      }
      if (i + 1 >= argc) fail("missing value for " + flag);
      const std::string value = argv[++i];
      on_flag(flag, value);
    }
  }

 private:
  const char* program_;
  const char* usage_;
  std::vector<std::string> switches_;
};

}  // namespace examples
