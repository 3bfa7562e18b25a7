#pragma once
// The demo's inference table: each method's final model run in its fast form — compact (filter masks: the pruned
// filters physically removed) or sparse (unstructured masks: only the kept weights stored) — in images per second,
// next to the dense model's.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "bipq/adapters/eigen/compact.hpp"
#include "bipq/adapters/eigen/inference.hpp"
#include "bipq/adapters/eigen/sparse.hpp"
#include "bipq/io/fashion_mnist.hpp"

namespace examples {

class inference_speed {
 public:
  /// Keeps the fast form of `model` (the final model of `method`, pruned by `masks`): compact if `structured`,
  /// else sparse.
  void add(const std::string& method, const bipq::eigen::sequential& model, const bipq::mask_set<float>& masks,
           bool structured) {
    entries_.push_back({method, structured ? "compact" : "sparse",
                        structured ? bipq::eigen::compact(model, masks) : bipq::eigen::sparsify(model, masks)});
  }

  /// Prints | method | form | parameters | images/s | × dense |, the dense model `dense` first, each timed on the
  /// first 1,024 images of `test` in batches of 128 (the best of 5 passes, wall time).
  void print(bipq::eigen::sequential dense, const bipq::io::image_dataset& test, std::size_t threads) {
    if (entries_.empty()) return;
    const double base = images_per_second(dense, test, threads);
    std::printf("\ninference, batch 128, %zu thread%s (best of 5 passes over %zu images):\n\n", threads,
                threads == 1 ? "" : "s", std::min<std::size_t>(test.size(), 1024));
    std::printf("| method | model run | parameters | images/s | x dense |\n|---|---|---:|---:|---:|\n");
    std::printf("| dense | dense | %zu | %.0f | 1.00 |\n", dense.num_parameters(), base);
    for (auto& e : entries_) {
      const double ips = images_per_second(e.model, test, threads);
      std::printf("| %s | %s | %zu | %.0f | %.2f |\n", e.method.c_str(), e.form.c_str(), stored_values(e.model), ips,
                  ips / base);
    }
  }

 private:
  struct entry {
    std::string method, form;
    bipq::eigen::sequential model;
  };
  std::vector<entry> entries_;

  // Parameter values, with the sparse layers counted by their stored weights.
  static std::size_t stored_values(bipq::eigen::sequential& m) {
    std::size_t n = m.num_parameters();
    for (std::size_t l = 0; l < m.size(); ++l) {
      if (const auto* s = dynamic_cast<const bipq::eigen::sparse_linear<float>*>(&m[l])) n += s->weights().nonzeros() + s->bias().size();
      if (const auto* s = dynamic_cast<const bipq::eigen::sparse_conv2d<float>*>(&m[l])) n += s->weights().nonzeros() + s->bias().size();
    }
    return n;
  }

  static double images_per_second(bipq::eigen::sequential& model, const bipq::io::image_dataset& test,
                                  std::size_t threads) {
    constexpr std::size_t batch = 128;
    const std::size_t n = std::min<std::size_t>(test.size(), 1024), sample = test.sample_size();
    if (n == 0) return 0.0;
    bipq::eigen::inference run(model, threads);
    std::vector<float> logits(batch * run.outputs());
    auto pass = [&] {
      for (std::size_t b0 = 0; b0 < n; b0 += batch) {
        const std::size_t m = std::min(batch, n - b0);
        run.run(std::span<const float>(test.images).subspan(b0 * sample, m * sample), m,
                std::span<float>(logits).first(m * run.outputs()));
      }
    };
    pass();  // warm-up
    double best = 1e300;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      pass();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return static_cast<double>(n) / best;
  }
};

}  // namespace examples
