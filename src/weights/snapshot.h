#pragma once
// A model snapshot directory as published on the Hub or by mlx-community: config.json, one or more safetensors files
// (with or without model.safetensors.index.json), tokenizer files, a chat template, preprocessor and generation
// configs. Opening maps and validates every weight file's header; tensor data is not read.
//
// Tensors are looked up by canonical name (tensor_names.h: transformers' in-memory naming), whatever naming the files
// use; any spelling that normalises to the same canonical name finds the same tensor.

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace loom::weights {

struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;  // info->name is the name as stored in the file
};

class Snapshot {
 public:
  struct Options {
    // Strict (the default): the first problem throws. Lenient: problems are collected in problems() and the
    // snapshot keeps whatever could be read (for `loom info`); only an unreadable directory still throws.
    bool lenient = false;
  };

  static Snapshot open(const std::filesystem::path& dir, Options options);
  static Snapshot open(const std::filesystem::path& dir) { return open(dir, Options{}); }
  // A snapshot whose config and weight files exist only in memory (synthetic models for benchmarks and tests):
  // `name` stands for the directory in messages; there are no tokenizer, template or processor files. Validated like
  // open() (strict).
  static Snapshot from_memory(std::filesystem::path name, nlohmann::json config, std::vector<SafetensorsFile> files);

  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<std::string>& problems() const { return problems_; }

  // --- config.json
  const nlohmann::json& config() const { return config_; }
  // `text_config` when present, else the top-level config (text-only models).
  const nlohmann::json& text_config() const;
  // `vision_config` / `audio_config`, or nullptr.
  const nlohmann::json* vision_config() const;
  const nlohmann::json* audio_config() const;
  // `architectures[0]`, else `model_type`, else "".
  const std::string& architecture() const { return architecture_; }
  const QuantConfig& quant_config() const { return quant_; }

  // --- weights
  const std::vector<SafetensorsFile>& files() const { return files_; }
  bool has_index() const { return has_index_; }
  // Canonical names in sorted order.
  std::vector<std::string> tensor_names() const;
  std::optional<TensorRef> find(std::string_view name) const;  // any naming
  TensorRef at(std::string_view name) const;                   // throws kNotFound naming the snapshot

  // --- tokenizer, template, processor
  std::optional<std::filesystem::path> tokenizer_json() const { return optional_path("tokenizer.json"); }
  const nlohmann::json* tokenizer_config() const { return tokenizer_config_ ? &*tokenizer_config_ : nullptr; }
  // The default chat template: tokenizer_config.json `chat_template` (a string, or a list of {name, template} whose
  // "default" entry is used), else chat_template.jinja, else chat_template.json.
  const std::optional<std::string>& chat_template() const { return chat_template_; }
  const std::string& chat_template_source() const { return chat_template_source_; }  // file it came from
  // preprocessor_config.json, else processor_config.json.
  const nlohmann::json* preprocessor_config() const { return preprocessor_ ? &*preprocessor_ : nullptr; }
  const nlohmann::json* generation_config() const { return generation_ ? &*generation_ : nullptr; }

 private:
  Snapshot() = default;
  void problem(ErrorKind kind, std::string message);
  std::optional<nlohmann::json> read_json(const std::string& file, bool required);
  std::optional<std::filesystem::path> optional_path(const char* file) const;
  void load_weights();
  void read_architecture();
  void index_tensors();  // tensors_ from files_
  void load_template();

  std::filesystem::path dir_;
  bool lenient_ = false;
  std::vector<std::string> problems_;
  nlohmann::json config_ = nlohmann::json::object();
  std::string architecture_;
  QuantConfig quant_;
  std::vector<SafetensorsFile> files_;
  bool has_index_ = false;
  std::map<std::string, std::pair<size_t, const TensorInfo*>, std::less<>> tensors_;  // canonical → (file, info)
  std::optional<nlohmann::json> tokenizer_config_;
  std::optional<std::string> chat_template_;
  std::string chat_template_source_;
  std::optional<nlohmann::json> preprocessor_;
  std::optional<nlohmann::json> generation_;
};

}  // namespace loom::weights
