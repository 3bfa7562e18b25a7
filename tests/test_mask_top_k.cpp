// Top-k masks checked against the definition: a stable sort of positions by (larger score, lower tensor, lower
// index) keeps the first k. Inputs with many ties exercise the tie rule; sizes on both sides of the histogram
// threshold exercise both selection paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bipq/adapters/eigen/tensor.hpp"
#include "bipq/mask/top_k.hpp"

namespace {

struct position {
  std::size_t tensor, index;
};

/// Reference: positions of the eligible entries, sorted by (score desc), stable in (tensor, index); first k get 1.
template <class T>
std::vector<std::vector<T>> reference_top_k(const std::vector<std::vector<T>>& scores, std::size_t k,
                                            const std::vector<std::vector<T>>* eligible, bool magnitude) {
  std::vector<position> pos;
  for (std::size_t j = 0; j < scores.size(); ++j) {
    for (std::size_t i = 0; i < scores[j].size(); ++i) {
      if (!eligible || (*eligible)[j][i] != T(0)) pos.push_back({j, i});
    }
  }
  auto value = [&](const position& p) {
    const T x = scores[p.tensor][p.index];
    return magnitude ? std::abs(x) : x;
  };
  std::stable_sort(pos.begin(), pos.end(), [&](const position& a, const position& b) { return value(a) > value(b); });
  std::vector<std::vector<T>> mask(scores.size());
  for (std::size_t j = 0; j < scores.size(); ++j) mask[j].assign(scores[j].size(), T(0));
  for (std::size_t r = 0; r < k; ++r) mask[pos[r].tensor][pos[r].index] = T(1);
  return mask;
}

/// Scores with many exact ties (few distinct values), both signs and signed zeros.
template <class T>
std::vector<T> tied_scores(std::size_t n, std::mt19937_64& rng, int levels) {
  std::uniform_int_distribution<int> level(-levels, levels);
  std::vector<T> s(n);
  for (auto& x : s) {
    const int l = level(rng);
    x = l == 0 ? ((rng() & 1) ? T(-0.0) : T(0.0)) : T(l) * T(0.25);
  }
  return s;
}

template <class T>
std::vector<T> normal_scores(std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<T> s(n);
  for (auto& x : s) x = T(normal(rng));
  return s;
}

template <class T>
std::size_t ones(const std::vector<T>& m) {
  return std::size_t(std::count(m.begin(), m.end(), T(1)));
}

}  // namespace

TEST_CASE_TEMPLATE("top_k_mask keeps exactly the k largest, ties to the lower index", T, float, double, long double) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {std::size_t(1), std::size_t(17), std::size_t(1000), std::size_t(70000)}) {
    for (int levels : {1, 3, 1000}) {
      const std::vector<T> s = levels == 1000 ? normal_scores<T>(n, rng) : tied_scores<T>(n, rng, levels);
      for (std::size_t k : {std::size_t(0), std::size_t(1), n / 10, n / 2, n - 1, n}) {
        std::vector<T> mask(n, T(5));
        bipq::top_k_mask<T>(s, k, mask);
        const auto expected = reference_top_k<T>({s}, k, nullptr, false);
        CAPTURE(n);
        CAPTURE(levels);
        CAPTURE(k);
        CHECK(ones(mask) == k);
        CHECK(mask == expected[0]);
      }
    }
  }
}

TEST_CASE_TEMPLATE("magnitude_mask keeps the k largest |w|", T, float, double, long double) {
  std::mt19937_64 rng(11);
  for (std::size_t n : {std::size_t(50), std::size_t(40000)}) {
    for (int levels : {2, 1000}) {
      const std::vector<T> w = levels == 1000 ? normal_scores<T>(n, rng) : tied_scores<T>(n, rng, levels);
      for (std::size_t k : {std::size_t(0), n / 3, n}) {
        std::vector<T> mask(n);
        bipq::magnitude_mask<T>(w, k, mask);
        CHECK(mask == reference_top_k<T>({w}, k, nullptr, true)[0]);
      }
    }
  }
}

