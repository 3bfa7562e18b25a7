// libFuzzer harness: bipq::io::read_npy<float> and read_npy<double> on arbitrary bytes. A malformed file must give
// std::runtime_error, never a crash, a leak, a hang or an allocation beyond what the file holds; a file that is
// accepted must have exactly prod(shape) elements.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "bipq/io/npy.hpp"
#include "fuzz_input_file.hpp"

namespace {

template <class T>
void read_as(const std::filesystem::path& file) {
  try {
    const auto a = bipq::io::read_npy<T>(file);
    std::size_t count = 1;
    for (std::size_t d : a.shape) count *= d;
    if (count != a.data.size()) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& file = bipq_fuzz::input_file(data, size);
  read_as<float>(file);
  read_as<double>(file);
  return 0;
}
