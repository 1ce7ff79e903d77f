// `loom serve`: the HTTP server (OpenAI chat/completions, Anthropic messages, models, metrics) over one or more
// snapshots. Binds 127.0.0.1 by default, loads the first model in the background once the socket is bound, and shuts
// down gracefully on SIGINT/SIGTERM (stops listening, cancels generations in flight, exits 0). Models run on the
// backend --device names (as `loom run`: the GPU when the binary has CUDA and a GPU is present, else the CPU), or
// split over several GPUs with --tensor-parallel N (then one model only; with --listen-ranks the other ranks are
// `loom tp-worker` processes, on this host or others).

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include "cli/commands.h"
#include "cli/device_choice.h"
#include "core/error.h"
#include "core/log.h"
#include "server/http_server.h"
#include "server/model_registry.h"
#include "vision/remote_fetch.h"

namespace loom::cli {
namespace {

struct ServeOptions {
  std::vector<std::string> models;
  std::string models_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string api_key_file;
  size_t max_loaded = 1;
  int64_t idle_unload = 0;
  int64_t max_queue = 256;
  int64_t max_tokens_cap = 4096;
  int image_max_tokens = 0;
  int64_t ctx = 0;
  int64_t kv_tokens = 16384;
  bool kv_tokens_given = false;      // else a GPU sizes each cache from gpu_memory_fraction
  double gpu_memory_fraction = 0.9;  // of the device memory free once the model's weights are loaded
  Placement placement;               // --device, --tensor-parallel, --devices
  std::string media_dir;
  bool allow_remote_media = false;
  std::vector<std::string> remote_media_hosts;
  std::vector<std::string> cors_origins;
  int threads = 64;
  size_t max_body_mib = 32;
};

std::string read_key_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail(ErrorKind::kNotFound, "cannot open the API key file {}", path);
  std::string key;
  std::getline(file, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) fail(ErrorKind::kInvalidRequest, "the API key file {} is empty", path);
  return key;
}

// The shutdown signals reach the waiter thread through a pipe: the handler only writes the signal number (async-signal-
// safe). A handler, unlike blocking the signals for sigwait, works whichever thread the kernel picks — threads that
// libraries start before main (OpenBLAS, the CUDA driver) do not carry a signal mask set later — and it replaces an
// inherited SIG_IGN (a shell starts background jobs with SIGINT ignored).
int shutdown_pipe[2] = {-1, -1};

extern "C" void on_shutdown_signal(int signal) {
  const auto byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] const ssize_t written = write(shutdown_pipe[1], &byte, 1);
}

