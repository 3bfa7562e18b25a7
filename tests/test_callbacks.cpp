// The built-in callbacks, each checked against what it promises, with the bi-level solver and with bipq::train.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include "bipq/callbacks/csv_log.hpp"
#include "bipq/callbacks/early_stop.hpp"
#include "bipq/callbacks/pq_monitor.hpp"
#include "bipq/callbacks/print_loss.hpp"
#include "bipq/callbacks/progress_bar.hpp"
#include "bipq/callbacks/time_limit.hpp"
#include "bipq/optim/train.hpp"
#include "bipq/problems/least_squares.hpp"
#include "bipq/solver/bilevel.hpp"
#include "bipq/sparsity/pq_index.hpp"

namespace {

struct ls_case {
  bipq::planted_regression<double> inst;
  ls_case() {
    bipq::planted_regression_spec spec;
    spec.samples = 40;
    spec.features = 30;
    spec.nonzeros = 4;
    inst = bipq::make_planted_regression<double>(spec, 3);
  }
};

bipq::bilevel_params params(std::size_t iterations = 12) {
  bipq::bilevel_params p;
  p.iterations = iterations;
  p.lower_steps = 2;
  p.batch_size = 8;
  p.lower_learning_rate = 0.05;
  p.upper_learning_rate = 0.5;
  p.gamma = 0.05;
  p.mask.k = 6;
  return p;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bipq::epoch_info<double> epoch(std::size_t i, double upper, double test = bipq::epoch_info<double>::nan) {
  bipq::epoch_info<double> e;
  e.epoch = i;
  e.upper_loss = upper;
  e.test_loss = test;
  return e;
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("bipq_test_callbacks_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

TEST_CASE("print_loss: a header line and one line per epoch with the losses the run reports") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  std::ostringstream out;
  const auto r = bipq::bilevel_solver(params(5)).optimize(problem, bipq::print_loss(out));
  const auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] == "bip: 5 epochs of 2 steps");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    CHECK(lines[i].rfind("epoch " + std::to_string(i) + ":", 0) == 0);
    CHECK(lines[i].find("upper_loss") != std::string::npos);
    CHECK(lines[i].find("test_loss") == std::string::npos);  // NaN fields are left out
  }
  std::ostringstream steps;
  bipq::bilevel_solver(params(3)).optimize(problem, bipq::print_loss(steps, 2));
  CHECK(lines_of(steps.str()).size() == 1 + 3 + 3);  // header, 3 step lines (steps 2, 4, 6), 3 epochs
  CHECK(r.iterations == 5);
}

TEST_CASE("progress_bar: draws rate and ETA on a given stream, silent on a non-terminal stderr") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  std::ostringstream out;
  bipq::progress_bar bar(out, 20);
  bipq::bilevel_solver(params(4)).optimize(problem, bar);
  const std::string s = out.str();
  CHECK(s.find('\r') != std::string::npos);
  CHECK(s.find("100%") != std::string::npos);
  CHECK(s.find("8/8") != std::string::npos);  // 4 epochs × 2 steps
  CHECK(s.find("it/s") != std::string::npos);
  CHECK(s.find("ETA") != std::string::npos);
  CHECK(s.find("[####################]") != std::string::npos);
  CHECK(s.back() == '\n');
#if __has_include(<unistd.h>)
  CHECK(bipq::progress_bar().active() == (::isatty(2) != 0));
#endif
}

TEST_CASE("csv_log: the file appears complete at the end with one row per epoch, values at full precision") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  const auto path = temp_path("log.csv");
  std::filesystem::remove(path);
  bipq::bilevel_result<double> r;
  {
    bipq::csv_log log(path);
    r = bipq::bilevel_solver(params(6)).optimize(problem, log);
  }
  REQUIRE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto lines = lines_of(ss.str());
  REQUIRE(lines.size() == 7);
  CHECK(lines[0] == bipq::csv_log::header);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::istringstream row(lines[i]);
    std::string cell;
    std::vector<std::string> cells;
    while (std::getline(row, cell, ',')) cells.push_back(cell);
    REQUIRE(cells.size() >= 7);
    CHECK(std::stoul(cells[0]) == i - 1);
    CHECK(std::stod(cells[1]) == r.lower_loss[i - 1]);  // max_digits10: exact round trip
    CHECK(std::stod(cells[2]) == r.upper_loss[i - 1]);
    CHECK(std::stod(cells[3]) == r.density[i - 1]);
    CHECK(std::stoul(cells[4]) == r.mask_change[i - 1]);
    CHECK(cells[5].empty());  // no test loss
  }
  std::filesystem::remove(path);
}

TEST_CASE("csv_log: a run that ends by an exception leaves neither the file nor the temporary") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  const auto path = temp_path("failed.csv");
  std::filesystem::remove(path);
  struct thrower {
    void end_epoch(const bipq::epoch_info<double>& e) {
      if (e.epoch == 2) throw std::runtime_error("interrupted");
    }
  };
  {
    bipq::csv_log log(path);
    CHECK_THROWS_AS(bipq::bilevel_solver(params(6)).optimize(problem, log, thrower{}), std::runtime_error);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  bipq::csv_log bad(std::filesystem::path("/nonexistent-dir-bipq/x.csv"));
  CHECK_THROWS_AS(bad.begin(bipq::run_info{}), std::runtime_error);
  CHECK_THROWS_WITH_AS(bipq::csv_log{std::filesystem::path()}, "csv_log(): path must not be empty", std::invalid_argument);
}

