// The bipq side of the PyTorch parity check (tests/torch/parity.sh): prunes a model by OMP on a slice of
// Fashion-MNIST (one epoch per training run), exports it with write_model, and writes bipq's own test-set
// predictions, loss and accuracy next to it for examples/torch_from_bipq.py to compare with.
//
//   bipq_torch_reference OUT MODEL STORAGE DENSITY TRAIN_SIZE      (MODEL: lenet5 | cnn; STORAGE: dense | sparse)
//
// Writes OUT/model/ (the export) and OUT/reference/{reference.json, predictions.npy}.

#include <cstdio>
#include <filesystem>
#include <string>

#include "bipq/adapters/eigen/classifier.hpp"
#include "bipq/adapters/eigen/model_io.hpp"
#include "bipq/io/fashion_mnist.hpp"
#include "bipq/prune/omp.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: bipq_torch_reference OUT MODEL STORAGE DENSITY TRAIN_SIZE\n");
    return 2;
  }
  try {
    const std::filesystem::path out = argv[1];
    const std::string model_name = argv[2], storage = argv[3];
    const double density = std::stod(argv[4]);
    auto data = bipq::io::load_fashion_mnist();
    data.train = bipq::io::head(data.train, std::stoul(argv[5]));
    bipq::eigen::sequential model =
        model_name == "cnn" ? bipq::eigen::make_pqi_cnn({8, 16}, 0) : bipq::eigen::make_lenet5(0);
    bipq::eigen::classifier problem(model, data.train, data.test, 2);
    bipq::omp_params p;
    p.mask.density = density;
    p.train.epochs = 1;
    p.train.batch_size = 32;
    p.rewind = false;  // fine-tune the pruned dense model: a model that has learned something, in one epoch
    const auto r = bipq::omp(problem, p);

    bipq::eigen::export_options opt;
    opt.masked_storage = storage == "sparse" ? bipq::eigen::tensor_storage::sparse : bipq::eigen::tensor_storage::dense;
    opt.run.set("method", "omp");
    opt.run.set("model", model_name);
    opt.run.set("density", density);
    opt.run.set("train_size", data.train.size());
    const auto bytes = bipq::eigen::write_model(out / "model", model, r.masks, opt);

    const bipq::evaluation e = problem.evaluate();
    const auto predicted = problem.predict(data.test);
    bipq::io::write_directory_atomically(out / "reference", [&](bipq::io::directory_writer& w) {
      std::vector<std::uint8_t> classes(predicted.begin(), predicted.end());
      const std::vector<std::size_t> shape{classes.size()};
      bipq::io::write_npy<std::uint8_t>(w.path() / "predictions.npy", classes, shape);
      bipq::io::json ref = bipq::io::json::make_object();
      ref.set("test_loss", e.loss);
      ref.set("test_accuracy", e.accuracy);
      ref.set("model_bytes", static_cast<std::size_t>(bytes));
      w.write("reference.json", ref.dump());
    });
    std::printf("bipq: %s %s, density %.4f, test accuracy %.4f, loss %.6f, %ju bytes on disk\n", model_name.c_str(),
                storage.c_str(), r.masks.density(), e.accuracy, e.loss, static_cast<std::uintmax_t>(bytes));
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bipq_torch_reference: %s\n", ex.what());
    return 1;
  }
  return 0;
}