void install_shutdown_handlers() {
  if (pipe2(shutdown_pipe, O_CLOEXEC) != 0) fail(ErrorKind::kInternal, "cannot create the shutdown pipe");
  struct sigaction action = {};
  action.sa_handler = on_shutdown_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Blocks until a shutdown signal arrives (its number) or wake_shutdown_waiter() is called (0).
int wait_for_shutdown() {
  unsigned char byte = 0;
  while (read(shutdown_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  return byte;
}

void wake_shutdown_waiter() {
  const unsigned char zero = 0;
  [[maybe_unused]] const ssize_t written = write(shutdown_pipe[1], &zero, 1);
}

void serve(const ServeOptions& options) {
  install_shutdown_handlers();

  std::vector<server::ModelSource> sources;
  for (const auto& argument : options.models) sources.push_back(server::parse_model_argument(argument));
  if (!options.models_dir.empty()) {
    for (auto& source : server::scan_models_dir(options.models_dir)) sources.push_back(std::move(source));
  }
  if (sources.empty()) fail(ErrorKind::kInvalidRequest, "no models: give --model DIR or --models-dir DIR");
  check_placement(options.placement, gpu_count());
  if (options.placement.tensor_parallel > 1 && sources.size() > 1) {
    fail(ErrorKind::kInvalidRequest,
         "--tensor-parallel {} serves one model, which takes every GPU of the group; {} were given (--model / "
         "--models-dir)",
         options.placement.tensor_parallel, sources.size());
  }

  // Each model the registry loads gets its own backend of this kind (or its own tensor-parallel group); asking for a
  // backend now reports a bad --device (or a missing GPU) before the server starts.
  if (options.placement.tensor_parallel == 1) {
    make_backend(options.placement.device, options.placement.devices.empty() ? 0 : options.placement.devices.front(),
                 options.placement.eager);
  }
  const Placement placement = options.placement;
  const server::ModelFactory backends = [placement](const weights::Snapshot& snapshot) {
    return load_placed(snapshot, placement);
  };
  server::RegistryOptions registry_options;
  registry_options.max_loaded = options.max_loaded;
  registry_options.idle_unload = std::chrono::seconds(options.idle_unload);
  registry_options.engine.max_queued = options.max_queue;
  registry_options.engine.kv_tokens = options.kv_tokens;
  registry_options.engine.gpu_memory_fraction = options.kv_tokens_given ? 0.0 : options.gpu_memory_fraction;
  registry_options.context = options.ctx;
  server::ModelRegistry registry(sources, backends, registry_options);

  server::HttpOptions http;
  http.host = options.host;
  http.port = options.port;
  http.api_key = options.api_key_file.empty() ? options.api_key : read_key_file(options.api_key_file);
  http.cors_origins = options.cors_origins;
  http.threads = options.threads;
  http.max_body_bytes = options.max_body_mib << 20;
  http.limits.max_tokens_cap = options.max_tokens_cap;
  http.limits.image_max_tokens = options.image_max_tokens;
  if (!options.media_dir.empty()) http.limits.sources.media.media_dir = std::filesystem::absolute(options.media_dir);
  if (options.allow_remote_media) {
    vision::RemoteFetchOptions fetch;
    fetch.allowed_hosts = options.remote_media_hosts;
    fetch.max_bytes = http.limits.sources.media.max_bytes;
    http.limits.sources.fetch_remote = [fetch](const std::string& url) {
      return vision::fetch_remote_image(url, fetch);
    };
  }
  server::HttpServer server(registry, http);
  const int port = server.bind();
  std::fprintf(stderr, "loom: listening on http://%s:%d\n", options.host.c_str(), port);
  std::fflush(stderr);

  std::thread preload([&registry, id = sources.front().id] {
    try {
      registry.acquire(id);
    } catch (const Error& e) {
      log::error("loading model '{}' failed: {}", id, e.what());
    }
  });
  std::thread waiter([&server] {
    const int signal = wait_for_shutdown();
    if (signal == 0) return;  // the server stopped for another reason
    log::info("loom: {} received, shutting down", signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  server.serve();
  preload.join();
  // Wake the waiter if the server stopped for another reason (it is idle in wait_for_shutdown otherwise).
  wake_shutdown_waiter();
  waiter.join();
  log::info("loom: stopped");
}

}  // namespace

void register_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  auto* command = app.add_subcommand("serve", "Serve models over HTTP (OpenAI and Anthropic APIs)");
  command->add_option("--model", options->models, "[ID=]DIR: a snapshot folder (repeatable; id = folder name)");
  command->add_option("--models-dir", options->models_dir, "every snapshot folder under DIR is a model");
  command->add_option("--host", options->host, "address to bind")->capture_default_str();
  command->add_option("--port", options->port, "port to bind (0: a free one)")->capture_default_str();
  auto* key = command->add_option("--api-key", options->api_key, "require this key (Bearer or x-api-key)");
  command->add_option("--api-key-file", options->api_key_file, "read the key from the first line of FILE")
      ->excludes(key);
  command->add_option("--max-loaded-models", options->max_loaded, "models loaded at once")->capture_default_str();
  command->add_option("--idle-unload", options->idle_unload, "unload a model idle this many seconds (0: never)")
      ->capture_default_str();
  command->add_option("--max-queue", options->max_queue, "waiting requests per model before 429")
      ->capture_default_str();
  command
      ->add_option("--image-max-tokens", options->image_max_tokens,
                   "Gemma 4 soft tokens per image when a request names none (default: the model's config)")
      ->check(CLI::IsMember({70, 140, 280, 560, 1120}));
  command->add_option("--max-tokens-cap", options->max_tokens_cap, "completion tokens per request at most")
      ->capture_default_str();
  command->add_option("--ctx", options->ctx, "cap every model's context to N tokens (0: the model's)")
      ->capture_default_str();
  command
      ->add_option(
          "--gpu-memory-fraction", options->gpu_memory_fraction,
          "on a GPU, each model's KV cache takes this fraction of the memory free after it loads (CPU: ignored)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command
      ->add_option("--kv-tokens", options->kv_tokens,
                   "KV cache capacity per model in tokens (on a GPU: instead of the fraction)")
      ->capture_default_str();
  command->add_option("--device", options->placement.device, "cuda or cpu (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  add_tensor_parallel_options(*command, options->placement);
  add_listen_ranks_options(*command, options->placement);
  command->add_option("--media-dir", options->media_dir, "folder local image paths may come from (default: none)");
  auto* remote = command->add_flag("--allow-remote-media", options->allow_remote_media,
                                   "fetch http(s) image URLs (public addresses only)");
  command->add_option("--remote-media-hosts", options->remote_media_hosts, "only these host names (with the flag)")
      ->needs(remote);
  command->add_option("--cors-origin", options->cors_origins, "allow browser requests from this origin ('*': any)");
  command->add_option("--threads", options->threads, "HTTP worker threads")->capture_default_str();
  command->add_option("--max-body-mib", options->max_body_mib, "request body cap in MiB")->capture_default_str();
  command->callback([options, command] {
    options->kv_tokens_given = command->count("--kv-tokens") > 0;
    serve(*options);
  });
}

}  // namespace loom::cli
