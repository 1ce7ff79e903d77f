#pragma once
// Where the commands that run a model (`loom run`, `loom serve`, `loom bench`) put it: `--device` picks the backend,
// `--tensor-parallel N` splits the model over N ranks (N GPUs, or N CPU threads with --device cpu) and `--devices`
// names the GPUs. With `--listen-ranks HOST:PORT` (run, serve) this process is rank 0 only and ranks 1..N-1 are
// `loom tp-worker` processes that connect there (tp_worker_command.cpp).

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/tensor_parallel_model.h"
#include "server/model_registry.h"
#include "weights/snapshot.h"

namespace loom::cli {

// "cuda": the first GPU (throws kUnsupported when the binary has no CUDA backend or no GPU is present); "cpu": the
// CPU backend; empty: cuda when the binary has the CUDA backend and a GPU is present, else cpu. Anything else throws
// kInvalidRequest. Each call makes a new backend: backend ops expect one calling thread, so every model that runs on
// its own engine thread gets its own. `gpu` picks the GPU for cuda; `eager` turns its step graphs off (every decode
// step launched op by op, as `--enforce-eager` asks).
std::unique_ptr<backend::Backend> make_backend(const std::string& device, int gpu = 0, bool eager = false);

struct Placement {
  std::string device;        // --device: "cuda", "cpu" or empty (cuda when a GPU is present)
  int tensor_parallel = 1;   // --tensor-parallel: ranks
  std::vector<int> devices;  // --devices: the GPU of each rank (empty: 0 … N-1)
  bool eager = false;        // --enforce-eager: no CUDA graphs
  std::string listen_ranks;  // --listen-ranks HOST:PORT: ranks ≥ 1 are worker processes joining there
  int rank_timeout_s = 300;  // --rank-timeout: how long rank 0 waits for them
};

// Adds --tensor-parallel, --devices and --enforce-eager to `command` (each command declares its own --device);
// returns the first.
CLI::Option* add_tensor_parallel_options(CLI::App& command, Placement& placement);

// Adds --listen-ranks and --rank-timeout (`loom run`, `loom serve`).
void add_listen_ranks_options(CLI::App& command, Placement& placement);

// GPUs this binary can use now (0 without the CUDA backend).
int gpu_count();

// Refuses what cannot run, naming the flag: --tensor-parallel below 1 or above the GPU count (`gpus`), a --devices
// list whose length is not N or that names a GPU twice or one that is not there, --devices with --device cpu, and N > 1
// on CUDA in a binary built without NCCL. With --listen-ranks: N below 2, a malformed address, and --devices naming
// more than rank 0's GPU. Throws kInvalidRequest (kUnsupported for a missing capability).
void check_placement(const Placement& placement, int gpus);

// True when the placement runs on the GPU (cuda asked for, or the default with a GPU present).
bool uses_cuda(const Placement& placement);

// The tensor-parallel group the placement asks for: N CUDA backends joined by NCCL, or N CPU backends.
std::unique_ptr<backend::RankGroup> make_rank_group(const Placement& placement);

// Loads `snapshot` where the placement says: one backend (returned next to the model, to outlive it), or a
// tensor-parallel model owning its backends when N > 1 (with --listen-ranks: after listening there, printing the
// bound address to stderr as "loom: waiting for … on HOST:PORT", and waiting for every worker to join and load).
server::PlacedModel load_placed(const weights::Snapshot& snapshot, const Placement& placement);

}  // namespace loom::cli
