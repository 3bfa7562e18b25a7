#pragma once
// Randomised checks of the six sparsity criteria of Hurley & Rickard, "Comparing Measures of Sparsity", IEEE Trans.
// Inf. Theory 55(10), 2009, for any measure S of non-negative vectors c where larger means sparser. Diao et al.
// (ICLR 2023, Theorem 1) prove that the PQ Index satisfies all six; the tests and examples/criteria_table.cpp use these
// checks to show it, and which of the other measures fail which.
//
//   D1 Robin Hood   S(…, c_i − α, …, c_j + α, …) < S(c)   for c_i > c_j, 0 < α < (c_i − c_j)/2
//   D2 Scaling      S(αc) = S(c)                          for α > 0
//   D3 Rising Tide  S(α + c) < S(c)                       for α > 0, c not constant
//   D4 Cloning      S(c) = S(c‖c) = S(c‖c‖c)              (‖ is concatenation)
//   P1 Bill Gates   ∀i ∃β > 0 ∀α > 0: S(…, c_i + β + α, …) > S(…, c_i + β, …)
//   P2 Babies       S(c‖0) > S(c)
//
// check_sparsity_criterion() checks a measure on random vectors: it can refute a criterion, never prove it. The
// trials, tolerances and the choice of P1's β: docs/measures.md, "Which measure satisfies which criterion".

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bipq/detail/random.hpp"

namespace bipq {

enum class sparsity_criterion { robin_hood, scaling, rising_tide, cloning, bill_gates, babies };

/// The six criteria, in Hurley & Rickard's order.
inline constexpr std::array<sparsity_criterion, 6> all_sparsity_criteria{
    sparsity_criterion::robin_hood, sparsity_criterion::scaling,    sparsity_criterion::rising_tide,
    sparsity_criterion::cloning,    sparsity_criterion::bill_gates, sparsity_criterion::babies};

/// "D1 Robin Hood", "D2 Scaling", "D3 Rising Tide", "D4 Cloning", "P1 Bill Gates", "P2 Babies".
constexpr std::string_view criterion_name(sparsity_criterion c) noexcept {
  switch (c) {
    case sparsity_criterion::robin_hood: return "D1 Robin Hood";
    case sparsity_criterion::scaling: return "D2 Scaling";
    case sparsity_criterion::rising_tide: return "D3 Rising Tide";
    case sparsity_criterion::cloning: return "D4 Cloning";
    case sparsity_criterion::bill_gates: return "P1 Bill Gates";
    case sparsity_criterion::babies: return "P2 Babies";
  }
  return "?";
}

struct criterion_check_params {
  std::uint64_t seed = 0;            ///< seed of the random vectors and parameters (same seed, same trials)
  std::size_t trials = 300;          ///< number of random vectors
  std::size_t min_size = 2;          ///< smallest dimension d drawn
  std::size_t max_size = 40;         ///< largest dimension d drawn
  double equality_tolerance = 1e-9;  ///< "=": |S₁ − S₀| ≤ equality_tolerance · max(1, |S₀|)
  double strict_margin = 1e-12;      ///< "<": S₀ − S₁ > strict_margin · max(1, |S₀|)

  /// Throws std::invalid_argument naming `func` and the field: a tolerance or margin that is NaN, infinite or
  /// negative (every comparison would then give a wrong verdict), or min_size > max_size.
  void validate(const char* func = "criterion_check_params::validate") const {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(func) + "(): params." + what); };
    if (!(equality_tolerance >= 0.0) || !std::isfinite(equality_tolerance))
      fail("equality_tolerance must be finite and >= 0");
    if (!(strict_margin >= 0.0) || !std::isfinite(strict_margin)) fail("strict_margin must be finite and >= 0");
    if (min_size > max_size)
      fail("min_size (" + std::to_string(min_size) + ") must be <= max_size (" + std::to_string(max_size) + ")");
  }
};

/// The outcome of one criterion on one measure.
struct criterion_check {
  sparsity_criterion criterion = sparsity_criterion::robin_hood;
  bool satisfied = true;              ///< no trial violated the criterion
  std::size_t trials = 0;             ///< trials run
  std::size_t violations = 0;         ///< trials that violated it
  std::vector<double> counterexample; ///< c of the first violating trial (empty if none)
  double before = 0.0;                ///< S(c) in that trial (P1: S before the last increase of c_i)
  double after = 0.0;                 ///< S of the transformed vector in that trial (P1: after it)
};

/// Checks `measure` (callable as `double(std::span<const double>)`, larger = sparser) against one criterion on
/// `params.trials` random non-negative vectors. Throws std::invalid_argument if params is invalid (see validate()).
template <class Measure>
criterion_check check_sparsity_criterion(Measure&& measure, sparsity_criterion criterion,
                                         const criterion_check_params& params = {});

