#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "weights/snapshot.h"

namespace loom::model {

using nlohmann::json;

JsonFields::JsonFields(const json& object, std::string where) : object_(&object), where_(std::move(where)) {
  if (!object.is_object()) fail(ErrorKind::kInvalidFile, "{}: expected a JSON object", where_);
}

void JsonFields::invalid(std::string_view key, std::string_view expectation) const {
  fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be {}", where_, key, expectation);
}

const json* JsonFields::find(std::string_view key) const {
  const auto it = object_->find(key);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::has(std::string_view key) const {
  return find(key) != nullptr;
}

int64_t JsonFields::integer(std::string_view key) const {
  const json* value = find(key);
  if (value == nullptr) fail(ErrorKind::kInvalidFile, "{}: missing field \"{}\"", where_, key);
  return integer(key, 0);
}

int64_t JsonFields::integer(std::string_view key, int64_t fallback) const {
  const json* value = find(key);
  if (value == nullptr) return fallback;
  if (value->is_number_integer()) return value->get<int64_t>();
  // Configs written by Python sometimes carry integral floats (e.g. 256.0).
  if (value->is_number_float()) {
    const double d = value->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15) return static_cast<int64_t>(d);
  }
  invalid(key, "an integer");
}

double JsonFields::number(std::string_view key) const {
  if (find(key) == nullptr) fail(ErrorKind::kInvalidFile, "{}: missing field \"{}\"", where_, key);
  return number(key, 0);
}

double JsonFields::number(std::string_view key, double fallback) const {
  return optional_number(key).value_or(fallback);
}

int JsonFields::positive_int(std::string_view key, int64_t fallback) const {
  const int64_t v = integer(key, fallback);
  if (v <= 0 || v > (int64_t{1} << 30)) invalid(key, "a positive integer");
  return static_cast<int>(v);
}

int64_t JsonFields::positive_int64(std::string_view key, int64_t fallback) const {
  const int64_t v = integer(key, fallback);
  if (v <= 0 || v > (int64_t{1} << 40)) invalid(key, "a positive integer");
  return v;
}

std::optional<double> JsonFields::optional_number(std::string_view key) const {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) invalid(key, "a number");
  return value->get<double>();
}

bool JsonFields::boolean(std::string_view key, bool fallback) const {
  const json* value = find(key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) invalid(key, "true or false");
  return value->get<bool>();
}

std::string JsonFields::string(std::string_view key, std::string_view fallback) const {
  const json* value = find(key);
  if (value == nullptr) return std::string(fallback);
  if (!value->is_string()) invalid(key, "a string");
  return value->get<std::string>();
}

std::vector<int32_t> JsonFields::integer_list(std::string_view key) const {
  const json* value = find(key);
  std::vector<int32_t> out;
  if (value == nullptr) return out;
  const auto add = [&](const json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      invalid(key, "a token id or a list of token ids");
    }
    out.push_back(static_cast<int32_t>(v.get<int64_t>()));
  };
  if (value->is_array()) {
    for (const json& v : *value) add(v);
  } else {
    add(*value);
  }
  return out;
}

std::optional<JsonFields> JsonFields::object(std::string_view key) const {
  const json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_object()) invalid(key, "an object");
  return JsonFields(*value, where_ + "." + std::string(key));
}

backend::Activation parse_activation(const JsonFields& fields, std::string_view key, std::string_view fallback) {
  const std::string name = fields.string(key, fallback);
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast") return backend::Activation::kGeluTanh;
  if (name == "gelu") return backend::Activation::kGeluErf;
  if (name == "silu" || name == "swish") return backend::Activation::kSilu;
  fail(ErrorKind::kUnsupported, "{}: field \"{}\" names activation \"{}\"; supported: gelu_pytorch_tanh, gelu, silu",
       fields.where(), key, name);
}

