// Train LeNet-5 (dense) on Fashion-MNIST with the Eigen CNN adapter and bipq::train, printing per epoch the training
// loss, test loss, test accuracy and training throughput.
//
//   train_fashion_mnist --epochs 10 --threads 2
//
// Defaults: batch 128, SGD momentum 0.9, learning rate 0.05 with a cosine schedule, weight decay 5e-4 on conv and
// linear weights, pixels in [0, 1]. LeNet-5 reaches about 90% test accuracy in 10 epochs (docs/cnn.md).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/models.hpp"
#include "bipq/callbacks/progress_bar.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/optim/train.hpp"
#include "command_line.hpp"

namespace {

const char* usage = R"(usage: train_fashion_mnist [options]

  --epochs N     training epochs                                  (default: 10)
  --threads N    threads over the mini-batch                      (default: 2)
  --seed N       initialisation and shuffling seed                (default: 0)
  --batch N      mini-batch size                                  (default: 128)
  --lr X         base learning rate of the cosine schedule        (default: 0.05)
  --data DIR     Fashion-MNIST directory (default: $BIPQ_FASHION_MNIST or /usr/share/datasets/fashion-mnist)
  --help         this text
)";

struct options {
  std::size_t epochs = 10, threads = 2, batch = 128;
  std::uint64_t seed = 0;
  double lr = 0.05;
  std::string data;
};

const examples::command_line cli{"train_fashion_mnist", usage};

options parse(int argc, char** argv) {
  options o;
  cli.parse(argc, argv, [&](const std::string& flag, const std::string& v) {
    if (flag == "--epochs") o.epochs = cli.number<std::size_t>(flag, v);
    else if (flag == "--threads") o.threads = cli.number<std::size_t>(flag, v);
    else if (flag == "--seed") o.seed = cli.number<std::uint64_t>(flag, v);
    else if (flag == "--batch") o.batch = cli.number<std::size_t>(flag, v);
    else if (flag == "--lr") o.lr = cli.number<double>(flag, v);
    else if (flag == "--data") o.data = v;
    else cli.fail("unknown option " + flag);
  });
  if (o.epochs == 0) cli.fail("--epochs must be >= 1");
  if (o.threads == 0) cli.fail("--threads must be >= 1");
  if (o.batch == 0) cli.fail("--batch must be >= 1");
  return o;
}

/// Prints one line per epoch; the throughput counts the training steps only (from the epoch's start to its last
/// step), not the evaluation on the test set.
struct epoch_printer {
  using clock = std::chrono::steady_clock;
  std::size_t samples;
  clock::time_point epoch_start{}, last_step{};

  void begin(const bipq::run_info&) {
    std::printf("%5s  %10s  %9s  %13s  %9s\n", "epoch", "train loss", "test loss", "test accuracy", "images/s");
    epoch_start = clock::now();
  }
  void step_taken(const bipq::step_info&) { last_step = clock::now(); }
  void end_epoch(const bipq::epoch_info<float>& e) {
    const double seconds = std::chrono::duration<double>(last_step - epoch_start).count();
    std::printf("%5zu  %10.4f  %9.4f  %12.2f%%  %9.0f\n", e.epoch + 1, e.train_loss, e.test_loss,
                100.0 * e.test_accuracy, static_cast<double>(samples) / seconds);
    std::fflush(stdout);
    epoch_start = clock::now();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    const auto data = bipq::io::load_fashion_mnist(o.data);
    auto model = bipq::eigen::make_lenet5(o.seed);
    bipq::eigen::classifier problem(model, data.train, data.test, o.threads);
    std::printf("LeNet-5 (%zu parameters) on Fashion-MNIST: %zu training, %zu test images; batch %zu, lr %g cosine, "
                "%zu threads, seed %llu\n\n",
                model.num_parameters(), data.train.size(), data.test.size(), o.batch, o.lr, o.threads,
                static_cast<unsigned long long>(o.seed));
    bipq::train_params p;
    p.epochs = o.epochs;
    p.batch_size = o.batch;
    p.sgd.learning_rate = o.lr;
    p.seed = o.seed;
    bipq::progress_bar bar;
    epoch_printer printer{data.train.size()};
    const auto r = bipq::train(problem, p, {}, printer, bar);
    const bipq::evaluation e = problem.evaluate();
    std::printf("\nfinal test accuracy %.2f%% after %zu epochs, %.1f s\n", 100.0 * e.accuracy, o.epochs, r.seconds);
  } catch (const std::exception& ex) {
    std::cerr << "train_fashion_mnist: " << ex.what() << '\n';
    return 1;
  }
  return 0;
}
