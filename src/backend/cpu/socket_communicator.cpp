#include "backend/cpu/socket_communicator.h"

#include <cstring>
#include <string_view>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace loom::backend::cpu {
namespace {

// Every collective message starts with the op's name (padded) and the element count that follows.
constexpr size_t kOpBytes = 24;
constexpr size_t kHeaderBytes = kOpBytes + sizeof(int64_t);

void expect_host_f32(const Tensor& t, const char* op, const char* what) {
  if (t.empty() || t.dtype() != DType::kF32 || t.device().kind != DeviceKind::kCpu) {
    fail(ErrorKind::kInternal, "[{}] {} must be a non-empty host F32 tensor (got {} {})", op, what,
         dtype_name(t.dtype()), shape_string(t.shape()));
  }
}

std::span<const uint8_t> bytes_of(const float* data, int64_t elements) {
  return {reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(elements) * sizeof(float)};
}

}  // namespace

SocketCommunicator::SocketCommunicator(int rank, int size, std::vector<std::unique_ptr<TcpConnection>> links)
    : rank_(rank), size_(size), links_(std::move(links)) {
  if (size < 2 || rank < 0 || rank >= size) {
    fail(ErrorKind::kInternal, "[socket communicator] rank {} of {}: needs 0 <= rank < size, size >= 2", rank, size);
  }
  const size_t want = rank == 0 ? static_cast<size_t>(size) : 1;
  if (links_.size() != want) {
    fail(ErrorKind::kInternal, "[socket communicator] rank {} needs {} connection slots, got {}", rank, want,
         links_.size());
  }
  for (size_t i = rank == 0 ? 1 : 0; i < links_.size(); ++i) {
    if (!links_[i]) fail(ErrorKind::kInternal, "[socket communicator] rank {}: connection {} missing", rank, i);
  }
}

TcpConnection& SocketCommunicator::link(int peer) {
  return rank_ == 0 ? *links_[static_cast<size_t>(peer)] : *links_[0];
}

void SocketCommunicator::send(int peer, const char* op, const float* data, int64_t elements) {
  uint8_t header[kHeaderBytes] = {};
  std::memcpy(header, op, std::min(std::strlen(op), kOpBytes));
  std::memcpy(header + kOpBytes, &elements, sizeof elements);
  try {
    link(peer).send_parts({std::span<const uint8_t>(header, sizeof header), bytes_of(data, elements)});
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "[{}] rank {} → rank {}: {}", op, rank_, peer, e.what());
  }
}

void SocketCommunicator::receive(int peer, const char* op, float* out, int64_t elements) {
  std::vector<uint8_t> message;
  try {
    message = link(peer).receive();
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "[{}] rank {} waiting for rank {}: {}", op, rank_, peer, e.what());
  }
  if (message.size() < kHeaderBytes) {
    fail(ErrorKind::kInternal, "[{}] rank {} sent a {}-byte message, shorter than a collective's header", op, peer,
         message.size());
  }
  const std::string_view their_op(reinterpret_cast<const char*>(message.data()),
                                  strnlen(reinterpret_cast<const char*>(message.data()), kOpBytes));
  int64_t their_elements = 0;
  std::memcpy(&their_elements, message.data() + kOpBytes, sizeof their_elements);
  if (their_op != op)
    fail(ErrorKind::kInternal, "[{}] rank {} called {} while rank {} called {}", op, peer, their_op, rank_, op);
  if (their_elements != elements || message.size() - kHeaderBytes != static_cast<size_t>(elements) * sizeof(float)) {
    fail(ErrorKind::kInternal, "[{}] rank {} brought {} elements, rank {} {}", op, peer, their_elements, rank_,
         elements);
  }
  std::memcpy(out, message.data() + kHeaderBytes, static_cast<size_t>(elements) * sizeof(float));
}

