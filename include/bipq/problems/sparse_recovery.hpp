#pragma once
// The compressed-sensing baselines for planted-support recovery, min ℓ(x) = ‖Ax − b‖² / 2n subject to ‖x‖₀ ≤ k
// (the scaling of least_squares_problem: ∇ℓ = Aᵀ(Ax − b)/n), and the statistics of a recovery study.
//
//   iterative_hard_thresholding   x ← H_k(x − μ ∇ℓ(x))                     Blumensath & Davies, ACHA 27 (2009)
//   hard_thresholding_pursuit     S ← top_k(x − μ ∇ℓ(x)), x ← LS on S      Foucart, SIAM J. Numer. Anal. 49 (2011)
//   orthogonal_matching_pursuit   add argmax_j |A_jᵀr|, LS on the support    Pati et al. 1993; Tropp & Gilbert 2007
//   lasso_fista                   min ℓ(x) + λ‖x‖₁ by FISTA (restarts)     Beck & Teboulle, SIAM J. Imaging Sci. 2 (2009)
//   debiased_lasso                the Lasso's support, LS on it, top k, LS  post-Lasso: Belloni & Chernozhukov,
//                                                                            Bernoulli 19 (2013)
//   least_norm_magnitude_pruning  top k of |A⁺b|, LS on it                  one-shot magnitude pruning
//
// H_k keeps the k entries of largest magnitude (ties: the lower index, as magnitude_mask). Every function returns
// the estimate, its support (sorted) and how many iterations it took; computation is in double.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace bipq {

/// An estimate of the planted vector: x (d entries), its support (sorted indices of the kept entries; exactly k
/// for the k-sparse methods) and the iterations run.
struct sparse_estimate {
  Eigen::VectorXd x;
  std::vector<std::size_t> support;
  std::size_t iterations = 0;
  bool converged = false;  ///< the method's stopping rule was met before its iteration limit
};

/// The sorted indices of the k entries of largest |x| (ties broken by the lower index). Throws if k > size.
std::vector<std::size_t> largest_entries(const Eigen::VectorXd& x, std::size_t k);

/// argmin_{supp(x) ⊆ S} ‖Ax − b‖ (zero outside S), by a column-pivoting QR of A_S (least norm if A_S is rank
/// deficient). Throws on an index out of range.
Eigen::VectorXd least_squares_on_support(const Eigen::MatrixXd& a, const Eigen::VectorXd& b,
                                         std::span<const std::size_t> support);

/// λ_max(AᵀA/n), from the smaller of AᵀA and AAᵀ.
double largest_gram_eigenvalue(const Eigen::MatrixXd& a);

/// Iterative hard thresholding: x⁰ = 0, x^{t+1} = H_k(x^t − μ Aᵀ(Ax^t − b)/n). Stops when the support is unchanged and
/// ‖x^{t+1} − x^t‖ ≤ tolerance · ‖x^{t+1}‖, or after max_iterations.
struct iht_params {
  double step = 0.6;              ///< μ > 0, in units of the 1/n-scaled gradient (μ = 1 is IHT on A/√n)
  std::size_t max_iterations = 500;
  double tolerance = 1e-10;
};
sparse_estimate iterative_hard_thresholding(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k,
                                            const iht_params& p = {});

/// Hard thresholding pursuit (Foucart 2011, Algorithm HTP): x⁰ = 0; S^{t+1} = top_k(x^t − μ Aᵀ(Ax^t − b)/n);
/// x^{t+1} = least_squares_on_support(S^{t+1}). Stops when S^{t+1} = S^t (then x is the least-squares solution on
/// its support), or after max_iterations.
struct htp_params {
  double step = 1.0;  ///< μ > 0 (Foucart's μ = 1 for A/√n)
  std::size_t max_iterations = 100;
};
sparse_estimate hard_thresholding_pursuit(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k,
                                          const htp_params& p = {});

