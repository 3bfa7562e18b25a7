// Writes the seed corpus of every fuzzer of tests/fuzz into <dir>/<fuzzer>/: small valid files and a few near-misses,
// so that fuzzing starts from inputs that reach deep into each reader. Usage: make_fuzz_seeds <dir>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#if defined(BIPQ_HAS_ZLIB)
#include <zlib.h>
#endif

#include "bipq/io/checkpoint.hpp"
#include "bipq/io/npy.hpp"

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes idx_file(const std::vector<std::uint32_t>& dims) {
  bytes b{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  std::size_t count = 1;
  for (std::uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
    count *= d;
  }
  for (std::size_t i = 0; i < count; ++i) b.push_back(static_cast<std::uint8_t>(i * 37 % 251));
  return b;
}

void write(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) {
    std::fprintf(stderr, "make_fuzz_seeds: cannot write %s\n", p.c_str());
    std::exit(1);
  }
}

bytes read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), {});
}

#if defined(BIPQ_HAS_ZLIB)
bytes gzip(const bytes& data) {
  uLongf size = compressBound(static_cast<uLong>(data.size())) + 32;
  bytes out(size);
  z_stream zs{};
  deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

bytes with_mode(std::uint8_t mode, const bytes& rest) {
  bytes b{mode};
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds <dir>\n");
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* name : {"fuzz_idx_raw", "fuzz_idx_gzip", "fuzz_npy", "fuzz_checkpoint"}) fs::create_directories(root / name);

  // IDX: labels (1-d), images (3-d), a truncated body, trailing bytes.
  const bytes labels = idx_file({10}), images = idx_file({2, 4, 5});
  write(root / "fuzz_idx_raw" / "labels.idx", labels);
  write(root / "fuzz_idx_raw" / "images.idx", images);
  write(root / "fuzz_idx_raw" / "truncated.idx", bytes(images.begin(), images.end() - 7));
  bytes trailing = labels;
  trailing.push_back(0);
  write(root / "fuzz_idx_raw" / "trailing.idx", trailing);
#if defined(BIPQ_HAS_ZLIB)
  write(root / "fuzz_idx_raw" / "images.idx.gz", gzip(images));
  // fuzz_idx_gzip: the first byte is the mode (see fuzz_idx_gzip.cpp), the rest IDX bytes.
  write(root / "fuzz_idx_gzip" / "valid_labels", with_mode(0, labels));
  write(root / "fuzz_idx_gzip" / "valid_images", with_mode(0, images));
  write(root / "fuzz_idx_gzip" / "truncated", with_mode(1, bytes{128}));
  write(root / "fuzz_idx_gzip" / "trailing", with_mode(2, labels));
  write(root / "fuzz_idx_gzip" / "two_members", with_mode(3, images));
  write(root / "fuzz_idx_gzip" / "raw_stream", with_mode(4, gzip(labels)));
#endif

  // npy: float32 and float64 in format 1.0 by write_npy, a scalar, an empty array, and a format 2.0 header.
  const fs::path npy = root / "fuzz_npy";
  bipq::io::write_npy<float>(npy / "f4.npy", std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7}, std::vector<std::size_t>{2, 3});
  bipq::io::write_npy<double>(npy / "f8.npy", std::vector<double>{1, 2, 3}, std::vector<std::size_t>{3});
  bipq::io::write_npy<double>(npy / "scalar.npy", std::vector<double>{4}, std::vector<std::size_t>{});
  bipq::io::write_npy<float>(npy / "empty.npy", std::vector<float>{}, std::vector<std::size_t>{0, 4});
  bytes v2 = read(npy / "f8.npy");  // the same file as format 2.0: a 4-byte header length
  v2[6] = 2;
  const std::size_t len = v2[8] | (std::size_t(v2[9]) << 8);
  v2.insert(v2.begin() + 10, {0, 0});
  v2[8] = static_cast<std::uint8_t>(len & 0xff);
  v2[9] = static_cast<std::uint8_t>(len >> 8);
  write(npy / "f8_v2.npy", v2);

  // Checkpoints: a small one from the writer, and its payload alone (the harness frames it with a valid header).
  const fs::path ck = root / "fuzz_checkpoint";
  bipq::io::checkpoint_data d;
  d.put_text("method", "imp");
  d.put<std::uint64_t>("run.round", std::vector<std::uint64_t>{3});
  d.put<float>("run.values", std::vector<float>{1.5f, -2, 0});
  d.put<double>("run.history", std::vector<double>{0.5, 0.25});
  const std::string file = d.serialize();
  write(ck / "small.ckpt", bytes(file.begin(), file.end()));
  write(ck / "payload.bin", bytes(file.begin() + bipq::io::checkpoint_data::header_size, file.end()));
  std::printf("make_fuzz_seeds: seeds written under %s\n", root.c_str());
  return 0;
}
