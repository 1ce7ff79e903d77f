#include "model/remote_ranks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"
#include "core/log.h"

namespace loom::model {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A connection that has not said hello within this time is not a worker.
constexpr milliseconds kHelloTimeout{10000};
// Mirrors a worker keeps: the engine uses one cache, the bench a warm-up cache and then the engine's.
constexpr size_t kMaxMirrors = 4;

int64_t config_int(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  return it != config.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

[[noreturn]] void throw_reply(std::span<const uint8_t> message, const std::string& who) {
  const TpErrorReply error = decode_error(message);
  fail(error.kind, "{}: {}", who, error.message);
}

}  // namespace

ModelFingerprint fingerprint_of(const weights::Snapshot& snapshot, int ranks) {
  ModelFingerprint f;
  const nlohmann::json& config = snapshot.config();
  if (const auto it = config.find("architectures");
      it != config.end() && it->is_array() && !it->empty() && it->front().is_string()) {
    f.architecture = it->front().get<std::string>();
  }
  f.layers = config_int(snapshot.text_config(), "num_hidden_layers");
  f.hidden_size = config_int(snapshot.text_config(), "hidden_size");
  f.ranks = ranks;
  return f;
}

JoinedWorkers accept_workers(backend::TcpListener& listener, const ModelFingerprint& model,
                             const JoinOptions& options) {
  const int n = model.ranks;
  if (n < 2) fail(ErrorKind::kInternal, "[tensor-parallel] a group of {} rank needs no workers", n);
  JoinedWorkers joined;
  joined.control.resize(static_cast<size_t>(n));
  if (options.data_channels) joined.data.resize(static_cast<size_t>(n));
  const auto complete = [&](int r) {
    return joined.control[static_cast<size_t>(r)] && (!options.data_channels || joined.data[static_cast<size_t>(r)]);
  };
  const auto deadline = Clock::now() + options.timeout;
  const std::string where = fmt::format("{}:{}", listener.host(), listener.port());
  for (;;) {
    std::vector<int> missing;
    for (int r = 1; r < n; ++r) {
      if (!complete(r)) missing.push_back(r);
    }
    if (missing.empty()) break;
    std::unique_ptr<backend::TcpConnection> connection = listener.accept(deadline);
    if (!connection) {
      fail(ErrorKind::kInternal,
           "timed out after {} s waiting for tensor-parallel workers on {}: {} of {} ranks joined (rank 0 is this "
           "process; missing rank{} {})",
           std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count(), where,
           n - static_cast<int>(missing.size()), n, missing.size() == 1 ? "" : "s", fmt::join(missing, ", "));
    }
    TpHello hello;
    try {
      hello = decode_hello(connection->receive(kHelloTimeout));
    } catch (const Error& e) {
      log::warn("tensor-parallel: ignoring a connection from {} that is not a loom worker: {}", connection->peer(),
                e.what());
      continue;
    }
    std::string refusal;
    if (hello.model.ranks != n) {
      refusal = fmt::format("the worker from {} (rank {}) runs with --tensor-parallel {}, rank 0 with {}",
                            connection->peer(), hello.rank, hello.model.ranks, n);
    } else if (hello.rank < 1 || hello.rank >= n) {
      refusal = fmt::format("the worker from {} says it is rank {}; workers are ranks 1 to {}", connection->peer(),
                            hello.rank, n - 1);
    } else if (hello.model != model) {
      refusal = fmt::format("the worker for rank {} from {} loaded another model ({}) than rank 0 ({})", hello.rank,
                            connection->peer(), hello.model.to_string(), model.to_string());
    }
    if (refusal.empty()) {
      auto& slots = hello.channel == TpChannel::kData ? joined.data : joined.control;
      if (hello.channel == TpChannel::kData && !options.data_channels) {
        refusal = fmt::format(
            "the worker for rank {} from {} opened a data connection, which this group (on GPUs) "
            "does not use: it runs on another device than rank 0",
            hello.rank, connection->peer());
      } else if (slots[static_cast<size_t>(hello.rank)]) {
        refusal = fmt::format("two workers claim rank {} (the second from {})", hello.rank, connection->peer());
      } else {
        slots[static_cast<size_t>(hello.rank)] = std::move(connection);
        log::info("tensor-parallel: rank {} joined ({} connection)", hello.rank,
                  hello.channel == TpChannel::kData ? "data" : "control");
        continue;
      }
    }
    try {
      connection->send(encode_error(ErrorKind::kInvalidRequest, "rank 0 refused this worker: " + refusal));
    } catch (const Error&) {
    }
    fail(ErrorKind::kInvalidRequest, "[tensor-parallel] refused a worker: {}", refusal);
  }
  for (int r = 1; r < n; ++r) joined.control[static_cast<size_t>(r)]->send(encode_welcome(options.bootstrap));
  return joined;
}

RankZeroLink join_rank_zero(const backend::Endpoint& endpoint, int rank, const ModelFingerprint& model,
                            bool data_channel, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto left = [&] {
    return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  };
  RankZeroLink link;
  // Both connections exist before either says hello: rank 0 may refuse (and exit) on the first hello, and a second
  // connect would then find nothing listening.
  link.control = backend::connect_tcp(endpoint, left());
  if (data_channel) link.data = backend::connect_tcp(endpoint, left());
  link.control->send(encode_hello({rank, TpChannel::kControl, model}));
  // Rank 0 answers on the control connection, also when it refuses this worker and exits at once, which may reset
  // the data connection before its hello is out: that answer is the one to report.
  std::string data_error;
  if (data_channel) {
    try {
      link.data->send(encode_hello({rank, TpChannel::kData, model}));
    } catch (const Error& e) {
      data_error = e.what();
    }
  }
  std::vector<uint8_t> answer;
  try {
    answer = link.control->receive(left());
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "rank 0 at {} did not welcome rank {}: {}", endpoint.to_string(), rank, e.what());
  }
  if (message_type(answer) == TpMessageType::kError) throw_reply(answer, "rank 0 at " + endpoint.to_string());
  if (!data_error.empty()) {
    fail(ErrorKind::kInternal, "rank 0 at {}: the data connection failed: {}", endpoint.to_string(), data_error);
  }
  link.bootstrap = decode_welcome(answer);
  return link;
}