/// Orthogonal matching pursuit: S = ∅, r = b; k times: S ← S ∪ {argmax_{j∉S} |A_jᵀ r|}, x = least squares on S,
/// r = b − Ax. The residual is orthogonal to the chosen columns (A_Sᵀ r = 0).
sparse_estimate orthogonal_matching_pursuit(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k);

/// The Lasso, min_x ‖Ax − b‖²/2n + λ‖x‖₁, by FISTA (Beck & Teboulle 2009) with step 1/L, L = λ_max(AᵀA/n), and the
/// gradient restart of O'Donoghue & Candès (2015): y ← x, t ← 1 whenever (y − x⁺)ᵀ(x⁺ − x) > 0.
///   x⁺ = soft(y − ∇ℓ(y)/L, λ/L),  t⁺ = (1 + √(1 + 4t²))/2,  y ← x⁺ + ((t − 1)/t⁺)(x⁺ − x),  soft(u, τ) = sign(u)·max(|u| − τ, 0).
/// Stops when ‖x⁺ − x‖ ≤ tolerance · max(1, ‖x⁺‖). KKT at the solution: |A_jᵀ(b − Ax)/n| ≤ λ, with equality and the
/// sign of x_j where x_j ≠ 0. The support is {j : x_j ≠ 0}.
struct lasso_params {
  double lambda = 0.1;  ///< λ > 0
  std::size_t max_iterations = 20000;
  double tolerance = 1e-9;
};
sparse_estimate lasso_fista(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, const lasso_params& p);

/// λ = c · σ · √(2 ln d / n): the universal threshold of Donoho & Johnstone (Biometrika 81, 1994) for the 1/n-scaled
/// gradient Aᵀε/n of Gaussian noise of level σ, times c.
double universal_lasso_lambda(double sigma, std::size_t n, std::size_t d, double c = 1.0);

/// Lasso, then least squares on the Lasso's support (at most n − 1 of its largest entries), then the k largest of
/// that debiased vector and least squares on them. Fewer than k Lasso non-zeros give a support of that size.
sparse_estimate debiased_lasso(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k, const lasso_params& p);

/// The least-norm least-squares solution A⁺b: Aᵀ(AAᵀ)⁻¹b when n ≤ d and AAᵀ is well conditioned (Cholesky, the cheap
/// path for a full-row-rank A), else by a complete orthogonal decomposition.
Eigen::VectorXd least_norm_solution(const Eigen::MatrixXd& a, const Eigen::VectorXd& b);

/// One-shot magnitude pruning of the least-norm solution: S = top_k(|A⁺b|), x = least squares on S.
sparse_estimate least_norm_magnitude_pruning(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k);

/// True if `support` (sorted) is exactly `truth` (sorted).
inline bool exact_recovery(std::span<const std::size_t> support, std::span<const std::size_t> truth) {
  return std::equal(support.begin(), support.end(), truth.begin(), truth.end());
}

/// The Wilson score interval for a binomial proportion, s successes in t trials (Wilson, JASA 22, 1927), at the
/// normal quantile z (1.96 for 95%): (p̂ + z²/2t ± z √(p̂(1 − p̂)/t + z²/4t²)) / (1 + z²/t). Returns {0, 1} for t = 0.
struct proportion_interval {
  double low = 0.0, high = 1.0;
};
proportion_interval wilson_interval(std::size_t successes, std::size_t trials, double z = 1.959963984540054);

/// McNemar's exact test (McNemar, Psychometrika 12, 1947, in its exact binomial form): with b pairs where only the first
/// method succeeds and c where only the second does, p = min(1, 2 · P[Bin(b + c, 1/2) ≤ min(b, c)]); 1 when b + c = 0.
double mcnemar_exact_p(std::size_t only_first, std::size_t only_second);

// ------------------------------------------------------------------------------------------------------------------

