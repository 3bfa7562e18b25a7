// mask_spec and mask_set: the one description of a mask and the one store of a model's masks, shared by the
// bi-level solver and the drivers.

#include <doctest/doctest.h>

#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bipq/mask/mask_set.hpp"
#include "bipq/mask/spec.hpp"

using bipq::parameter;
using bipq::parameter_kind;

namespace {
/// A model's parameters over storage it owns: conv weight [2, 1, 2, 2], its bias, a linear weight [3, 4] and a
/// parameter whose shape does not fit its size.
struct toy_params {
  std::vector<double> conv = std::vector<double>(8, 1.0), bias = std::vector<double>(2, 1.0),
                      fc = std::vector<double>(12, 1.0), odd = std::vector<double>(5, 1.0);
  std::vector<double> g_conv = conv, g_bias = bias, g_fc = fc, g_odd = odd;
  std::vector<parameter<double>> params{
      {"conv.weight", {2, 1, 2, 2}, parameter_kind::conv_weight, conv, g_conv},
      {"conv.bias", {2}, parameter_kind::bias, bias, g_bias},
      {"fc.weight", {3, 4}, parameter_kind::linear_weight, fc, g_fc},
      {"odd.weight", {2, 2}, parameter_kind::linear_weight, odd, g_odd},
  };
  std::span<const parameter<double>> span() const { return params; }
};
}  // namespace

TEST_CASE("a new mask_set keeps every weight of exactly the selected parameters, in parameters() order") {
  toy_params m;
  const bipq::mask_set<double> s(m.span(), bipq::prunable_selection{}, "test()");
  CHECK(s.prunable() == std::vector<std::size_t>{0, 2, 3});
  REQUIRE(s.size() == 3);
  CHECK(s.total() == 8 + 12 + 5);
  CHECK(s.kept() == s.total());
  CHECK(s.density() == 1.0);
  for (const auto& mask : s) CHECK(std::vector<double>(mask.begin(), mask.end()) == std::vector<double>(mask.size(), 1.0));
  CHECK(s.shape(0) == std::vector<std::size_t>{2, 1, 2, 2});
  CHECK(s.shape(1) == std::vector<std::size_t>{3, 4});
  CHECK(s.shape(2) == std::vector<std::size_t>{5});  // {2, 2} does not hold 5 entries

  bipq::prunable_selection conv_only{{parameter_kind::conv_weight}, {}};
  CHECK(bipq::mask_set<double>(m.span(), conv_only, "test()").prunable() == std::vector<std::size_t>{0});
  bipq::prunable_selection no_fc{};
  no_fc.exclude_names = {"fc.weight"};
  CHECK(bipq::mask_set<double>(m.span(), no_fc, "test()").prunable() == std::vector<std::size_t>{0, 3});
}

TEST_CASE("mask_set: kept and density count ones, per_parameter lays masks out as train() takes them") {
  toy_params m;
  bipq::mask_set<double> s(m.span(), bipq::prunable_selection{}, "test()");
  s[0][1] = 0.0;
  s[1][0] = 0.0;
  s[1][11] = 0.0;
  CHECK(s.kept() == 25 - 3);
  CHECK(s.density() == doctest::Approx(22.0 / 25.0).epsilon(1e-15));

  const auto layout = s.per_parameter(m.params.size());
  REQUIRE(layout.size() == 4);
  CHECK(layout[0].data() == s[0].data());
  CHECK(layout[1].empty());  // the bias is not masked
  CHECK(layout[2].data() == s[1].data());
  CHECK(layout[3].size() == 5);

  s.fill(0.0);
  CHECK(s.kept() == 0);
}

TEST_CASE("mask_set::apply zeroes exactly the masked-out weights of the model it was made for") {
  toy_params m;
  bipq::mask_set<double> s(m.span(), bipq::prunable_selection{}, "test()");
  s[1][3] = 0.0;
  s[2][4] = 0.0;
  s.apply(m.span());
  for (std::size_t i = 0; i < m.fc.size(); ++i) CHECK(m.fc[i] == (i == 3 ? 0.0 : 1.0));
  for (std::size_t i = 0; i < m.odd.size(); ++i) CHECK(m.odd[i] == (i == 4 ? 0.0 : 1.0));
  CHECK(m.bias == std::vector<double>(2, 1.0));
  const auto w = s.weights(m.span());
  REQUIRE(w.size() == 3);
  CHECK(w[1].data() == m.fc.data());

  toy_params other;
  other.params.pop_back();  // odd.weight gone: not the same model
  CHECK_THROWS_WITH_AS(s.apply(other.span()), "mask_set::apply(): 'params' is not the model the masks were made for",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.weights(other.span()),
                       "mask_set::weights(): 'params' is not the model the masks were made for", std::invalid_argument);
}

TEST_CASE("mask_set is a value: copies compare equal, and differ once a mask entry changes") {
  toy_params m;
  bipq::mask_set<double> a(m.span(), bipq::prunable_selection{}, "test()");
  bipq::mask_set<double> b = a;
  CHECK(a == b);
  b[2][0] = 0.0;
  CHECK_FALSE(a == b);
  const bipq::mask_set<double> moved = std::move(b);
  CHECK(moved.kept() == a.kept() - 1);
}

TEST_CASE("mask_set refuses a model with nothing to prune and a misspelt exclusion, naming the caller") {
  toy_params m;
  bipq::prunable_selection norms{{parameter_kind::norm}, {}};
  CHECK_THROWS_WITH_AS(bipq::mask_set<double>(m.span(), norms, "imp()"), "imp(): the problem has no prunable parameter",
                       std::invalid_argument);
  bipq::prunable_selection typo{};
  typo.exclude_names = {"fc.wieght"};
  CHECK_THROWS_WITH_AS(bipq::mask_set<double>(m.span(), typo, "imp()"),
                       "prunable_indices(): exclude_names entry 'fc.wieght' matches no parameter", std::invalid_argument);
}

TEST_CASE("mask_spec: k overrides the density, and every invalid field is named with its owner") {
  bipq::mask_spec spec;
  CHECK(spec.kept_fraction(200) == 0.05);
  spec.k = 7;
  CHECK(spec.kept_fraction(200) == 7.0 / 200.0);
  CHECK_NOTHROW(spec.validate("owner"));

  auto fails = [](auto change, const char* message) {
    bipq::mask_spec s;
    change(s);
    CHECK_THROWS_WITH_AS(s.validate("owner"), message, std::invalid_argument);
  };
  fails([](bipq::mask_spec& s) { s.density = 0.0; }, "owner: 'mask.density' must be in (0, 1]");
  fails([](bipq::mask_spec& s) { s.density = 1.0 + 1e-12; }, "owner: 'mask.density' must be in (0, 1]");
  fails(
      [](bipq::mask_spec& s) {
        s.k = 3;
        s.scope = bipq::mask_scope::per_tensor;
      },
      "owner: 'mask.k' can only be given with scope global (use 'density')");
  fails(
      [](bipq::mask_spec& s) {
        s.k = 3;
        s.structure = bipq::mask_structure::filter;
      },
      "owner: 'mask.k' can only be given with structure unstructured (use 'density')");
  fails(
      [](bipq::mask_spec& s) {
        s.structure = bipq::mask_structure::n_m;
        s.n = 0;
      },
      "owner: 'mask.n' and 'mask.m' must satisfy 1 <= n <= m");
  fails([](bipq::mask_spec& s) { s.prunable.kinds.clear(); }, "owner: 'mask.prunable.kinds' must not be empty");
}
