#pragma once
// Loading a model: the snapshot's architecture (config.json architectures[0], else model_type) picks the family.

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"
#include "model/sharding.h"
#include "weights/snapshot.h"

namespace loom::model {

// Architecture names load_model() accepts, sorted.
std::vector<std::string> supported_architectures();

// Builds the family's model on `backend`, loading every weight it needs (copied out of the snapshot's mappings, so
// the snapshot may be closed afterwards). An unknown architecture throws loom::Error(kUnsupported) naming it and
// listing the supported ones; weight and config problems throw kInvalidFile / kUnsupported naming file and field.
// `sharding` picks the shard a tensor-parallel rank holds (default: the whole model).
std::unique_ptr<Model> load_model(const weights::Snapshot& snapshot, backend::Backend& backend,
                                  const Sharding& sharding = {});

}  // namespace loom::model
