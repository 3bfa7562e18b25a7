#pragma once
// Inference of a sequential model on a batch of images, split across threads, with the activations kept between
// calls (no allocation in the steady state): what the inference benchmarks and the demo time.

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace bipq::eigen {

/// Runs `model` (held by reference, which must outlive this object) in inference mode. A batch of n images is
/// split into `threads` contiguous slices, one per thread; every image's logits are computed by the same code
/// whatever the slice, so they do not depend on the thread count except through the layers' own blocking.
template <std::floating_point T = float>
class basic_inference {
 public:
  /// Throws std::invalid_argument if threads is 0.
  explicit basic_inference(basic_sequential<T>& model, std::size_t threads = 1) : model_(&model), threads_(threads) {
    if (threads == 0) throw std::invalid_argument("inference(): threads must be > 0");
    model.set_threads(threads);
    acts_.resize(threads, std::vector<activation<T>>(model.size() + 1));
  }

  std::size_t threads() const noexcept { return threads_; }
  /// Number of logits per image.
  std::size_t outputs() const noexcept { return model_->output_shape().size(); }

  /// logits[i·outputs() + j] = output j of image i, for the n images stored one after the other in `images`
  /// (n·C·H·W values, each image channel-major). Throws std::invalid_argument on a size mismatch.
  void run(std::span<const float> images, std::size_t n, std::span<T> logits) {
    const shape3 in = model_->input_shape();
    const std::size_t sample = in.size(), k = outputs();
    if (images.size() != n * sample)
      throw std::invalid_argument("inference::run(): images has " + std::to_string(images.size()) +
                                  " values, expected n * C*H*W = " + std::to_string(n * sample));
    if (logits.size() != n * k)
      throw std::invalid_argument("inference::run(): logits has " + std::to_string(logits.size()) +
                                  " values, expected n * outputs() = " + std::to_string(n * k));
    if (n == 0) return;
    const std::size_t active = std::min(threads_, n);
    detail::run_threads(active, [&](std::size_t t) {
      const std::size_t b0 = t * n / active, b1 = (t + 1) * n / active, m = b1 - b0;
      std::vector<activation<T>>& acts = acts_[t];
      activation<T>& x = acts[0];
      x.resize(in, m);
      const std::size_t P = in.h * in.w;
      for (std::size_t c = 0; c < in.c; ++c)
        for (std::size_t i = 0; i < m; ++i) {
          const float* src = images.data() + (b0 + i) * sample + c * P;
          std::copy(src, src + P, x.channel(c) + i * P);
        }
      model_->infer(thread_context{t, false, nullptr}, acts);
      const activation<T>& z = acts.back();
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < k; ++j) logits[(b0 + i) * k + j] = z.data[j * m + i];
    });
  }

 private:
  basic_sequential<T>* model_;
  std::size_t threads_;
  std::vector<std::vector<activation<T>>> acts_;
};

using inference = basic_inference<float>;

/// The logits of every sample of `d` ([d.size(), outputs] row-major), in batches of `batch` images.
template <std::floating_point T>
std::vector<T> predict_logits(basic_sequential<T>& model, const io::image_dataset& d, std::size_t batch = 256,
                              std::size_t threads = 1) {
  if (batch == 0) throw std::invalid_argument("predict_logits(): batch must be > 0");
  d.validate("predict_logits", "d");
  basic_inference<T> run(model, threads);
  const std::size_t k = run.outputs(), sample = d.sample_size();
  std::vector<T> out(d.size() * k);
  for (std::size_t b0 = 0; b0 < d.size(); b0 += batch) {
    const std::size_t n = std::min(batch, d.size() - b0);
    run.run(std::span<const float>(d.images).subspan(b0 * sample, n * sample), n,
            std::span<T>(out).subspan(b0 * k, n * k));
  }
  return out;
}

}  // namespace bipq::eigen
