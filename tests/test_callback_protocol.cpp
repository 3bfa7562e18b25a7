// The callback protocol: hooks are detected, results become stop requests, hookless types are rejected.
#include <doctest/doctest.h>

#include <vector>

#include "bipq/callbacks/callback.hpp"

namespace {
struct counts_steps {
  int steps = 0;
  bool step_taken(const bipq::step_info& s) { return ++steps >= 3 && s.loss < 1.0; }
};
struct records_epochs {
  std::vector<std::size_t> epochs;
  void end_epoch(const bipq::epoch_info<float>& e) { epochs.push_back(e.epoch); }
};
struct brackets {
  int begun = 0, ended = 0;
  void begin(const bipq::run_info&) { ++begun; }
  void end(const bipq::run_info&) { ++ended; }
};
struct no_hooks {
  void step(const bipq::step_info&) {}  // misnamed: not a hook
};
struct wrong_argument {
  void end_epoch(int) {}
};
}  // namespace

static_assert(bipq::callback_for<counts_steps, float>);
static_assert(bipq::callback_for<records_epochs, float>);
static_assert(!bipq::callback_for<records_epochs, double>);  // its hook takes epoch_info<float>
static_assert(!bipq::callback_for<no_hooks, float>);
static_assert(!bipq::callback_for<wrong_argument, float>);

// A member named like a hook must be callable as that hook, on the callback as passed: check_callbacks() rejects the
// ones that would never be called (tests/compile_fail/ checks the diagnostics).
struct good_and_wrong {
  void begin(const bipq::run_info&) {}
  void end_epoch(const bipq::epoch_info<double>&) {}  // right name, wrong element type for a float run
};
struct const_hooks {
  bool step_taken(const bipq::step_info&) const { return false; }
};
static_assert(bipq::detail::named_hooks_callable<counts_steps, float>);
static_assert(!bipq::detail::named_hooks_callable<const counts_steps, float>);  // non-const hook, const callback
static_assert(bipq::detail::named_hooks_callable<const const_hooks, float>);
static_assert(bipq::callback_for<good_and_wrong, float>);
static_assert(!bipq::detail::named_hooks_callable<good_and_wrong, float>);
static_assert(bipq::detail::named_hooks_callable<good_and_wrong, double>);
static_assert(!bipq::detail::named_hooks_callable<records_epochs, double>);

TEST_CASE("notify_step reports a stop request from any callback and still calls all of them") {
  counts_steps a, b;
  records_epochs r;
  bool stop = false;
  for (int i = 0; i < 3; ++i) stop = bipq::notify_step(bipq::step_info{0, std::size_t(i), 0.5}, a, r, b);
  CHECK(stop);
  CHECK(a.steps == 3);
  CHECK(b.steps == 3);
  CHECK_FALSE(bipq::notify_step(bipq::step_info{0, 3, 2.0}, a, b));  // loss too high: no stop
}

TEST_CASE("notify_epoch, notify_begin and notify_end reach the callbacks that have the hook") {
  records_epochs r;
  brackets br;
  counts_steps c;
  bipq::notify_begin(bipq::run_info{"test", 2, 10}, r, br, c);
  CHECK_FALSE(bipq::notify_epoch(bipq::epoch_info<float>{.epoch = 0}, r, br, c));
  CHECK_FALSE(bipq::notify_epoch(bipq::epoch_info<float>{.epoch = 1}, r, br, c));
  bipq::notify_end(bipq::run_info{"test", 2, 10}, r, br, c);
  CHECK(r.epochs == std::vector<std::size_t>{0, 1});
  CHECK(br.begun == 1);
  CHECK(br.ended == 1);
  bipq::check_callbacks<float, records_epochs, brackets, counts_steps>();
}
