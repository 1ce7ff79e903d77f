#pragma once
// The models a server offers: id → snapshot folder, and the ones loaded now, each a PromptBuilder and an Engine.
// Models load on first use (one load at a time), the least recently used one is unloaded when loading would exceed
// the cap, and a janitor unloads models idle for longer than the idle limit. A request holds its model through a
// shared_ptr, so unloading never pulls a model out from under a request in flight: it is freed when the last
// request holding it ends.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "engine/engine.h"
#include "prompt/prompt_builder.h"
#include "weights/snapshot.h"

namespace loom::server {

struct ModelSource {
  std::string id;
  std::filesystem::path dir;
};

// "[ID=]DIR" → source; the id defaults to the folder's name.
ModelSource parse_model_argument(const std::string& argument);
// Every subfolder of `dir` that holds a config.json, id = folder name, sorted.
std::vector<ModelSource> scan_models_dir(const std::filesystem::path& dir);

struct RegistryOptions {
  size_t max_loaded = 1;                // models loaded at once (>= 1)
  std::chrono::seconds idle_unload{0};  // 0: never unload for idleness
  engine::EngineConfig engine;          // for every engine
  int64_t context = 0;                  // > 0: cap each model's context (tokens) to this
};

// Makes the backend one loaded model runs on (each model gets its own: backend ops expect one calling thread, and
// every engine has its own worker thread).
using BackendFactory = std::function<std::unique_ptr<backend::Backend>()>;

// A model and the backend it runs on; `backend` is null when the model owns its backends (a tensor-parallel model).
struct PlacedModel {
  std::unique_ptr<backend::Backend> backend;  // outlives `model`
  std::unique_ptr<model::Model> model;
};
// Loads one snapshot wherever the server was told to run models (one backend, or a tensor-parallel group).
using ModelFactory = std::function<PlacedModel(const weights::Snapshot&)>;

struct LoadedModel {
  std::string id;
  std::unique_ptr<prompt::PromptBuilder> builder;
  std::unique_ptr<backend::Backend> backend;  // before the engine: it outlives the model the engine owns (may be null)
  std::unique_ptr<engine::Engine> engine;
  int64_t max_sequence_tokens = 0;  // the engine's, capped by RegistryOptions::context
  int64_t created = 0;              // unix seconds when loaded
};

struct ModelStatus {
  std::string id;
  std::string dir;
  std::string state;  // "unloaded", "loading", "loaded"
  int64_t created = 0;
  std::optional<engine::EngineStats> stats;  // when loaded
  std::optional<model::ModelInfo> info;      // when loaded
  int64_t max_sequence_tokens = 0;
};

class ModelRegistry {
 public:
  ModelRegistry(std::vector<ModelSource> sources, ModelFactory load_model, RegistryOptions options);
  // Each model loaded with model::load_model on a backend of its own.
  ModelRegistry(std::vector<ModelSource> sources, BackendFactory make_backend, RegistryOptions options);
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  bool has(const std::string& id) const;
  std::vector<std::string> ids() const;

  // The loaded model, loading it first when needed. Throws ParamError(kNotFound, "model") for an unknown id and the
  // loader's loom::Error when loading fails.
  std::shared_ptr<LoadedModel> acquire(const std::string& id);
  // Drops the registry's reference (in-flight requests keep theirs). Returns false when it was not loaded.
  bool unload(const std::string& id);
  ModelStatus status(const std::string& id) const;
  std::vector<ModelStatus> statuses() const;
  // The loaded models now (for metrics).
  std::vector<std::shared_ptr<LoadedModel>> loaded() const;
  // True while a load is in progress.
  bool loading() const;
  // Ready to serve: a model is loaded, or one was loaded before and none is loading now (idle unloading keeps a
  // server ready).
  bool ready() const;

  // Unloads models unused for longer than the idle limit (the janitor calls this; public for tests).
  void unload_idle(std::chrono::steady_clock::time_point now);

 private:
  struct Slot {
    ModelSource source;
    std::shared_ptr<LoadedModel> model;
    bool loading = false;
    std::chrono::steady_clock::time_point last_used{};
  };

  std::shared_ptr<LoadedModel> load(const ModelSource& source) const;
  void evict_for_one_more(std::unique_lock<std::mutex>& lock);
  void janitor();

  ModelFactory load_model_;
  RegistryOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Slot> slots_;
  std::mutex load_mutex_;  // one load at a time (loads are memory- and disk-heavy)
  bool stopping_ = false;
  bool ever_loaded_ = false;
  std::thread janitor_;
};

}  // namespace loom::server
