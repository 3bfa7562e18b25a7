// Compact export of the xtensor MLP: removing the neurons of all-zero masked rows keeps the outputs.

#include <cmath>
#include <cstddef>
#include <vector>

#include <doctest/doctest.h>

#include "bipq/adapters/xtensor/compact.hpp"
#include "bipq/adapters/xtensor/mlp.hpp"
#include "bipq/mask/group.hpp"

using bipq::xtensor_adapter::mlp;

TEST_CASE("compact xtensor mlp: hidden neurons of zero rows removed, outputs of the masked network kept") {
  const std::vector<std::size_t> widths{20, 16, 12, 5};
  mlp<float> net(widths, 3), masked(widths, 3);
  bipq::detail::rng g(4);
  for (std::size_t l = 0; l < net.num_layers(); ++l)
    for (std::size_t o = 0; o < widths[l + 1]; ++o) net.bias(l)(o) = masked.bias(l)(o) = static_cast<float>(g.normal());
  auto params = net.parameter_list();
  bipq::prunable_selection selection;
  selection.exclude_names = {"fc3.weight"};
  bipq::mask_set<float> masks(std::span<const bipq::parameter<float>>(params), selection, "test");
  bipq::group_top_k_mask<float>(params[0].value, params[0].shape, 7, masks[0]);   // fc1: 7 of 16 neurons
  bipq::group_top_k_mask<float>(params[2].value, params[2].shape, 5, masks[1]);   // fc2: 5 of 12
  auto mp = masked.parameter_list();
  masks.apply(mp);
  mlp<float> small = bipq::xtensor_adapter::compact(net, masks);
  CHECK(small.widths() == std::vector<std::size_t>{20, 7, 5, 5});
  xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({33, 20});
  for (float& v : x) v = static_cast<float>(g.normal());
  const xt::xtensor<float, 2> a = masked.forward(x), b = small.forward(x);
  REQUIRE(a.shape() == b.shape());
  double diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::abs(a.data()[i] - b.data()[i])));
  CHECK(diff <= 1e-5);
  bool any_constant_folded = false;  // the removed fc1 neurons with positive bias feed fc2's bias
  for (std::size_t o = 0; o < 16; ++o) any_constant_folded |= masks[0][o * 20] == 0.0f && net.bias(0)(o) > 0.0f;
  CHECK(any_constant_folded);
  mlp<float> other({3, 2}, 1);
  CHECK_THROWS_WITH_AS(bipq::xtensor_adapter::compact(other, masks), "compact(): 'masks' were not made for this network",
                       std::invalid_argument);
}
