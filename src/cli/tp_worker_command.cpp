// `loom tp-worker`: one rank ≥ 1 of a tensor-parallel group whose rank 0 is a `loom run` or `loom serve` process
// started with `--listen-ranks HOST:PORT` (on this host or another). It connects there (retrying until rank 0
// listens), is admitted when its model fingerprint and rank fit, joins the collectives (CPU: over TCP through rank 0;
// GPU: NCCL, from the unique id rank 0 sends), loads its shard, and then runs every step rank 0 sends on its shard with
// its own mirror of the engine's KV cache, until rank 0 says shutdown (exit 0). A failed step, a refusal or a lost
// connection to rank 0 ends it with exit 1 and the reason on stderr.

#include <chrono>
#include <cstdio>

#include "backend/cpu/socket_communicator.h"
#include "backend/tcp_link.h"
#ifdef LOOM_HAS_NCCL
#include "backend/cuda/nccl_communicator.h"
#endif
#include "cli/commands.h"
#include "cli/device_choice.h"
#include "core/error.h"
#include "core/log.h"
#include "model/registry.h"
#include "model/remote_ranks.h"
#include "weights/snapshot.h"

namespace loom::cli {
namespace {

struct WorkerOptions {
  std::string model;
  int rank = -1;
  int ranks = 0;
  std::string connect;
  std::string device;
  int gpu = 0;
  int connect_timeout_s = 300;
};

void run_worker(const WorkerOptions& options) {
  const int n = options.ranks;
  if (n < 2) fail(ErrorKind::kInvalidRequest, "--tensor-parallel must be at least 2 for a worker, got {}", n);
  if (options.rank < 1 || options.rank >= n) {
    fail(ErrorKind::kInvalidRequest,
         "--rank must be 1 to {} (rank 0 is the process started with --listen-ranks), got {}", n - 1, options.rank);
  }
  const backend::Endpoint endpoint = backend::parse_endpoint(options.connect, "--connect", false);
  const bool cuda = options.device == "cuda" || (options.device.empty() && gpu_count() > 0);
#ifndef LOOM_HAS_NCCL
  if (cuda) fail(ErrorKind::kUnsupported, "a GPU worker needs NCCL, and this loom binary was built without it");
#endif
  const auto snapshot = weights::Snapshot::open(options.model);
  model::RankZeroLink link = model::join_rank_zero(endpoint, options.rank, model::fingerprint_of(snapshot, n), !cuda,
                                                   std::chrono::seconds(options.connect_timeout_s));
  std::fprintf(stderr, "loom: rank %d of %d joined rank 0 at %s\n", options.rank, n, endpoint.to_string().c_str());
  std::fflush(stderr);
  std::unique_ptr<backend::RankGroup> group;
  try {
    if (cuda) {
#ifdef LOOM_HAS_NCCL
      group = backend::cuda::make_nccl_process_group(options.rank, n, options.gpu, link.bootstrap);
#endif
    } else {
      std::vector<std::unique_ptr<backend::TcpConnection>> links;
      links.push_back(std::move(link.data));
      group = backend::cpu::make_socket_process_group(options.rank, n, std::move(links));
    }
  } catch (const Error& e) {
    try {
      link.control->send(model::encode_error(e.kind(), e.what()));
    } catch (const Error&) {
    }
    throw;
  }
  model::serve_worker_rank(
      *group, options.rank,
      [&snapshot](backend::Backend& backend, backend::Communicator& comm) {
        return model::load_model(snapshot, backend, model::Sharding{&comm});
      },
      *link.control);
  log::info("loom: rank {}: rank 0 closed the group", options.rank);
}

}  // namespace

void register_tp_worker_command(CLI::App& app) {
  auto options = std::make_shared<WorkerOptions>();
  auto* command =
      app.add_subcommand("tp-worker", "Run one rank of a tensor-parallel group whose rank 0 listens elsewhere");
  command->add_option("--model", options->model, "snapshot folder (the same model as rank 0's)")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("--rank", options->rank, "this worker's rank, 1 to N-1")->required();
  command->add_option("--tensor-parallel", options->ranks, "ranks in the group, N (as rank 0's)")->required();
  command->add_option("--connect", options->connect, "rank 0's --listen-ranks address, HOST:PORT")->required();
  command->add_option("--device", options->device, "cuda or cpu (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  command->add_option("--gpu", options->gpu, "the GPU this rank runs on")->capture_default_str();
  command->add_option("--connect-timeout", options->connect_timeout_s, "seconds to wait for rank 0 to admit this rank")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->callback([options] { run_worker(*options); });
}

}  // namespace loom::cli