// ---------------------------------------------------------------------------------------------------------------
namespace detail {

/// A random non-negative vector for the criteria: uniform, half-normal, Pareto(1.5) or 70%-sparse entries.
inline std::vector<double> criterion_vector(rng& g, std::size_t min_size, std::size_t max_size) {
  const std::size_t d = min_size + static_cast<std::size_t>(g.below(max_size - min_size + 1));
  const auto kind = g.below(4);
  std::vector<double> c(d);
  for (auto& x : c) {
    switch (kind) {
      case 0: x = g.uniform(); break;
      case 1: x = std::fabs(g.normal()); break;
      case 2: x = std::pow(1.0 - g.uniform(), -1.0 / 1.5); break;  // Pareto(1.5) on [1, ∞)
      default: x = g.uniform() < 0.7 ? 0.0 : g.uniform(); break;
    }
  }
  return c;
}

inline bool is_constant(const std::vector<double>& c) {
  return std::all_of(c.begin(), c.end(), [&](double x) { return x == c.front(); });
}

inline double log_uniform(rng& g, double lo, double hi) {
  return std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * g.uniform());
}

}  // namespace detail
// ---------------------------------------------------------------------------------------------------------------

template <class Measure>
criterion_check check_sparsity_criterion(Measure&& measure, sparsity_criterion criterion,
                                         const criterion_check_params& params) {
  params.validate("check_sparsity_criterion");
  detail::rng g(params.seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(criterion) + 1);
  criterion_check result;
  result.criterion = criterion;
  auto S = [&](const std::vector<double>& v) { return static_cast<double>(measure(std::span<const double>(v))); };
  auto equal = [&](double s0, double s1) {
    return std::fabs(s1 - s0) <= params.equality_tolerance * std::max(1.0, std::fabs(s0));
  };
  auto less = [&](double s1, double s0) { return s0 - s1 > params.strict_margin * std::max(1.0, std::fabs(s0)); };
  const std::size_t min_size = std::max<std::size_t>(params.min_size, 2);
  const std::size_t max_size = std::max(params.max_size, min_size);

  for (std::size_t trial = 0; trial < params.trials; ++trial) {
    std::vector<double> c = detail::criterion_vector(g, min_size, max_size);
    while (detail::is_constant(c)) c = detail::criterion_vector(g, min_size, max_size);
    std::size_t gates_index = 0;
    if (criterion == sparsity_criterion::bill_gates) {
      gates_index = static_cast<std::size_t>(g.below(c.size()));
      // Another entry must be non-zero: otherwise c_i + β is already one-hot, as sparse as can be.
      bool others_zero = true;
      for (std::size_t k = 0; k < c.size(); ++k) others_zero = others_zero && (k == gates_index || c[k] == 0.0);
      if (others_zero) c[(gates_index + 1) % c.size()] = 0.5 + g.uniform();
    }
    double s0 = S(c);
    double s1 = s0;
    bool ok = true;
    switch (criterion) {
      case sparsity_criterion::robin_hood: {
        std::size_t i = 0, j = 0;
        do {
          i = static_cast<std::size_t>(g.below(c.size()));
          j = static_cast<std::size_t>(g.below(c.size()));
        } while (!(c[i] > c[j]));
        const double alpha = (0.05 + 0.9 * g.uniform()) * (c[i] - c[j]) / 2;
        auto t = c;
        t[i] -= alpha;
        t[j] += alpha;
        s1 = S(t);
        ok = less(s1, s0);
        break;
      }
      case sparsity_criterion::scaling: {
        const double alpha = detail::log_uniform(g, 1e-3, 1e3);
        auto t = c;
        for (auto& x : t) x *= alpha;
        s1 = S(t);
        ok = equal(s0, s1);
        break;
      }
      case sparsity_criterion::rising_tide: {
        double mean = 0;
        for (double x : c) mean += x;
        mean /= static_cast<double>(c.size());
        const double alpha = detail::log_uniform(g, 1e-2, 1e1) * mean;
        auto t = c;
        for (auto& x : t) x += alpha;
        s1 = S(t);
        ok = less(s1, s0);
        break;
      }
      case sparsity_criterion::cloning: {
        auto t = c;
        t.insert(t.end(), c.begin(), c.end());
        s1 = S(t);
        ok = equal(s0, s1);
        if (ok) {
          t.insert(t.end(), c.begin(), c.end());
          s1 = S(t);
          ok = equal(s0, s1);
        }
        break;
      }
      case sparsity_criterion::bill_gates: {
        const std::size_t i = gates_index;
        double l1 = 0;
        for (double x : c) l1 += x;
        const double beta = 10.0 * (l1 + 1.0);
        auto t = c;
        t[i] = c[i] + beta;
        s1 = S(t);
        for (double alpha = beta / 2; alpha <= 64 * beta && ok; alpha *= 2) {
          s0 = s1;
          t[i] = c[i] + beta + alpha;
          s1 = S(t);
          ok = less(s0, s1);
        }
        break;
      }
      case sparsity_criterion::babies: {
        auto t = c;
        t.push_back(0.0);
        s1 = S(t);
        ok = less(s0, s1);
        break;
      }
    }
    ++result.trials;
    if (!ok) {
      if (result.violations == 0) {
        result.counterexample = c;
        result.before = s0;
        result.after = s1;
      }
      ++result.violations;
      result.satisfied = false;
    }
  }
  return result;
}

}  // namespace bipq
