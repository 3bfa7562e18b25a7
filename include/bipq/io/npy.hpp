#pragma once
// NumPy .npy files: masks and pruned weights out, readable by `numpy.load`, and read back with their shape and dtype
// checked. Written as format 1.0 (a 16-bit header length), or 2.0 (a 32-bit one) when the header does not fit in
// 65,535 bytes, as numpy does; read in formats 1.0, 2.0 and 3.0 (3.0 is 2.0 with a UTF-8 header). Writes are atomic: the data goes to "<path>.tmp-<pid>" and is renamed over `path`,
// so a reader never sees a half-written file and an existing file survives a failed write.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

namespace bipq::io {

/// An array read from a .npy file.
template <class T>
struct npy_array {
  std::vector<std::size_t> shape;
  std::vector<T> data;  ///< row-major (C order)
};

/// Writes `data` with `shape` (row-major) to `path` as a little-endian .npy file of dtype float32/float64 (or
/// uint8/16/32/64 for T = std::uint8_t ... std::uint64_t).
/// Throws std::invalid_argument if the shape's product differs from data.size(), std::runtime_error on I/O failure;
/// every message starts "write_npy(): ".
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, std::span<const std::size_t> shape);

/// Reads a .npy file written as float32 (T = float) or float64 (T = double) (or uint8/16/32/64), C order. If `expected_shape` is not
/// empty, the file's shape must equal it. Throws std::runtime_error naming the file on a missing file, a bad magic
/// string, an unknown version, a header longer than the file, another dtype, Fortran order, a shape whose element
/// count overflows size_t, a body that is shorter or longer than the shape says, or a shape mismatch. Nothing is
/// allocated before it is checked against the file size.
template <class T>
npy_array<T> read_npy(const std::filesystem::path& path, std::span<const std::size_t> expected_shape = {});

/// Writes `content` to `path` atomically (temporary file in the same directory, then rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& content);

// ---------------------------------------------------------------------------------------------------------------
namespace detail {

static_assert(std::endian::native == std::endian::little, "bipq::io::npy: big-endian hosts are not supported");

template <class T>
constexpr const char* npy_descr() {
  if constexpr (std::is_same_v<T, float>) return "<f4";
  else if constexpr (std::is_same_v<T, double>) return "<f8";
  // Unsigned integers: sparse tensors' indices.
  else if constexpr (std::is_same_v<T, std::uint8_t>) return "|u1";
  else if constexpr (std::is_same_v<T, std::uint16_t>) return "<u2";
  else if constexpr (std::is_same_v<T, std::uint32_t>) return "<u4";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "<u8";
  else static_assert(sizeof(T) == 0, "npy: only float, double and uint8/16/32/64 are supported");
}

inline std::string npy_shape_string(std::span<const std::size_t> shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

/// write_file_atomically, with the errors attributed to `func` and its argument `arg`.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& content, const char* func,
                                  const char* arg) {
  const std::string where = std::string(func) + "(): " + arg + ": ";
  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(where + "cannot open " + tmp.string() + " for writing (" + std::strerror(errno) + ")");
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      const int err = errno;
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error(where + "cannot write " + tmp.string() + " (" + std::strerror(err) + ")");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::runtime_error(where + "cannot rename to " + path.string() + " (" + ec.message() + ")");
  }
}

[[noreturn]] inline void npy_fail(const std::filesystem::path& path, const std::string& what) {
  throw std::runtime_error("read_npy(): " + path.string() + ": " + what);
}

}  // namespace detail

inline void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  detail::write_file_atomically(path, content, "write_file_atomically", "path");
}

template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, std::span<const std::size_t> shape) {
  std::size_t count = 1;
  for (std::size_t s : shape) {
    if (s != 0 && count > std::numeric_limits<std::size_t>::max() / s)
      throw std::invalid_argument("write_npy(): shape " + detail::npy_shape_string(shape) +
                                  " has more elements than size_t can count");
    count *= s;
  }
  if (count != data.size()) {
    throw std::invalid_argument("write_npy(): shape " + detail::npy_shape_string(shape) + " has " +
                                std::to_string(count) + " elements but data has " + std::to_string(data.size()));
  }
  std::string header = std::string("{'descr': '") + detail::npy_descr<T>() +
                       "', 'fortran_order': False, 'shape': " + detail::npy_shape_string(shape) + ", }";
  // magic (6) + version (2) + header length (2 in format 1.0, 4 in 2.0) + header, padded with spaces and a final
  // '\n' so that the data starts at a multiple of 64 bytes. Format 2.0 only when 1.0's 16-bit length cannot hold it.
  auto padded_length = [&](std::size_t prefix) {
    const std::size_t unpadded = prefix + header.size() + 1;
    return header.size() + 1 + (64 - unpadded % 64) % 64;
  };
  const bool version2 = padded_length(10) > 65535;
  const std::size_t prefix = version2 ? 12 : 10;
  const std::size_t len = padded_length(prefix);
  if (len > std::numeric_limits<std::uint32_t>::max())
    throw std::invalid_argument("write_npy(): shape " + std::to_string(shape.size()) +
                                " dimensions make a header longer than format 2.0 can hold");
  header.append(len - header.size() - 1, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += version2 ? '\x02' : '\x01';
  out += '\x00';
  for (std::size_t b = 0; b < prefix - 8; ++b) out += static_cast<char>((len >> (8 * b)) & 0xff);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T));
  detail::write_file_atomically(path, out, "write_npy", "path");
}

