#pragma once
// bipq's version, as in the project() call of the top-level CMakeLists.txt (a configure-time check in
// tests/CMakeLists.txt keeps the two equal). Recorded in the files bipq writes (e.g. a model's index.json).

#include <string_view>

#define BIPQ_VERSION_MAJOR 0
#define BIPQ_VERSION_MINOR 1
#define BIPQ_VERSION_PATCH 0

namespace bipq {
/// "major.minor.patch".
inline constexpr std::string_view version = "0.1.0";
}  // namespace bipq