RemoteRanks::RemoteRanks(std::vector<std::unique_ptr<backend::TcpConnection>> control) : control_(std::move(control)) {}

RemoteRanks::~RemoteRanks() = default;

backend::TcpConnection& RemoteRanks::link(int rank) {
  if (rank < 1 || rank >= static_cast<int>(control_.size()) || !control_[static_cast<size_t>(rank)]) {
    fail(ErrorKind::kInternal, "[tensor-parallel] rank {} has no worker connection", rank);
  }
  return *control_[static_cast<size_t>(rank)];
}

std::vector<uint8_t> RemoteRanks::reply(int rank, TpMessageType expected) {
  backend::TcpConnection& connection = link(rank);
  std::vector<uint8_t> message;
  try {
    message = connection.receive();
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "the worker process of rank {} is gone: {}", rank, e.what());
  }
  const TpMessageType type = message_type(message);
  if (type == TpMessageType::kError) throw_reply(message, fmt::format("the worker process of rank {}", rank));
  if (type != expected) {
    fail(ErrorKind::kInternal, "the worker process of rank {} answered message type {} where {} was expected", rank,
         static_cast<int>(type), static_cast<int>(expected));
  }
  return message;
}

TpLoaded RemoteRanks::wait_loaded(int rank) {
  return decode_loaded(reply(rank, TpMessageType::kLoaded));
}

void RemoteRanks::run_step(int rank, std::span<const uint8_t> step) {
  try {
    link(rank).send(step);
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "the worker process of rank {} is gone: {}", rank, e.what());
  }
  (void)reply(rank, TpMessageType::kDone);
}

void RemoteRanks::abort() {
  for (auto& connection : control_) {
    if (connection) connection->shutdown();
  }
}

void RemoteRanks::shutdown() {
  const std::vector<uint8_t> bye = encode_shutdown();
  for (auto& connection : control_) {
    if (!connection) continue;
    try {
      connection->send(bye);
    } catch (const Error&) {
      // A worker already gone needs no goodbye.
    }
  }
}

namespace {

struct WorkerMirror {
  CacheGeometry geometry;
  uint64_t last_used = 0;
  std::unique_ptr<backend::KvCache> cache;
};

backend::KvCache& worker_mirror(std::vector<WorkerMirror>& mirrors, Model& model, const CacheGeometry& geometry,
                                uint64_t now) {
  for (WorkerMirror& m : mirrors) {
    if (m.geometry == geometry) {
      m.last_used = now;
      return *m.cache;
    }
  }
  // The same key with another geometry is a new cache in the old one's place.
  std::erase_if(mirrors, [&](const WorkerMirror& m) { return m.geometry.key == geometry.key; });
  if (mirrors.size() >= kMaxMirrors) {
    mirrors.erase(std::min_element(mirrors.begin(), mirrors.end(), [](const WorkerMirror& a, const WorkerMirror& b) {
      return a.last_used < b.last_used;
    }));
  }
  mirrors.push_back(
      {geometry, now,
       std::make_unique<backend::KvCache>(backend::KvCacheConfig{model.info().kv, geometry.blocks, geometry.block_size},
                                          model.backend())});
  return *mirrors.back().cache;
}

// Sends the failure to rank 0, then waits (a while) until rank 0 closes the control connection: this worker's
// connections stay open meanwhile, so rank 0 learns of the failure from the report, with its kind, rather than from a
// collective whose connection ended as the worker exited.
void report(backend::TcpConnection& control, const Error& e) {
  try {
    control.send(encode_error(e.kind(), e.what()));
    for (;;) (void)control.receive(std::chrono::seconds(30));
  } catch (const Error&) {
    // Rank 0 closed the group (or is gone).
  }
}

}  // namespace

void serve_worker_rank(backend::RankGroup& group, int rank, const WorkerLoader& load, backend::TcpConnection& control) {
  std::unique_ptr<Model> model;
  try {
    group.bind_thread(rank);
    model = load(group.backend(rank), group.communicator(rank));
    if (!model) fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: no model", rank);
  } catch (const Error& e) {
    report(control, e);
    throw;
  } catch (const std::exception& e) {
    report(control, Error(ErrorKind::kInternal, e.what()));
    throw;
  }
  control.send(encode_loaded({model->info().vocab_size, static_cast<int64_t>(model->info().kv.size())}));
  std::vector<WorkerMirror> mirrors;
  uint64_t steps = 0;
  for (;;) {
    std::vector<uint8_t> message;
    try {
      message = control.receive();
    } catch (const Error& e) {
      fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: rank 0 is gone: {}", rank, e.what());
    }
    const TpMessageType type = message_type(message);
    if (type == TpMessageType::kShutdown) return;
    if (type == TpMessageType::kError) throw_reply(message, "rank 0");
    try {
      const DecodedStep step = decode_step(message);
      backend::KvCache& cache = worker_mirror(mirrors, *model, step.cache, ++steps);
      (void)model->forward(step.inputs(), cache);
    } catch (const Error& e) {
      report(control, e);
      throw;
    } catch (const std::exception& e) {
      report(control, Error(ErrorKind::kInternal, e.what()));
      throw;
    }
    control.send(encode_done());
  }
}

}  // namespace loom::model
