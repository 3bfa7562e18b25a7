#pragma once
// The callback protocol shared by every solver and driver in bipq.
//
// Callbacks are extra arguments to `optimize(...)`, `train(...)` and the pruning drivers. Each callback implements
// any subset of the hooks below; a hook is detected with `requires`, costs nothing when absent, and may return
// `bool` (true asks the run to stop; reported as termination::callback_stop) or `void`. A callback that has none of
// the hooks is a compile error, and so is a member named like a hook that cannot be called as that hook (a wrong
// parameter type, an epoch_info of the wrong element type, a non-const hook on a callback passed as const): a hook
// is never silently skipped. (A misspelt name, say `end_epcoh`, is just another member and cannot be detected.)
//
//   void begin(const run_info&)              once, before the first step
//   bool step_taken(const step_info&)        after every optimisation step (lower-level step for BiP)
//   bool end_epoch(const epoch_info<T>&)     after every epoch (BiP: every upper iteration; drivers: every round)
//   void end(const run_info&)                once, after the last step, also when a callback stopped the run

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>

namespace bipq {

/// What a run is, for callbacks that print or log.
struct run_info {
  std::string_view method;          ///< "train", "bip", "imp", ...
  std::size_t total_epochs = 0;     ///< planned number of epochs (or upper iterations / rounds)
  std::size_t steps_per_epoch = 0;  ///< steps per epoch (0 if not known)
};

/// One optimisation step.
struct step_info {
  std::size_t epoch = 0;  ///< 0-based epoch of the step
  std::size_t step = 0;   ///< 0-based step counted from the start of the run
  double loss = 0.0;      ///< mini-batch loss at this step
};

/// The end of an epoch. Fields a run does not compute are NaN (doubles) or empty (spans).
template <class T>
struct epoch_info {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::size_t epoch = 0;        ///< 0-based
  double train_loss = nan;      ///< mean mini-batch loss over the epoch (BiP: the lower-level loss)
  double upper_loss = nan;      ///< BiP: the upper-level loss ℓ(m ⊙ θ) at the upper step
  double density = nan;         ///< fraction of prunable weights kept
  std::size_t mask_change = 0;  ///< Hamming distance between this epoch's mask and the previous one
  double test_loss = nan;
  double test_accuracy = nan;
  double seconds = nan;                         ///< wall time since the run began
  std::span<const std::span<const T>> weights{};  ///< prunable weights (effective values m ⊙ θ), one span per tensor
  std::span<const std::span<const T>> masks{};    ///< their masks (same shapes), empty when unmasked
};

namespace detail {

template <class C>
concept has_begin_hook = requires(C& c, const run_info& r) { c.begin(r); };
template <class C>
concept has_end_hook = requires(C& c, const run_info& r) { c.end(r); };
template <class C>
concept has_step_hook = requires(C& c, const step_info& s) { c.step_taken(s); };
template <class C, class T>
concept has_epoch_hook = requires(C& c, const epoch_info<T>& e) { c.end_epoch(e); };

template <class R>
constexpr bool valid_hook_result = std::is_void_v<R> || std::is_same_v<R, bool>;

/// Calls `hook` and converts its result to "stop requested".
template <class F>
bool call_hook(F&& hook) {
  using result = decltype(hook());
  static_assert(valid_hook_result<result>, "bipq: a callback hook must return void or bool (true = stop)");
  if constexpr (std::is_void_v<result>) {
    hook();
    return false;
  } else {
    return hook();
  }
}

}  // namespace detail

/// A type with at least one of the hooks, for element type T.
template <class C, class T>
concept callback_for = detail::has_begin_hook<C> || detail::has_end_hook<C> || detail::has_step_hook<C> ||
                       detail::has_epoch_hook<C, T>;

namespace detail {
// A member with a hook's name, whatever its signature (false for overloaded or template members, which cannot be
// named without arguments).
template <class C>
concept names_begin = requires { &C::begin; };
template <class C>
concept names_end = requires { &C::end; };
template <class C>
concept names_step_taken = requires { &C::step_taken; };
template <class C>
concept names_end_epoch = requires { &C::end_epoch; };

/// Every member named like a hook can be called as that hook on C (C as passed: a const C needs const hooks).
template <class C, class T>
concept named_hooks_callable = (!names_begin<std::remove_cv_t<C>> || has_begin_hook<C>) &&
                               (!names_end<std::remove_cv_t<C>> || has_end_hook<C>) &&
                               (!names_step_taken<std::remove_cv_t<C>> || has_step_hook<C>) &&
                               (!names_end_epoch<std::remove_cv_t<C>> || has_epoch_hook<C, T>);

/// The checks of check_callbacks() for one callback, as passed (C keeps its const).
template <class T, class C>
constexpr bool check_callback() {
  using plain = std::remove_cv_t<C>;
  static_assert(callback_for<plain, T>,
                "bipq: a callback must have at least one hook: begin(const run_info&), end(const run_info&), "
                "step_taken(const step_info&) or end_epoch(const epoch_info<T>&) (check the hook's signature)");
  static_assert(!names_begin<plain> || has_begin_hook<C>,
                "bipq: the callback's begin cannot be called as begin(const run_info&) (wrong parameter, or a "
                "non-const hook on a callback passed as const)");
  static_assert(!names_end<plain> || has_end_hook<C>,
                "bipq: the callback's end cannot be called as end(const run_info&) (wrong parameter, or a "
                "non-const hook on a callback passed as const)");
  static_assert(!names_step_taken<plain> || has_step_hook<C>,
                "bipq: the callback's step_taken cannot be called as step_taken(const step_info&) (wrong parameter, "
                "or a non-const hook on a callback passed as const)");
  static_assert(!names_end_epoch<plain> || has_epoch_hook<C, T>,
                "bipq: the callback's end_epoch cannot be called as end_epoch(const epoch_info<T>&) for this run's "
                "element type T (wrong parameter or element type, or a non-const hook on a callback passed as const)");
  return true;
}
}  // namespace detail

/// Compile-time check used by every run that takes callbacks: a readable error for a type with no hook, for a member
/// named like a hook that cannot be called as one (wrong signature, wrong element type), and for non-const hooks
/// on a callback passed as const (they would never be called).
template <class T, class... Callbacks>
constexpr void check_callbacks() {
  [[maybe_unused]] constexpr bool checked = (detail::check_callback<T, std::remove_reference_t<Callbacks>>() && ...);
}

/// Calls begin(r) on every callback that has it.
template <class... Callbacks>
void notify_begin(const run_info& r, Callbacks&... cbs) {
  (
      [&] {
        if constexpr (detail::has_begin_hook<Callbacks>) detail::call_hook([&] { return cbs.begin(r); });
      }(),
      ...);
}

/// Calls end(r) on every callback that has it.
template <class... Callbacks>
void notify_end(const run_info& r, Callbacks&... cbs) {
  (
      [&] {
        if constexpr (detail::has_end_hook<Callbacks>) detail::call_hook([&] { return cbs.end(r); });
      }(),
      ...);
}

/// Calls step_taken(s) on every callback that has it (all of them, even after one asked to stop); true if any
/// asked to stop.
template <class... Callbacks>
bool notify_step(const step_info& s, Callbacks&... cbs) {
  bool stop = false;
  (
      [&] {
        if constexpr (detail::has_step_hook<Callbacks>) stop |= detail::call_hook([&] { return cbs.step_taken(s); });
      }(),
      ...);
  return stop;
}

/// Calls end_epoch(e) on every callback that has it; true if any asked to stop.
template <class T, class... Callbacks>
bool notify_epoch(const epoch_info<T>& e, Callbacks&... cbs) {
  bool stop = false;
  (
      [&] {
        if constexpr (detail::has_epoch_hook<Callbacks, T>) stop |= detail::call_hook([&] { return cbs.end_epoch(e); });
      }(),
      ...);
  return stop;
}

}  // namespace bipq
