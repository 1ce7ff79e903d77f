#pragma once
// Which shard of a model this process (or thread) holds in a tensor-parallel group. A default Sharding is the whole
// model on one rank: every family loads and runs unsharded, and no collective is called.

#include "backend/communicator.h"

namespace loom::model {

struct Sharding {
  backend::Communicator* comm = nullptr;  // nullptr: unsharded

  int rank() const { return comm != nullptr ? comm->rank() : 0; }
  int ranks() const { return comm != nullptr ? comm->size() : 1; }
  bool active() const { return ranks() > 1; }
};

}  // namespace loom::model
