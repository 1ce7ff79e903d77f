#include "weights/snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "weights/tensor_names.h"

namespace loom::weights {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Config files are small; anything larger is not a config we want to parse.
constexpr std::uintmax_t kMaxConfigBytes = 64ull << 20;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

void Snapshot::problem(ErrorKind kind, std::string message) {
  if (!lenient_) throw Error(kind, message);
  problems_.push_back(std::move(message));
}

std::optional<fs::path> Snapshot::optional_path(const char* file) const {
  const fs::path path = dir_ / file;
  std::error_code error;
  if (fs::is_regular_file(path, error)) return path;
  return std::nullopt;
}

std::optional<json> Snapshot::read_json(const std::string& file, bool required) {
  const fs::path path = dir_ / file;
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    if (required) problem(ErrorKind::kNotFound, fmt::format("{}: missing", path.string()));
    return std::nullopt;
  }
  if (fs::file_size(path, error) > kMaxConfigBytes) {
    problem(ErrorKind::kInvalidFile, fmt::format("{}: larger than {} bytes", path.string(), kMaxConfigBytes));
    return std::nullopt;
  }
  try {
    json value = json::parse(read_text(path));
    if (!value.is_object()) {
      problem(ErrorKind::kInvalidFile, fmt::format("{}: expected a JSON object", path.string()));
      return std::nullopt;
    }
    return value;
  } catch (const json::exception& e) {
    problem(ErrorKind::kInvalidFile, fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
    return std::nullopt;
  }
}

Snapshot Snapshot::open(const fs::path& dir, Options options) {
  Snapshot s;
  s.dir_ = dir;
  s.lenient_ = options.lenient;
  std::error_code error;
  if (!fs::is_directory(dir, error)) fail(ErrorKind::kNotFound, "{}: not a directory", dir.string());

  if (auto config = s.read_json("config.json", true)) s.config_ = std::move(*config);
  s.read_architecture();

  try {
    const auto hf_quant = s.read_json("hf_quant_config.json", false);
    s.quant_ = parse_quant_config(s.config_, hf_quant ? &*hf_quant : nullptr, (dir / "config.json").string());
  } catch (const Error& e) {
    s.problem(e.kind(), e.what());
  }

  s.load_weights();
  s.tokenizer_config_ = s.read_json("tokenizer_config.json", false);
  s.load_template();
  s.preprocessor_ = s.read_json("preprocessor_config.json", false);
  if (!s.preprocessor_) s.preprocessor_ = s.read_json("processor_config.json", false);
  s.generation_ = s.read_json("generation_config.json", false);
  return s;
}

Snapshot Snapshot::from_memory(fs::path name, json config, std::vector<SafetensorsFile> files) {
  Snapshot s;
  s.dir_ = std::move(name);
  if (!config.is_object())
    fail(ErrorKind::kInvalidFile, "{}: expected a JSON object", (s.dir_ / "config.json").string());
  s.config_ = std::move(config);
  s.read_architecture();
  s.quant_ = parse_quant_config(s.config_, nullptr, (s.dir_ / "config.json").string());
  s.files_ = std::move(files);
  s.index_tensors();
  return s;
}

void Snapshot::read_architecture() {
  const json& archs = config_.contains("architectures") ? config_["architectures"] : json();
  if (archs.is_array() && !archs.empty() && archs[0].is_string()) {
    architecture_ = archs[0].get<std::string>();
  } else if (config_.contains("model_type") && config_["model_type"].is_string()) {
    architecture_ = config_["model_type"].get<std::string>();
  } else if (config_.contains("architectures") || config_.contains("model_type") || !config_.empty()) {
    problem(ErrorKind::kInvalidFile,
            fmt::format("{}: names no architecture (architectures[0] or model_type)", (dir_ / "config.json").string()));
  }
}

void Snapshot::index_tensors() {
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const TensorInfo& info : files_[i].tensors()) {
      const std::string canonical = canonical_tensor_name(info.name);
      const auto [it, inserted] = tensors_.emplace(canonical, std::make_pair(i, &info));
      if (!inserted) {
        problem(ErrorKind::kInvalidFile,
                fmt::format("{}: tensor '{}' is also stored as '{}' in {}", files_[i].path().string(), info.name,
                            it->second.second->name, files_[it->second.first].path().filename().string()));
      }
    }
  }
}