std::vector<LayerKind> parse_layer_types(const JsonFields& text, int layers, int64_t pattern) {
  std::vector<LayerKind> kinds;
  if (const json* types = text.find("layer_types")) {
    if (!types->is_array()) text.invalid("layer_types", "a list of layer type names");
    if (static_cast<int64_t>(types->size()) != layers) {
      fail(ErrorKind::kInvalidFile, "{}: field \"layer_types\" has {} entries, expected num_hidden_layers = {}",
           text.where(), types->size(), layers);
    }
    for (size_t i = 0; i < types->size(); ++i) {
      const json& t = (*types)[i];
      if (t == "full_attention") {
        kinds.push_back(LayerKind::kFullAttention);
      } else if (t == "sliding_attention") {
        kinds.push_back(LayerKind::kSlidingAttention);
      } else {
        fail(ErrorKind::kUnsupported, "{}: layer_types[{}] is {}; supported: full_attention, sliding_attention",
             text.where(), i, t.dump());
      }
    }
    return kinds;
  }
  if (pattern <= 0) text.invalid("sliding_window_pattern", "a positive integer");
  for (int i = 0; i < layers; ++i) {
    kinds.push_back((i + 1) % pattern == 0 ? LayerKind::kFullAttention : LayerKind::kSlidingAttention);
  }
  return kinds;
}

backend::RopeSpec parse_rope(const JsonFields& text, std::string_view layer_type, std::string_view theta_key,
                             double default_theta, bool legacy_scaling, int head_dim) {
  // Merge the sources the way transformers standardises them: the per-kind (or flat) rope_parameters dict, then the
  // legacy rope_scaling on top for the kind it applies to, then theta from the legacy field when the dict has none.
  json params = json::object();
  std::string where = text.where() + ".rope_parameters";
  if (const json* rp = text.find("rope_parameters")) {
    if (!rp->is_object()) text.invalid("rope_parameters", "an object");
    if (rp->contains(layer_type) && !(*rp)[layer_type].is_null()) {
      params = (*rp)[layer_type];
      where += "." + std::string(layer_type);
    } else if (rp->contains("rope_type") || rp->contains("rope_theta")) {
      params = *rp;
    }
  }
  if (legacy_scaling) {
    if (const json* scaling = text.find("rope_scaling")) {
      if (!scaling->is_object()) text.invalid("rope_scaling", "an object");
      params.update(*scaling);
      where = text.where() + ".rope_scaling";
    }
  }
  const JsonFields fields(params, where);
  backend::RopeSpec spec;
  spec.head_dim = head_dim;
  spec.theta = fields.optional_number("rope_theta").value_or(text.number(theta_key, default_theta));
  // Old configs spell the type "type".
  const std::string type = fields.string("rope_type", fields.string("type", "default"));
  if (type == "default") {
    spec.kind = backend::RopeKind::kDefault;
  } else if (type == "linear") {
    spec.kind = backend::RopeKind::kLinear;
    spec.factor = fields.number("factor");
    if (!(spec.factor > 0)) fields.invalid("factor", "a positive number");
  } else if (type == "proportional") {
    // Gemma 4 full layers: a partial rotation whose exponent runs over the full head_dim (rope_table.h).
    spec.kind = backend::RopeKind::kProportional;
    spec.factor = fields.number("factor", 1.0);
    spec.partial_rotary_factor = fields.number("partial_rotary_factor", 1.0);
    if (!(spec.factor > 0)) fields.invalid("factor", "a positive number");
    if (!(spec.partial_rotary_factor > 0 && spec.partial_rotary_factor <= 1)) {
      fields.invalid("partial_rotary_factor", "a number in (0, 1]");
    }
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: rope_type \"{}\" is not supported for {} layers (supported: default, linear, proportional)", where, type,
         layer_type);
  }
  if (!(spec.theta > 0)) fields.invalid("rope_theta", "a positive number");
  return spec;
}

std::vector<int32_t> read_stop_ids(const weights::Snapshot& snapshot) {
  std::vector<int32_t> ids;
  if (const json* generation = snapshot.generation_config()) {
    ids = JsonFields(*generation, (snapshot.dir() / "generation_config.json").string()).integer_list("eos_token_id");
  }
  const std::string config_file = (snapshot.dir() / "config.json").string();
  if (ids.empty()) ids = JsonFields(snapshot.config(), config_file).integer_list("eos_token_id");
  if (ids.empty() && snapshot.config().contains("text_config")) {
    ids = JsonFields(snapshot.text_config(), config_file + ": text_config").integer_list("eos_token_id");
  }
  std::vector<int32_t> unique;
  for (int32_t id : ids) {
    if (std::find(unique.begin(), unique.end(), id) == unique.end()) unique.push_back(id);
  }
  return unique;
}

}  // namespace loom::model
