#include "server/model_registry.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "model/registry.h"
#include "server/api_error.h"
#include "weights/snapshot.h"

namespace loom::server {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

ModelSource parse_model_argument(const std::string& argument) {
  ModelSource source;
  const auto eq = argument.find('=');
  // An '=' names the id unless the part before it looks like a path (a folder name may contain '=').
  if (eq != std::string::npos && eq > 0 && argument.substr(0, eq).find('/') == std::string::npos) {
    source.id = argument.substr(0, eq);
    source.dir = argument.substr(eq + 1);
  } else {
    source.dir = argument;
  }
  if (source.dir.empty()) fail(ErrorKind::kInvalidRequest, "--model {}: no folder given", argument);
  if (!fs::is_directory(source.dir))
    fail(ErrorKind::kNotFound, "--model {}: {} is not a folder", argument, source.dir.string());
  if (source.id.empty()) {
    auto normal = source.dir.lexically_normal();
    if (!normal.has_filename()) normal = normal.parent_path();
    source.id = normal.filename().string();
  }
  return source;
}

std::vector<ModelSource> scan_models_dir(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail(ErrorKind::kNotFound, "--models-dir {} is not a folder", dir.string());
  std::vector<ModelSource> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && fs::exists(entry.path() / "config.json")) {
      out.push_back({entry.path().filename().string(), entry.path()});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

ModelRegistry::ModelRegistry(std::vector<ModelSource> sources, BackendFactory make_backend, RegistryOptions options)
    : ModelRegistry(
          std::move(sources),
          [make_backend = std::move(make_backend)](const weights::Snapshot& snapshot) {
            PlacedModel placed;
            placed.backend = make_backend();
            placed.model = model::load_model(snapshot, *placed.backend);
            return placed;
          },
          std::move(options)) {}

ModelRegistry::ModelRegistry(std::vector<ModelSource> sources, ModelFactory load_model, RegistryOptions options)
    : load_model_(std::move(load_model)), options_(std::move(options)) {
  if (options_.max_loaded < 1) options_.max_loaded = 1;
  for (auto& source : sources) {
    if (slots_.count(source.id)) fail(ErrorKind::kInvalidRequest, "two models have the id '{}'", source.id);
    const auto id = source.id;
    slots_[id].source = std::move(source);
  }
  if (options_.idle_unload.count() > 0) janitor_ = std::thread([this] { janitor(); });
}

ModelRegistry::~ModelRegistry() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (janitor_.joinable()) janitor_.join();
}

bool ModelRegistry::has(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return slots_.count(id) > 0;
}

std::vector<std::string> ModelRegistry::ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, slot] : slots_) out.push_back(id);
  return out;
}

std::shared_ptr<LoadedModel> ModelRegistry::load(const ModelSource& source) const {
  log::info("loading model '{}' from {}", source.id, source.dir.string());
  const auto start = Clock::now();
  const auto snapshot = weights::Snapshot::open(source.dir.string());
  auto loaded = std::make_shared<LoadedModel>();
  loaded->id = source.id;
  loaded->builder = std::make_unique<prompt::PromptBuilder>(prompt::PromptBuilder::from_snapshot(snapshot));
  PlacedModel placed = load_model_(snapshot);
  loaded->backend = std::move(placed.backend);
  loaded->engine =
      std::make_unique<engine::Engine>(std::move(placed.model), loaded->builder->shared_tokenizer(), options_.engine);
  loaded->max_sequence_tokens = loaded->engine->max_sequence_tokens();
  if (options_.context > 0) loaded->max_sequence_tokens = std::min(loaded->max_sequence_tokens, options_.context);
  loaded->created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  log::info("loaded model '{}' ({}, context {} tokens) in {} ms", source.id, loaded->engine->info().architecture,
            loaded->max_sequence_tokens,
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  return loaded;
}

void ModelRegistry::evict_for_one_more(std::unique_lock<std::mutex>&) {
  for (;;) {
    size_t count = 0;
    Slot* oldest = nullptr;
    for (auto& [id, slot] : slots_) {
      if (!slot.model) continue;
      ++count;
      if (!oldest || slot.last_used < oldest->last_used) oldest = &slot;
    }
    if (count < options_.max_loaded || !oldest) return;
    log::info("unloading model '{}' (least recently used; at most {} loaded)", oldest->source.id, options_.max_loaded);
    oldest->model.reset();
  }
}

std::shared_ptr<LoadedModel> ModelRegistry::acquire(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    const auto it = slots_.find(id);
    if (it == slots_.end()) {
      throw ParamError(ErrorKind::kNotFound, "model", fmt::format("The model '{}' does not exist", id));
    }
    if (it->second.model) {
      it->second.last_used = Clock::now();
      return it->second.model;
    }
  }
  std::lock_guard load_lock(load_mutex_);
  ModelSource source;
  {
    std::unique_lock lock(mutex_);
    auto& slot = slots_.at(id);
    if (slot.model) {  // loaded by the request we waited for
      slot.last_used = Clock::now();
      return slot.model;
    }
    evict_for_one_more(lock);
    slot.loading = true;
    source = slot.source;
  }
  std::shared_ptr<LoadedModel> loaded;
  try {
    loaded = load(source);
  } catch (...) {
    std::lock_guard lock(mutex_);
    slots_.at(id).loading = false;
    throw;
  }
  std::lock_guard lock(mutex_);
  auto& slot = slots_.at(id);
  slot.loading = false;
  slot.model = loaded;
  slot.last_used = Clock::now();
  ever_loaded_ = true;
  return loaded;
}

