// SAP (Diao et al., ICLR 2023, Algorithm 1) on Fashion-MNIST for the PQI paper's MLP (784 → 128 → 256 → 10) held in
// xtensor containers. The driver is bipq::sap, the same function that prunes the Eigen CNN: the model only models
// bipq::trainable_model. Prints, per round: density of the prunable weights, PQ Index of the survivors, test accuracy.
//
// Usage: sap_mlp_xtensor [epochs per training run = 8] [rounds = 5] [scope = global|layer|neuron] [data dir]
// The data directory defaults to $BIPQ_FASHION_MNIST, else /usr/share/datasets/fashion-mnist.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "bipq/adapters/xtensor/classifier.hpp"
#include "bipq/adapters/xtensor/fashion_mnist.hpp"
#include "bipq/prune/sap.hpp"
#include "command_line.hpp"

namespace xa = bipq::xtensor_adapter;

namespace {

/// Prints the test accuracy after every training epoch, so that a long run shows progress.
struct epoch_printer {
  std::size_t epochs_per_run = 1;
  std::size_t seen = 0;
  bool end_epoch(const bipq::epoch_info<float>& e) {
    std::printf("  run %zu epoch %zu: train loss %.4f, test accuracy %.4f (%.0f s)\n", seen / epochs_per_run,
                e.epoch + 1, e.train_loss, e.test_accuracy, e.seconds);
    std::fflush(stdout);
    ++seen;
    return false;
  }
};

}  // namespace

int main(int argc, char** argv) {
  constexpr const char* program = "sap_mlp_xtensor";
  if (argc > 5 || (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h"))) {
    std::printf("usage: %s [epochs per training run = 8] [rounds = 5] [scope = global|layer|neuron] [data dir]\n",
                program);
    return argc > 5 ? 2 : 0;
  }
  const std::size_t epochs = argc > 1 ? examples::parse_number<std::size_t>(program, "epochs", argv[1]) : 8;
  const std::size_t rounds = argc > 2 ? examples::parse_number<std::size_t>(program, "rounds", argv[2]) : 5;
  const std::string scope_name = argc > 3 ? argv[3] : "global";
  const std::string dir = argc > 4 ? argv[4] : "";
  if (epochs == 0) examples::fail(program, "epochs must be >= 1");
  if (rounds == 0) examples::fail(program, "rounds must be >= 1");
  bipq::sap_scope scope = bipq::sap_scope::global;
  if (scope_name == "layer") scope = bipq::sap_scope::layer;
  else if (scope_name == "neuron") scope = bipq::sap_scope::neuron;
  else if (scope_name != "global") examples::fail(program, "invalid value '" + scope_name + "' for scope");
  try {
    bipq::sap_params params;
    params.rounds = rounds;
    params.scope = scope;
    params.train.epochs = epochs;
    params.train.batch_size = 128;
    params.train.sgd.learning_rate = 0.05;
    params.train.sgd.momentum = 0.9;
    params.train.sgd.weight_decay = 5e-4;
    params.train.seed = 1;

    const auto start = std::chrono::steady_clock::now();
    auto data = xa::load_fashion_mnist<float>(dir);
    // Standardised with the training set's pixel mean and standard deviation.
    xa::standardize(data.train, 0.2860f, 0.3530f);
    xa::standardize(data.test, 0.2860f, 0.3530f);
    auto model = xa::make_fashion_mnist_mlp<float>(std::move(data.train), std::move(data.test), /*seed=*/1);
    std::printf("SAP on Fashion-MNIST, xtensor MLP 784-128-256-10 (%zu train / %zu test), %zu epochs per run, "
                "%zu rounds, scope %s\n",
                model.num_samples(), model.test_data().size(), epochs, rounds, scope_name.c_str());

    const auto result = bipq::sap(model, params, epoch_printer{epochs});

    std::printf("\nround  phase   density  PQ Index  test accuracy  test loss  seconds\n");
    for (const auto& r : result.history)
      std::printf("%5zu  %-6s  %7.4f  %8.4f  %13.4f  %9.4f  %7.1f\n", r.round, r.phase.c_str(), r.density, r.pq_index,
                  r.test_accuracy, r.test_loss, r.seconds);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("total %.1f s (data loading included)\n", total);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sap_mlp_xtensor: %s\n", e.what());
    return 1;
  }
}