namespace detail {

inline Eigen::VectorXd soft_threshold(const Eigen::VectorXd& u, double tau) {
  return u.unaryExpr([tau](double v) { return v > tau ? v - tau : (v < -tau ? v + tau : 0.0); });
}

inline std::vector<std::size_t> nonzero_indices(const Eigen::VectorXd& x) {
  std::vector<std::size_t> s;
  for (Eigen::Index j = 0; j < x.size(); ++j)
    if (x(j) != 0.0) s.push_back(static_cast<std::size_t>(j));
  return s;
}

/// One gradient step on ‖Ax − b‖²/2n: x − (μ/n) Aᵀ(Ax − b), `scale` = μ/n (the step of IHT and HTP).
inline Eigen::VectorXd gradient_step(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, const Eigen::VectorXd& x,
                                     double scale) {
  return x - scale * (a.transpose() * (a * x - b));
}

inline void check_recovery_input(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k, const char* func) {
  if (a.rows() == 0 || a.cols() == 0) throw std::invalid_argument(std::string(func) + "(): a must not be empty");
  if (b.size() != a.rows())
    throw std::invalid_argument(std::string(func) + "(): b has size " + std::to_string(b.size()) + ", expected " +
                                std::to_string(a.rows()));
  if (k == 0 || k > static_cast<std::size_t>(a.cols()))
    throw std::invalid_argument(std::string(func) + "(): k must be in [1, " + std::to_string(a.cols()) + "]");
}

}  // namespace detail

inline std::vector<std::size_t> largest_entries(const Eigen::VectorXd& x, std::size_t k) {
  const auto d = static_cast<std::size_t>(x.size());
  if (k > d) throw std::invalid_argument("largest_entries(): k exceeds the size of x");
  std::vector<std::size_t> idx(d);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  auto before = [&](std::size_t i, std::size_t j) {
    const double ai = std::abs(x(static_cast<Eigen::Index>(i))), aj = std::abs(x(static_cast<Eigen::Index>(j)));
    return ai > aj || (ai == aj && i < j);
  };
  std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), before);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

inline Eigen::VectorXd least_squares_on_support(const Eigen::MatrixXd& a, const Eigen::VectorXd& b,
                                                std::span<const std::size_t> support) {
  Eigen::VectorXd x = Eigen::VectorXd::Zero(a.cols());
  if (support.empty()) return x;
  Eigen::MatrixXd as(a.rows(), static_cast<Eigen::Index>(support.size()));
  for (std::size_t j = 0; j < support.size(); ++j) {
    if (support[j] >= static_cast<std::size_t>(a.cols()))
      throw std::invalid_argument("least_squares_on_support(): index " + std::to_string(support[j]) + " out of range");
    as.col(static_cast<Eigen::Index>(j)) = a.col(static_cast<Eigen::Index>(support[j]));
  }
  const Eigen::VectorXd xs = as.colPivHouseholderQr().solve(b);
  for (std::size_t j = 0; j < support.size(); ++j) x(static_cast<Eigen::Index>(support[j])) = xs(static_cast<Eigen::Index>(j));
  return x;
}

inline double largest_gram_eigenvalue(const Eigen::MatrixXd& a) {
  const Eigen::MatrixXd g = a.rows() <= a.cols() ? Eigen::MatrixXd(a * a.transpose()) : Eigen::MatrixXd(a.transpose() * a);
  return Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(g, Eigen::EigenvaluesOnly).eigenvalues().maxCoeff() /
         static_cast<double>(a.rows());
}

