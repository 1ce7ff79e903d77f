#include "backend/cpu/in_process_communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace loom::backend::cpu {
namespace {

void expect_host_f32(const Tensor& t, const char* op, const char* what) {
  if (t.empty() || t.dtype() != DType::kF32 || t.device().kind != DeviceKind::kCpu) {
    fail(ErrorKind::kInternal, "[{}] {} must be a non-empty host F32 tensor (got {} {} on {})", op, what,
         dtype_name(t.dtype()), shape_string(t.shape()), t.device().kind == DeviceKind::kCpu ? "host" : "a device");
  }
}

}  // namespace

class InProcessGroup::RankCommunicator final : public Communicator {
 public:
  RankCommunicator(InProcessGroup& group, int rank) : group_(group), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_.size_; }

  void all_reduce_sum(Tensor& x) override {
    expect_host_f32(x, "all_reduce_sum", "x");
    group_.rendezvous(rank_, {"all_reduce_sum", x.data_as<float>(), x.data_as<float>(), x.elements()},
                      [](const std::vector<Contribution>& in, std::vector<float>& out) {
                        // Rank order, whichever thread runs this: the sum is the same bits on every rank.
                        out.assign(in[0].data, in[0].data + in[0].elements);
                        for (size_t r = 1; r < in.size(); ++r) {
                          for (size_t i = 0; i < out.size(); ++i) out[i] += in[r].data[i];
                        }
                      });
  }

  void all_gather_columns(const Tensor& x, Tensor& out) override {
    expect_host_f32(x, "all_gather_columns", "x");
    expect_host_f32(out, "all_gather_columns", "out");
    const int64_t rows = x.rank() == 0 ? 1 : x.dim(0);
    const int64_t cols = rows == 0 ? 0 : x.elements() / rows;
    if (x.rank() != 2 || out.rank() != 2 || out.dim(0) != rows || out.dim(1) != cols * size()) {
      fail(ErrorKind::kInternal, "[all_gather_columns] x {} and out {}: expected x [rows, cols], out [rows, {}·cols]",
           shape_string(x.shape()), shape_string(out.shape()), size());
    }
    group_.rendezvous(rank_, {"all_gather_columns", x.data_as<float>(), out.data_as<float>(), x.elements()},
                      [rows, cols](const std::vector<Contribution>& in, std::vector<float>& result) {
                        const auto ranks = static_cast<int64_t>(in.size());
                        result.resize(static_cast<size_t>(rows * cols * ranks));
                        for (int64_t r = 0; r < ranks; ++r) {
                          for (int64_t row = 0; row < rows; ++row) {
                            std::copy_n(in[static_cast<size_t>(r)].data + row * cols, cols,
                                        result.data() + (row * ranks + r) * cols);
                          }
                        }
                      });
  }

  void broadcast(Tensor& x, int root) override {
    expect_host_f32(x, "broadcast", "x");
    if (root < 0 || root >= size()) {
      fail(ErrorKind::kInternal, "[broadcast] root {} outside a group of {}", root, size());
    }
    group_.rendezvous(rank_, {"broadcast", x.data_as<float>(), x.data_as<float>(), x.elements()},
                      [root](const std::vector<Contribution>& in, std::vector<float>& out) {
                        const Contribution& from = in[static_cast<size_t>(root)];
                        out.assign(from.data, from.data + from.elements);
                      });
  }

 private:
  InProcessGroup& group_;
  int rank_;
};

InProcessGroup::InProcessGroup(int size) : size_(size) {
  if (size < 1) fail(ErrorKind::kInvalidRequest, "[InProcessGroup] a group needs at least one rank, got {}", size);
  slots_.resize(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<RankCommunicator>(*this, r));
}

InProcessGroup::~InProcessGroup() = default;

Communicator& InProcessGroup::rank(int r) {
  if (r < 0 || r >= size_) fail(ErrorKind::kInternal, "[InProcessGroup] rank {} outside a group of {}", r, size_);
  return *ranks_[static_cast<size_t>(r)];
}

void InProcessGroup::abort() {
  const std::lock_guard lock(mutex_);
  aborted_ = true;
  arrived_all_.notify_all();
}

template <typename Combine>
void InProcessGroup::rendezvous(int r, const Contribution& mine, Combine&& combine) {
  std::unique_lock lock(mutex_);
  if (aborted_) fail(ErrorKind::kInternal, "[{}] the tensor-parallel group was aborted", mine.op);
  slots_[static_cast<size_t>(r)] = mine;
  const uint64_t generation = generation_;
  if (++arrived_ == size_) {
    error_.clear();
    for (size_t i = 1; i < slots_.size() && error_.empty(); ++i) {
      if (std::string_view(slots_[i].op) != slots_[0].op) {
        error_ =
            fmt::format("[{}] rank {} called {} while rank 0 called {}", slots_[0].op, i, slots_[i].op, slots_[0].op);
      } else if (slots_[i].elements != slots_[0].elements) {
        error_ = fmt::format("[{}] rank {} brought {} elements, rank 0 {}", slots_[0].op, i, slots_[i].elements,
                             slots_[0].elements);
      }
    }
    if (error_.empty()) combine(slots_, buffer_);
    arrived_ = 0;
    ++generation_;
    arrived_all_.notify_all();
  } else {
    arrived_all_.wait(lock, [&] { return generation_ != generation || aborted_; });
    if (generation_ == generation) {
      fail(ErrorKind::kInternal, "[{}] the tensor-parallel group was aborted while rank {} waited", mine.op, r);
    }
  }
  // The buffer is rewritten only when every rank has arrived at the next collective, i.e. after this copy.
  if (!error_.empty()) fail(ErrorKind::kInternal, "{}", error_);
  const int64_t result = static_cast<int64_t>(buffer_.size());
  std::memcpy(mine.target, buffer_.data(), static_cast<size_t>(result) * sizeof(float));
}

}  // namespace loom::backend::cpu
