// Must not compile: a callback passed as const whose hook is non-const would never be called.
#include "bipq/problems/linear.hpp"
#include "bipq/solver/bilevel.hpp"

struct counts_epochs {
  int epochs = 0;
  void end_epoch(const bipq::epoch_info<double>&) { ++epochs; }
};

int main() {
  bipq::linear_problem<double> problem(bipq::linear_problem<double>::matrix::Ones(2, 4));
  const counts_epochs c;
  bipq::bilevel_params p;
  p.iterations = 1;
  bipq::bilevel_solver(p).optimize(problem, c);
}