TEST_CASE_TEMPLATE("top_k_mask with eligible keeps k among the eligible only", T, float, double) {
  std::mt19937_64 rng(3);
  for (std::size_t n : {std::size_t(200), std::size_t(50000)}) {
    const std::vector<T> s = tied_scores<T>(n, rng, 4);
    std::vector<T> eligible(n);
    for (auto& e : eligible) e = (rng() % 3 == 0) ? T(0) : T(1);
    const std::size_t n_eligible = ones(eligible);
    for (std::size_t k : {std::size_t(0), n_eligible / 4, n_eligible}) {
      std::vector<T> mask(n, T(9));
      bipq::top_k_mask<T>(s, k, mask, eligible);
      const std::vector<std::vector<T>> el{eligible};
      CHECK(mask == reference_top_k<T>({s}, k, &el, false)[0]);
      for (std::size_t i = 0; i < n; ++i) {
        if (eligible[i] == T(0)) CHECK(mask[i] == T(0));
      }
      // In place: the mask may be the eligible storage itself (pruning among survivors).
      std::vector<T> in_place = eligible;
      bipq::top_k_mask<T>(s, k, in_place, in_place);
      CHECK(in_place == mask);
      std::vector<T> magnitude(n);
      bipq::magnitude_mask<T>(s, k, magnitude, eligible);
      CHECK(magnitude == reference_top_k<T>({s}, k, &el, true)[0]);
    }
  }
}

TEST_CASE_TEMPLATE("top_k_mask_global keeps k in total, ties to lower tensor then lower index", T, float, double) {
  std::mt19937_64 rng(5);
  for (std::size_t scale : {std::size_t(1), std::size_t(400)}) {
    std::vector<std::vector<T>> scores{tied_scores<T>(30 * scale, rng, 3), tied_scores<T>(0, rng, 3),
                                       tied_scores<T>(50 * scale, rng, 3), normal_scores<T>(20 * scale, rng)};
    std::vector<std::vector<T>> eligible;
    for (const auto& s : scores) {
      std::vector<T> e(s.size());
      for (auto& x : e) x = (rng() % 4 == 0) ? T(0) : T(1);
      eligible.push_back(e);
    }
    std::size_t total = 0, total_eligible = 0;
    for (std::size_t j = 0; j < scores.size(); ++j) {
      total += scores[j].size();
      total_eligible += ones(eligible[j]);
    }
    std::vector<std::vector<T>> masks(scores.size());
    auto run = [&](std::size_t k, bool with_eligible) {
      std::vector<std::span<const T>> s, e;
      std::vector<std::span<T>> m;
      for (std::size_t j = 0; j < scores.size(); ++j) {
        masks[j].assign(scores[j].size(), T(7));
        s.emplace_back(scores[j]);
        e.emplace_back(eligible[j]);
        m.emplace_back(masks[j]);
      }
      if (with_eligible) {
        bipq::top_k_mask_global<T>(s, k, m, e);
      } else {
        bipq::top_k_mask_global<T>(s, k, m);
      }
    };
    for (std::size_t k : {std::size_t(0), std::size_t(1), total / 7, total}) {
      run(k, false);
      CHECK(masks == reference_top_k<T>(scores, k, nullptr, false));
    }
    for (std::size_t k : {std::size_t(0), total_eligible / 3, total_eligible}) {
      run(k, true);
      CHECK(masks == reference_top_k<T>(scores, k, &eligible, false));
    }
  }
}

TEST_CASE_TEMPLATE("top_k_mask is exact when a strided sample misrepresents the scores", T, float, double) {
  // Every 4th entry is large: a sample taken at a stride of 4 sees only those, so the sampled bracket misses and
  // the exact histogram selection must take over.
  std::mt19937_64 rng(21);
  for (std::size_t n : {std::size_t(70000), std::size_t(262144)}) {
    std::vector<T> s = tied_scores<T>(n, rng, 50);
    for (std::size_t i = 0; i < n; i += 4) s[i] += T(1000);
    for (std::size_t k : {n / 8, n / 2, n - 3}) {
      std::vector<T> mask(n);
      bipq::top_k_mask<T>(s, k, mask);
      CHECK(mask == reference_top_k<T>({s}, k, nullptr, false)[0]);
    }
  }
}

TEST_CASE_TEMPLATE("top_k_mask may write its mask over its scores or its eligibility", T, float, double) {
  std::mt19937_64 rng(31);
  for (std::size_t n : {std::size_t(300), std::size_t(100000)}) {
    const std::vector<T> s = tied_scores<T>(n, rng, 20);
    std::vector<T> eligible(n);
    for (auto& e : eligible) e = (rng() % 2) ? T(1) : T(0);
    const std::size_t k = ones(eligible) / 3;
    const std::vector<std::vector<T>> el{eligible};
    const auto expected = reference_top_k<T>({s}, k, &el, false)[0];
    std::vector<T> over_scores = s;
    bipq::top_k_mask<T>(over_scores, k, over_scores, eligible);
    CHECK(over_scores == expected);
    std::vector<T> over_eligible = eligible;
    bipq::top_k_mask<T>(s, k, over_eligible, over_eligible);
    CHECK(over_eligible == expected);
  }
}

