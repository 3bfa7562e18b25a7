// .npy round trips, numpy interoperability, validation of shape and dtype, atomic writes.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "bipq/io/npy.hpp"

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
