// Built against the installed core of bipq alone: every core header, then the PQ Index of a std::vector and a
// top-k mask of it. (include_path.cpp checks that Eigen and xtensor are out of reach.)
#include <bipq/bipq.hpp>
#include <bipq/io/fashion_mnist.hpp>
#include <bipq/io/idx.hpp>
#include <bipq/io/npy.hpp>
#include <bipq/prune/record.hpp>
#include <bipq/solver/result.hpp>

#if defined(EIGEN_WORLD_VERSION) || defined(XTENSOR_VERSION_MAJOR)
#error "a core header included Eigen or xtensor"
#endif

#include <cstdio>
#include <vector>

int main() {
  const std::vector<double> w{0.0, 3.0, -1.0, 0.5, 0.0, 2.0};
  const double dense = bipq::pq_index(std::vector<double>(6, 1.0), 0.5, 1.0);  // a constant vector: 0
  const double pqi = bipq::pq_index(w, 0.5, 1.0);
  std::vector<double> mask(w.size());
  bipq::magnitude_mask(w, 2, mask);  // keep the two largest |w|: 3 and 2
  const bool ok = dense < 1e-12 && pqi > 0.0 && pqi < 1.0 && mask == std::vector<double>{0, 1, 0, 0, 0, 1};
  std::printf("bipq core consumer: PQ Index %.4f, mask keeps %g of %zu\n", pqi, mask[1] + mask[5], w.size());
  return ok ? 0 : 1;
}
