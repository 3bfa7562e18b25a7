// kept_count: the one density → count conversion, at its edges; the one termination vocabulary and brief reports.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "bipq/mask/count.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/prune/common.hpp"
#include "bipq/solver/result.hpp"
#include "bipq/termination.hpp"

using bipq::count_rounding;
using bipq::kept_count;

TEST_CASE("kept_count rounds density * n to the nearest integer, halves away from zero") {
  CHECK(kept_count(0.05, 1000) == 50);
  CHECK(kept_count(0.5, 3) == 2);     // 1.5 → 2
  CHECK(kept_count(0.25, 10) == 3);   // 2.5 → 3
  CHECK(kept_count(0.249, 10) == 2);  // 2.49 → 2
  CHECK(kept_count(0.3, 10) == 3);    // 0.3 · 10 = 3.0000000000000004
}

TEST_CASE("kept_count at the edges: never 0 entries of a non-empty tensor, never more than n, 0 of nothing") {
  CHECK(kept_count(1.0, 7) == 7);
  CHECK(kept_count(1e-12, 7) == 1);
  CHECK(kept_count(0.01, 10) == 1);  // 0.1 rounds to 0, clamped to 1
  CHECK(kept_count(1.0, 1) == 1);
  CHECK(kept_count(0.5, 0) == 0);
  CHECK(kept_count(1.0, 0, count_rounding::up) == 0);
  const std::size_t big = std::size_t{1} << 40;
  CHECK(kept_count(1.0, big) == big);
  CHECK(kept_count(0.5, big) == big / 2);
}

TEST_CASE("kept_count up is the smallest count reaching the density, ignoring floating-point excess") {
  CHECK(kept_count(0.05, 200, count_rounding::up) == 10);  // 0.05 · 200 = 10.000000000000002
  CHECK(kept_count(0.05, 201, count_rounding::up) == 11);  // 10.05
  CHECK(kept_count(0.3, 10, count_rounding::up) == 3);
  CHECK(kept_count(0.31, 10, count_rounding::up) == 4);
  CHECK(kept_count(1e-12, 5, count_rounding::up) == 1);
  CHECK(kept_count(1.0, 5, count_rounding::up) == 5);
  // up is never below nearest, and they differ by at most one
  for (std::size_t n : {1u, 2u, 3u, 10u, 97u, 1000u})
    for (double d : {0.01, 0.05, 0.1, 0.33, 0.5, 0.77, 0.999, 1.0}) {
      const std::size_t a = kept_count(d, n), b = kept_count(d, n, count_rounding::up);
      CHECK(b >= a);
      CHECK(b - a <= 1);
    }
}

TEST_CASE("kept_count rejects densities outside (0, 1], naming the function and the argument") {
  for (double d : {0.0, -0.1, 1.0000001, std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity()}) {
    try {
      (void)kept_count(d, 10);
      FAIL("no exception for density " << d);
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      CHECK(what.find("kept_count()") != std::string::npos);
      CHECK(what.find("'density'") != std::string::npos);
    }
  }
}

TEST_CASE("one termination vocabulary: every reason has a distinct name") {
  using bipq::termination;
  CHECK(bipq::to_string(termination::completed) == "completed");
  CHECK(bipq::to_string(termination::callback_stop) == "callback_stop");
  CHECK(bipq::to_string(termination::mask_converged) == "mask_converged");
  CHECK(bipq::to_string(termination::diverged) == "diverged");
  // the solver, the trainer and the drivers share it
  CHECK(bipq::bilevel_result<float>{}.reason == termination::completed);
  CHECK(bipq::train_result{}.reason == termination::completed);
  CHECK(bipq::prune_result<float>{}.reason == termination::completed);
}

TEST_CASE("brief reports name the reason and the final figures") {
  bipq::bilevel_result<float> b;
  b.reason = bipq::termination::mask_converged;
  b.iterations = 12;
  b.lower_loss = {0.5, 0.25};
  b.upper_loss = {0.75, 0.375};
  b.density = {0.05, 0.05};
  b.mask_change = {4, 0};
  const std::string sb = b.brief_report();
  CHECK(sb.find("mask_converged after 12 iterations") != std::string::npos);
  CHECK(sb.find("lower loss 0.25,") != std::string::npos);
  CHECK(sb.find("upper loss 0.375,") != std::string::npos);
  CHECK(sb.find("density 0.0500") != std::string::npos);

  bipq::train_result t;
  t.reason = bipq::termination::callback_stop;
  t.epoch_loss = {1.0, 0.125};
  t.steps = 40;
  const std::string st = t.brief_report();
  CHECK(st.find("callback_stop after 2 epochs (40 steps)") != std::string::npos);
  CHECK(st.find("loss 0.125,") != std::string::npos);

  bipq::prune_result<float> p;
  p.method = "imp";
  bipq::prune_record r;
  r.density = 0.2;
  r.test_accuracy = 0.8125;
  r.pq_index = 0.5;
  p.history = {bipq::prune_record{}, r};
  const std::string sp = p.brief_report();
  CHECK(sp.find("imp: completed after 2 records, density 0.2000, test accuracy 81.25%, PQ Index 0.5000") !=
        std::string::npos);
  CHECK(bipq::prune_result<float>{}.brief_report().find("after 0 records") != std::string::npos);
}
