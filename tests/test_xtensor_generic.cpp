// Every measure and mask operator takes xtensor containers directly, and gives on them exactly (bit for bit) what it
// gives on Eigen containers holding the same values in the same storage order. Each test is one property, checked
// against its definition, instantiated with TEST_CASE_TEMPLATE over Eigen and xtensor containers of float and double;
// the reference is always an Eigen column vector of the same scalar type.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <Eigen/Core>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xfixed.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/adapters/xtensor/tensor.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/mask/apply.hpp"
#include "bipq/mask/capped_simplex.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/n_m.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/sparsity/measures.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/sparsity/retained_bound.hpp"
#include "bipq/tensor.hpp"

namespace {

constexpr std::size_t rows = 8, cols = 12, n_total = rows * cols;

/// A container of type C holding `values` in storage order, shaped [rows, cols] (or [rows·cols] for 1-d types).
template <class C, class S>
C make(const std::vector<S>& values) {
  C c;
  if constexpr (std::is_base_of_v<Eigen::DenseBase<C>, C>) {
    if constexpr (C::ColsAtCompileTime == 1)
      c.resize(static_cast<Eigen::Index>(values.size()));
    else
      c.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(values.size() / rows));
  } else if constexpr (std::is_same_v<C, xt::xtensor<S, 1>>) {
    c = C::from_shape({values.size()});
  } else {
    c = C::from_shape({rows, values.size() / rows});
  }
  REQUIRE(static_cast<std::size_t>(c.size()) == values.size());
  std::copy(values.begin(), values.end(), c.data());
  return c;
}

template <class C>
using scalar_t = bipq::scalar_of_t<C>;

template <class C>
using reference_t = Eigen::Matrix<scalar_t<C>, Eigen::Dynamic, 1>;

/// Flat copy of any flat tensor.
template <class C>
std::vector<scalar_t<C>> flat(const C& c) {
  const auto s = bipq::as_span(c);
  return {s.begin(), s.end()};
}

/// n_total normal values with some structure that exercises the corner cases: exact zeros, exact ties in magnitude
/// (a value and its negation, repeated values), one large outlier.
template <class S>
std::vector<S> test_values(std::uint64_t seed) {
  bipq::detail::rng g(seed);
  std::vector<S> v(n_total);
  for (auto& x : v) x = static_cast<S>(g.normal());
  v[3] = v[17] = S(0);
  v[20] = -v[21];
  v[40] = v[41] = v[42];
  v[77] = S(25);
  return v;
}

}  // namespace

#define BIPQ_CONTAINERS                                                                                           \
  Eigen::VectorXf, Eigen::ArrayXf, Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,           \
      xt::xtensor<float, 1>, xt::xtensor<float, 2>, xt::xarray<float>, Eigen::VectorXd, Eigen::MatrixXd,            \
      xt::xtensor<double, 1>, xt::xtensor<double, 2>, xt::xarray<double>

