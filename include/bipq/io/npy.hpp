#pragma once
// NumPy .npy files (format version 1.0): masks and pruned weights out, readable by `numpy.load`, and read back with
// their shape and dtype checked. Writes are atomic: the data goes to "<path>.tmp-<pid>" and is renamed over `path`,
// so a reader never sees a half-written file and an existing file survives a failed write.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

#include <bit>
#include <cstdint>
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
/// Throws std::invalid_argument if the shape's product differs from data.size(), std::runtime_error on I/O failure.
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, std::span<const std::size_t> shape);

/// Reads a .npy file written as float32 (T = float) or float64 (T = double) (or uint8/16/32/64), C order. If `expected_shape` is not
/// empty, the file's shape must equal it. Throws std::runtime_error naming the file on a missing file, a bad magic
/// string, another dtype, Fortran order, a truncated body or a shape mismatch.
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

[[noreturn]] inline void npy_fail(const std::filesystem::path& path, const std::string& what) {
  throw std::runtime_error("read_npy(): " + path.string() + ": " + what);
}

}  // namespace detail

inline void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("write_file_atomically(): cannot open " + tmp.string() + " for writing");
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error("write_file_atomically(): cannot write " + tmp.string());
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("write_file_atomically(): cannot rename to " + path.string());
  }
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
  // magic (6) + version (2) + header length (2) + header, padded with spaces and a final '\n' to a multiple of 64.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  const auto len = static_cast<std::uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T));
  write_file_atomically(path, out);
}

template <class T>
npy_array<T> read_npy(const std::filesystem::path& path, std::span<const std::size_t> expected_shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::npy_fail(path, "cannot open file");
  char preamble[10];
  if (!in.read(preamble, 10)) detail::npy_fail(path, "file too short for a .npy header");
  if (std::string(preamble, 6) != "\x93NUMPY") detail::npy_fail(path, "bad magic string (not a .npy file)");
  if (preamble[6] != 1) detail::npy_fail(path, "unsupported .npy version " + std::to_string(int(preamble[6])));
  const std::size_t header_len =
      static_cast<unsigned char>(preamble[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(preamble[9])) << 8);
  std::string header(header_len, '\0');
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
  const std::string dims = header.substr(open + 10, close - (open + 10));
  std::size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos == dims.size()) break;
    std::size_t end = pos;
    while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
    if (end == pos || end - pos > 15) detail::npy_fail(path, "malformed shape '" + dims + "'");
    result.shape.push_back(std::stoull(dims.substr(pos, end - pos)));
    count *= result.shape.back();
    pos = end;
  }
  if (!expected_shape.empty() &&
      !std::equal(expected_shape.begin(), expected_shape.end(), result.shape.begin(), result.shape.end())) {
    detail::npy_fail(path, "shape " + detail::npy_shape_string(result.shape) + " differs from the expected " +
                               detail::npy_shape_string(expected_shape));
  }
  // The body must hold exactly count elements: compare with the file size before allocating.
  const auto body_start = static_cast<std::uintmax_t>(in.tellg());
  std::error_code ec;
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec || file_size < body_start || (file_size - body_start) / sizeof(T) < count)
    detail::npy_fail(path, "truncated data: expected " + std::to_string(count) + " elements");
  result.data.resize(count);
  if (!in.read(reinterpret_cast<char*>(result.data.data()), static_cast<std::streamsize>(count * sizeof(T))))
    detail::npy_fail(path, "truncated data");
  return result;
}

}  // namespace bipq::io
