// An exception on one rank ends every rank with its message instead of leaving the others blocked in a collective.
// Run on 2 ranks; CTest passes when the output holds rank 1's message (and the run ends before the timeout).
//   abort_on_exception model     the wrapped model throws on rank 1 in the middle of training
//   abort_on_exception uncaught  rank 1's main throws while rank 0 waits in a collective
#include <mpi.h>

#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>

#include "bipq/distributed/data_parallel.hpp"
#include "bipq/distributed/mpi.hpp"
#include "bipq/optim/train.hpp"
#include "sliced_mlp.hpp"

namespace {
/// sliced_mlp that throws on rank 1 at its third call.
struct failing_mlp : bipq::testing::sliced_mlp {
  failing_mlp() : sliced_mlp(1, 2, 64, 16, {0, 64}, {0, 16}) {}
  double loss_and_gradient(std::span<const std::size_t> idx) {
    if (bipq::mpi::rank() == 1 && calls() == 2) throw std::runtime_error("sample 5 is corrupt");
    return sliced_mlp::loss_and_gradient(idx);
  }
};
}  // namespace

int main(int argc, char** argv) {
  bipq::mpi::environment env(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "model";
  if (mode == "model") {
    failing_mlp local;
    bipq::mpi::data_parallel model(local);
    bipq::train_params t;
    t.batch_size = 8;
    bipq::train(model, t, {});
  } else {
    if (env.rank() == 1) throw std::runtime_error("rank 1 could not open its shard");
    MPI_Barrier(MPI_COMM_WORLD);
  }
  std::printf("finished without an error\n");
  return 0;
}
