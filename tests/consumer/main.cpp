// Built against the installed bipq package: include the umbrella headers and measure tensors of the standard library,
// Eigen and xtensor.
#include <bipq/adapters/eigen.hpp>
#include <bipq/adapters/xtensor.hpp>
#include <bipq/bipq.hpp>

#include <cstdio>
#include <vector>

#include <xtensor/xarray.hpp>

int main() {
  std::vector<float> w{0.0f, 3.0f, -1.0f, 0.5f};
  auto s = bipq::as_span(w);
  const Eigen::MatrixXf m = Eigen::MatrixXf::Ones(2, 3);
  const xt::xarray<double> x = {{1.0, 2.0}, {3.0, 4.0}};
  std::printf("bipq consumer: %zu weights, %zu Eigen, %zu xtensor\n", s.size(), bipq::as_span(m).size(),
              bipq::as_span(x).size());
  return s.size() == 4 && bipq::as_span(m).size() == 6 && bipq::as_span(x).size() == 4 ? 0 : 1;
}
