// .npy round trips, numpy interoperability, validation of shape and dtype, atomic writes; headers too long for
// format 1.0, element counts that overflow or disagree with the data present.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bipq/io/npy.hpp"
#include "largest_allocation.hpp"

namespace fs = std::filesystem;

namespace {
fs::path scratch_dir() {
  fs::path d = fs::temp_directory_path() / ("bipq_test_npy_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
// Debian's interpreter first: python3-numpy installs numpy for it, not for another python3 earlier on PATH.
std::string python() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }
bool have_numpy() { return std::system((python() + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0; }

// A .npy file of format `version` with the given header dictionary (padded to 64 bytes with a final newline) and
// `body` after it, written byte by byte here, independently of write_npy.
void write_npy_by_hand(const fs::path& p, int version, std::string dict, const std::string& body) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  dict.append((64 - (prefix + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  for (std::size_t b = 0; b < prefix - 8; ++b) out += static_cast<char>((dict.size() >> (8 * b)) & 0xff);
  std::ofstream(p, std::ios::binary) << out << dict << body;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST_CASE("write_npy then read_npy gives back shape and values bit for bit") {
  const fs::path dir = scratch_dir();
  std::vector<float> w{0.0f, -1.5f, 3.25f, 1e-30f, 7.0f, -0.0f};
  const std::vector<std::size_t> shape{2, 3};
  bipq::io::write_npy<float>(dir / "w.npy", w, shape);
  auto back = bipq::io::read_npy<float>(dir / "w.npy", shape);
  CHECK(back.shape == shape);
  CHECK(back.data == w);
  // header is padded so that the data starts at a multiple of 64 bytes
  CHECK((fs::file_size(dir / "w.npy") - w.size() * sizeof(float)) % 64 == 0);

  std::vector<double> v{1.0, 2.0, 3.0};
  const std::vector<std::size_t> shape1{3};
  bipq::io::write_npy<double>(dir / "v.npy", v, shape1);
  CHECK(bipq::io::read_npy<double>(dir / "v.npy").data == v);
  fs::remove_all(dir);
}

TEST_CASE("numpy.load reads what write_npy writes") {
  if (!have_numpy()) {
    MESSAGE("python3 with numpy not found: interop check skipped");
    return;
  }
  const fs::path dir = scratch_dir();
  std::vector<float> w(2 * 3 * 4);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.5f - 3.0f;
  const std::vector<std::size_t> shape{2, 3, 4};
  bipq::io::write_npy<float>(dir / "t.npy", w, shape);
  const std::string cmd = python() + " -c \"import numpy as np; a = np.load('" + (dir / "t.npy").string() +
                          "'); import sys; sys.exit(0 if a.dtype == np.float32 and a.shape == (2, 3, 4) and "
                          "a[1, 2, 3] == 23 * 0.5 - 3 and a.sum() == " + std::to_string(276 * 0.5 - 72) + " else 1)\"";
  CHECK(std::system(cmd.c_str()) == 0);
  // and the other way round
  const std::string make = python() + " -c \"import numpy as np; np.save('" + (dir / "np.npy").string() +
                           "', np.arange(6, dtype=np.float64).reshape(3, 2))\"";
  REQUIRE(std::system(make.c_str()) == 0);
  auto a = bipq::io::read_npy<double>(dir / "np.npy");
  CHECK(a.shape == std::vector<std::size_t>{3, 2});
  CHECK(a.data == std::vector<double>{0, 1, 2, 3, 4, 5});
  fs::remove_all(dir);
}

TEST_CASE("read_npy rejects wrong dtype, wrong shape, bad magic, truncation and a missing file, naming the file") {
  const fs::path dir = scratch_dir();
  std::vector<float> w{1, 2, 3, 4};
  const std::vector<std::size_t> shape{4};
  bipq::io::write_npy<float>(dir / "w.npy", w, shape);
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<double>(dir / "w.npy"), doctest::Contains("w.npy"), std::runtime_error);
  const std::vector<std::size_t> other{2, 2};
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "w.npy", other), doctest::Contains("shape"), std::runtime_error);
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "missing.npy"), doctest::Contains("missing.npy"),
                       std::runtime_error);
  {
    std::ofstream bad(dir / "bad.npy", std::ios::binary);
    bad << "NOTNUMPY-and-some-more-bytes";
  }
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "bad.npy"), doctest::Contains("magic"), std::runtime_error);
  fs::resize_file(dir / "w.npy", fs::file_size(dir / "w.npy") - 3);
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "w.npy"), doctest::Contains("truncated"), std::runtime_error);
  fs::remove_all(dir);
}

TEST_CASE("write_npy with a shape that disagrees with the data throws and leaves the old file intact") {
  const fs::path dir = scratch_dir();
  std::vector<float> w{1, 2, 3};
  const std::vector<std::size_t> shape{3};
  bipq::io::write_npy<float>(dir / "w.npy", w, shape);
  const std::vector<std::size_t> wrong{2, 2};
  CHECK_THROWS_WITH_AS(bipq::io::write_npy<float>(dir / "w.npy", w, wrong), doctest::Contains("write_npy()"),
                       std::invalid_argument);
  CHECK(bipq::io::read_npy<float>(dir / "w.npy").data == w);
  std::size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(dir)) leftovers += e.path().filename() != "w.npy";
  CHECK(leftovers == 0);
  fs::remove_all(dir);
}

