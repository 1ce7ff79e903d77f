#include "model/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string_view>

#include "core/error.h"
#include "model/families/gemma3.h"
#include "model/families/gemma4.h"
#include "model/families/qwen3vl.h"

namespace loom::model {
namespace {

using Factory = std::function<std::unique_ptr<Model>(const weights::Snapshot&, backend::Backend&)>;

const std::map<std::string, Factory, std::less<>>& factories() {
  static const std::map<std::string, Factory, std::less<>> table = [] {
    std::map<std::string, Factory, std::less<>> t;
    const Factory gemma3 = [](const weights::Snapshot& s, backend::Backend& b) -> std::unique_ptr<Model> {
      return std::make_unique<Gemma3Model>(s, b);
    };
    // architectures[0] spellings, and the model_type names a config without `architectures` carries.
    for (const char* name : {"Gemma3ForConditionalGeneration", "Gemma3ForCausalLM", "gemma3", "gemma3_text"}) {
      t.emplace(name, gemma3);
    }
    const Factory qwen3 = [](const weights::Snapshot& s, backend::Backend& b) -> std::unique_ptr<Model> {
      return std::make_unique<Qwen3VLModel>(s, b);
    };
    for (const char* name :
         {"Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration", "Qwen3ForCausalLM",
          "Qwen3MoeForCausalLM", "qwen3_vl", "qwen3_vl_moe", "qwen3", "qwen3_moe"}) {
      t.emplace(name, qwen3);
    }
    const Factory gemma4 = [](const weights::Snapshot& s, backend::Backend& b) -> std::unique_ptr<Model> {
      return std::make_unique<Gemma4Model>(s, b);
    };
    for (const char* name : {"Gemma4ForConditionalGeneration", "Gemma4ForCausalLM", "gemma4", "gemma4_text"}) {
      t.emplace(name, gemma4);
    }
    return t;
  }();
  return table;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

std::unique_ptr<Model> load_model(const weights::Snapshot& snapshot, backend::Backend& backend,
                                  const Sharding& sharding) {
  const auto it = factories().find(snapshot.architecture());
  if (it == factories().end()) {
    fail(ErrorKind::kUnsupported, "{}: architecture \"{}\" is not supported; supported: {}",
         (snapshot.dir() / "config.json").string(), snapshot.architecture(),
         fmt::join(supported_architectures(), ", "));
  }
  if (sharding.active()) {
    fail(ErrorKind::kUnsupported, "{}: {} cannot be loaded as one shard of a tensor-parallel group yet",
         (snapshot.dir() / "config.json").string(), snapshot.architecture());
  }
  return it->second(snapshot, backend);
}

}  // namespace loom::model
