#pragma once
// IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed, with every size checked before it is used.
//
// Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number 0x00 0x00 <type> <ndims>, then
// ndims big-endian uint32 dimensions, then prod(dims) elements in row-major order. bipq reads type 0x08 (unsigned
// byte), the type of every MNIST-like dataset. A file that starts with the gzip magic bytes 0x1f 0x8b is inflated
// through zlib (available when bipq was configured with zlib: BIPQ_HAS_ZLIB=1); any other file is read raw.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(BIPQ_HAS_ZLIB)
#include <zlib.h>
#endif

namespace bipq::io {

/// An unsigned-byte IDX array: its dimensions and its elements in row-major order.
struct idx_array {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> data;  ///< prod(dims) elements
};

/// Reads an IDX file of unsigned bytes (type 0x08), raw or gzip-compressed (detected from the content, not the name).
/// `expected_ndims` (if nonzero) is the number of dimensions required (3 for images, 1 for labels).
/// Throws std::runtime_error naming the file on: a missing or unreadable file, a bad magic number, another element
/// type, a wrong number of dimensions, a zero or absurd dimension (more than 2^31 elements), a truncated body,
/// trailing bytes after the body, a corrupt gzip stream, or a .gz file when bipq was built without zlib.
/// Never reads past the data it has checked.
inline idx_array read_idx(const std::filesystem::path& file, std::size_t expected_ndims = 0);

namespace detail {

/// A sequential byte source over a raw or gzip file; `read` returns the number of bytes read (short at the end).
class idx_source {
 public:
  explicit idx_source(const std::filesystem::path& file) : name_(file.string()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) fail("file does not exist or is not a regular file");
    unsigned char head[2] = {0, 0};
    {
      std::ifstream probe(file, std::ios::binary);
      if (!probe) fail("cannot open file");
      probe.read(reinterpret_cast<char*>(head), 2);
    }
    gzip_ = head[0] == 0x1f && head[1] == 0x8b;
    if (gzip_) {
#if defined(BIPQ_HAS_ZLIB)
      gz_ = gzopen(name_.c_str(), "rb");
      if (gz_ == nullptr) fail("cannot open gzip file");
#else
      fail("gzip-compressed file but bipq was built without zlib (BIPQ_HAS_ZLIB); decompress it first");
#endif
    } else {
      raw_.open(file, std::ios::binary);
      if (!raw_) fail("cannot open file");
    }
  }
  idx_source(const idx_source&) = delete;
  idx_source& operator=(const idx_source&) = delete;
  ~idx_source() {
#if defined(BIPQ_HAS_ZLIB)
    if (gz_ != nullptr) gzclose(gz_);
#endif
  }

  std::size_t read(void* out, std::size_t n) {
    auto* p = static_cast<char*>(out);
    std::size_t done = 0;
    if (gzip_) {
#if defined(BIPQ_HAS_ZLIB)
      while (done < n) {
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
        const int got = gzread(gz_, p + done, chunk);
        if (got < 0) {
          int errnum = 0;
          const char* msg = gzerror(gz_, &errnum);
          fail(std::string("corrupt gzip stream (") + (msg != nullptr ? msg : "unknown zlib error") + ")");
        }
        if (got == 0) {
          int errnum = 0;
          const char* msg = gzerror(gz_, &errnum);
          if (errnum != Z_OK && errnum != Z_BUF_ERROR)  // Z_BUF_ERROR: the stream ends mid-way (truncated .gz)
            fail(std::string("corrupt gzip stream (") + (msg != nullptr ? msg : "unknown zlib error") + ")");
          if (errnum == Z_BUF_ERROR) fail("truncated gzip stream");
          break;
        }
        done += static_cast<std::size_t>(got);
      }
#endif
    } else {
      raw_.read(p, static_cast<std::streamsize>(n));
      done = static_cast<std::size_t>(raw_.gcount());
    }
    return done;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("read_idx(): " + name_ + ": " + what);
  }

 private:
  std::string name_;
  bool gzip_ = false;
  std::ifstream raw_;
#if defined(BIPQ_HAS_ZLIB)
  gzFile gz_ = nullptr;
#endif
};

}  // namespace detail

inline idx_array read_idx(const std::filesystem::path& file, std::size_t expected_ndims) {
  detail::idx_source in(file);
  unsigned char magic[4];
  if (in.read(magic, 4) != 4) in.fail("truncated header (shorter than the 4-byte magic number)");
  if (magic[0] != 0 || magic[1] != 0) in.fail("bad magic number (not an IDX file)");
  if (magic[2] != 0x08) {
    const char* hex = "0123456789abcdef";
    in.fail(std::string("unsupported element type 0x") + hex[magic[2] >> 4] + hex[magic[2] & 15] +
            " (only 0x08, unsigned byte)");
  }
  const std::size_t ndims = magic[3];
  if (ndims == 0) in.fail("bad magic number (zero dimensions)");
  if (expected_ndims != 0 && ndims != expected_ndims)
    in.fail("has " + std::to_string(ndims) + " dimensions, expected " + std::to_string(expected_ndims));

  idx_array a;
  constexpr std::size_t max_elements = std::size_t(1) << 31;
  std::size_t total = 1;
  for (std::size_t d = 0; d < ndims; ++d) {
    unsigned char b[4];
    if (in.read(b, 4) != 4) in.fail("truncated header (dimension " + std::to_string(d) + ")");
    const std::size_t dim = (std::size_t(b[0]) << 24) | (std::size_t(b[1]) << 16) | (std::size_t(b[2]) << 8) | b[3];
    if (dim == 0) in.fail("dimension " + std::to_string(d) + " is zero");
    if (dim > max_elements || total > max_elements / dim) in.fail("dimensions are too large (more than 2^31 elements)");
    total *= dim;
    a.dims.push_back(dim);
  }
  a.data.resize(total);
  const std::size_t got = in.read(a.data.data(), total);
  if (got != total)
    in.fail("truncated body: " + std::to_string(got) + " of " + std::to_string(total) + " bytes present");
  unsigned char extra;
  if (in.read(&extra, 1) != 0) in.fail("trailing bytes after the " + std::to_string(total) + "-byte body");
  return a;
}

}  // namespace bipq::io
