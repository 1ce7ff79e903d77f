// `loom info --model DIR [--json]`: what a snapshot contains and what is wrong with it, from headers and configs only
// (tensor data is never read).

#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "weights/snapshot.h"
#include "weights/tensor_names.h"

namespace loom::cli {
namespace {

using nlohmann::json;
using weights::QuantConfig;
using weights::QuantMode;
using weights::QuantSpec;
using weights::Snapshot;
using weights::TensorInfo;

constexpr std::string_view kTextPrefixes[] = {"model.language_model.", "model.layers.", "model.embed_tokens.",
                                              "model.norm.", "lm_head."};
constexpr std::string_view kVisionPrefixes[] = {"model.vision_tower.", "model.visual.", "model.vision_model.",
                                                "model.multi_modal_projector.", "model.embed_vision."};
constexpr std::string_view kAudioPrefixes[] = {"model.audio_tower.", "model.embed_audio.", "model.audio_model."};

template <size_t N>
bool has_prefix(const std::string& name, const std::string_view (&prefixes)[N]) {
  for (std::string_view p : prefixes) {
    if (name.starts_with(p)) return true;
  }
  return false;
}

std::string submodel_of(const std::string& name) {
  if (has_prefix(name, kVisionPrefixes)) return "vision";
  if (has_prefix(name, kAudioPrefixes)) return "audio";
  if (has_prefix(name, kTextPrefixes)) return "text";
  return "other";
}

bool ends_with(const std::string& name, std::string_view suffix) {
  return name.ends_with(suffix);
}

std::string strip(const std::string& name, std::string_view suffix) {
  return name.substr(0, name.size() - suffix.size());
}

// `layers.12.mlp` → `layers.*.mlp`, so per-layer lists collapse to one line each.
std::string collapse_indices(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    const bool at_component = i == 0 || path[i - 1] == '.';
    size_t j = i;
    while (j < path.size() && path[j] >= '0' && path[j] <= '9') ++j;
    if (at_component && j > i && (j == path.size() || path[j] == '.')) {
      out += '*';
      i = j;
    } else {
      out += path[i++];
    }
  }
  return out;
}

int64_t product(const Shape& shape, size_t count) {
  int64_t n = 1;
  for (size_t i = 0; i < count && i < shape.size(); ++i) n *= shape[i];
  return n;
}

// Tensor suffixes that hold quantization metadata, not parameters (MLX and the HF formats of weight-formats.md §4).
constexpr std::string_view kScaleSuffixes[] = {".scales",
                                               ".biases",
                                               ".weight_scale",
                                               ".weight_scale_2",
                                               ".input_scale",
                                               ".weight_zero_point",
                                               ".weight_global_scale",
                                               ".weight_scale_inv",
                                               "_scales",
                                               ".weight_shape"};

class Report {
 public:
  explicit Report(const Snapshot& snapshot) : snapshot_(snapshot), quant_(snapshot.quant_config()) {
    for (const std::string& p : snapshot.problems()) problems_.push_back(p);
  }

  json build() {
    for (const std::string& name : snapshot_.tensor_names()) count(name);
    check_layers();

    json out;
    out["model"] = snapshot_.dir().string();
    out["architecture"] = snapshot_.architecture();
    const json& config = snapshot_.config();
    out["model_type"] =
        config.contains("model_type") && config["model_type"].is_string() ? config["model_type"] : json("");
    json files = json::array();
    for (const auto& f : snapshot_.files()) {
      files.push_back(
          {{"file", f.path().filename().string()}, {"tensors", f.tensors().size()}, {"bytes", f.file_size()}});
    }
    out["files"] = files;
    out["indexed"] = snapshot_.has_index();
    out["tensors"] = snapshot_.tensor_names().size();
    out["submodels"] = submodels_;
    out["parameters"] = total_parameters_;
    out["bytes_by_dtype"] = bytes_by_dtype_;
    out["quantization"] = quantization();
    out["tokenizer"] = snapshot_.tokenizer_json().has_value();
    out["tokenizer_config"] = snapshot_.tokenizer_config() != nullptr;
    out["chat_template"] = snapshot_.chat_template() ? json(snapshot_.chat_template_source()) : json(nullptr);
    out["preprocessor_config"] = snapshot_.preprocessor_config() != nullptr;
    out["generation_config"] = snapshot_.generation_config() != nullptr;
    out["problems"] = problems_;
    return out;
  }

 private:
  bool exists(const std::string& name) const { return snapshot_.find(name).has_value(); }
  const TensorInfo* info(const std::string& name) const {
    const auto ref = snapshot_.find(name);
    return ref ? ref->info : nullptr;
  }

