#pragma once
// The readers under fuzzing take a path, so each input is written to a file of this process (in /dev/shm when it
// exists, so that no disk is touched) and read back through the public reader, as a user's file would be.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace bipq_fuzz {

/// Writes `size` bytes to this process's input file and returns its path (the same path for every input).
inline const std::filesystem::path& input_file(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path path = [] {
    std::error_code ec;
    const std::filesystem::path dir =
        std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
    return dir / ("bipq-fuzz-input-" + std::to_string(::getpid()));
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();  // the harness itself cannot work: stop loudly, not as a finding of the reader
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  if (std::fclose(f) != 0) __builtin_trap();
  return path;
}

}  // namespace bipq_fuzz
