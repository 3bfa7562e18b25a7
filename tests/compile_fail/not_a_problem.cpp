// Must not compile: the type has no loss_and_gradient, and the solver says so in words.
#include <vector>

#include "bipq/solver/bilevel.hpp"

struct not_a_problem {
  using scalar_type = float;
  std::vector<bipq::parameter<float>> params;
  const std::vector<bipq::parameter<float>>& parameters() const { return params; }
  std::size_t num_samples() const { return 1; }
};

int main() {
  not_a_problem problem;
  bipq::bilevel_solver(bipq::bilevel_params{}).optimize(problem);
}
