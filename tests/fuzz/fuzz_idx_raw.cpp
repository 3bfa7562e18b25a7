// libFuzzer harness: bipq::io::read_idx on arbitrary bytes (raw IDX files, and gzip when the bytes start with
// 0x1f 0x8b). A corrupt file must give std::runtime_error, never a crash, a leak, a hang or an allocation beyond
// what the file holds; a file that is accepted must have a body of exactly prod(dims) bytes.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "bipq/io/idx.hpp"
#include "fuzz_input_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& file = bipq_fuzz::input_file(data, size);
  try {
    const bipq::io::idx_array a = bipq::io::read_idx(file);
    std::size_t count = 1;
    for (std::size_t d : a.dims) count *= d;
    if (a.dims.empty() || count != a.data.size()) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