bool ModelRegistry::unload(const std::string& id) {
  std::shared_ptr<LoadedModel> dropped;  // released outside the lock
  {
    std::lock_guard lock(mutex_);
    const auto it = slots_.find(id);
    if (it == slots_.end()) {
      throw ParamError(ErrorKind::kNotFound, "model", fmt::format("The model '{}' does not exist", id));
    }
    dropped = std::move(it->second.model);
  }
  if (dropped) log::info("unloaded model '{}'", id);
  return dropped != nullptr;
}

ModelStatus ModelRegistry::status(const std::string& id) const {
  std::shared_ptr<LoadedModel> model;
  ModelStatus out;
  {
    std::lock_guard lock(mutex_);
    const auto it = slots_.find(id);
    if (it == slots_.end()) {
      throw ParamError(ErrorKind::kNotFound, "model", fmt::format("The model '{}' does not exist", id));
    }
    out.id = id;
    out.dir = it->second.source.dir.string();
    out.state = it->second.model ? "loaded" : it->second.loading ? "loading" : "unloaded";
    model = it->second.model;
  }
  if (model) {
    out.created = model->created;
    out.stats = model->engine->stats();
    out.info = model->engine->info();
    out.max_sequence_tokens = model->max_sequence_tokens;
  }
  return out;
}

std::vector<ModelStatus> ModelRegistry::statuses() const {
  std::vector<ModelStatus> out;
  for (const auto& id : ids()) out.push_back(status(id));
  return out;
}

std::vector<std::shared_ptr<LoadedModel>> ModelRegistry::loaded() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<LoadedModel>> out;
  for (const auto& [id, slot] : slots_) {
    if (slot.model) out.push_back(slot.model);
  }
  return out;
}

bool ModelRegistry::loading() const {
  std::lock_guard lock(mutex_);
  return std::any_of(slots_.begin(), slots_.end(), [](const auto& entry) { return entry.second.loading; });
}

bool ModelRegistry::ready() const {
  std::lock_guard lock(mutex_);
  bool loaded = false, loading = false;
  for (const auto& [id, slot] : slots_) {
    loaded = loaded || slot.model != nullptr;
    loading = loading || slot.loading;
  }
  return loaded || (ever_loaded_ && !loading);
}

void ModelRegistry::unload_idle(Clock::time_point now) {
  if (options_.idle_unload.count() <= 0) return;
  std::vector<std::shared_ptr<LoadedModel>> dropped;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, slot] : slots_) {
      // use_count 1: no request holds the model now.
      if (slot.model && slot.model.use_count() == 1 && now - slot.last_used >= options_.idle_unload) {
        log::info("unloading model '{}' (idle for {} s)", id, options_.idle_unload.count());
        dropped.push_back(std::move(slot.model));
      }
    }
  }
}

void ModelRegistry::janitor() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    lock.unlock();
    unload_idle(Clock::now());
    lock.lock();
  }
}

}  // namespace loom::server