TEST_CASE("write_file_atomically: a failed rename leaves the destination as it was and no temporary file") {
  const fs::path dir = scratch_dir();
  // The destination is a non-empty directory: the temporary file is written, the rename onto it fails.
  fs::create_directories(dir / "taken");
  { std::ofstream(dir / "taken" / "inside") << "keep"; }
  CHECK_THROWS_WITH_AS(bipq::io::write_npy<float>(dir / "taken", std::vector<float>{1, 2}, std::vector<std::size_t>{2}),
                       doctest::Contains("cannot rename to"), std::runtime_error);
  CHECK(fs::is_directory(dir / "taken"));
  CHECK(fs::exists(dir / "taken" / "inside"));
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename() != "taken";
  CHECK(entries == 0);
  // A directory that does not exist: nothing can be opened, nothing is created.
  CHECK_THROWS_WITH_AS(bipq::io::write_file_atomically(dir / "missing" / "x.npy", "data"),
                       doctest::Contains("cannot open"), std::runtime_error);
  CHECK_FALSE(fs::exists(dir / "missing"));
  // A shape whose element count overflows size_t is refused before anything is written.
  const std::vector<std::size_t> huge{std::size_t(1) << 40, std::size_t(1) << 40};
  CHECK_THROWS_WITH_AS(bipq::io::write_npy<float>(dir / "h.npy", std::vector<float>{1}, huge),
                       doctest::Contains("more elements than size_t"), std::invalid_argument);
  CHECK_FALSE(fs::exists(dir / "h.npy"));
  fs::remove_all(dir);
}

TEST_CASE("read_npy refuses a shape whose element count overflows size_t or disagrees with the data present") {
  const fs::path dir = scratch_dir();
  const std::string one_float(4, '\0');
  // 274177 * 67280421310721 = 2^64 + 1, which wraps to 1 in size_t: one element of data must not pass for it.
  write_npy_by_hand(dir / "wrap.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (274177, 67280421310721), }",
                    one_float);
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "wrap.npy"), doctest::Contains("overflows size_t"),
                       std::runtime_error);
  // More data than the shape counts is as wrong as less.
  write_npy_by_hand(dir / "long.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                    std::string(12, '\0'));
  CHECK_THROWS_WITH_AS(bipq::io::read_npy<float>(dir / "long.npy"), doctest::Contains("3 elements present"),
                       std::runtime_error);
  write_npy_by_hand(dir / "ok.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                    std::string(12, '\0'));
  CHECK(bipq::io::read_npy<float>(dir / "ok.npy").data == std::vector<float>{0, 0, 0});
  fs::remove_all(dir);
}

TEST_CASE("read_npy reads format 2.0 and does not allocate a header longer than the file") {
  const fs::path dir = scratch_dir();
  std::string body(2 * sizeof(double), '\0');
  const double values[2] = {1.5, -2.0};
  std::memcpy(body.data(), values, sizeof values);
  write_npy_by_hand(dir / "v2.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", body);
  CHECK(bipq::io::read_npy<double>(dir / "v2.npy").data == std::vector<double>{1.5, -2.0});
  // A 2.0 header length of 4 GiB in a 64-byte file.
  std::string claim = "\x93NUMPY";
  claim += '\x02';
  claim += '\0';
  claim += std::string("\xff\xff\xff\xff", 4);
  claim.append(52, ' ');
  std::ofstream(dir / "claim.npy", std::ios::binary) << claim;
  {
    bipq_test::largest_allocation probe;
    CHECK_THROWS_WITH_AS(bipq::io::read_npy<double>(dir / "claim.npy"), doctest::Contains("truncated header"),
                         std::runtime_error);
    CHECK(probe.bytes() < 65536);  // the stream's buffer, not the claimed 4 GiB
  }
  fs::remove_all(dir);
}

TEST_CASE("write_npy writes format 2.0 when the header does not fit format 1.0's 16-bit length") {
  const fs::path dir = scratch_dir();
  const std::vector<std::size_t> shape(30000, 1);  // "(1, 1, ..., 1)": about 90,000 header bytes
  bipq::io::write_npy<float>(dir / "deep.npy", std::vector<float>{2.5f}, shape);
  const std::string file = bytes_of(dir / "deep.npy");
  REQUIRE(file.size() > 12);
  CHECK(file.substr(0, 6) == "\x93NUMPY");
  CHECK(int(file[6]) == 2);
  std::size_t len = 0;
  for (int b = 3; b >= 0; --b) len = (len << 8) | static_cast<unsigned char>(file[8 + std::size_t(b)]);
  CHECK(len > 65535);
  CHECK((12 + len) % 64 == 0);
  REQUIRE(file.size() == 12 + len + sizeof(float));
  CHECK(file[12 + len - 1] == '\n');
  const auto back = bipq::io::read_npy<float>(dir / "deep.npy");
  CHECK(back.shape == shape);
  CHECK(back.data == std::vector<float>{2.5f});
  // A small header stays format 1.0, which every numpy reads.
  bipq::io::write_npy<float>(dir / "flat.npy", std::vector<float>{1, 2}, std::vector<std::size_t>{2});
  CHECK(int(bytes_of(dir / "flat.npy")[6]) == 1);
  fs::remove_all(dir);
}

TEST_CASE("write_npy's I/O failures name write_npy and the path") {
  const fs::path dir = scratch_dir();
  CHECK_THROWS_WITH_AS(bipq::io::write_npy<float>(dir / "missing" / "x.npy", std::vector<float>{1}, std::vector<std::size_t>{1}),
                       doctest::Contains("write_npy(): path"), std::runtime_error);
  fs::create_directories(dir / "taken");
  { std::ofstream(dir / "taken" / "inside") << "keep"; }
  try {
    bipq::io::write_npy<float>(dir / "taken", std::vector<float>{1}, std::vector<std::size_t>{1});
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("write_npy(): path") != std::string::npos);
    CHECK(msg.find((dir / "taken").string()) != std::string::npos);
    CHECK(msg.find("write_file_atomically") == std::string::npos);
  }
  fs::remove_all(dir);
}
