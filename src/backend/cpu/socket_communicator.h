#pragma once
// Tensor-parallel collectives between processes over TCP (backend/tcp_link.h), for CPU ranks: the multi-process path
// of a group that needs no GPU, so it runs wherever the tests do. A star through rank 0: every collective is each
// worker sending its tensor to rank 0, rank 0 combining in rank order (the sum 0 + 1 + … + N−1 the in-process group
// computes, so results are bit-identical to it), and rank 0 sending the result back. Rank 0 holds one connection per
// worker; a worker holds one, to rank 0. Each message carries the collective's name and element count, so ranks that
// disagree fail with kInternal instead of mixing data.
//
// abort() shuts every connection down from any thread: a rank blocked in a collective throws at once, and so does
// the peer on the other end of the connection (its read sees the connection end).

#include <memory>
#include <vector>

#include "backend/communicator.h"
#include "backend/rank_group.h"
#include "backend/tcp_link.h"

namespace loom::backend::cpu {

class SocketCommunicator final : public Communicator {
 public:
  // Rank 0: links[r] is the connection to rank r (links[0] unused, null). Rank r ≥ 1: links has one element, the
  // connection to rank 0.
  SocketCommunicator(int rank, int size, std::vector<std::unique_ptr<TcpConnection>> links);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(Tensor& x) override;
  void all_gather_columns(const Tensor& x, Tensor& out) override;
  void broadcast(Tensor& x, int root) override;
  void abort();

 private:
  TcpConnection& link(int peer);
  // Sends `data` with its op and element count to `peer`; receives the same from `peer` into `out`.
  void send(int peer, const char* op, const float* data, int64_t elements);
  void receive(int peer, const char* op, float* out, int64_t elements);

  int rank_;
  int size_;
  std::vector<std::unique_ptr<TcpConnection>> links_;
};

// The group of one process: rank `rank` of `size` on a CpuBackend, joined to the others by a SocketCommunicator over
// `links` (as above). Only `rank` is local (RankGroup::is_local); abort() shuts the connections down.
std::unique_ptr<RankGroup> make_socket_process_group(int rank, int size,
                                                     std::vector<std::unique_ptr<TcpConnection>> links);

}  // namespace loom::backend::cpu
