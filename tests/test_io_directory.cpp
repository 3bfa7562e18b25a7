// Whole-directory atomic output: a reader never sees a mix of two sets, a failed write (exception, full disk, kill)
// leaves the previous set intact and no temporary behind.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bipq/io/directory.hpp"
#include "bipq/io/npy.hpp"

namespace fs = std::filesystem;
using bipq::io::directory_writer;
using bipq::io::write_directory_atomically;

namespace {
fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bipq_test_dir_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
// name → content of every regular file under dir.
std::map<std::string, std::string> contents(const fs::path& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = slurp(e.path());
  return m;
}
// Names of the entries of dir.
std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> s;
  for (const auto& e : fs::directory_iterator(dir)) s.insert(e.path().filename().string());
  return s;
}
// "f<i>.txt", appended piece by piece (GCC 12's -Wrestrict misfires on a chain of operator+ here).
std::string file_name(int i) {
  std::string s = "f";
  s += std::to_string(i);
  s += ".txt";
  return s;
}
std::string generation_text(int g) {
  std::string s = "generation ";
  s += std::to_string(g);
  return s;
}
std::vector<std::pair<std::string, std::string>> generation(int g, int files = 3) {
  std::vector<std::pair<std::string, std::string>> set;
  for (int f = 0; f < files; ++f) set.emplace_back(file_name(f), generation_text(g));
  std::string stamp = generation_text(g);
  stamp += " id ";
  stamp += bipq::io::unique_write_id();
  set.emplace_back("index.json", stamp);
  return set;
}
}  // namespace

TEST_CASE("a committed set replaces the previous set exactly, files absent from the new set included") {
  const fs::path root = scratch("replace"), target = root / "out";
  write_directory_atomically(target, {{"a.txt", "old a"}, {"b.txt", "old b"}, {"sub/c.txt", "old c"}});
  CHECK(contents(target) == std::map<std::string, std::string>{{"a.txt", "old a"}, {"b.txt", "old b"}, {"sub/c.txt", "old c"}});
  write_directory_atomically(target, {{"a.txt", "new a"}});
  CHECK(contents(target) == std::map<std::string, std::string>{{"a.txt", "new a"}});
  CHECK(entries(root) == std::set<std::string>{"out"});  // neither the old set nor a temporary is left
  // A trailing slash names the same directory.
  write_directory_atomically(target.string() + "/", {{"x.txt", "x"}});
  CHECK(contents(target) == std::map<std::string, std::string>{{"x.txt", "x"}});
  CHECK(entries(root) == std::set<std::string>{"out"});
}

TEST_CASE("a reader through read_directory_consistently never sees a mix of two sets") {
  const fs::path root = scratch("mix"), target = root / "out";
  write_directory_atomically(target, generation(0));
  constexpr int generations = 40;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int g = 1; g <= generations; ++g) write_directory_atomically(target, generation(g));
    done = true;
  });
  int reads = 0, mixed = 0, naive_mixed = 0, last = -1;
  bool monotone = true;
  while (!done || reads < 20) {
    // The property: every file of one consistent read carries the stamp's generation.
    const auto set = bipq::io::read_directory_consistently(target, "index.json", [](const fs::path& d) {
      // "generation <g>" in every file; the stamp has " id ..." after it.
      auto number = [](const std::string& text) { return std::stoi(text.substr(text.find(' ') + 1)); };
      std::vector<int> v{number(slurp(d / "index.json"))};
      for (int f = 0; f < 3; ++f) v.push_back(number(slurp(d / file_name(f))));
      return v;
    });
    ++reads;
    for (int g : set) mixed += g != set[0];
    const int g = set[0];
    monotone = monotone && g >= last;
    last = g;
    // For contrast, a reader that opens the files one by one without the stamp check.
    std::set<std::string> naive;
    for (int f = 0; f < 3; ++f) naive.insert(slurp(target / file_name(f)));
    naive_mixed += naive.size() > 1;
  }
  writer.join();
  CHECK(mixed == 0);
  CHECK(monotone);
  CHECK(reads >= 20);
  MESSAGE(reads << " consistent reads, none mixed; " << naive_mixed << " naive reads saw a mix or a missing file");
  CHECK(contents(target).at("f0.txt") == generation_text(generations));
  CHECK(entries(root) == std::set<std::string>{"out"});
}

TEST_CASE("an exception while the set is written leaves the previous set intact and no temporary") {
  const fs::path root = scratch("exception"), target = root / "out";
  write_directory_atomically(target, {{"a.txt", "old a"}, {"b.txt", "old b"}});
  const auto before = contents(target);
  CHECK_THROWS_AS(write_directory_atomically(target,
                                             [](directory_writer& w) {
                                               w.write("a.txt", "new a");
                                               throw std::runtime_error("failure in the middle of the set");
                                             }),
                  std::runtime_error);
  CHECK(contents(target) == before);
  CHECK(entries(root) == std::set<std::string>{"out"});
}

