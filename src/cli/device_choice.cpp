#include "cli/device_choice.h"

#include "backend/cpu/cpu_backend.h"
#ifdef LOOM_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/error.h"

namespace loom::cli {

std::unique_ptr<backend::Backend> make_backend(const std::string& device) {
  if (!device.empty() && device != "cuda" && device != "cpu") {
    fail(ErrorKind::kInvalidRequest, "--device must be cuda or cpu, got '{}'", device);
  }
#ifdef LOOM_HAS_CUDA
  if (device == "cuda" || (device.empty() && backend::cuda::device_count() > 0)) {
    return std::make_unique<backend::cuda::CudaBackend>(0);  // throws kUnsupported naming the missing GPU
  }
#else
  if (device == "cuda") fail(ErrorKind::kUnsupported, "this loom binary was built without the CUDA backend");
#endif
  return std::make_unique<backend::cpu::CpuBackend>();
}

}  // namespace loom::cli