TEST_CASE("top_k_mask orders negative scores and signed zeros by value") {
  const std::vector<double> s{-3.0, -0.0, 0.0, -1.0, -0.0, 2.0};
  std::vector<double> mask(s.size());
  bipq::top_k_mask<double>(s, 3, mask);
  // 2 first, then the three zeros (−0 == +0) by index: indices 1 and 2.
  CHECK(mask == std::vector<double>{0, 1, 1, 0, 0, 1});
  bipq::top_k_mask<double>(s, 5, mask);
  CHECK(mask == std::vector<double>{0, 1, 1, 1, 1, 1});
}

TEST_CASE("top_k_mask is deterministic and accepts Eigen and std::vector") {
  std::mt19937_64 rng(1);
  const std::vector<float> s = normal_scores<float>(100000, rng);
  Eigen::VectorXf scores = Eigen::Map<const Eigen::VectorXf>(s.data(), Eigen::Index(s.size()));
  Eigen::VectorXf a(scores.size()), b(scores.size());
  bipq::top_k_mask(scores, 12345, a);
  bipq::top_k_mask(scores, 12345, b);
  CHECK((a.array() == b.array()).all());
  std::vector<float> c(s.size());
  bipq::top_k_mask(s, 12345, c);
  CHECK(std::equal(c.begin(), c.end(), a.data()));
  CHECK(a.sum() == 12345.0f);
  // Spans without an explicit scalar type pick the span overload; a temporary Eigen::Map is a valid mask.
  std::vector<float> d(s.size()), e(s.size());
  bipq::top_k_mask(std::span<const float>(s), 12345, std::span<float>(d));
  bipq::top_k_mask(s, 12345, Eigen::Map<Eigen::VectorXf>(e.data(), Eigen::Index(e.size())));
  CHECK(d == c);
  CHECK(e == c);
}

TEST_CASE("top_k_mask rejects bad input with the function and argument named") {
  std::vector<float> s{1, 2, 3}, mask(3), short_mask(2);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { bipq::top_k_mask<float>(s, 4, mask); }).find("top_k_mask(): k") == 0);
  CHECK(message([&] { bipq::top_k_mask<float>(s, 1, short_mask); }).find("top_k_mask(): mask") == 0);
  std::vector<float> eligible{1, 0, 0};
  std::vector<float> big_scores(100000, 1.0f), big_eligible(100000, 0.0f), untouched(100000, 3.0f);
  big_eligible[5] = 1.0f;
  CHECK(message([&] { bipq::top_k_mask<float>(big_scores, 2, untouched, big_eligible); }).find("top_k_mask(): k") == 0);
  CHECK(std::count(untouched.begin(), untouched.end(), 3.0f) == 100000);
  CHECK(message([&] { bipq::top_k_mask<float>(s, 2, mask, eligible); }).find("top_k_mask(): k") == 0);
  CHECK(message([&] { bipq::top_k_mask<float>(s, 1, mask, short_mask); }).find("top_k_mask(): eligible") == 0);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> b{1, bad, 3};
    CHECK(message([&] { bipq::top_k_mask<float>(b, 1, mask); }).find("top_k_mask(): scores contains NaN or Inf") == 0);
    CHECK(message([&] { bipq::magnitude_mask<float>(b, 1, mask); }).find("magnitude_mask(): w contains NaN") == 0);
    std::vector<float> big(100000, 1.0f), big_mask(100000, 3.0f);
    big[77777] = bad;
    CHECK(message([&] { bipq::top_k_mask<float>(big, 10, big_mask); }).find("(index 77777)") != std::string::npos);
    CHECK(std::count(big_mask.begin(), big_mask.end(), 3.0f) == 100000);  // nothing written on bad input
    std::vector<long double> ld{1, 2, static_cast<long double>(bad)}, ld_mask(3, 3);
    CHECK(message([&] { bipq::top_k_mask<long double>(ld, 1, ld_mask); }).find("top_k_mask(): scores contains NaN") == 0);
    CHECK(ld_mask == std::vector<long double>(3, 3));
  }
  std::vector<std::span<const float>> ss{s, s};
  std::vector<std::span<float>> ms{mask};
  CHECK(message([&] { bipq::top_k_mask_global<float>(ss, 1, ms); }).find("top_k_mask_global(): masks") == 0);
  ms.emplace_back(short_mask);
  CHECK(message([&] { bipq::top_k_mask_global<float>(ss, 1, ms); }).find("top_k_mask_global(): masks[1]") == 0);
  ms[1] = mask;
  CHECK(message([&] { bipq::top_k_mask_global<float>(ss, 7, ms); }).find("top_k_mask_global(): k") == 0);
}

