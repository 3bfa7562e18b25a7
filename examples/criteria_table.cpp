// Which sparsity measures satisfy which of Hurley & Rickard's six criteria? Runs the same randomised checks
// (bipq/sparsity/criteria.hpp) over every measure and prints a markdown table: ✓ where no trial violated the
// criterion, ✗ with the number of violating trials otherwise. The output is reproduced in docs/measures.md.
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <bipq/bipq.hpp>

int main() {
  struct named_measure {
    std::string name;
    std::function<double(std::span<const double>)> measure;  // larger = sparser
  };
  const std::vector<named_measure> measures{
      {"PQ Index (p = 0.5, q = 1)", [](std::span<const double> c) { return bipq::pq_index(c, 0.5, 1.0); }},
      {"PQ Index (p = 1, q = 2)", [](std::span<const double> c) { return bipq::pq_index(c, 1.0, 2.0); }},
      {"PQ Index (p = 0.5, q = 2)", [](std::span<const double> c) { return bipq::pq_index(c, 0.5, 2.0); }},
      {"Hoyer", [](std::span<const double> c) { return bipq::hoyer(c); }},
      {"Gini index", [](std::span<const double> c) { return bipq::gini_index(c); }},
      {"L0 fraction", [](std::span<const double> c) { return bipq::l0_fraction(c); }},
      {"L0_ε fraction (ε = 0.05)", [](std::span<const double> c) { return bipq::l0_epsilon_fraction(c, 0.05); }},
      {"kurtosis κ4", [](std::span<const double> c) { return bipq::kurtosis(c); }},
      {"−L1/L2", [](std::span<const double> c) { return -bipq::l1_l2_ratio(c); }},
  };
  const bipq::criterion_check_params params{.seed = 2023, .trials = 1000};

  std::printf("| measure |");
  for (auto criterion : bipq::all_sparsity_criteria) std::printf(" %s |", std::string(bipq::criterion_name(criterion)).c_str());
  std::printf("\n|---|");
  for (std::size_t i = 0; i < bipq::all_sparsity_criteria.size(); ++i) std::printf(":---:|");
  std::printf("\n");
  for (const auto& m : measures) {
    std::printf("| %s |", m.name.c_str());
    for (auto criterion : bipq::all_sparsity_criteria) {
      const auto r = bipq::check_sparsity_criterion(m.measure, criterion, params);
      if (r.satisfied) {
        std::printf(" ✓ |");
      } else {
        std::printf(" ✗ (%zu/%zu) |", r.violations, r.trials);
      }
    }
    std::printf("\n");
  }
  std::printf("\n%zu random non-negative vectors per cell (d from %zu to %zu, seed %llu); ✗ (k/n): k of n trials "
              "violated the criterion.\n",
              params.trials, params.min_size, params.max_size, static_cast<unsigned long long>(params.seed));
  return 0;
}