  void count(const std::string& name) {
    const TensorInfo& t = *info(name);
    bytes_by_dtype_[std::string(dtype_name(t.dtype))] =
        bytes_by_dtype_.value(std::string(dtype_name(t.dtype)), uint64_t{0}) + t.bytes();
    for (std::string_view suffix : kScaleSuffixes) {
      if (ends_with(name, suffix)) return;  // metadata of a quantized module
    }
    int64_t elements = product(t.shape, t.shape.size());
    if (ends_with(name, ".weight") && t.shape.size() >= 2) elements = weight_elements(strip(name, ".weight"), t);
    if (ends_with(name, "_blocks") && t.shape.size() >= 2) {
      // gpt-oss MXFP4: [..., in/32, 16] bytes, two E2M1 codes per byte.
      elements = product(t.shape, t.shape.size()) * 2;
      ++quantized_modules_;
    }
    if (ends_with(name, ".weight_packed")) elements = packed_elements(strip(name, ".weight_packed"), t);
    total_parameters_ += elements;
    json& sub = submodels_[submodel_of(name)];
    if (sub.is_null()) sub = {{"parameters", 0}, {"tensors", 0}};
    sub["parameters"] = sub.value("parameters", int64_t{0}) + elements;
    sub["tensors"] = sub.value("tensors", int64_t{0}) + 1;
  }

  int64_t weight_elements(const std::string& module, const TensorInfo& t) {
    const int64_t rows = product(t.shape, t.shape.size() - 1);
    const bool mlx_scales = exists(module + ".scales");
    const bool hf_scales = exists(module + ".weight_scale") || exists(module + ".weight_scale_inv");
    QuantSpec spec;
    try {
      spec = quant_.spec_for(module, mlx_scales || hf_scales);
    } catch (const Error& e) {
      problems_.push_back(e.what());
      return product(t.shape, t.shape.size());
    }
    if (spec.mode == QuantMode::kNone) {
      if (mlx_scales && t.dtype == DType::kU32) {
        problems_.push_back(
            fmt::format("tensor '{}': packed U32 with scales, but the quantization config leaves "
                        "module '{}' unquantized",
                        t.name, module));
      }
      if (quant_.quantized() && !hf_scales) float_modules_.insert(collapse_indices(module));
      return product(t.shape, t.shape.size());
    }
    ++quantized_modules_;
    if (quant_.source == QuantConfig::Source::kHuggingFace) {
      // ModelOpt NVFP4 stores two E2M1 codes per U8; block FP8 one element per byte.
      return t.dtype == DType::kU8 ? product(t.shape, t.shape.size()) * 2 : product(t.shape, t.shape.size());
    }
    if (!mlx_scales) {
      problems_.push_back(fmt::format("tensor '{}': module '{}' is quantized as {} by override but has no '{}.scales'",
                                      t.name, module, quant_spec_name(spec), module));
      return product(t.shape, t.shape.size());
    }
    const TensorInfo& scales = *info(module + ".scales");
    if (t.dtype != DType::kU32) {
      problems_.push_back(
          fmt::format("tensor '{}': quantized weight must be U32, got {}", t.name, dtype_name(t.dtype)));
    }
    if (spec.mode == QuantMode::kAffine && !exists(module + ".biases")) {
      problems_.push_back(fmt::format("module '{}': affine quantization needs '{}.biases'", module, module));
    }
    const int64_t cols = scales.shape.empty() ? 0 : scales.shape.back() * spec.group_size;
    const int64_t packed = t.shape.back();
    if (packed * 32 != cols * spec.bits) {
      problems_.push_back(fmt::format(
          "tensor '{}': packed width {} holds {} {}-bit values per row but the scales cover {} ({} groups of {})",
          t.name, packed, packed * 32 / spec.bits, spec.bits, cols, scales.shape.empty() ? 0 : scales.shape.back(),
          spec.group_size));
    }
    return rows * cols;
  }

  int64_t packed_elements(const std::string& module, const TensorInfo& t) {
    ++quantized_modules_;
    const int64_t stored = product(t.shape, t.shape.size());
    if (t.dtype == DType::kI32 && quant_.hf && quant_.hf->bits > 0) return stored * (32 / quant_.hf->bits);
    (void)module;
    return t.dtype == DType::kU8 ? stored * 2 : stored;
  }

  // The number of decoder layers present should match the config.
  void check_layers() {
    const json& text = snapshot_.text_config();
    if (!text.contains("num_hidden_layers") || !text["num_hidden_layers"].is_number_integer()) return;
    std::set<int64_t> layers;
    for (const std::string& name : snapshot_.tensor_names()) {
      for (std::string_view prefix : {"model.language_model.layers.", "model.layers."}) {
        if (!name.starts_with(prefix)) continue;
        const std::string rest = name.substr(prefix.size());
        const size_t dot = rest.find('.');
        try {
          layers.insert(std::stoll(rest.substr(0, dot)));
        } catch (const std::exception&) {
        }
      }
    }
    const int64_t expected = text["num_hidden_layers"].get<int64_t>();
    if (!layers.empty() && static_cast<int64_t>(layers.size()) != expected) {
      problems_.push_back(fmt::format("{}: num_hidden_layers is {} but the weights hold {} decoder layers",
                                      (snapshot_.dir() / "config.json").string(), expected, layers.size()));
    }
  }