inline sparse_estimate iterative_hard_thresholding(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k,
                                                   const iht_params& p) {
  detail::check_recovery_input(a, b, k, "iterative_hard_thresholding");
  if (!(p.step > 0.0 && std::isfinite(p.step))) throw std::invalid_argument("iterative_hard_thresholding(): step must be > 0");
  const double scale = p.step / static_cast<double>(a.rows());
  sparse_estimate out;
  out.x = Eigen::VectorXd::Zero(a.cols());
  for (out.iterations = 1; out.iterations <= p.max_iterations; ++out.iterations) {
    const Eigen::VectorXd u = detail::gradient_step(a, b, out.x, scale);
    std::vector<std::size_t> s = largest_entries(u, k);
    Eigen::VectorXd next = Eigen::VectorXd::Zero(a.cols());
    for (std::size_t j : s) next(static_cast<Eigen::Index>(j)) = u(static_cast<Eigen::Index>(j));
    const bool same = s == out.support;
    const double change = (next - out.x).norm();
    out.x = std::move(next);
    out.support = std::move(s);
    if (same && change <= p.tolerance * out.x.norm()) {
      out.converged = true;
      break;
    }
  }
  out.iterations = std::min(out.iterations, p.max_iterations);
  return out;
}

inline sparse_estimate hard_thresholding_pursuit(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k,
                                                 const htp_params& p) {
  detail::check_recovery_input(a, b, k, "hard_thresholding_pursuit");
  if (!(p.step > 0.0 && std::isfinite(p.step))) throw std::invalid_argument("hard_thresholding_pursuit(): step must be > 0");
  const double scale = p.step / static_cast<double>(a.rows());
  sparse_estimate out;
  out.x = Eigen::VectorXd::Zero(a.cols());
  for (out.iterations = 1; out.iterations <= p.max_iterations; ++out.iterations) {
    const Eigen::VectorXd u = detail::gradient_step(a, b, out.x, scale);
    std::vector<std::size_t> s = largest_entries(u, k);
    if (s == out.support) {
      out.converged = true;
      break;
    }
    out.x = least_squares_on_support(a, b, s);
    out.support = std::move(s);
  }
  out.iterations = std::min(out.iterations, p.max_iterations);
  return out;
}

inline sparse_estimate orthogonal_matching_pursuit(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k) {
  detail::check_recovery_input(a, b, k, "orthogonal_matching_pursuit");
  sparse_estimate out;
  out.x = Eigen::VectorXd::Zero(a.cols());
  std::vector<bool> chosen(static_cast<std::size_t>(a.cols()), false);
  Eigen::VectorXd r = b;
  for (std::size_t step = 0; step < k; ++step) {
    const Eigen::VectorXd c = a.transpose() * r;
    Eigen::Index best = -1;
    for (Eigen::Index j = 0; j < c.size(); ++j)
      if (!chosen[static_cast<std::size_t>(j)] && (best < 0 || std::abs(c(j)) > std::abs(c(best)))) best = j;
    chosen[static_cast<std::size_t>(best)] = true;
    out.support.insert(std::upper_bound(out.support.begin(), out.support.end(), static_cast<std::size_t>(best)),
                       static_cast<std::size_t>(best));
    out.x = least_squares_on_support(a, b, out.support);
    r = b - a * out.x;
    ++out.iterations;
  }
  out.converged = true;
  return out;
}

inline sparse_estimate lasso_fista(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, const lasso_params& p) {
  detail::check_recovery_input(a, b, 1, "lasso_fista");
  if (!(p.lambda > 0.0 && std::isfinite(p.lambda))) throw std::invalid_argument("lasso_fista(): lambda must be > 0");
  const double n = static_cast<double>(a.rows());
  const double lipschitz = largest_gram_eigenvalue(a);
  const Eigen::VectorXd atb = a.transpose() * b / n;
  sparse_estimate out;
  out.x = Eigen::VectorXd::Zero(a.cols());
  Eigen::VectorXd y = out.x;
  double t = 1.0;
  for (out.iterations = 1; out.iterations <= p.max_iterations; ++out.iterations) {
    const Eigen::VectorXd grad = a.transpose() * (a * y) / n - atb;
    const Eigen::VectorXd next = detail::soft_threshold(y - grad / lipschitz, p.lambda / lipschitz);
    const Eigen::VectorXd step = next - out.x;
    const double change = step.norm();
    const double t_next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
    if ((y - next).dot(step) > 0.0) {  // the momentum points uphill: restart
      y = next;
      t = 1.0;
    } else {
      y = next + ((t - 1.0) / t_next) * step;
      t = t_next;
    }
    out.x = next;
    if (change <= p.tolerance * std::max(1.0, out.x.norm())) {
      out.converged = true;
      break;
    }
  }
  out.iterations = std::min(out.iterations, p.max_iterations);
  out.support = detail::nonzero_indices(out.x);
  return out;
}

