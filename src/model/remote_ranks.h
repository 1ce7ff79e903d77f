#pragma once
// Tensor-parallel ranks in other processes (`loom tp-worker`), possibly on other hosts: how rank 0 gathers them, how
// a worker joins, how rank 0 drives them, and the loop a worker runs.
//
// Joining. Rank 0 listens (backend::TcpListener); each worker connects and sends a hello on its control connection
// (and, for the CPU socket communicator, a second hello on its data connection) with its rank and the model
// fingerprint (architecture, layers, hidden size, ranks). Rank 0 refuses a worker that brings another model or rank
// count, a rank outside 1..N−1 or one already taken (it tells the worker why, then fails itself with the same message);
// it ignores connections that are not loom workers. When every rank has joined it sends each worker a welcome with
// the transport's bootstrap bytes (NCCL's unique id; empty on the CPU). The wait has a deadline, after which rank 0
// fails saying how many of the N ranks joined.
//
// Steps. For every forward call rank 0 sends each worker the encoded step (model/tp_step_codec.h) on its control
// connection; the worker runs it on its shard with its mirror of the engine's cache and answers done, or error with
// the ErrorKind and message. A lost connection or an error reply is that rank's failure.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backend/rank_group.h"
#include "backend/tcp_link.h"
#include "model/model.h"
#include "model/tp_step_codec.h"
#include "weights/snapshot.h"

namespace loom::model {

// The fingerprint both sides compute from their snapshot's config: architectures[0], and num_hidden_layers and
// hidden_size of the text config.
ModelFingerprint fingerprint_of(const weights::Snapshot& snapshot, int ranks);

struct JoinOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool data_channels = true;       // CPU: every worker also opens a connection for the socket communicator
  std::vector<uint8_t> bootstrap;  // sent to every worker in the welcome (NCCL's unique id)
};

// Rank 0's side of the join: connections indexed by rank (element 0 null), data empty unless data_channels.
struct JoinedWorkers {
  std::vector<std::unique_ptr<backend::TcpConnection>> control;
  std::vector<std::unique_ptr<backend::TcpConnection>> data;
};
JoinedWorkers accept_workers(backend::TcpListener& listener, const ModelFingerprint& model, const JoinOptions& options);

// A worker's side: connects (retrying until rank 0 listens), says hello, waits for the welcome. Throws what rank 0
// answered when it refused this worker, kInternal on a timeout.
struct RankZeroLink {
  std::unique_ptr<backend::TcpConnection> control;
  std::unique_ptr<backend::TcpConnection> data;  // null unless data_channel
  std::vector<uint8_t> bootstrap;
};
RankZeroLink join_rank_zero(const backend::Endpoint& endpoint, int rank, const ModelFingerprint& model,
                            bool data_channel, std::chrono::milliseconds timeout);

// Rank 0's handle on its workers' control connections (indexed by rank; element 0 unused). Each rank's calls come
// from one thread (the driver's thread for that rank); abort() may come from any.
class RemoteRanks {
 public:
  explicit RemoteRanks(std::vector<std::unique_ptr<backend::TcpConnection>> control);
  ~RemoteRanks();

  // Waits for rank `rank`'s "loaded" (what its shard reports); throws its error reply or a lost connection.
  TpLoaded wait_loaded(int rank);
  // Sends the encoded step to rank `rank` and waits for its reply; throws as above.
  void run_step(int rank, std::span<const uint8_t> step);
  // Shuts every connection down: blocked calls throw, and the workers see their connection end.
  void abort();
  // Tells every worker to exit (best effort; for a group that is being unloaded).
  void shutdown();

 private:
  backend::TcpConnection& link(int rank);
  std::vector<uint8_t> reply(int rank, TpMessageType expected);

  std::vector<std::unique_ptr<backend::TcpConnection>> control_;
};

// A worker's life after the join: loads its shard with `load` (on group.backend(rank), Sharding of
// group.communicator(rank)), reports loaded (or the load error, which it then rethrows), and serves steps until rank 0
// says shutdown (returns) or the connection ends (throws). A step that fails is reported to rank 0 and rethrown: the
// group is broken after it.
using WorkerLoader = std::function<std::unique_ptr<Model>(backend::Backend& backend, backend::Communicator& comm)>;
void serve_worker_rank(backend::RankGroup& group, int rank, const WorkerLoader& load, backend::TcpConnection& control);

}  // namespace loom::model