template <class T>
npy_array<T> read_npy(const std::filesystem::path& path, std::span<const std::size_t> expected_shape) {
  std::error_code ec;
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) detail::npy_fail(path, "cannot open file");
  char preamble[12];
  if (!in.read(preamble, 10)) detail::npy_fail(path, "file too short for a .npy header");
  if (std::string(preamble, 6) != "\x93NUMPY") detail::npy_fail(path, "bad magic string (not a .npy file)");
  const int version = static_cast<unsigned char>(preamble[6]);
  if (version < 1 || version > 3) detail::npy_fail(path, "unsupported .npy version " + std::to_string(version));
  // Format 1.0: a 16-bit little-endian header length; 2.0 and 3.0: a 32-bit one.
  std::size_t prefix = 10;
  if (version >= 2) {
    if (!in.read(preamble + 10, 2)) detail::npy_fail(path, "file too short for a .npy header");
    prefix = 12;
  }
  std::uintmax_t header_len = 0;
  for (std::size_t b = prefix; b-- > 8;) header_len = (header_len << 8) | static_cast<unsigned char>(preamble[b]);
  if (header_len > file_size - prefix)
    detail::npy_fail(path, "truncated header: " + std::to_string(header_len) + " bytes claimed, " +
                               std::to_string(file_size - prefix) + " present");
  std::string header(static_cast<std::size_t>(header_len), '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) detail::npy_fail(path, "truncated header");

  const std::string descr = std::string("'descr': '") + detail::npy_descr<T>() + "'";
  if (header.find(descr) == std::string::npos)
    detail::npy_fail(path, std::string("dtype is not ") + detail::npy_descr<T>() + " (header: " + header + ")");
  if (header.find("'fortran_order': False") == std::string::npos) detail::npy_fail(path, "Fortran order is not supported");
  const auto open = header.find("'shape': (");
  const auto close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) detail::npy_fail(path, "no shape in header");

  npy_array<T> result;
  std::size_t count = 1;
  bool overflow = false;
  const std::string dims = header.substr(open + 10, close - (open + 10));
  std::size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos == dims.size()) break;
    std::size_t end = pos;
    while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
    if (end == pos || end - pos > 15) detail::npy_fail(path, "malformed shape '" + dims + "'");
    const std::size_t dim = std::stoull(dims.substr(pos, end - pos));
    result.shape.push_back(dim);
    // The product, checked: a count that wraps around would let a little data pass for a huge shape.
    if (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim) overflow = true;
    count *= dim;
    pos = end;
  }
  if (std::find(result.shape.begin(), result.shape.end(), std::size_t(0)) != result.shape.end()) {
    count = 0;
    overflow = false;
  }
  if (overflow)
    detail::npy_fail(path, "shape " + detail::npy_shape_string(result.shape) + " has more elements than size_t can count"
                           " (its element count overflows size_t)");
  if (!expected_shape.empty() &&
      !std::equal(expected_shape.begin(), expected_shape.end(), result.shape.begin(), result.shape.end())) {
    detail::npy_fail(path, "shape " + detail::npy_shape_string(result.shape) + " differs from the expected " +
                               detail::npy_shape_string(expected_shape));
  }
  // The body must hold exactly count elements: compare with the file size before allocating.
  const std::uintmax_t body = file_size - prefix - header_len;
  if (count > std::numeric_limits<std::uintmax_t>::max() / sizeof(T) || body != count * sizeof(T)) {
    const std::string present = body % sizeof(T) == 0 ? std::to_string(body / sizeof(T)) + " elements present"
                                                       : std::to_string(body) + " bytes present";
    detail::npy_fail(path, std::string(body < count * sizeof(T) ? "truncated data" : "data longer than its shape") +
                               ": shape " + detail::npy_shape_string(result.shape) + " has " + std::to_string(count) +
                               " elements, " + present);
  }
  result.data.resize(count);
  if (!in.read(reinterpret_cast<char*>(result.data.data()), static_cast<std::streamsize>(count * sizeof(T))))
    detail::npy_fail(path, "truncated data");
  return result;
}

}  // namespace bipq::io