  json quantization() const {
    json q;
    switch (quant_.source) {
      case QuantConfig::Source::kNone:
        q["source"] = "none";
        return q;
      case QuantConfig::Source::kMlx:
        q["source"] = "mlx";
        break;
      case QuantConfig::Source::kHuggingFace:
        q["source"] = "huggingface";
        q["method"] = quant_.hf->method;
        q["format"] = quant_.hf->format;
        q["description"] = quant_.hf->description;
        q["excluded_modules"] = quant_.hf->excluded_modules;
        break;
    }
    const QuantSpec& base = quant_.hf && !quant_.hf->equivalent ? QuantSpec{} : quant_.base;
    q["mode"] = base.mode == QuantMode::kNone ? quant_.hf->format : weights::quant_spec_name(base);
    q["bits"] = quant_.hf ? quant_.hf->bits : base.bits;
    q["group_size"] = quant_.hf ? quant_.hf->group_size : base.group_size;
    json overrides = json::object();
    for (const auto& [module, spec] : quant_.overrides) {
      overrides[module] = spec ? weights::quant_spec_name(*spec) : "float";
    }
    q["overrides"] = overrides;
    q["quantized_modules"] = quantized_modules_;
    q["float_modules"] = float_modules_;
    return q;
  }

  const Snapshot& snapshot_;
  const QuantConfig& quant_;
  std::vector<std::string> problems_;
  json submodels_ = json::object();
  json bytes_by_dtype_ = json::object();
  int64_t total_parameters_ = 0;
  int64_t quantized_modules_ = 0;
  std::set<std::string> float_modules_;
};

std::string human_count(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", static_cast<double>(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", static_cast<double>(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

void print_text(const json& r) {
  std::string out;
  out += fmt::format("model         {}\n", r["model"].get<std::string>());
  out += fmt::format("architecture  {}\n", r["architecture"].get<std::string>());
  out += fmt::format("weights       {} tensors in {} file(s){}\n", r["tensors"].get<size_t>(), r["files"].size(),
                     r["indexed"].get<bool>() ? " (indexed)" : "");
  out += fmt::format("parameters    {} ({})\n", human_count(r["parameters"].get<int64_t>()), r["parameters"].dump());
  for (const auto& [name, sub] : r["submodels"].items()) {
    out += fmt::format("  {:<11} {} parameters in {} tensors\n", name, human_count(sub["parameters"].get<int64_t>()),
                       sub["tensors"].dump());
  }
  out += "storage\n";
  for (const auto& [dtype, bytes] : r["bytes_by_dtype"].items()) {
    out += fmt::format("  {:<11} {} bytes\n", dtype, bytes.dump());
  }
  const json& q = r["quantization"];
  if (q["source"] == "none") {
    out += "quantization  none\n";
  } else {
    out += fmt::format("quantization  {} ({}), bits {}, group {}, {} quantized modules\n", q["mode"].get<std::string>(),
                       q["source"].get<std::string>(), q["bits"].dump(), q["group_size"].dump(),
                       q["quantized_modules"].dump());
    if (q.contains("description")) out += fmt::format("  {}\n", q["description"].get<std::string>());
    for (const auto& [module, spec] : q["overrides"].items()) {
      out += fmt::format("  override    {} → {}\n", module, spec.get<std::string>());
    }
    for (const auto& module : q["float_modules"]) out += fmt::format("  float       {}\n", module.get<std::string>());
  }
  const auto yes = [](const json& v) { return v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : "yes"; };
  out += fmt::format("tokenizer     {}\n", yes(r["tokenizer"]));
  out +=
      fmt::format("template      {}\n", r["chat_template"].is_null() ? "none" : r["chat_template"].get<std::string>());
  out += fmt::format("preprocessor  {}\n", yes(r["preprocessor_config"]));
  out += fmt::format("generation    {}\n", yes(r["generation_config"]));
  if (r["problems"].empty()) {
    out += "problems      none\n";
  } else {
    out += fmt::format("problems      {}\n", r["problems"].size());
    for (const auto& p : r["problems"]) out += fmt::format("  - {}\n", p.get<std::string>());
  }
  std::fputs(out.c_str(), stdout);
}

}  // namespace

void register_info_command(CLI::App& app) {
  auto* command = app.add_subcommand("info",
                                     "Describe a model snapshot: architecture, parameters, quantization, "
                                     "files present, and every problem found (headers only)");
  struct Options {
    std::string model;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--model", options->model, "snapshot directory")->required();
  command->add_flag("--json", options->json, "print the report as JSON");
  command->callback([options] {
    const Snapshot snapshot = Snapshot::open(options->model, Snapshot::Options{.lenient = true});
    const json report = Report(snapshot).build();
    if (options->json) {
      std::fputs((report.dump(2, ' ', false, json::error_handler_t::replace) + "\n").c_str(), stdout);
    } else {
      print_text(report);
    }
    if (!report["problems"].empty()) {
      std::fprintf(stderr, "loom: %s is not usable: %s\n", options->model.c_str(),
                   report["problems"][0].get<std::string>().c_str());
      exit_code = 1;
    }
  });
}

}  // namespace loom::cli