void SocketCommunicator::all_reduce_sum(Tensor& x) {
  expect_host_f32(x, "all_reduce_sum", "x");
  const int64_t n = x.elements();
  float* data = x.data_as<float>();
  if (rank_ != 0) {
    send(0, "all_reduce_sum", data, n);
    receive(0, "all_reduce_sum", data, n);
    return;
  }
  // Rank order 0 + 1 + … + N−1, as the in-process group sums.
  std::vector<float> theirs(static_cast<size_t>(n));
  for (int r = 1; r < size_; ++r) {
    receive(r, "all_reduce_sum", theirs.data(), n);
    for (int64_t i = 0; i < n; ++i) data[i] += theirs[static_cast<size_t>(i)];
  }
  for (int r = 1; r < size_; ++r) send(r, "all_reduce_sum", data, n);
}

void SocketCommunicator::all_gather_columns(const Tensor& x, Tensor& out) {
  expect_host_f32(x, "all_gather_columns", "x");
  expect_host_f32(out, "all_gather_columns", "out");
  if (x.rank() != 2 || out.rank() != 2 || out.dim(0) != x.dim(0) || out.dim(1) != x.dim(1) * size_) {
    fail(ErrorKind::kInternal, "[all_gather_columns] x {} and out {}: expected x [rows, cols], out [rows, {}·cols]",
         shape_string(x.shape()), shape_string(out.shape()), size_);
  }
  const int64_t rows = x.dim(0);
  const int64_t cols = x.dim(1);
  float* result = out.data_as<float>();
  if (rank_ != 0) {
    send(0, "all_gather_columns", x.data_as<float>(), x.elements());
    receive(0, "all_gather_columns", result, out.elements());
    return;
  }
  const auto place = [&](int r, const float* part) {
    for (int64_t row = 0; row < rows; ++row) {
      std::memcpy(result + (row * size_ + r) * cols, part + row * cols, static_cast<size_t>(cols) * sizeof(float));
    }
  };
  // `x` may alias `out`: copy it first.
  std::vector<float> part(x.data_as<float>(), x.data_as<float>() + x.elements());
  place(0, part.data());
  for (int r = 1; r < size_; ++r) {
    receive(r, "all_gather_columns", part.data(), x.elements());
    place(r, part.data());
  }
  for (int r = 1; r < size_; ++r) send(r, "all_gather_columns", result, out.elements());
}

void SocketCommunicator::broadcast(Tensor& x, int root) {
  expect_host_f32(x, "broadcast", "x");
  if (root < 0 || root >= size_) fail(ErrorKind::kInternal, "[broadcast] root {} outside a group of {}", root, size_);
  float* data = x.data_as<float>();
  const int64_t n = x.elements();
  if (rank_ != 0) {
    if (root == rank_) {
      send(0, "broadcast", data, n);
    } else {
      receive(0, "broadcast", data, n);
    }
    return;
  }
  if (root != 0) receive(root, "broadcast", data, n);
  for (int r = 1; r < size_; ++r) {
    if (r != root) send(r, "broadcast", data, n);
  }
}

void SocketCommunicator::abort() {
  for (auto& link : links_) {
    if (link) link->shutdown();
  }
}

namespace {

class SocketProcessGroup final : public RankGroup {
 public:
  SocketProcessGroup(int rank, int size, std::vector<std::unique_ptr<TcpConnection>> links)
      : rank_(rank), size_(size), comm_(rank, size, std::move(links)) {}
  int size() const override { return size_; }
  bool is_local(int rank) const override { return rank == rank_; }
  Backend& backend(int rank) override {
    expect_local(rank);
    return backend_;
  }
  Communicator& communicator(int rank) override {
    expect_local(rank);
    return comm_;
  }
  void abort() override { comm_.abort(); }

 private:
  void expect_local(int rank) const {
    if (rank != rank_)
      fail(ErrorKind::kInternal, "[tensor-parallel] rank {} runs in another process (this is rank {})", rank, rank_);
  }

  int rank_;
  int size_;
  CpuBackend backend_;
  SocketCommunicator comm_;
};

}  // namespace

std::unique_ptr<RankGroup> make_socket_process_group(int rank, int size,
                                                     std::vector<std::unique_ptr<TcpConnection>> links) {
  return std::make_unique<SocketProcessGroup>(rank, size, std::move(links));
}

}  // namespace loom::backend::cpu
