#include "cli/device_choice.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_rank_group.h"
#include "backend/cpu/socket_communicator.h"
#include "backend/tcp_link.h"
#ifdef LOOM_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#ifdef LOOM_HAS_NCCL
#include "backend/cuda/nccl_communicator.h"
#endif
#include "core/error.h"
#include "model/registry.h"
#include "model/remote_ranks.h"

namespace loom::cli {

std::unique_ptr<backend::Backend> make_backend(const std::string& device, int gpu, bool eager) {
  if (!device.empty() && device != "cuda" && device != "cpu") {
    fail(ErrorKind::kInvalidRequest, "--device must be cuda or cpu, got '{}'", device);
  }
#ifdef LOOM_HAS_CUDA
  if (device == "cuda" || (device.empty() && backend::cuda::device_count() > 0)) {
    auto cuda = std::make_unique<backend::cuda::CudaBackend>(gpu);  // throws kUnsupported naming the missing GPU
    cuda->set_step_graphs(!eager);
    return cuda;
  }
#else
  (void)gpu;
  (void)eager;
  if (device == "cuda") fail(ErrorKind::kUnsupported, "this loom binary was built without the CUDA backend");
#endif
  return std::make_unique<backend::cpu::CpuBackend>();
}

CLI::Option* add_tensor_parallel_options(CLI::App& command, Placement& placement) {
  CLI::Option* ranks =
      command
          .add_option("--tensor-parallel", placement.tensor_parallel,
                      "split the model over N GPUs (tensor parallelism; N CPU threads with --device cpu)")
          ->capture_default_str();
  command.add_option("--devices", placement.devices, "the GPU of each rank, comma-separated (default: 0,1,…,N-1)")
      ->delimiter(',');
  command.add_flag("--enforce-eager", placement.eager,
                   "launch every GPU step op by op instead of replaying decode steps from CUDA graphs");
  return ranks;
}

void add_listen_ranks_options(CLI::App& command, Placement& placement) {
  command.add_option("--listen-ranks", placement.listen_ranks,
                     "be rank 0 of a group whose ranks 1..N-1 are `loom tp-worker` processes connecting to HOST:PORT "
                     "(port 0: a free one, printed)");
  command.add_option("--rank-timeout", placement.rank_timeout_s, "seconds to wait for the workers to join")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

int gpu_count() {
#ifdef LOOM_HAS_CUDA
  return backend::cuda::device_count();
#else
  return 0;
#endif
}

bool uses_cuda(const Placement& placement) {
  return placement.device == "cuda" || (placement.device.empty() && gpu_count() > 0);
}

namespace {

// --listen-ranks: this process is rank 0 on one device; the other ranks bring their own.
void check_rank_zero_placement(const Placement& placement, int gpus, bool cpu) {
  const int n = placement.tensor_parallel;
  if (n < 2) {
    fail(ErrorKind::kInvalidRequest,
         "--listen-ranks needs --tensor-parallel 2 or more (ranks 1..N-1 join there), got {}", n);
  }
  (void)backend::parse_endpoint(placement.listen_ranks, "--listen-ranks", true);
  if (cpu) {
    if (!placement.devices.empty()) {
      fail(ErrorKind::kInvalidRequest, "--devices names GPUs; it cannot be used with the CPU");
    }
    return;
  }
  if (placement.devices.size() > 1) {
    fail(ErrorKind::kInvalidRequest, "with --listen-ranks, --devices names rank 0's GPU only; it lists {} ({})",
         placement.devices.size(), fmt::join(placement.devices, ","));
  }
  const int gpu = placement.devices.empty() ? 0 : placement.devices.front();
  if (gpu < 0 || gpu >= gpus)
    fail(ErrorKind::kInvalidRequest, "rank 0's GPU {} is not present ({} available)", gpu, gpus);
#ifndef LOOM_HAS_NCCL
  fail(ErrorKind::kUnsupported, "--listen-ranks on GPUs needs NCCL, and this loom binary was built without it");
#endif
}

}  // namespace

void check_placement(const Placement& placement, int gpus) {
  const int n = placement.tensor_parallel;
  if (n < 1) fail(ErrorKind::kInvalidRequest, "--tensor-parallel must be at least 1, got {}", n);
  const bool cpu = placement.device == "cpu" || (placement.device.empty() && gpus == 0);
  if (!placement.listen_ranks.empty()) {
    check_rank_zero_placement(placement, gpus, cpu);
    return;
  }
  if (cpu) {
    if (!placement.devices.empty()) {
      fail(ErrorKind::kInvalidRequest, "--devices names GPUs; it cannot be used with the CPU ({})",
           placement.device.empty() ? "no GPU is present" : "--device cpu");
    }
    if (n > 1 && placement.device.empty()) {
      fail(ErrorKind::kInvalidRequest,
           "--tensor-parallel {} needs {} GPUs, 0 available (add --device cpu to split the model over CPU threads)", n,
           n);
    }
    return;
  }
  if (!placement.devices.empty() && static_cast<int>(placement.devices.size()) != n) {
    fail(ErrorKind::kInvalidRequest, "--devices lists {} GPU{} ({}) but --tensor-parallel is {}",
         placement.devices.size(), placement.devices.size() == 1 ? "" : "s", fmt::join(placement.devices, ","), n);
  }
  std::set<int> seen;
  for (int d : placement.devices) {
    if (!seen.insert(d).second) fail(ErrorKind::kInvalidRequest, "--devices names GPU {} twice", d);
  }
  // One rank on a missing GPU is the backend's to report ("GPU 0 requested, 0 available"), as without the flag.
  if (n > 1 && n > gpus) {
    fail(ErrorKind::kInvalidRequest, "--tensor-parallel {} needs {} GPU{}, {} available", n, n, n == 1 ? "" : "s",
         gpus);
  }
  for (int d : placement.devices) {
    if (d < 0 || d >= gpus) {
      if (gpus == 0) fail(ErrorKind::kInvalidRequest, "--devices names GPU {}, but no GPU is present", d);
      fail(ErrorKind::kInvalidRequest, "--devices names GPU {}, but the GPUs are 0 to {}", d, gpus - 1);
    }
  }
#ifndef LOOM_HAS_NCCL
  if (n > 1) {
    fail(ErrorKind::kUnsupported, "--tensor-parallel {} on GPUs needs NCCL, and this loom binary was built without it",
         n);
  }
#endif
}

std::unique_ptr<backend::RankGroup> make_rank_group(const Placement& placement) {
  check_placement(placement, gpu_count());
  if (!uses_cuda(placement)) return backend::cpu::make_cpu_group(placement.tensor_parallel);
#ifdef LOOM_HAS_NCCL
  std::vector<int> devices = placement.devices;
  if (devices.empty()) {
    for (int r = 0; r < placement.tensor_parallel; ++r) devices.push_back(r);
  }
  return backend::cuda::make_nccl_group(devices);
#else
  fail(ErrorKind::kUnsupported, "tensor parallelism on GPUs needs NCCL, and this loom binary was built without it");
#endif
}

namespace {

// Rank 0 here, ranks 1..N-1 in `loom tp-worker` processes joining at --listen-ranks.
std::unique_ptr<model::TensorParallelModel> load_with_workers(const weights::Snapshot& snapshot,
                                                              const Placement& placement) {
  const int n = placement.tensor_parallel;
  const backend::Endpoint endpoint = backend::parse_endpoint(placement.listen_ranks, "--listen-ranks", true);
  backend::TcpListener listener(endpoint);
  const bool cuda = uses_cuda(placement);
  model::JoinOptions join;
  join.timeout = std::chrono::seconds(placement.rank_timeout_s);
  join.data_channels = !cuda;
#ifdef LOOM_HAS_NCCL
  if (cuda) join.bootstrap = backend::cuda::make_nccl_unique_id();
#endif
  const backend::Endpoint bound{endpoint.host, listener.port()};
  std::fprintf(stderr, "loom: waiting for %d tensor-parallel worker%s on %s\n", n - 1, n == 2 ? "" : "s",
               bound.to_string().c_str());
  std::fflush(stderr);
  model::JoinedWorkers joined = model::accept_workers(listener, model::fingerprint_of(snapshot, n), join);
  std::unique_ptr<backend::RankGroup> group;
  if (cuda) {
#ifdef LOOM_HAS_NCCL
    group = backend::cuda::make_nccl_process_group(0, n, placement.devices.empty() ? 0 : placement.devices.front(),
                                                   join.bootstrap);
#else
    fail(ErrorKind::kUnsupported, "--listen-ranks on GPUs needs NCCL, and this loom binary was built without it");
#endif
  } else {
    group = backend::cpu::make_socket_process_group(0, n, std::move(joined.data));
  }
  return std::make_unique<model::TensorParallelModel>(
      std::move(group),
      [&snapshot](int, backend::Backend& backend, const model::Sharding& sharding) {
        return model::load_model(snapshot, backend, sharding);
      },
      std::make_unique<model::RemoteRanks>(std::move(joined.control)));
}

}  // namespace

server::PlacedModel load_placed(const weights::Snapshot& snapshot, const Placement& placement) {
  check_placement(placement, gpu_count());
  server::PlacedModel placed;
  if (!placement.listen_ranks.empty()) {
    placed.model = load_with_workers(snapshot, placement);
    return placed;
  }
  if (placement.tensor_parallel > 1) {
    placed.model = model::load_tensor_parallel(snapshot, make_rank_group(placement));
    return placed;
  }
  placed.backend =
      make_backend(placement.device, placement.devices.empty() ? 0 : placement.devices.front(), placement.eager);
  placed.model = model::load_model(snapshot, *placed.backend);
  return placed;
}

}  // namespace loom::cli
