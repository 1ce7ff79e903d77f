#include "model/families/qwen3vl_vision_config.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "model/config.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

// Qwen3VLVisionConfig defaults (transformers 5.17).
constexpr int64_t kDefaultDepth = 27;
constexpr int64_t kDefaultHidden = 1152;
constexpr int64_t kDefaultIntermediate = 4304;
constexpr int64_t kDefaultHeads = 16;
constexpr int64_t kDefaultPatch = 16;
constexpr int64_t kDefaultTemporalPatch = 2;
constexpr int64_t kDefaultMerge = 2;
constexpr int64_t kDefaultOutHidden = 3584;
constexpr int64_t kDefaultPositions = 2304;
constexpr int kDefaultDeepstack[] = {8, 16, 24};
constexpr double kDefaultTheta = 10000.0;

int64_t positive(const JsonFields& f, std::string_view key, int64_t fallback) {
  const int64_t v = f.integer(key, fallback);
  if (v <= 0 || v > (int64_t{1} << 30)) f.invalid(key, "a positive integer");
  return v;
}

std::vector<int> deepstack_indexes(const JsonFields& f, int depth) {
  std::vector<int> indexes(std::begin(kDefaultDeepstack), std::end(kDefaultDeepstack));
  if (const nlohmann::json* list = f.find("deepstack_visual_indexes")) {
    if (!list->is_array()) f.invalid("deepstack_visual_indexes", "a list of block indexes");
    indexes.clear();
    for (const nlohmann::json& v : *list) {
      if (!v.is_number_integer()) f.invalid("deepstack_visual_indexes", "a list of block indexes");
      const auto index = v.get<int64_t>();
      // transformers silently skips an index past the last block and runs a repeated one once; both mean a broken
      // config, so they are refused rather than dropping features the text model expects.
      if (index < 0 || index >= depth) f.invalid("deepstack_visual_indexes", "block indexes in [0, depth)");
      if (std::find(indexes.begin(), indexes.end(), index) != indexes.end()) {
        f.invalid("deepstack_visual_indexes", "distinct block indexes");
      }
      indexes.push_back(static_cast<int>(index));
    }
  }
  return indexes;
}

double rope_theta(const JsonFields& f) {
  double theta = f.number("rope_theta", kDefaultTheta);
  if (const std::optional<JsonFields> rope = f.object("rope_parameters")) {
    const std::string type = rope->string("rope_type", "axial");
    if (type != "axial" && type != "default") {
      fail(ErrorKind::kUnsupported, "{}: rope_type \"{}\" is not supported for the vision tower (expected axial)",
           rope->where(), type);
    }
    theta = rope->number("rope_theta", theta);
  }
  if (!(theta > 0) || !std::isfinite(theta)) f.invalid("rope_theta", "a positive number");
  return theta;
}

}  // namespace

Qwen3VLVisionConfig parse_qwen3vl_vision_config(const weights::Snapshot& snapshot) {
  const std::string file = (snapshot.dir() / "config.json").string();
  const JsonFields top(snapshot.config(), file);
  const std::optional<JsonFields> section = top.object("vision_config");
  if (!section) fail(ErrorKind::kInvalidFile, "{}: missing field \"vision_config\" (a Qwen3-VL vision tower)", file);
  const JsonFields& f = *section;
  Qwen3VLVisionConfig c;
  c.depth = static_cast<int>(positive(f, "depth", kDefaultDepth));
  c.hidden_size = positive(f, "hidden_size", kDefaultHidden);
  c.intermediate_size = positive(f, "intermediate_size", kDefaultIntermediate);
  // transformers maps num_attention_heads onto num_heads.
  c.heads = static_cast<int>(positive(f, f.has("num_heads") ? "num_heads" : "num_attention_heads", kDefaultHeads));
  c.channels = static_cast<int>(positive(f, "in_channels", 3));
  c.patch_size = static_cast<int>(positive(f, "patch_size", kDefaultPatch));
  c.temporal_patch_size = static_cast<int>(positive(f, "temporal_patch_size", kDefaultTemporalPatch));
  c.spatial_merge_size = static_cast<int>(positive(f, "spatial_merge_size", kDefaultMerge));
  c.out_hidden_size = positive(f, "out_hidden_size", kDefaultOutHidden);
  c.num_position_embeddings = positive(f, "num_position_embeddings", kDefaultPositions);
  c.grid_per_side = static_cast<int>(std::sqrt(static_cast<double>(c.num_position_embeddings)));
  while (int64_t{c.grid_per_side} * c.grid_per_side > c.num_position_embeddings) --c.grid_per_side;
  while (int64_t{c.grid_per_side + 1} * (c.grid_per_side + 1) <= c.num_position_embeddings) ++c.grid_per_side;
  c.deepstack_indexes = deepstack_indexes(f, c.depth);
  c.rope_theta = rope_theta(f);
  c.activation = parse_activation(f, "hidden_act", "gelu_pytorch_tanh");
  if (c.hidden_size % c.heads != 0) f.invalid("num_heads", "a divisor of hidden_size");
  // The 2D rotary embedding splits each head in quarters (row and column frequencies, rotate-half).
  if (c.head_dim() % 4 != 0) f.invalid("num_heads", "a head count giving a head_dim divisible by 4");

  if (const std::optional<JsonFields> text = top.object("text_config")) {
    const int64_t text_hidden = text->integer("hidden_size", c.out_hidden_size);
    if (text_hidden != c.out_hidden_size) {
      fail(ErrorKind::kInvalidFile,
           "{}: vision_config.out_hidden_size ({}) must equal text_config.hidden_size ({}): the merged image features "
           "replace token embeddings",
           file, c.out_hidden_size, text_hidden);
    }
  }
  return c;
}

}  // namespace loom::model
