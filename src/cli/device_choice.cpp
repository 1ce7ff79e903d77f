#include "cli/device_choice.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_rank_group.h"
#ifdef LOOM_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#ifdef LOOM_HAS_NCCL
#include "backend/cuda/nccl_communicator.h"
#endif
#include "core/error.h"
#include "model/registry.h"

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

void check_placement(const Placement& placement, int gpus) {
  const int n = placement.tensor_parallel;
  if (n < 1) fail(ErrorKind::kInvalidRequest, "--tensor-parallel must be at least 1, got {}", n);
  const bool cpu = placement.device == "cpu" || (placement.device.empty() && gpus == 0);
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

server::PlacedModel load_placed(const weights::Snapshot& snapshot, const Placement& placement) {
  check_placement(placement, gpu_count());
  server::PlacedModel placed;
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
