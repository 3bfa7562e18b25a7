#pragma once
// bipq: pruning neural networks as an optimization problem (BiP, PQ Index, SAP). The umbrella header of the core:
// concepts, measures, mask operators, solvers, drivers and callbacks. Adapters (Eigen CNN, xtensor models) and I/O
// with extra dependencies are included separately, from bipq/adapters/ and bipq/io/.

#include "bipq/concepts.hpp"
#include "bipq/tensor.hpp"
#include "bipq/sparsity/pq_index.hpp"
#include "bipq/sparsity/measures.hpp"
#include "bipq/sparsity/retained_bound.hpp"
#include "bipq/sparsity/criteria.hpp"
#include "bipq/mask/top_k.hpp"
#include "bipq/mask/capped_simplex.hpp"
#include "bipq/mask/group.hpp"
#include "bipq/mask/n_m.hpp"
#include "bipq/mask/apply.hpp"
