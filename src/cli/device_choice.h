#pragma once
// The backend behind `--device` for the commands that run a model (`loom run`, `loom serve`).

#include <memory>
#include <string>

#include "backend/backend.h"

namespace loom::cli {

// "cuda": the first GPU (throws kUnsupported when the binary has no CUDA backend or no GPU is present); "cpu": the
// CPU backend; empty: cuda when the binary has the CUDA backend and a GPU is present, else cpu. Anything else throws
// kInvalidRequest. Each call makes a new backend: backend ops expect one calling thread, so every model that runs on
// its own engine thread gets its own.
std::unique_ptr<backend::Backend> make_backend(const std::string& device);

}  // namespace loom::cli
