#pragma once
// The backend behind `--device` for the commands that run a model (`loom run`, `loom serve`).

#include <string>

#include "backend/backend.h"

namespace loom::cli {

// "cuda": the first GPU (throws kUnsupported when the binary has no CUDA backend or no GPU is present); "cpu": the
// CPU backend; empty: cuda when the binary has the CUDA backend and a GPU is present, else cpu. Anything else throws
// kInvalidRequest. The backend is a process-wide object: it outlives every model and engine built on it.
backend::Backend& choose_backend(const std::string& device);

}  // namespace loom::cli