void Snapshot::load_weights() {
  // Which files, and (with an index) which tensor each file must hold.
  std::vector<std::string> names;
  std::map<std::string, std::string> expected;  // tensor → file, from the index
  const fs::path index_path = dir_ / "model.safetensors.index.json";
  if (auto index = read_json("model.safetensors.index.json", false)) {
    has_index_ = true;
    const json& map = index->contains("weight_map") ? (*index)["weight_map"] : json();
    if (!map.is_object()) {
      problem(ErrorKind::kInvalidFile, fmt::format("{}: missing \"weight_map\" object", index_path.string()));
    } else {
      std::set<std::string> unique;
      for (const auto& [tensor, file] : map.items()) {
        if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos) {
          problem(ErrorKind::kInvalidFile, fmt::format("{}: weight_map[\"{}\"] must be a file name in the snapshot",
                                                       index_path.string(), tensor));
          continue;
        }
        expected[tensor] = file.get<std::string>();
        unique.insert(file.get<std::string>());
      }
      names.assign(unique.begin(), unique.end());
    }
  } else {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir_, error)) {
      if (entry.path().extension() == ".safetensors") names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    if (names.empty()) {
      problem(ErrorKind::kNotFound,
              fmt::format("{}: no *.safetensors files and no model.safetensors.index.json", dir_.string()));
    }
  }

  std::map<std::string, size_t> file_of;  // file name → position in files_
  for (const std::string& name : names) {
    const fs::path path = dir_ / name;
    std::error_code error;
    if (!fs::is_regular_file(path, error)) {
      problem(ErrorKind::kNotFound,
              fmt::format("{}: missing, but {} maps tensors to it", path.string(), index_path.filename().string()));
      continue;
    }
    try {
      files_.push_back(SafetensorsFile::open(path));
      file_of[name] = files_.size() - 1;
    } catch (const Error& e) {
      problem(e.kind(), e.what());
    }
  }

  index_tensors();
  for (const auto& [tensor, file] : expected) {
    const auto where = file_of.find(file);
    if (where == file_of.end()) continue;  // already reported: missing or invalid file
    if (!files_[where->second].contains(tensor)) {
      problem(ErrorKind::kInvalidFile,
              fmt::format("{}: maps '{}' to {}, which does not contain it", index_path.string(), tensor, file));
    }
  }
}

void Snapshot::load_template() {
  if (tokenizer_config_ && tokenizer_config_->contains("chat_template")) {
    const json& value = (*tokenizer_config_)["chat_template"];
    const std::string source = (dir_ / "tokenizer_config.json").string();
    if (value.is_string()) {
      chat_template_ = value.get<std::string>();
    } else if (value.is_array()) {
      for (const json& entry : value) {
        if (entry.is_object() && entry.contains("name") && entry["name"] == "default" && entry.contains("template") &&
            entry["template"].is_string()) {
          chat_template_ = entry["template"].get<std::string>();
        }
      }
      if (!chat_template_) {
        problem(ErrorKind::kInvalidFile, fmt::format("{}: chat_template list has no \"default\" entry", source));
      }
    } else if (!value.is_null()) {
      problem(ErrorKind::kInvalidFile,
              fmt::format("{}: chat_template must be a string or a list of {{name, template}}", source));
    }
    if (chat_template_) {
      chat_template_source_ = "tokenizer_config.json";
      return;
    }
  }
  if (const auto path = optional_path("chat_template.jinja")) {
    chat_template_ = read_text(*path);
    chat_template_source_ = "chat_template.jinja";
    return;
  }
  if (auto value = read_json("chat_template.json", false)) {
    if (value->contains("chat_template") && (*value)["chat_template"].is_string()) {
      chat_template_ = (*value)["chat_template"].get<std::string>();
      chat_template_source_ = "chat_template.json";
    } else {
      problem(ErrorKind::kInvalidFile,
              fmt::format("{}: expected a \"chat_template\" string", (dir_ / "chat_template.json").string()));
    }
  }
}

const json& Snapshot::text_config() const {
  if (config_.contains("text_config") && config_["text_config"].is_object()) return config_["text_config"];
  return config_;
}

const json* Snapshot::vision_config() const {
  if (config_.contains("vision_config") && config_["vision_config"].is_object()) return &config_["vision_config"];
  return nullptr;
}

const json* Snapshot::audio_config() const {
  if (config_.contains("audio_config") && config_["audio_config"].is_object()) return &config_["audio_config"];
  return nullptr;
}

std::vector<std::string> Snapshot::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, ref] : tensors_) names.push_back(name);
  return names;
}

std::optional<TensorRef> Snapshot::find(std::string_view name) const {
  const auto it = tensors_.find(canonical_tensor_name(name));
  if (it == tensors_.end()) return std::nullopt;
  return TensorRef{&files_[it->second.first], it->second.second};
}

TensorRef Snapshot::at(std::string_view name) const {
  if (auto ref = find(name)) return *ref;
  fail(ErrorKind::kNotFound, "{}: no tensor '{}' (canonical '{}')", dir_.string(), name, canonical_tensor_name(name));
}

}  // namespace loom::weights
