#pragma once
// What the command-line examples share: the loop over `--flag value` pairs with --help, a one-line error with a
// non-zero exit, and strict number parsing.

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
