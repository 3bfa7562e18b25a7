#pragma once
// What the command-line examples share: a one-line error with a non-zero exit, and strict number parsing.

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>

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

}  // namespace examples
