// libFuzzer harness: bipq::io::read_checkpoint on arbitrary bytes, twice: as given, and with the input as the payload
// behind a valid header (magic, version, size and FNV-1a checksum recomputed), so that the fuzzer reaches the field
// parser behind the checksum. A malformed file must give checkpoint_error (a std::runtime_error), never a crash, a
// leak, a hang or an allocation beyond what the bytes hold; an accepted file, serialised again (fields in name
// order), must be read back to the same serialisation.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bipq/io/checkpoint.hpp"

namespace {

bipq::io::checkpoint_data read(std::string_view bytes) {
  return bipq::io::read_checkpoint(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
}

void parse(std::string_view bytes) {
  std::string canonical;
  try {
    canonical = read(bytes).serialize();
  } catch (const std::runtime_error&) {
    return;
  }
  if (read(canonical).serialize() != canonical) __builtin_trap();  // throws (uncaught: a finding) if refused
}

template <class V>
void append(std::string& s, V v) {
  char b[sizeof(V)];
  std::memcpy(b, &v, sizeof(V));
  s.append(b, sizeof(V));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  parse(input);
  std::string framed = "BIPQCKPT";
  append(framed, bipq::io::checkpoint_data::version);
  append(framed, std::uint32_t{0});
  append(framed, static_cast<std::uint64_t>(size));
  append(framed, bipq::io::checkpoint_data::fnv1a(input));
  framed.append(input);
  parse(framed);
  return 0;
}
