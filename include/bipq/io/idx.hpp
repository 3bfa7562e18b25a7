#pragma once
// IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed, with every size checked before it is used.
//
// Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number 0x00 0x00 <type> <ndims>, then
// ndims big-endian uint32 dimensions, then prod(dims) elements in row-major order. bipq reads type 0x08 (unsigned
// byte), the type of every MNIST-like dataset. A file that starts with the gzip magic bytes 0x1f 0x8b is inflated
// through zlib (available when bipq was configured with zlib: BIPQ_HAS_ZLIB=1); any other file is read raw.
// A gzip file may hold several members (RFC 1952, section 2.2: they are one stream, as `gunzip` reads them); any
// other byte after the last member is an error.
//
// The reader never allocates what the file does not hold: a raw body is checked against the file size before it
// is allocated, a gzip body grows (by doubling) as it is inflated, so a 24-byte file claiming 2^31 elements costs
// no more than its 24 bytes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
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
/// trailing bytes after the body, a corrupt or truncated gzip stream, bytes after the last gzip member, or a .gz file
/// when bipq was built without zlib. Never reads past the data it has checked, and never allocates more than the
/// file holds (a raw body is checked against the file size first; a gzip body grows as it is inflated).
inline idx_array read_idx(const std::filesystem::path& file, std::size_t expected_ndims = 0);

namespace detail {

/// A sequential byte source over a raw or gzip file; `read` returns the number of bytes read (short at the end).
class idx_source {
 public:
  explicit idx_source(const std::filesystem::path& file) : name_(file.string()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) fail("file does not exist or is not a regular file");
    file_size_ = std::filesystem::file_size(file, ec);
    if (ec) fail("cannot read the file size");
    in_.open(file, std::ios::binary);
    if (!in_) fail("cannot open file");
    unsigned char head[2] = {0, 0};
    in_.read(reinterpret_cast<char*>(head), 2);
    const auto probed = static_cast<std::size_t>(in_.gcount());
    gzip_ = probed == 2 && head[0] == 0x1f && head[1] == 0x8b;
    if (gzip_) {
#if defined(BIPQ_HAS_ZLIB)
      buffer_.resize(std::size_t(1) << 16);
      std::memcpy(buffer_.data(), head, 2);
      zs_.next_in = buffer_.data();
      zs_.avail_in = 2;
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) fail("cannot initialise zlib");  // 16: gzip wrapper only
      zlib_ready_ = true;
#else
      fail("gzip-compressed file but bipq was built without zlib (BIPQ_HAS_ZLIB); decompress it first");
#endif
    } else {
      in_.clear();
      in_.seekg(0);
      if (!in_) fail("cannot read file");
    }
  }
  idx_source(const idx_source&) = delete;
  idx_source& operator=(const idx_source&) = delete;
  ~idx_source() {
#if defined(BIPQ_HAS_ZLIB)
    if (zlib_ready_) inflateEnd(&zs_);
#endif
  }

  bool gzip() const noexcept { return gzip_; }

  /// Raw files: the bytes not read yet (the file size less what was read).
  std::uintmax_t raw_remaining() const noexcept { return file_size_ > consumed_ ? file_size_ - consumed_ : 0; }

  std::size_t read(void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    std::size_t done = 0;
    if (gzip_) {
#if defined(BIPQ_HAS_ZLIB)
      while (done < n) {
        const std::size_t got = inflate_some(p + done, n - done);
        if (got == 0) break;
        done += got;
      }
#endif
    } else {
      in_.read(reinterpret_cast<char*>(p), static_cast<std::streamsize>(n));
      done = static_cast<std::size_t>(in_.gcount());
      consumed_ += done;
    }
    return done;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("read_idx(): " + name_ + ": " + what);
  }

 private:
#if defined(BIPQ_HAS_ZLIB)
  /// Tops the input buffer up from the file, keeping the unread bytes; returns false at the end of the file.
  bool refill() {
    if (in_eof_) return false;
    if (zs_.avail_in > 0 && zs_.next_in != buffer_.data()) std::memmove(buffer_.data(), zs_.next_in, zs_.avail_in);
    zs_.next_in = buffer_.data();
    in_.read(reinterpret_cast<char*>(buffer_.data() + zs_.avail_in),
             static_cast<std::streamsize>(buffer_.size() - zs_.avail_in));
    const auto got = static_cast<uInt>(in_.gcount());
    zs_.avail_in += got;
    if (got == 0) in_eof_ = true;
    return got > 0;
  }

  /// Inflates up to n bytes into out: n, or 0 at the end of the last member. Throws on a corrupt or truncated
  /// stream and on bytes after the last member that do not start another member.
  std::size_t inflate_some(unsigned char* out, std::size_t n) {
    zs_.next_out = out;
    zs_.avail_out = static_cast<uInt>(std::min<std::size_t>(n, std::numeric_limits<uInt>::max()));
    const uInt asked = zs_.avail_out;
    while (zs_.avail_out > 0) {
      if (member_ended_) {
        while (zs_.avail_in < 2 && refill()) {
        }
        if (zs_.avail_in == 0) break;  // the end of the last member is the end of the file: the end of the data
        if (zs_.avail_in < 2 || zs_.next_in[0] != 0x1f || zs_.next_in[1] != 0x8b)
          fail("trailing bytes after the gzip stream (" + std::to_string(zs_.avail_in) + " or more)");
        if (inflateReset(&zs_) != Z_OK) fail("cannot reset zlib");
        member_ended_ = false;
      }
      if (zs_.avail_in == 0) refill();
      const uInt in_before = zs_.avail_in, out_before = zs_.avail_out;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
      } else if (rc == Z_BUF_ERROR || (rc == Z_OK && in_before == zs_.avail_in && out_before == zs_.avail_out)) {
        // No progress: more input is needed, and there is none.
        if (zs_.avail_in == 0 && in_eof_) fail("truncated gzip stream");
        if (zs_.avail_in > 0) fail("corrupt gzip stream (no progress)");
      } else if (rc != Z_OK) {
        fail(std::string("corrupt gzip stream (") + (zs_.msg != nullptr ? zs_.msg : "zlib error " + std::to_string(rc)) +
             ")");
      }
    }
    return asked - zs_.avail_out;
  }

  z_stream zs_{};
  bool zlib_ready_ = false;
  bool member_ended_ = false;
  bool in_eof_ = false;
  std::vector<unsigned char> buffer_;
#endif
  std::string name_;
  std::ifstream in_;
  bool gzip_ = false;
  std::uintmax_t file_size_ = 0;
  std::uintmax_t consumed_ = 0;
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
  auto truncated = [&](std::uintmax_t present) {
    in.fail("truncated body: " + std::to_string(present) + " of " + std::to_string(total) + " bytes present");
  };
  if (!in.gzip()) {
    // The file size says how much body there is: check it before allocating.
    if (in.raw_remaining() < total) truncated(in.raw_remaining());
    a.data.resize(total);
    const std::size_t got = in.read(a.data.data(), total);
    if (got != total) truncated(got);
  } else {
    // The inflated size is known only by inflating: grow by doubling (from 64 KiB) as the data arrives, so the
    // allocation stays within twice what the stream holds.
    std::size_t have = 0;
    while (have < total) {
      const std::size_t step = std::min(total - have, std::max<std::size_t>(have, std::size_t(1) << 16));
      a.data.resize(have + step);
      const std::size_t got = in.read(a.data.data() + have, step);
      have += got;
      if (got < step) truncated(have);
    }
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) in.fail("trailing bytes after the " + std::to_string(total) + "-byte body");
  return a;
}

}  // namespace bipq::io