TEST_CASE("a write that fails for lack of space leaves the previous set intact and no temporary") {
  // A file-size limit (RLIMIT_FSIZE) makes write(2) fail half-way as on a full disk, without a special mount.
  const fs::path root = scratch("full"), target = root / "out";
  write_directory_atomically(target, {{"a.npy", "old a"}, {"b.txt", "old b"}});
  const auto before = contents(target);
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  const std::string big(64 * 1024, 'x');
  const std::vector<float> weights(16 * 1024, 1.0f);
  const std::vector<std::size_t> shape{weights.size()};
  std::string raw_error, npy_error;
  try {
    write_directory_atomically(target, [&](directory_writer& w) {
      w.write("b.txt", "new b");
      w.write("a.npy", big);
    });
  } catch (const std::runtime_error& e) {
    raw_error = e.what();
  }
  try {  // files written into path() by other means (write_npy) fail the same way
    write_directory_atomically(target, [&](directory_writer& w) {
      bipq::io::write_npy<float>(w.path() / "a.npy", weights, shape);
    });
  } catch (const std::runtime_error& e) {
    npy_error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  CHECK(raw_error.find("directory_writer::write(): cannot write") != std::string::npos);
  CHECK(raw_error.find("a.npy") != std::string::npos);
  CHECK(!npy_error.empty());
  CHECK(contents(target) == before);
  CHECK(entries(root) == std::set<std::string>{"out"});
}

TEST_CASE("a writer killed with SIGKILL leaves only a clearly named temporary, which the next writer removes") {
  const fs::path root = scratch("kill"), target = root / "out";
  write_directory_atomically(target, {{"a.txt", "old a"}});
  const auto before = contents(target);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    directory_writer w(target);
    w.write("a.txt", "new a, never committed");
    ::kill(::getpid(), SIGKILL);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  const std::string tmp_prefix = ".out.bipq-tmp-" + std::to_string(child) + "-";
  const std::set<std::string> left = entries(root);
  REQUIRE(left.size() == 2);
  CHECK(left.count("out") == 1);
  CHECK(std::any_of(left.begin(), left.end(), [&](const std::string& e) { return e.rfind(tmp_prefix, 0) == 0; }));
  CHECK(contents(target) == before);
  write_directory_atomically(target, {{"a.txt", "next a"}});
  CHECK(entries(root) == std::set<std::string>{"out"});
  CHECK(slurp(target / "a.txt") == "next a");

  // A kill between the two renames of the fallback swap: the previous set, moved aside, comes back.
  fs::rename(target, root / (".out.bipq-old-" + std::to_string(child) + "-3"));
  CHECK(bipq::io::remove_stale_temporaries(target) == 1);
  CHECK(entries(root) == std::set<std::string>{"out"});
  CHECK(slurp(target / "a.txt") == "next a");
  // A temporary of a live process (this one) is left alone.
  fs::create_directory(root / (".out.bipq-tmp-" + std::to_string(::getpid()) + "-99"));
  CHECK(bipq::io::remove_stale_temporaries(target) == 0);
}

TEST_CASE("directory_writer refuses bad targets and names, and never replaces a file") {
  const fs::path root = scratch("bad");
  CHECK_THROWS_WITH_AS(directory_writer(""), doctest::Contains("directory_writer(): 'target'"), std::invalid_argument);
  CHECK_THROWS_AS(directory_writer("."), std::invalid_argument);
  CHECK_THROWS_AS(directory_writer(".."), std::invalid_argument);
  CHECK_THROWS_AS(directory_writer("/"), std::invalid_argument);
  {
    directory_writer w(root / "out");
    CHECK_THROWS_WITH_AS(w.write("../escape.txt", "x"), doctest::Contains("'name'"), std::invalid_argument);
    CHECK_THROWS_AS(w.write("/abs.txt", "x"), std::invalid_argument);
    CHECK_THROWS_AS(w.write("", "x"), std::invalid_argument);
    w.write("ok.txt", "x");
    w.commit();
    CHECK_THROWS_AS(w.commit(), std::logic_error);
  }
  std::ofstream(root / "file") << "a file";
  CHECK_THROWS_WITH_AS(write_directory_atomically(root / "file", {{"a", "b"}}), doctest::Contains("is not a directory"),
                       std::runtime_error);
  CHECK(slurp(root / "file") == "a file");
  CHECK(entries(root) == std::set<std::string>{"out", "file"});
  fs::remove_all(root.parent_path());
}
