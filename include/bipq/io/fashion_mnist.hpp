#pragma once
// Image-classification data sets (images with class labels, in standard containers) and the Fashion-MNIST loader.
// The adapters train on them: the Eigen CNNs read the images directly, the xtensor models copy them into xtensor
// containers (bipq::xtensor_adapter::from_image_dataset).
//
// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 training and 10,000 test 28×28 grey images in 10 classes,
// shipped by Debian's `dataset-fashion-mnist` package as gzip IDX files in /usr/share/datasets/fashion-mnist.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/io/idx.hpp"

namespace bipq::io {

/// Images with their class labels. `images` holds the N samples one after the other, row-major [N, C·H·W]: sample
/// i is `images[i·C·H·W .. (i+1)·C·H·W)`, its values in channel-major order (NCHW).
struct image_dataset {
  std::vector<float> images;         ///< N·C·H·W values, in [0, 1] as loaded (or standardised by the user)
  std::vector<std::uint8_t> labels;  ///< N labels in 0 .. num_classes-1
  std::size_t channels = 1, height = 28, width = 28;
  std::size_t num_classes = 10;

  std::size_t size() const noexcept { return labels.size(); }
  std::size_t sample_size() const noexcept { return channels * height * width; }
  /// The C·H·W values of sample i (i < size()).
  std::span<const float> image(std::size_t i) const noexcept {
    return std::span<const float>(images).subspan(i * sample_size(), sample_size());
  }

  /// Throws std::invalid_argument("<func>(): <arg> ...") if the images, labels and shape disagree or a label is
  /// out of range.
  void validate(const char* func, const char* arg) const {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(std::string(func) + "(): " + arg + " " + what);
    };
    if (channels == 0 || height == 0 || width == 0) fail("has a zero channel count, height or width");
    if (images.size() != labels.size() * sample_size())
      fail("has " + std::to_string(images.size()) + " image values for " + std::to_string(labels.size()) +
           " labels, expected labels * channels*height*width = " + std::to_string(labels.size() * sample_size()));
    if (num_classes == 0) fail("has num_classes = 0");
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] >= num_classes) fail("has label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                                         ", expected < " + std::to_string(num_classes));
  }
};

/// The first `n` samples of `d` (all of them if n >= d.size()): a quick subset for tests and short runs.
inline image_dataset head(const image_dataset& d, std::size_t n) {
  n = std::min(n, d.size());
  image_dataset h;
  const std::size_t values = std::min(n * d.sample_size(), d.images.size());
  h.images.assign(d.images.begin(), d.images.begin() + static_cast<std::ptrdiff_t>(values));
  h.labels.assign(d.labels.begin(), d.labels.begin() + static_cast<std::ptrdiff_t>(n));
  h.channels = d.channels;
  h.height = d.height;
  h.width = d.width;
  h.num_classes = d.num_classes;
  return h;
}

/// The last `n` samples of `d` (all of them if n >= d.size()): a held-out validation split, say.
inline image_dataset tail(const image_dataset& d, std::size_t n) {
  n = std::min(n, d.size());
  const std::size_t first = d.size() - n, values = d.sample_size();
  image_dataset t;
  t.images.assign(d.images.begin() + static_cast<std::ptrdiff_t>(first * values),
                  d.images.begin() + static_cast<std::ptrdiff_t>(d.size() * values));
  t.labels.assign(d.labels.begin() + static_cast<std::ptrdiff_t>(first), d.labels.end());
  t.channels = d.channels;
  t.height = d.height;
  t.width = d.width;
  t.num_classes = d.num_classes;
  return t;
}

/// Subtracts `mean` and divides by `stddev` (> 0) every value: x ← (x − mean) / stddev. For Fashion-MNIST's
/// training set, mean ≈ 0.2860 and stddev ≈ 0.3530.
inline void standardize(image_dataset& d, float mean, float stddev) {
  if (!(stddev > 0.0f)) throw std::invalid_argument("standardize(): stddev must be > 0");
  for (float& x : d.images) x = (x - mean) / stddev;
}

/// Reads an IDX image file ([N, H, W] unsigned bytes) and its IDX label file ([N]) into a dataset, scaling the pixels
/// to [0, 1] (x / 255). Throws std::runtime_error naming the file on any I/O or format error (see io::read_idx), on
/// an image/label count mismatch, and on a label ≥ 10.
inline image_dataset load_idx_dataset(const std::filesystem::path& images_file,
                                      const std::filesystem::path& labels_file) {
  const io::idx_array img = io::read_idx(images_file, 3);
  const io::idx_array lab = io::read_idx(labels_file, 1);
  if (img.dims[0] != lab.dims[0])
    throw std::runtime_error("load_idx_dataset(): " + images_file.string() + " has " + std::to_string(img.dims[0]) +
                             " images but " + labels_file.string() + " has " + std::to_string(lab.dims[0]) + " labels");
  image_dataset d;
  d.channels = 1;
  d.height = img.dims[1];
  d.width = img.dims[2];
  const std::size_t n = img.dims[0], pixels = d.height * d.width;
  d.images.resize(n * pixels);
  float* out = d.images.data();
  for (std::size_t i = 0; i < n * pixels; ++i) out[i] = static_cast<float>(img.data[i]) * (1.0f / 255.0f);
  d.labels = lab.data;
  for (std::size_t i = 0; i < n; ++i)
    if (d.labels[i] >= d.num_classes)
      throw std::runtime_error("load_idx_dataset(): " + labels_file.string() + " has label " +
                               std::to_string(d.labels[i]) + " at index " + std::to_string(i) + ", expected < 10");
  return d;
}

/// Fashion-MNIST's training and test sets.
struct fashion_mnist {
  image_dataset train, test;
};

/// The directory load_fashion_mnist reads: `dir` if not empty, else $BIPQ_FASHION_MNIST if set and not empty, else
/// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
inline std::filesystem::path fashion_mnist_directory(const std::string& dir = "") {
  if (!dir.empty()) return dir;
  if (const char* env = std::getenv("BIPQ_FASHION_MNIST"); env != nullptr && *env != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

/// Loads Fashion-MNIST from fashion_mnist_directory(dir): {train,t10k}-{images-idx3,labels-idx1}-ubyte, each file
/// either gzip-compressed with a ".gz" suffix (Debian's layout, preferred when present) or raw without it.
/// Pixels are scaled to [0, 1]. Throws std::runtime_error naming the file when one is missing or corrupt.
inline fashion_mnist load_fashion_mnist(std::string dir = "") {
  const std::filesystem::path root = fashion_mnist_directory(dir);
  auto file = [&](const std::string& stem) {
    const std::filesystem::path gz = root / (stem + ".gz");
    std::error_code ec;
    if (std::filesystem::exists(gz, ec)) return gz;
    const std::filesystem::path raw = root / stem;
    if (std::filesystem::exists(raw, ec)) return raw;
    throw std::runtime_error("load_fashion_mnist(): " + gz.string() + " does not exist (nor " + raw.string() +
                             "); install dataset-fashion-mnist or set BIPQ_FASHION_MNIST");
  };
  fashion_mnist f;
  f.train = load_idx_dataset(file("train-images-idx3-ubyte"), file("train-labels-idx1-ubyte"));
  f.test = load_idx_dataset(file("t10k-images-idx3-ubyte"), file("t10k-labels-idx1-ubyte"));
  return f;
}

}  // namespace bipq::io
