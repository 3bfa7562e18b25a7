// The IDX reader and the Fashion-MNIST loader on files written here: valid (raw and gzip), truncated, corrupted
// (bad magic, element type, dimensions, trailing bytes, damaged gzip stream), mismatched and missing files; a header
// that claims more than the file holds is refused without allocating what it claims.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#if defined(BIPQ_HAS_ZLIB)
#include <zlib.h>
#endif

#include "bipq/io/fashion_mnist.hpp"
#include "bipq/io/idx.hpp"
#include "largest_allocation.hpp"

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("bipq_test_idx_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

bytes idx_bytes(const std::vector<std::uint32_t>& dims, const bytes& body, std::uint8_t type = 0x08) {
  bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

void write_raw(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bytes read_raw(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), {});
}

#if defined(BIPQ_HAS_ZLIB)
void write_gz(const fs::path& p, const bytes& b) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  gzclose(f);
}
#endif

bytes sequence(std::size_t n) {
  bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 % 256);
  return b;
}

// The read throws std::runtime_error whose message names the file and contains `what`.
void check_error(const fs::path& p, const std::string& what, std::size_t ndims = 0) {
  try {
    bipq::io::read_idx(p, ndims);
    FAIL("no exception for " << p.string());
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(p.string()) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("read_idx reads a valid raw file: dimensions and row-major body") {
  const fs::path p = temp_dir() / "valid.idx";
  const bytes body = sequence(3 * 4 * 5);
  write_raw(p, idx_bytes({3, 4, 5}, body));
  const auto a = bipq::io::read_idx(p, 3);
  CHECK(a.dims == std::vector<std::size_t>{3, 4, 5});
  CHECK(a.data == body);
}

TEST_CASE("read_idx rejects corrupt raw files with a message naming the file") {
  const fs::path dir = temp_dir();
  const bytes good = idx_bytes({2, 3, 3}, sequence(18));
  SUBCASE("missing file") { check_error(dir / "does_not_exist.idx", "does not exist"); }
  SUBCASE("empty file") {
    write_raw(dir / "empty.idx", {});
    check_error(dir / "empty.idx", "truncated header");
  }
  SUBCASE("bad magic") {
    bytes b = good;
    b[0] = 0x12;
    write_raw(dir / "magic.idx", b);
    check_error(dir / "magic.idx", "bad magic");
  }
  SUBCASE("unsupported element type") {
    write_raw(dir / "type.idx", idx_bytes({2, 3, 3}, sequence(18), 0x0d));
    check_error(dir / "type.idx", "element type 0x0d");
  }
  SUBCASE("wrong number of dimensions") {
    write_raw(dir / "dims.idx", good);
    check_error(dir / "dims.idx", "3 dimensions, expected 1", 1);
  }
  SUBCASE("zero dimension") {
    write_raw(dir / "zero.idx", idx_bytes({2, 0, 3}, {}));
    check_error(dir / "zero.idx", "is zero");
  }
  SUBCASE("absurd dimensions are rejected before any allocation") {
    write_raw(dir / "huge.idx", idx_bytes({60000, 60000, 60000}, sequence(10)));
    check_error(dir / "huge.idx", "too large");
  }
  SUBCASE("truncated header") {
    write_raw(dir / "header.idx", bytes(good.begin(), good.begin() + 9));
    check_error(dir / "header.idx", "truncated header");
  }
  SUBCASE("truncated body") {
    write_raw(dir / "body.idx", bytes(good.begin(), good.end() - 5));
    check_error(dir / "body.idx", "truncated body: 13 of 18");
  }
  SUBCASE("trailing bytes") {
    bytes b = good;
    b.push_back(1);
    write_raw(dir / "trailing.idx", b);
    check_error(dir / "trailing.idx", "trailing bytes");
  }
}

TEST_CASE("read_idx does not allocate the body a raw file's header claims but the file does not hold") {
  const fs::path p = temp_dir() / "claims_2gb.idx";
  write_raw(p, idx_bytes({32768, 65536}, sequence(16)));  // 2^31 bytes claimed (the largest allowed), 16 present
  bipq_test::largest_allocation probe;
  check_error(p, "truncated body: 16 of 2147483648");
  CHECK(probe.bytes() < (std::size_t(1) << 20));
}

#if defined(BIPQ_HAS_ZLIB)
TEST_CASE("read_idx inflates gzip files, detected from the content") {
  const fs::path dir = temp_dir();
  const bytes body = sequence(5 * 7);
  write_gz(dir / "valid.idx.gz", idx_bytes({5, 7}, body));
  write_gz(dir / "no_suffix", idx_bytes({5, 7}, body));
  for (const char* name : {"valid.idx.gz", "no_suffix"}) {
    const auto a = bipq::io::read_idx(dir / name, 2);
    CHECK(a.dims == std::vector<std::size_t>{5, 7});
    CHECK(a.data == body);
  }
}

TEST_CASE("read_idx rejects damaged gzip files with a message naming the file") {
  const fs::path dir = temp_dir();
  const bytes good = idx_bytes({40, 50}, sequence(2000));
  write_gz(dir / "good.gz", good);
  const bytes gz = read_raw(dir / "good.gz");
  SUBCASE("truncated stream") {
    write_raw(dir / "cut.gz", bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
    check_error(dir / "cut.gz", "truncated");
  }
  SUBCASE("corrupted payload") {
    bytes b = gz;
    for (std::size_t i = 20; i < b.size() - 10; i += 7) b[i] ^= 0x5a;
    write_raw(dir / "bad.gz", b);
    check_error(dir / "bad.gz", "");
  }
  SUBCASE("valid stream holding a truncated IDX body") {
    write_gz(dir / "short.gz", bytes(good.begin(), good.end() - 100));
    check_error(dir / "short.gz", "truncated body");
  }
  SUBCASE("valid stream holding a bad magic number") {
    bytes b = good;
    b[1] = 0x99;
    write_gz(dir / "magic.gz", b);
    check_error(dir / "magic.gz", "bad magic");
  }
}
TEST_CASE("read_idx grows a gzip body as it is inflated, never to the size the header claims") {
  const fs::path dir = temp_dir();
  write_gz(dir / "claims_2gb.gz", idx_bytes({32768, 65536}, sequence(300000)));
  bipq_test::largest_allocation probe;
  check_error(dir / "claims_2gb.gz", "truncated body: 300000 of 2147483648");
  // The body grows by doubling from what has arrived: at most twice the 300,000 bytes present.
  CHECK(probe.bytes() <= 2 * 300000);
}

TEST_CASE("read_idx reads concatenated gzip members as one stream and rejects bytes after the last member") {
  const fs::path dir = temp_dir();
  const bytes whole = idx_bytes({30, 40}, sequence(1200));
  write_gz(dir / "first.gz", bytes(whole.begin(), whole.begin() + 500));
  write_gz(dir / "second.gz", bytes(whole.begin() + 500, whole.end()));
  bytes both = read_raw(dir / "first.gz");
  const bytes second = read_raw(dir / "second.gz");
  both.insert(both.end(), second.begin(), second.end());
  write_raw(dir / "both.gz", both);
  const auto a = bipq::io::read_idx(dir / "both.gz", 2);
  CHECK(a.dims == std::vector<std::size_t>{30, 40});
  CHECK(a.data == bytes(whole.begin() + 12, whole.end()));  // after the 12-byte header

  write_gz(dir / "good.gz", whole);
  for (const bytes& tail : {bytes{'x'}, bytes{0, 0, 0, 0}, bytes{0x1f}, bytes{'g', 'a', 'r', 'b', 'a', 'g', 'e'}}) {
    bytes b = read_raw(dir / "good.gz");
    b.insert(b.end(), tail.begin(), tail.end());
    write_raw(dir / "tail.gz", b);
    check_error(dir / "tail.gz", "trailing bytes after the gzip stream");
  }
}
#endif

TEST_CASE("load_idx_dataset scales pixels and checks that images and labels agree") {
  const fs::path dir = temp_dir();
  bytes pixels = sequence(4 * 2 * 3);
  pixels[0] = 255;
  write_raw(dir / "img", idx_bytes({4, 2, 3}, pixels));
  write_raw(dir / "lab", idx_bytes({4}, {0, 9, 3, 3}));
  write_raw(dir / "lab5", idx_bytes({5}, {0, 9, 3, 3, 1}));
  write_raw(dir / "lab_bad", idx_bytes({4}, {0, 10, 3, 3}));
  const auto d = bipq::io::load_idx_dataset(dir / "img", dir / "lab");
  CHECK(d.size() == 4);
  CHECK(d.height == 2);
  CHECK(d.width == 3);
  CHECK(d.image(0)[0] == 1.0f);
  CHECK(d.image(0)[1] == doctest::Approx(7.0 / 255));
  CHECK(d.labels == std::vector<std::uint8_t>{0, 9, 3, 3});
  CHECK_THROWS_WITH_AS(bipq::io::load_idx_dataset(dir / "img", dir / "lab5"),
                       doctest::Contains("4 images but"), std::runtime_error);
  CHECK_THROWS_WITH_AS(bipq::io::load_idx_dataset(dir / "img", dir / "lab_bad"), doctest::Contains("label 10"),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(bipq::io::load_idx_dataset(dir / "lab", dir / "lab"), doctest::Contains("expected 3"),
                       std::runtime_error);
}

TEST_CASE("load_fashion_mnist reads a directory given by argument or BIPQ_FASHION_MNIST, and names missing files") {
  const fs::path dir = temp_dir() / "fmnist";
  fs::create_directories(dir);
  write_raw(dir / "train-images-idx3-ubyte", idx_bytes({3, 28, 28}, sequence(3 * 784)));
  write_raw(dir / "train-labels-idx1-ubyte", idx_bytes({3}, {1, 2, 3}));
  write_raw(dir / "t10k-images-idx3-ubyte", idx_bytes({2, 28, 28}, sequence(2 * 784)));
  CHECK_THROWS_WITH_AS(bipq::io::load_fashion_mnist(dir.string()), doctest::Contains("t10k-labels-idx1-ubyte"),
                       std::runtime_error);
  write_raw(dir / "t10k-labels-idx1-ubyte", idx_bytes({2}, {4, 5}));
  const auto f = bipq::io::load_fashion_mnist(dir.string());
  CHECK(f.train.size() == 3);
  CHECK(f.test.size() == 2);
  CHECK(f.test.labels[1] == 5);

  const char* saved = std::getenv("BIPQ_FASHION_MNIST");
  const std::string restore = saved != nullptr ? saved : "";
  ::setenv("BIPQ_FASHION_MNIST", dir.string().c_str(), 1);
  CHECK(bipq::io::fashion_mnist_directory() == dir);
  CHECK(bipq::io::load_fashion_mnist().train.size() == 3);
  if (saved != nullptr) ::setenv("BIPQ_FASHION_MNIST", restore.c_str(), 1);
  else ::unsetenv("BIPQ_FASHION_MNIST");
  CHECK(bipq::io::fashion_mnist_directory("/somewhere") == fs::path("/somewhere"));
  fs::remove_all(temp_dir());
}