TEST_CASE_TEMPLATE("pq_index: same bits as on Eigen, within [0, 1 − d^{1/q−1/p}], scale invariant", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const auto v = test_values<S>(seed);
    const C w = make<C>(v);
    const reference_t<C> r = make<reference_t<C>>(v);
    for (auto [p, q] : {std::pair{0.5, 1.0}, {1.0, 2.0}, {0.7, 3.5}}) {
      const double i = bipq::pq_index(w, p, q);
      CHECK(i == bipq::pq_index(r, p, q));
      CHECK(i >= 0.0);
      CHECK(i <= bipq::pq_index_upper_bound(n_total, p, q));
      std::vector<S> scaled = v;
      for (auto& x : scaled) x *= S(8);  // a power of two: |w|·8 is exact, so the index must agree to rounding
      CHECK(bipq::pq_index(make<C>(scaled), p, q) == doctest::Approx(i).epsilon(1e-6));
    }
  }
  std::vector<S> one_hot(n_total, S(0));
  one_hot[5] = S(-3);
  CHECK(bipq::pq_index(make<C>(one_hot)) == doctest::Approx(bipq::pq_index_upper_bound(n_total)).epsilon(1e-12));
  CHECK(bipq::pq_index(make<C>(std::vector<S>(n_total, S(2)))) == doctest::Approx(0.0).scale(1.0).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("pq_index masked, per neuron, per tensor and global: same bits as on Eigen", C, BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(4), u = test_values<S>(5);
  std::vector<S> m(n_total);
  for (std::size_t i = 0; i < n_total; ++i) m[i] = S(i % 3 != 0);
  const C w = make<C>(v), w2 = make<C>(u), mask = make<C>(m);
  const reference_t<C> r = make<reference_t<C>>(v), r2 = make<reference_t<C>>(u), rm = make<reference_t<C>>(m);
  // Masked: the index of the survivors alone (the definition: d = number of survivors).
  std::vector<S> survivors;
  for (std::size_t i = 0; i < n_total; ++i)
    if (m[i] != S(0)) survivors.push_back(v[i]);
  CHECK(bipq::pq_index(w, mask) == bipq::pq_index(r, rm));
  CHECK(bipq::pq_index(w, mask) == doctest::Approx(bipq::pq_index(survivors)).epsilon(1e-12));
  CHECK(bipq::pq_index_per_neuron(w, rows) == bipq::pq_index_per_neuron(r, rows));
  CHECK(bipq::pq_index_per_neuron(w, mask, rows, 1.0, 2.0) == bipq::pq_index_per_neuron(r, rm, rows, 1.0, 2.0));
  const std::vector<C> ws = {make<C>(v), make<C>(u)};
  const std::vector<reference_t<C>> rs = {r, r2};
  const std::vector<C> ms = {make<C>(m), make<C>(m)};
  const std::vector<reference_t<C>> rms = {rm, rm};
  CHECK(bipq::pq_index_global(ws) == bipq::pq_index_global(rs));
  CHECK(bipq::pq_index_global(ws, ms) == bipq::pq_index_global(rs, rms));
  CHECK(bipq::pq_index_per_tensor(ws) == bipq::pq_index_per_tensor(rs));
  CHECK(bipq::pq_index_per_tensor(ws, ms) == bipq::pq_index_per_tensor(rs, rms));
  // Global = the index of the concatenation.
  std::vector<S> both = v;
  both.insert(both.end(), u.begin(), u.end());
  CHECK(bipq::pq_index_global(ws) == doctest::Approx(bipq::pq_index(both)).epsilon(1e-12));
  (void)w2;
}

TEST_CASE_TEMPLATE("the other measures: same bits as on Eigen, and each agrees with its defining formula", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(6);
  const C w = make<C>(v);
  const reference_t<C> r = make<reference_t<C>>(v);
  CHECK(bipq::hoyer(w) == bipq::hoyer(r));
  CHECK(bipq::gini_index(w) == bipq::gini_index(r));
  CHECK(bipq::l0_fraction(w) == bipq::l0_fraction(r));
  CHECK(bipq::l0_epsilon_fraction(w, 0.1) == bipq::l0_epsilon_fraction(r, 0.1));
  CHECK(bipq::kurtosis(w) == bipq::kurtosis(r));
  CHECK(bipq::l1_l2_ratio(w) == bipq::l1_l2_ratio(r));
  CHECK(bipq::pq_retained_eta(w, 10, 0.5) == bipq::pq_retained_eta(r, 10, 0.5));
  // Definitions, computed here in long double from the raw values.
  long double l1 = 0, l2 = 0, l4 = 0;
  std::size_t zeros = 0, small = 0;
  for (S x : v) {
    const long double a = std::abs(static_cast<long double>(x));
    l1 += a, l2 += a * a, l4 += a * a * a * a;
    zeros += x == S(0);
    small += a <= 0.1L;
  }
  const double d = double(n_total), ratio = double(l1 / std::sqrt(l2));
  CHECK(bipq::l0_fraction(w) == double(zeros) / d);
  CHECK(bipq::l0_epsilon_fraction(w, 0.1) == double(small) / d);
  CHECK(bipq::l1_l2_ratio(w) == doctest::Approx(ratio).epsilon(1e-5));
  CHECK(bipq::hoyer(w) == doctest::Approx((std::sqrt(d) - ratio) / (std::sqrt(d) - 1.0)).epsilon(1e-5));
  CHECK(bipq::kurtosis(w) == doctest::Approx(double(l4 / (l2 * l2))).epsilon(1e-5));
}

TEST_CASE_TEMPLATE("top_k and magnitude masks into xtensor: same mask as Eigen, exactly k kept, the k largest", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(7);
  const C w = make<C>(v);
  const reference_t<C> r = make<reference_t<C>>(v);
  for (std::size_t k : {std::size_t(0), std::size_t(1), std::size_t(21), std::size_t(41), n_total}) {
    C mask = make<C>(std::vector<S>(n_total, S(7)));
    reference_t<C> ref_mask = make<reference_t<C>>(std::vector<S>(n_total, S(7)));
    bipq::top_k_mask(w, k, mask);
    bipq::top_k_mask(r, k, ref_mask);
    CHECK(flat(mask) == flat(ref_mask));
    // Definition: 0/1, exactly k ones, and every kept score beats every dropped one (ties: lower index kept).
    const auto m = flat(mask);
    CHECK(std::count(m.begin(), m.end(), S(1)) == std::ptrdiff_t(k));
    CHECK(std::count(m.begin(), m.end(), S(0)) == std::ptrdiff_t(n_total - k));
    for (std::size_t i = 0; i < n_total; ++i)
      for (std::size_t j = 0; j < n_total; ++j)
        if (m[i] == S(1) && m[j] == S(0)) REQUIRE((v[i] > v[j] || (v[i] == v[j] && i < j)));

    C mag = make<C>(std::vector<S>(n_total, S(0)));
    reference_t<C> ref_mag = make<reference_t<C>>(std::vector<S>(n_total, S(0)));
    bipq::magnitude_mask(w, k, mag);
    bipq::magnitude_mask(r, k, ref_mag);
    CHECK(flat(mag) == flat(ref_mag));
    const auto mm = flat(mag);
    CHECK(std::count(mm.begin(), mm.end(), S(1)) == std::ptrdiff_t(k));
    for (std::size_t i = 0; i < n_total; ++i)
      for (std::size_t j = 0; j < n_total; ++j)
        if (mm[i] == S(1) && mm[j] == S(0))
          REQUIRE((std::abs(v[i]) > std::abs(v[j]) || (std::abs(v[i]) == std::abs(v[j]) && i < j)));
  }
  // Among eligible entries only, shrinking the mask in place is not required here: eligible is its own container.
  std::vector<S> e(n_total);
  for (std::size_t i = 0; i < n_total; ++i) e[i] = S(i % 2);
  const C eligible = make<C>(e);
  C mask = make<C>(std::vector<S>(n_total, S(0)));
  reference_t<C> ref_mask = make<reference_t<C>>(std::vector<S>(n_total, S(0)));
  bipq::magnitude_mask(w, 30, mask, eligible);
  bipq::magnitude_mask(r, 30, ref_mask, make<reference_t<C>>(e));
  CHECK(flat(mask) == flat(ref_mask));
  const auto m = flat(mask);
  CHECK(std::count(m.begin(), m.end(), S(1)) == 30);
  for (std::size_t i = 0; i < n_total; ++i)
    if (e[i] == S(0)) CHECK(m[i] == S(0));
}

TEST_CASE_TEMPLATE("capped simplex projection into xtensor: same bits as Eigen, and the KKT form clip(v − λ, 0, 1)", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  auto v = test_values<S>(8);
  for (auto& x : v) x = x * S(0.6) + S(0.4);  // a spread around [0, 1], so that both caps are active
  const C vc = make<C>(v);
  const reference_t<C> r = make<reference_t<C>>(v);
  for (double k : {0.0, 3.5, 20.0, 1000.0}) {
    for (auto c : {bipq::simplex_constraint::at_most, bipq::simplex_constraint::equal}) {
      if (c == bipq::simplex_constraint::equal && k > double(n_total)) continue;
      C out = make<C>(std::vector<S>(n_total, S(0)));
      reference_t<C> ref_out = make<reference_t<C>>(std::vector<S>(n_total, S(0)));
      bipq::capped_simplex_projection(vc, k, out, c);
      bipq::capped_simplex_projection(r, k, ref_out, c);
      CHECK(flat(out) == flat(ref_out));
      const double lambda = bipq::capped_simplex_threshold(std::span<const S>(v), k, c);
      if (c == bipq::simplex_constraint::at_most) CHECK(lambda >= 0.0);
      const auto m = flat(out);
      double sum = 0.0;
      for (std::size_t i = 0; i < n_total; ++i) {
        const double expected = std::clamp(double(v[i]) - lambda, 0.0, 1.0);
        REQUIRE(double(m[i]) == doctest::Approx(expected).epsilon(1e-6).scale(1.0));
        sum += double(m[i]);
      }
      if (c == bipq::simplex_constraint::equal || lambda > 0.0)
        CHECK(sum == doctest::Approx(k).epsilon(1e-5).scale(1.0));
      else
        CHECK(sum <= k + 1e-5);
    }
  }
}

TEST_CASE_TEMPLATE("N:M and group masks into xtensor: same mask as Eigen, N largest per group, k largest groups", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(9);
  const C w = make<C>(v);
  const reference_t<C> r = make<reference_t<C>>(v);
  const std::size_t shape[] = {rows, cols};
  // 2:4 along the input dimension (the 12 columns of each row): 3 groups of 4 per row.
  C mask = make<C>(std::vector<S>(n_total, S(5)));
  reference_t<C> ref_mask = make<reference_t<C>>(std::vector<S>(n_total, S(5)));
  bipq::n_m_mask(w, shape, 2, 4, mask);
  bipq::n_m_mask(r, shape, 2, 4, ref_mask);
  CHECK(flat(mask) == flat(ref_mask));
  const auto m = flat(mask);
  for (std::size_t g = 0; g < n_total / 4; ++g) {
    std::size_t kept = 0;
    for (std::size_t i = 4 * g; i < 4 * g + 4; ++i) kept += m[i] == S(1);
    CHECK(kept == 2);
    for (std::size_t i = 4 * g; i < 4 * g + 4; ++i)
      for (std::size_t j = 4 * g; j < 4 * g + 4; ++j)
        if (m[i] == S(1) && m[j] == S(0))
          REQUIRE((std::abs(v[i]) > std::abs(v[j]) || (std::abs(v[i]) == std::abs(v[j]) && i < j)));
  }
  // Keep 3 of the 8 rows (output groups) by L2 norm.
  for (auto norm : {bipq::group_norm::l1, bipq::group_norm::l2}) {
    C gmask = make<C>(std::vector<S>(n_total, S(0)));
    reference_t<C> ref_gmask = make<reference_t<C>>(std::vector<S>(n_total, S(0)));
    bipq::group_top_k_mask(w, shape, 3, gmask, bipq::group_axis::output, norm);
    bipq::group_top_k_mask(r, shape, 3, ref_gmask, bipq::group_axis::output, norm);
    CHECK(flat(gmask) == flat(ref_gmask));
    const auto gm = flat(gmask);
    std::vector<double> row_norm(rows, 0.0);
    std::vector<bool> row_kept(rows);
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) {
        const double a = std::abs(double(v[i * cols + j]));
        row_norm[i] += norm == bipq::group_norm::l1 ? a : a * a;
        REQUIRE(gm[i * cols + j] == gm[i * cols]);  // whole rows only
      }
      row_kept[i] = gm[i * cols] == S(1);
    }
    CHECK(std::count(row_kept.begin(), row_kept.end(), true) == 3);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < rows; ++j)
        if (row_kept[i] && !row_kept[j]) CHECK(row_norm[i] >= row_norm[j]);
  }
}

