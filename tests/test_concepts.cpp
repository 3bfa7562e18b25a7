// What models flat_tensor and what must not; as_span sees storage in order and refuses non-contiguous blocks.
#include <doctest/doctest.h>

#include <array>
#include <span>
#include <vector>

#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>
#include <xtensor/xarray.hpp>
#include <xtensor/xfixed.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/bipq.hpp"

using bipq::flat_tensor;

// Containers that model the concept.
static_assert(flat_tensor<Eigen::MatrixXf>);
static_assert(flat_tensor<Eigen::MatrixXd>);
static_assert(flat_tensor<Eigen::VectorXf>);
static_assert(flat_tensor<Eigen::ArrayXXf>);
static_assert(flat_tensor<Eigen::Matrix<float, 3, 4, Eigen::RowMajor>>);
static_assert(flat_tensor<Eigen::Tensor<float, 4>>);
static_assert(flat_tensor<Eigen::TensorMap<Eigen::Tensor<float, 2>>>);
static_assert(flat_tensor<Eigen::Map<Eigen::MatrixXf>>);
static_assert(flat_tensor<Eigen::Map<const Eigen::VectorXd>>);
static_assert(flat_tensor<xt::xarray<float>>);
static_assert(flat_tensor<xt::xtensor<double, 3>>);
static_assert(flat_tensor<xt::xtensor_fixed<float, xt::xshape<2, 3>>>);
static_assert(flat_tensor<std::vector<float>>);
static_assert(flat_tensor<const std::vector<double>>);
static_assert(flat_tensor<std::span<float>>);
static_assert(flat_tensor<std::span<const float>>);
static_assert(flat_tensor<std::array<float, 8>>);
static_assert(bipq::flat_tensor_of<Eigen::MatrixXf, float>);
static_assert(!bipq::flat_tensor_of<Eigen::MatrixXf, double>);

// Lazy expressions and views are not stored or read as flat tensors.
static_assert(!flat_tensor<decltype(Eigen::MatrixXf() * Eigen::MatrixXf())>);
static_assert(!flat_tensor<decltype(Eigen::MatrixXf() + Eigen::MatrixXf())>);
static_assert(!flat_tensor<decltype(Eigen::ArrayXf().abs())>);
static_assert(!flat_tensor<decltype(xt::xarray<float>() + xt::xarray<float>())>);
static_assert(!flat_tensor<decltype(xt::view(std::declval<xt::xarray<float>&>(), 1))>);

// Non-floating element types are not measured.
static_assert(!flat_tensor<std::vector<int>>);
static_assert(!flat_tensor<Eigen::MatrixXi>);
static_assert(!flat_tensor<xt::xarray<std::uint8_t>>);
static_assert(!flat_tensor<std::vector<bool>>);
static_assert(!flat_tensor<std::string>);
static_assert(!flat_tensor<float>);

TEST_CASE("as_span views the storage of Eigen, xtensor and std containers in order") {
  Eigen::MatrixXf m(2, 3);
  m << 1, 2, 3, 4, 5, 6;  // column-major storage: 1 4 2 5 3 6
  auto s = bipq::as_span(m);
  static_assert(std::is_same_v<decltype(s), std::span<float>>);
  REQUIRE(s.size() == 6);
  CHECK(s[1] == 4.0f);
  s[0] = 10.0f;
  CHECK(m(0, 0) == 10.0f);

  const xt::xarray<double> x = {{1.0, 2.0}, {3.0, 4.0}};
  auto cs = bipq::as_span(x);
  static_assert(std::is_same_v<decltype(cs), std::span<const double>>);
  CHECK(cs[2] == 3.0);

  Eigen::Tensor<float, 3> t(2, 3, 4);
  CHECK(bipq::as_span(t).size() == 24);
  std::vector<float> v{1, 2, 3};
  CHECK(bipq::as_span(std::span<float>(v)).data() == v.data());
}

TEST_CASE("as_span accepts contiguous Eigen blocks and rejects strided ones") {
  Eigen::MatrixXf m = Eigen::MatrixXf::Zero(4, 5);
  auto cols = m.middleCols(1, 2);  // whole columns of a column-major matrix: contiguous
  CHECK(bipq::as_span(cols).size() == 8);
  CHECK(bipq::as_span(cols).data() == m.data() + 4);
  auto block = m.block(1, 1, 2, 2);  // rows 1..2 of two columns: not contiguous
  CHECK_THROWS_WITH_AS(bipq::as_span(block), doctest::Contains("as_span()"), std::invalid_argument);
  Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<2>> strided(m.data(), 5);
  CHECK_THROWS_AS(bipq::as_span(strided), std::invalid_argument);
}

TEST_CASE("as_spans views a list of tensors") {
  std::vector<Eigen::MatrixXf> layers{Eigen::MatrixXf::Ones(2, 2), Eigen::MatrixXf::Zero(3, 1)};
  auto spans = bipq::as_spans(layers);
  REQUIRE(spans.size() == 2);
  CHECK(spans[0].size() == 4);
  CHECK(spans[1].size() == 3);
}

namespace {
struct not_a_problem {};
struct tiny_problem {
  using scalar_type = double;
  std::vector<double> z{0.0}, g{0.0};
  std::vector<bipq::parameter<double>> params{{"w", {1}, bipq::parameter_kind::linear_weight, z, g}};
  const std::vector<bipq::parameter<double>>& parameters() const { return params; }
  std::size_t num_samples() const { return 1; }
  double loss_and_gradient(std::span<const std::size_t>) {
    g[0] = z[0] - 1.0;
    return 0.5 * g[0] * g[0];
  }
};
}  // namespace
static_assert(bipq::bilevel_problem<tiny_problem>);
static_assert(!bipq::bilevel_problem<not_a_problem>);
static_assert(!bipq::has_hessian_vector_product<tiny_problem>);
static_assert(!bipq::trainable_model<tiny_problem>);
static_assert(bipq::check_bilevel_problem<tiny_problem>());