inline double universal_lasso_lambda(double sigma, std::size_t n, std::size_t d, double c) {
  if (!(sigma > 0.0) || n == 0 || d < 2 || !(c > 0.0))
    throw std::invalid_argument("universal_lasso_lambda(): needs sigma > 0, n >= 1, d >= 2, c > 0");
  return c * sigma * std::sqrt(2.0 * std::log(static_cast<double>(d)) / static_cast<double>(n));
}

inline sparse_estimate debiased_lasso(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k,
                                      const lasso_params& p) {
  detail::check_recovery_input(a, b, k, "debiased_lasso");
  sparse_estimate lasso = lasso_fista(a, b, p);
  std::vector<std::size_t> s = lasso.support;
  const std::size_t cap = static_cast<std::size_t>(a.rows()) - 1;
  if (cap == 0) s.clear();
  else if (s.size() > cap) s = largest_entries(lasso.x, cap);
  sparse_estimate out;
  out.iterations = lasso.iterations;
  out.converged = lasso.converged;
  const Eigen::VectorXd debiased = least_squares_on_support(a, b, s);
  out.support = s.size() > k ? largest_entries(debiased, k) : s;
  out.x = least_squares_on_support(a, b, out.support);
  return out;
}

inline Eigen::VectorXd least_norm_solution(const Eigen::MatrixXd& a, const Eigen::VectorXd& b) {
  if (a.rows() <= a.cols()) {
    const Eigen::LLT<Eigen::MatrixXd> llt(a * a.transpose());
    if (llt.info() == Eigen::Success) {
      const Eigen::VectorXd d = llt.matrixLLT().diagonal();
      if (d.minCoeff() > 1e-6 * d.maxCoeff()) return a.transpose() * llt.solve(b);
    }
  }
  return a.completeOrthogonalDecomposition().solve(b);
}

inline sparse_estimate least_norm_magnitude_pruning(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, std::size_t k) {
  detail::check_recovery_input(a, b, k, "least_norm_magnitude_pruning");
  const Eigen::VectorXd dense = least_norm_solution(a, b);
  sparse_estimate out;
  out.support = largest_entries(dense, k);
  out.x = least_squares_on_support(a, b, out.support);
  out.iterations = 1;
  out.converged = true;
  return out;
}

inline proportion_interval wilson_interval(std::size_t successes, std::size_t trials, double z) {
  if (trials == 0) return {};
  if (successes > trials) throw std::invalid_argument("wilson_interval(): successes exceed trials");
  const double t = static_cast<double>(trials), ph = static_cast<double>(successes) / t, z2 = z * z;
  const double centre = (ph + z2 / (2 * t)) / (1 + z2 / t);
  const double half = z * std::sqrt(ph * (1 - ph) / t + z2 / (4 * t * t)) / (1 + z2 / t);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

inline double mcnemar_exact_p(std::size_t only_first, std::size_t only_second) {
  const std::size_t m = only_first + only_second;
  if (m == 0) return 1.0;
  const std::size_t low = std::min(only_first, only_second);
  // P[Bin(m, 1/2) ≤ low], each term exp(ln C(m, i) − m ln 2) (lgamma: no overflow for any m)
  double tail = 0.0;
  for (std::size_t i = 0; i <= low; ++i)
    tail += std::exp(std::lgamma(static_cast<double>(m) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                     std::lgamma(static_cast<double>(m - i) + 1) - static_cast<double>(m) * std::log(2.0));
  return std::min(1.0, 2.0 * tail);
}

}  // namespace bipq