TEST_CASE("pq_monitor: flags regularise → compress at the PQI minimum and compress → collapse at the maximum") {
  bipq::pq_monitor mon(0.5, 1.0, 0.01);
  const std::vector<double> pqi{0.30, 0.25, 0.22, 0.225, 0.21, 0.24, 0.30, 0.35, 0.349, 0.36, 0.31, 0.20};
  for (std::size_t i = 0; i < pqi.size(); ++i) {
    mon.record(i, pqi[i]);
    if (i < 5) CHECK(mon.current_phase() == bipq::pq_monitor::phase::regularise);  // 0.225 is within tolerance
  }
  REQUIRE(mon.compress_start().has_value());
  CHECK(*mon.compress_start() == 4);  // the minimum 0.21
  REQUIRE(mon.collapse_start().has_value());
  CHECK(*mon.collapse_start() == 9);  // the maximum 0.36 (0.349 is within tolerance)
  CHECK(mon.current_phase() == bipq::pq_monitor::phase::collapse);
  bipq::pq_monitor monotone;
  for (std::size_t i = 0; i < 5; ++i) monotone.record(i, 0.5 - 0.1 * static_cast<double>(i));
  CHECK_FALSE(monotone.compress_start().has_value());
  CHECK_THROWS_WITH_AS(bipq::pq_monitor(1.0, 0.5), "pq_monitor(): q must be finite and > p", std::invalid_argument);
}

TEST_CASE("pq_monitor: with the solver, one PQI per epoch, the last one that of the surviving final weights") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  bipq::pq_monitor mon;
  const auto r = bipq::bilevel_solver(params(5)).optimize(problem, mon);
  REQUIRE(mon.history().size() == 5);
  // After the last epoch the solver writes z = m⊙θ with the same mask, so the last PQI is that of the result.
  const double expected = bipq::pq_index(problem.parameters()[0].value, r.masks[0], 0.5, 1.0);
  CHECK(mon.history().back() == doctest::Approx(expected).epsilon(1e-12));
  for (double d : mon.densities()) CHECK(d == doctest::Approx(6.0 / 30.0));
}

TEST_CASE("early_stop: stops after `patience` epochs without improvement, on test loss when there is one") {
  bipq::early_stop stop(2, 0.0);
  stop.begin({});
  CHECK_FALSE(stop.end_epoch(epoch(0, 1.0)));
  CHECK_FALSE(stop.end_epoch(epoch(1, 0.8)));
  CHECK_FALSE(stop.end_epoch(epoch(2, 0.9)));
  CHECK(stop.end_epoch(epoch(3, 0.85)));
  CHECK(stop.best_epoch() == 1);
  CHECK(stop.best_loss() == 0.8);
  bipq::early_stop on_test(1, 0.0);
  on_test.begin({});
  CHECK_FALSE(on_test.end_epoch(epoch(0, 1.0, 5.0)));
  CHECK(on_test.end_epoch(epoch(1, 0.1, 5.0)));  // upper loss improved, test loss did not
  bipq::early_stop with_delta(1, 0.5);
  with_delta.begin({});
  CHECK_FALSE(with_delta.end_epoch(epoch(0, 1.0)));
  CHECK(with_delta.end_epoch(epoch(1, 0.6)));  // improved by less than min_delta
  CHECK_THROWS_WITH_AS(bipq::early_stop(0), "early_stop(): patience must be >= 1", std::invalid_argument);

  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  auto p = params(200);
  p.upper_learning_rate = 1e-9;
  p.lower_learning_rate = 1e-9;  // nothing improves: the upper loss only fluctuates with the mini-batch
  bipq::early_stop es(3);
  const auto r = bipq::bilevel_solver(p).optimize(problem, es);
  CHECK(r.reason == bipq::termination::callback_stop);
  CHECK(es.stopped());
  CHECK(r.iterations < 200);
  CHECK(r.iterations == es.best_epoch() + 4);
}

TEST_CASE("time_limit: a zero budget stops at the first step; a large one never fires") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  bipq::time_limit none(0.0);
  const auto r = bipq::bilevel_solver(params(10)).optimize(problem, none);
  CHECK(r.reason == bipq::termination::callback_stop);
  CHECK(r.iterations == 0);
  CHECK(none.expired());
  bipq::time_limit plenty(3600.0);
  const auto r2 = bipq::bilevel_solver(params(10)).optimize(problem, plenty);
  CHECK(r2.reason == bipq::termination::completed);
  CHECK_FALSE(plenty.expired());
  CHECK_THROWS_AS(bipq::time_limit(-1.0), std::invalid_argument);
}

TEST_CASE("the same callbacks work with bipq::train") {
  ls_case c;
  bipq::least_squares_problem<double> problem(c.inst.a, c.inst.b);
  bipq::train_params tp;
  tp.epochs = 4;
  tp.batch_size = 10;
  tp.sgd.learning_rate = 0.01;
  tp.sgd.momentum = 0.0;
  std::ostringstream printed, bar_out;
  bipq::progress_bar bar(bar_out);
  bipq::pq_monitor mon;
  bipq::early_stop es(100);
  bipq::time_limit tl(3600.0);
  const auto path = temp_path("train.csv");
  std::filesystem::remove(path);
  bipq::train_result r;
  {
    bipq::csv_log log(path);
    r = bipq::train(problem, tp, {}, bipq::print_loss(printed), bar, log, mon, es, tl);
  }
  CHECK(r.reason == bipq::termination::completed);
  CHECK(lines_of(printed.str()).size() == 5);
  CHECK(bar_out.str().find("100%") != std::string::npos);
  std::ifstream in(path);
  std::size_t rows = 0;
  for (std::string line; std::getline(in, line);) ++rows;
  CHECK(rows == 5);
  CHECK(mon.history().size() == 4);  // train reports the linear weight
  std::filesystem::remove(path);
}
