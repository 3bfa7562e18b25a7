// tensor_traits, the core's customisation point for layouts: without their adapters' headers, Eigen and xtensor types
// are not flat tensors (never read as flat by mistake); a user's own strided type becomes one by specialising it.
#include <doctest/doctest.h>

#include <cstddef>
#include <span>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>
#include <xtensor/xarray.hpp>
#include <xtensor/xview.hpp>

#include "bipq/bipq.hpp"

using bipq::flat_tensor;

// No adapter header in this file: types that report an offset or strides are refused, views and containers alike.
static_assert(!flat_tensor<Eigen::MatrixXf>);
static_assert(!flat_tensor<Eigen::Map<Eigen::VectorXf>>);
static_assert(!flat_tensor<decltype(std::declval<Eigen::MatrixXf&>().block(0, 0, 1, 1))>);
static_assert(!flat_tensor<xt::xarray<float>>);
static_assert(!flat_tensor<decltype(xt::view(std::declval<xt::xarray<float>&>(), 1))>);
// Types without a layout of their own need no adapter.
static_assert(flat_tensor<std::vector<float>>);
static_assert(flat_tensor<std::span<const double>>);

namespace {
/// A user's tensor with a row stride: flat when the stride equals the row length.
struct strided_rows {
  std::vector<float> storage;
  std::size_t rows = 0, cols = 0, stride = 0;
  float* data() { return storage.data(); }
  const float* data() const { return storage.data(); }
  std::size_t size() const { return rows * cols; }
  std::size_t outerStride() const { return stride; }
};
/// A user's view type that is never flat, whatever it reports.
struct always_a_view {
  std::vector<float> storage;
  float* data() { return storage.data(); }
  std::size_t size() const { return storage.size(); }
};
}  // namespace

template <>
struct bipq::tensor_traits<strided_rows> {
  static constexpr bool flat = true;
  static bool contiguous(const strided_rows& t) { return t.rows <= 1 || t.stride == t.cols; }
};
template <>
struct bipq::tensor_traits<always_a_view> {
  static constexpr bool flat = false;
};

static_assert(flat_tensor<strided_rows>);
static_assert(flat_tensor<const strided_rows>);
static_assert(!flat_tensor<always_a_view>);

TEST_CASE("a user's specialisation of tensor_traits decides at run time whether as_span may read the storage") {
  strided_rows dense{std::vector<float>(6, 1.0f), 2, 3, 3};
  CHECK(bipq::as_span(dense).size() == 6);
  CHECK(bipq::pq_index(dense, 0.5, 1.0) == doctest::Approx(0.0));
  strided_rows padded{std::vector<float>(8, 1.0f), 2, 3, 4};
  CHECK_THROWS_WITH_AS(bipq::as_span(padded), doctest::Contains("not contiguous"), std::invalid_argument);
}
