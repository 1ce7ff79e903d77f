#pragma once
// A tensor-parallel group on the CPU: N ranks, each a CpuBackend (sharing the process's thread pool), joined by the
// in-process communicator (threads stand in for ranks, host memory). It proves a sharded model equals the unsharded
// one without GPUs and lets `loom run --device cpu --tensor-parallel N` exercise the same driver as the GPUs.

#include <memory>

#include "backend/rank_group.h"

namespace loom::backend::cpu {

// One rank needs no communication (a group of one, for baselines); more use the in-process communicator. Throws
// kUnsupported for ranks > 1 when this build has no in-process communicator, kInvalidRequest for ranks < 1.
std::unique_ptr<RankGroup> make_cpu_group(int ranks);

}  // namespace loom::backend::cpu
