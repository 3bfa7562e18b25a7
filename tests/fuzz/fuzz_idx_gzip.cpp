// libFuzzer harness: bipq::io::read_idx on gzip files. The first input byte chooses how the rest becomes a file, so
// that both the IDX parser behind a valid gzip stream and the gzip layer itself are reached:
//   0: the rest gzip-compressed (a valid stream holding arbitrary IDX bytes);
//   1: compressed, then cut at a position taken from the second byte (a truncated stream);
//   2: compressed, then the rest appended again raw (bytes after the member);
//   3: compressed twice, as two members (a valid multi-member file);
//   otherwise: 0x1f 0x8b followed by the rest raw (an arbitrary, usually corrupt, stream).
// A corrupt file must give std::runtime_error, never a crash, a leak, a hang or an allocation beyond what it holds.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <zlib.h>

#include "bipq/io/idx.hpp"
#include "fuzz_input_file.hpp"

namespace {

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(size)) + 32);
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) __builtin_trap();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0], cut = data[1];
  const std::uint8_t* rest = data + 1;
  const std::size_t n = size - 1;
  std::vector<std::uint8_t> file;
  switch (mode) {
    case 0: file = gzip(rest, n); break;
    case 1:
      file = gzip(rest + 1, n - 1);
      file.resize(file.size() * cut / 256);
      break;
    case 2:
      file = gzip(rest, n);
      file.insert(file.end(), rest, rest + n);
      break;
    case 3: {
      file = gzip(rest, n / 2);
      const auto second = gzip(rest + n / 2, n - n / 2);
      file.insert(file.end(), second.begin(), second.end());
      break;
    }
    default:
      file = {0x1f, 0x8b};
      file.insert(file.end(), rest, rest + n);
      break;
  }
  try {
    const bipq::io::idx_array a = bipq::io::read_idx(bipq_fuzz::input_file(file.data(), file.size()));
    std::size_t count = 1;
    for (std::size_t d : a.dims) count *= d;
    if (a.dims.empty() || count != a.data.size()) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
