#include "backend/cpu/cpu_rank_group.h"

#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/in_process_communicator.h"
#include "core/error.h"

namespace loom::backend::cpu {
namespace {

// The communicator of a group of one: every collective leaves the rank's own data where it belongs.
class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(Tensor&) override {}
  void all_gather_columns(const Tensor& x, Tensor& out) override {
    if (x.dtype() != DType::kF32 || out.dtype() != DType::kF32 || x.shape() != out.shape()) {
      fail(ErrorKind::kInternal, "[all_gather_columns] x {} and out {} must be F32 of one shape on one rank",
           shape_string(x.shape()), shape_string(out.shape()));
    }
    if (x.data() != out.data()) std::memcpy(out.data(), x.data(), x.bytes());
  }
  void broadcast(Tensor&, int root) override {
    if (root != 0) fail(ErrorKind::kInternal, "[broadcast] root {} in a group of one", root);
  }
};

class SoloGroup final : public RankGroup {
 public:
  int size() const override { return 1; }
  Backend& backend(int) override { return backend_; }
  Communicator& communicator(int) override { return comm_; }
  void abort() override {}

 private:
  CpuBackend backend_;
  SoloCommunicator comm_;
};

// CPU backends joined by the in-process group. A rank that fails mid-step leaves the others waiting in the group's
// rendezvous; abort() wakes them (their collectives throw) and leaves the group unusable.
class CpuRankGroup final : public RankGroup {
 public:
  explicit CpuRankGroup(int ranks) : group_(ranks) {
    for (int r = 0; r < ranks; ++r) backends_.push_back(std::make_unique<CpuBackend>());
  }
  int size() const override { return static_cast<int>(backends_.size()); }
  Backend& backend(int rank) override { return *backends_.at(static_cast<size_t>(rank)); }
  Communicator& communicator(int rank) override { return group_.rank(rank); }
  void abort() override { group_.abort(); }

 private:
  InProcessGroup group_;
  std::vector<std::unique_ptr<CpuBackend>> backends_;
};

}  // namespace

std::unique_ptr<RankGroup> make_cpu_group(int ranks) {
  if (ranks < 1) fail(ErrorKind::kInvalidRequest, "a tensor-parallel group needs at least 1 rank, got {}", ranks);
  if (ranks == 1) return std::make_unique<SoloGroup>();
  return std::make_unique<CpuRankGroup>(ranks);
}

}  // namespace loom::backend::cpu
