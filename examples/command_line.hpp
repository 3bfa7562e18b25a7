#pragma once
// What the command-line examples share: a one-line error with a non-zero exit, and strict number parsing.

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

namespace examples {

/// Prints "<program>: <message> (see --help)" to stderr and exits with status 2.
[[noreturn]] inline void fail(const char* program, const std::string& message) {
  std::cerr << program << ": " << message << " (see --help)\n";
  std::exit(2);
}

/// The whole of `text` as a T, or a one-line error naming the flag.
template <class T>
T parse_number(const char* program, const std::string& flag, const std::string& text) {
  std::istringstream in(text);
  T value{};
  if (!(in >> value) || !in.eof()) fail(program, "invalid value '" + text + "' for " + flag);
  return value;
}

}  // namespace examples