TEST_CASE_TEMPLATE("apply_mask, count_nonzero, density, sparsity on xtensor: same as Eigen and as counting", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(10);
  std::vector<S> m(n_total);
  for (std::size_t i = 0; i < n_total; ++i) m[i] = S((i * 7) % 5 < 2);
  C w = make<C>(v);
  reference_t<C> r = make<reference_t<C>>(v);
  bipq::apply_mask(w, make<C>(m));
  bipq::apply_mask(r, make<reference_t<C>>(m));
  CHECK(flat(w) == flat(r));
  std::size_t nnz = 0;
  for (std::size_t i = 0; i < n_total; ++i) {
    CHECK(flat(w)[i] == v[i] * m[i]);
    nnz += v[i] * m[i] != S(0);
  }
  CHECK(bipq::count_nonzero(w) == nnz);
  CHECK(bipq::count_nonzero(w) == bipq::count_nonzero(r));
  CHECK(bipq::density(w) == double(nnz) / double(n_total));
  CHECK(bipq::density(w) == bipq::density(r));
  CHECK(bipq::sparsity(w) == 1.0 - double(nnz) / double(n_total));
}

TEST_CASE_TEMPLATE("operators across tensors take xtensor containers through as_span: same masks as Eigen", C,
                   BIPQ_CONTAINERS) {
  using S = scalar_t<C>;
  const auto v = test_values<S>(11), u = test_values<S>(12);
  std::vector<C> ws = {make<C>(v), make<C>(u)}, masks = {make<C>(std::vector<S>(n_total, S(0))),
                                                           make<C>(std::vector<S>(n_total, S(0)))};
  std::vector<reference_t<C>> rs = {make<reference_t<C>>(v), make<reference_t<C>>(u)},
                              rmasks = {make<reference_t<C>>(std::vector<S>(n_total, S(0))),
                                        make<reference_t<C>>(std::vector<S>(n_total, S(0)))};
  auto const_spans = [](auto& xs) {
    std::vector<std::span<const S>> out;
    for (auto& x : xs) out.emplace_back(bipq::as_span(x));
    return out;
  };
  const auto w_spans = const_spans(ws), r_spans = const_spans(rs);
  const auto m_spans = bipq::as_spans(masks), rm_spans = bipq::as_spans(rmasks);
  bipq::magnitude_mask_global<S>(w_spans, 50, m_spans);
  bipq::magnitude_mask_global<S>(r_spans, 50, rm_spans);
  CHECK(flat(masks[0]) == flat(rmasks[0]));
  CHECK(flat(masks[1]) == flat(rmasks[1]));
  // The 50 largest |w| over both tensors: the threshold separates kept from dropped across the tensors.
  double min_kept = INFINITY, max_dropped = 0.0;
  std::size_t kept = 0;
  for (std::size_t t = 0; t < 2; ++t) {
    const auto m = flat(masks[t]);
    const auto& x = t == 0 ? v : u;
    for (std::size_t i = 0; i < n_total; ++i) {
      if (m[i] == S(1)) min_kept = std::min(min_kept, std::abs(double(x[i]))), ++kept;
      else max_dropped = std::max(max_dropped, std::abs(double(x[i])));
    }
  }
  CHECK(kept == 50);
  CHECK(min_kept >= max_dropped);
  const auto report = bipq::density<S>(const_spans(masks));
  CHECK(report.overall == doctest::Approx(50.0 / double(2 * n_total)).epsilon(1e-15));
  CHECK(report.per_tensor == bipq::density<S>(const_spans(rmasks)).per_tensor);
}

TEST_CASE("xtensor adaptors over user storage and fixed-size xtensors are flat tensors too; views are rejected") {
  std::vector<float> storage = test_values<float>(13);
  auto adapted = xt::adapt(storage, std::vector<std::size_t>{rows, cols});
  static_assert(bipq::flat_tensor<decltype(adapted)>);
  static_assert(bipq::flat_tensor<xt::xtensor_fixed<double, xt::xshape<4, 3>>>);
  static_assert(!bipq::flat_tensor<decltype(xt::view(std::declval<xt::xtensor<float, 2>&>(), 1, xt::all()))>);
  const Eigen::VectorXf r = make<Eigen::VectorXf>(storage);
  CHECK(bipq::pq_index(adapted) == bipq::pq_index(r));
  std::vector<float> mask_storage(n_total, 0.0f);
  auto mask = xt::adapt(mask_storage, std::vector<std::size_t>{rows, cols});
  bipq::magnitude_mask(adapted, 12, mask);  // writes through the adaptor into mask_storage
  Eigen::VectorXf ref(n_total);
  bipq::magnitude_mask(r, 12, ref);
  CHECK(mask_storage == flat(ref));
  CHECK(std::count(mask_storage.begin(), mask_storage.end(), 1.0f) == 12);
}
