// The README's quick start: measure a layer's sparsity with the PQ Index, keep its 5% largest weights, measure again.
#include <bipq/adapters/eigen.hpp>  // the core (bipq/bipq.hpp) and Eigen types as tensors

#include <Eigen/Core>
#include <cstdio>
#include <vector>

int main() {
  Eigen::MatrixXf w = Eigen::MatrixXf::Random(120, 400);  // a dense layer, uniform in [-1, 1]
  std::printf("dense:  PQ Index %.4f, Hoyer %.4f, density %.3f\n", bipq::pq_index(w, 0.5, 1.0), bipq::hoyer(w),
              bipq::density(w));

  std::vector<float> mask(static_cast<std::size_t>(w.size()));
  bipq::magnitude_mask(w, static_cast<std::size_t>(w.size()) / 20, mask);  // keep the 5% largest |w|
  bipq::apply_mask(w, mask);
  std::printf("pruned: PQ Index %.4f, Hoyer %.4f, density %.3f\n", bipq::pq_index(w, 0.5, 1.0), bipq::hoyer(w),
              bipq::density(w));
}