TEST_CASE_TEMPLATE("every selection path keeps the k largest eligible entries, ties to the first", T, float, double) {
  // The paths are called directly, also on inputs where the dispatch would not pick them (the histogram on data its
  // sampled bracket handles, the keys on large inputs), each against the definition.
  using namespace bipq::detail;
  std::mt19937_64 rng(41);
  for (int levels : {2, 40, 1000}) {
    std::vector<std::vector<T>> scores{tied_scores<T>(20000, rng, levels), tied_scores<T>(0, rng, levels),
                                       tied_scores<T>(30000, rng, levels)};
    if (levels == 1000) scores[2] = normal_scores<T>(30000, rng);
    std::vector<std::vector<T>> eligible;
    for (const auto& s : scores) {
      std::vector<T> e(s.size());
      for (auto& x : e) x = (rng() % 3 == 0) ? T(0) : T(1);
      eligible.push_back(e);
    }
    std::vector<std::vector<T>> masks(scores.size());
    std::vector<std::span<const T>> s, e;
    std::vector<std::span<T>> m;
    std::size_t total = 0;
    for (std::size_t j = 0; j < scores.size(); ++j) {
      masks[j].assign(scores[j].size(), T(7));
      s.emplace_back(scores[j]);
      e.emplace_back(eligible[j]);
      m.emplace_back(masks[j]);
      total += scores[j].size();
    }
    for (const bool with_eligible : {false, true}) {
      const top_k_lists<T> lists{s, m, e, with_eligible, total};
      std::size_t n_eligible = 0;
      for (const auto& x : (with_eligible ? eligible : scores))
        n_eligible += with_eligible ? ones(x) : x.size();
      for (std::size_t k : {std::size_t(1), n_eligible / 10, n_eligible / 2, n_eligible - 1}) {
        for (const bool magnitude : {false, true}) {
          const auto expected = reference_top_k<T>(scores, k, with_eligible ? &eligible : nullptr, magnitude);
          CAPTURE(levels);
          CAPTURE(with_eligible);
          CAPTURE(k);
          CAPTURE(magnitude);
          auto check_path = [&](auto select) {
            for (auto& x : masks) std::fill(x.begin(), x.end(), T(7));
            select();
            CHECK(masks == expected);
          };
          if (magnitude) {
            check_path([&] { select_by_keys<score_kind::magnitude>(lists, k, n_eligible); });
            check_path([&] { select_by_histogram<score_kind::magnitude>(lists, k); });
            check_path([&] {
              if (!select_by_sampled_bracket<score_kind::magnitude>(lists, k, n_eligible))
                select_by_histogram<score_kind::magnitude>(lists, k);
            });
          } else {
            check_path([&] { select_by_keys<score_kind::value>(lists, k, n_eligible); });
            check_path([&] { select_by_histogram<score_kind::value>(lists, k); });
            check_path([&] {
              if (!select_by_sampled_bracket<score_kind::value>(lists, k, n_eligible))
                select_by_histogram<score_kind::value>(lists, k);
            });
          }
        }
      }
    }
  }
}

TEST_CASE("threshold_rule keeps the need largest keys in order, the first of the tied ones") {
  std::mt19937_64 rng(43);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = 1 + rng() % 60;
    std::vector<std::uint32_t> keys(n);
    for (auto& k : keys) k = std::uint32_t(rng() % 6);  // many ties
    const std::size_t need = 1 + rng() % n;
    // Brute force: positions sorted by key descending, stable; the first `need` are kept.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] > keys[b]; });
    std::vector<float> expected(n, 0.0f);
    for (std::size_t r = 0; r < need; ++r) expected[order[r]] = 1.0f;
    std::vector<std::uint32_t> work = keys;
    auto rule = bipq::detail::threshold_rule<std::uint32_t>::of(work, need);
    std::vector<float> kept(n);
    for (std::size_t i = 0; i < n; ++i) kept[i] = rule.keep<float>(keys[i]);
    CAPTURE(trial);
    CHECK(kept == expected);
  }
}
