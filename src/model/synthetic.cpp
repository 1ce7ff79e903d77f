// Building a synthetic model (synthetic.h): the tensor manifest of the preset's family, laid out in one in-memory
// safetensors image and filled with random values in the requested format, in parallel on the global thread pool.

#include "model/synthetic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/float_formats.h"
#include "core/thread_pool.h"
#include "model/families/gemma3_config.h"
#include "model/families/gemma4_config.h"
#include "model/families/gemma4_vision_config.h"
#include "weights/quantize_policy.h"
#include "weights/safetensors_image.h"

namespace loom::model {
namespace {

using nlohmann::json;

// What a tensor holds, which decides how it is filled.
enum class Fill : uint8_t {
  kMatrix,  // a weight: uniform in ±amplitude (or random codes with scales that decode to that range)
  kOnes,    // norm weights
  kZeros,   // biases
  kValue,   // a constant (clamp bounds of clipped linears)
};

struct Entry {
  std::string name;
  Shape shape;
  Fill fill = Fill::kMatrix;
  float amplitude = 0.0f;  // kMatrix: the range; kValue: the value
};

struct Manifest {
  std::vector<Entry> entries;
  void matrix(std::string name, Shape shape, int64_t fan_in) {
    entries.push_back({std::move(name), std::move(shape), Fill::kMatrix,
                       static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)))});
  }
  void ones(std::string name, int64_t n) { entries.push_back({std::move(name), {n}, Fill::kOnes}); }
  void zeros(std::string name, int64_t n) { entries.push_back({std::move(name), {n}, Fill::kZeros}); }
  void value(std::string name, Shape shape, float v) {
    entries.push_back({std::move(name), std::move(shape), Fill::kValue, v});
  }
};

// The tensors Gemma3Model loads (gemma3.cpp, siglip.cpp), by canonical name.
Manifest gemma3_manifest(const Gemma3Config& c) {
  Manifest m;
  const TextConfig& t = c.text;
  const std::string p = c.vision ? "model.language_model." : "model.";
  const int64_t h = t.hidden_size, inter = t.intermediate_size, q = int64_t{t.heads} * t.head_dim,
                kv = int64_t{t.kv_heads} * t.head_dim;
  m.matrix(p + "embed_tokens.weight", {t.vocab_size, h}, h);
  for (int i = 0; i < t.layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    for (const char* norm :
         {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"}) {
      m.ones(l + norm + ".weight", h);
    }
    m.matrix(l + "self_attn.q_proj.weight", {q, h}, h);
    m.matrix(l + "self_attn.k_proj.weight", {kv, h}, h);
    m.matrix(l + "self_attn.v_proj.weight", {kv, h}, h);
    m.matrix(l + "self_attn.o_proj.weight", {h, q}, q);
    m.ones(l + "self_attn.q_norm.weight", t.head_dim);
    m.ones(l + "self_attn.k_norm.weight", t.head_dim);
    m.matrix(l + "mlp.gate_proj.weight", {inter, h}, h);
    m.matrix(l + "mlp.up_proj.weight", {inter, h}, h);
    m.matrix(l + "mlp.down_proj.weight", {h, inter}, inter);
  }
  m.ones(p + "norm.weight", h);
  if (!c.vision) return m;

  const VisionConfig& v = *c.vision;
  const std::string vp = "model.vision_tower.vision_model.";
  const int64_t vh = v.hidden_size, vi = v.intermediate_size, patch = v.patch_size;
  const int64_t patch_in = v.channels * patch * patch;
  m.matrix(vp + "embeddings.patch_embedding.weight", {vh, v.channels, patch, patch}, patch_in);
  m.zeros(vp + "embeddings.patch_embedding.bias", vh);
  m.matrix(vp + "embeddings.position_embedding.weight", {v.patches_per_side() * v.patches_per_side(), vh}, vh);
  for (int i = 0; i < v.layers; ++i) {
    const std::string l = vp + "encoder.layers." + std::to_string(i) + ".";
    for (const char* norm : {"layer_norm1", "layer_norm2"}) {
      m.ones(l + norm + ".weight", vh);
      m.zeros(l + norm + ".bias", vh);
    }
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      m.matrix(l + "self_attn." + proj + ".weight", {vh, vh}, vh);
      m.zeros(l + "self_attn." + proj + ".bias", vh);
    }
    m.matrix(l + "mlp.fc1.weight", {vi, vh}, vh);
    m.zeros(l + "mlp.fc1.bias", vi);
    m.matrix(l + "mlp.fc2.weight", {vh, vi}, vi);
    m.zeros(l + "mlp.fc2.bias", vh);
  }
  m.ones(vp + "post_layernorm.weight", vh);
  m.zeros(vp + "post_layernorm.bias", vh);
  m.ones("model.multi_modal_projector.mm_soft_emb_norm.weight", vh);
  m.matrix("model.multi_modal_projector.mm_input_projection_weight", {vh, h}, vh);
  return m;
}

// The tensors Gemma4Model loads (gemma4.cpp, gemma4_vision.cpp), by the names transformers' Gemma4 modules have.
Manifest gemma4_manifest(const Gemma4Config& c, const weights::Snapshot& config_only) {
  Manifest m;
  const Gemma4TextConfig& g = c.text;
  const TextConfig& t = g.base;
  const std::string p = c.has_vision ? "model.language_model." : "model.";
  const int64_t h = t.hidden_size, ple = g.ple_dim, all_ple = int64_t{t.layers} * g.ple_dim;
  m.matrix(p + "embed_tokens.weight", {t.vocab_size, h}, h);
  if (ple > 0) {
    m.matrix(p + "embed_tokens_per_layer.weight", {g.ple_vocab, all_ple}, ple);
    m.matrix(p + "per_layer_model_projection.weight", {all_ple, h}, h);
    m.ones(p + "per_layer_projection_norm.weight", ple);
  }
  const std::vector<Gemma4LayerPlan> plans = plan_gemma4_layers(g);
  for (size_t i = 0; i < plans.size(); ++i) {
    const Gemma4LayerPlan& lp = plans[i];
    const std::string l = p + "layers." + std::to_string(i) + ".";
    const int64_t d = lp.head_dim, q = int64_t{t.heads} * d, kv = int64_t{lp.kv_heads} * d,
                  inter = lp.intermediate_size;
    for (const char* norm :
         {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"}) {
      m.ones(l + norm + ".weight", h);
    }
    m.matrix(l + "self_attn.q_proj.weight", {q, h}, h);
    m.ones(l + "self_attn.q_norm.weight", d);
    if (lp.stores_kv) {
      m.matrix(l + "self_attn.k_proj.weight", {kv, h}, h);
      if (!lp.k_eq_v) m.matrix(l + "self_attn.v_proj.weight", {kv, h}, h);
      m.ones(l + "self_attn.k_norm.weight", d);
    }
    m.matrix(l + "self_attn.o_proj.weight", {h, q}, q);
    m.matrix(l + "mlp.gate_proj.weight", {inter, h}, h);
    m.matrix(l + "mlp.up_proj.weight", {inter, h}, h);
    m.matrix(l + "mlp.down_proj.weight", {h, inter}, inter);
    if (ple > 0) {
      m.matrix(l + "per_layer_input_gate.weight", {ple, h}, h);
      m.matrix(l + "per_layer_projection.weight", {h, ple}, ple);
      m.ones(l + "post_per_layer_input_norm.weight", h);
    }
    m.ones(l + "layer_scalar", 1);
  }
  m.ones(p + "norm.weight", h);
  if (!c.has_vision) return m;

  const Gemma4VisionConfig v = parse_gemma4_vision_config(config_only);
  const std::string vp = "model.vision_tower.";
  const int64_t vh = v.hidden_size, vi = v.intermediate_size, vq = int64_t{v.heads} * v.head_dim,
                vkv = int64_t{v.kv_heads} * v.head_dim;
  m.matrix(vp + "patch_embedder.input_proj.weight", {vh, v.patch_elements()}, v.patch_elements());
  m.matrix(vp + "patch_embedder.position_embedding_table", {2, v.position_embedding_size, vh}, vh);
  const auto linear = [&](const std::string& module, int64_t rows, int64_t cols) {
    m.matrix(module + ".linear.weight", {rows, cols}, cols);
    if (!v.use_clipped_linears) return;
    // transformers' initial bounds: no clamping.
    const float inf = std::numeric_limits<float>::infinity();
    m.value(module + ".input_min", {}, -inf);
    m.value(module + ".input_max", {}, inf);
    m.value(module + ".output_min", {}, -inf);
    m.value(module + ".output_max", {}, inf);
  };
  for (int i = 0; i < v.layers; ++i) {
    const std::string l = vp + "encoder.layers." + std::to_string(i) + ".";
    for (const char* norm :
         {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"}) {
      m.ones(l + norm + ".weight", vh);
    }
    linear(l + "self_attn.q_proj", vq, vh);
    linear(l + "self_attn.k_proj", vkv, vh);
    linear(l + "self_attn.v_proj", vkv, vh);
    linear(l + "self_attn.o_proj", vh, vq);
    m.ones(l + "self_attn.q_norm.weight", v.head_dim);
    m.ones(l + "self_attn.k_norm.weight", v.head_dim);
    linear(l + "mlp.gate_proj", vi, vh);
    linear(l + "mlp.up_proj", vi, vh);
    linear(l + "mlp.down_proj", vh, vi);
  }
  if (v.standardize) {
    m.zeros(vp + "std_bias", vh);
    m.ones(vp + "std_scale", vh);
  }
  m.matrix("model.embed_vision.embedding_projection.weight", {h, vh}, vh);
  return m;
}

// splitmix64: a fast, well-mixed generator; one stream per chunk keeps the bytes independent of the thread count.
struct Random {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float symmetric() { return static_cast<float>(static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0); }
};

constexpr int64_t kChunkBytes = int64_t{1} << 20;

// Calls fill(bytes, begin, end, random) over chunks of the tensor's bytes (begin/end in bytes, multiples of
// `unit`), each chunk with its own generator derived from seed, tensor and chunk.
template <typename FillChunk>
void fill_chunks(std::span<std::byte> bytes, int64_t unit, uint64_t seed, FillChunk&& fill) {
  const auto size = static_cast<int64_t>(bytes.size());
  const int64_t chunk = std::max<int64_t>(unit, kChunkBytes / unit * unit);
  const int64_t chunks = (size + chunk - 1) / chunk;
  ThreadPool::global().parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Random random{seed * 0x100000001B3ull + static_cast<uint64_t>(c) * 0x9E3779B97F4A7C15ull};
      fill(bytes.data(), c * chunk, std::min(size, (c + 1) * chunk), random);
    }
  });
}

void fill_float(std::span<std::byte> bytes, DType dtype, Fill fill, float amplitude, uint64_t seed) {
  const int64_t unit = dtype_bits(dtype) / 8;
  fill_chunks(bytes, unit, seed, [&](std::byte* data, int64_t begin, int64_t end, Random& random) {
    for (int64_t b = begin; b < end; b += unit) {
      const float value = fill == Fill::kOnes    ? 1.0f
                          : fill == Fill::kZeros ? 0.0f
                          : fill == Fill::kValue ? amplitude
                                                 : amplitude * random.symmetric();
      if (dtype == DType::kF32) {
        std::memcpy(data + b, &value, 4);
      } else {
        const uint16_t bits = dtype == DType::kBF16 ? float_to_bf16(value) : float_to_f16(value);
        std::memcpy(data + b, &bits, 2);
      }
    }
  });
}

// Random packed codes. Every E2M1 code and every integer code is a number; E4M3 has two NaN codes (0x7F, 0xFF),
// which become the largest finite magnitudes.
void fill_codes(std::span<std::byte> bytes, weights::QuantMode mode, uint64_t seed) {
  fill_chunks(bytes, 8, seed, [&](std::byte* data, int64_t begin, int64_t end, Random& random) {
    for (int64_t b = begin; b < end; b += 8) {
      uint64_t word = random.next();
      if (mode == weights::QuantMode::kMxfp8) {
        for (int k = 0; k < 8; ++k) {
          if (((word >> (8 * k)) & 0x7F) == 0x7F) word ^= uint64_t{1} << (8 * k);  // 0x7F → 0x7E, 0xFF → 0xFE
        }
      }
      std::memcpy(data + b, &word, static_cast<size_t>(std::min<int64_t>(8, end - b)));
    }
  });
}

// The E8M0 byte of the largest power of two <= x (x > 0): the group's largest code then decodes to at most a.
std::byte power_of_two_at_most(float x) {
  int exponent = 0;
  std::frexp(x, &exponent);  // x = m·2^exponent, m in [0.5, 1)
  return static_cast<std::byte>(std::clamp(127 + exponent - 1, 0, 254));
}

// Scales (and affine biases) under which the random codes decode to about ±amplitude: each group's scale varies by
// up to a factor of two so that no two groups are alike.
void fill_scales(std::span<std::byte> scales, std::span<std::byte> biases, const weights::QuantSpec& spec,
                 float amplitude, uint64_t seed) {
  const int64_t unit = spec.mode == weights::QuantMode::kAffine ? 2 : 1;
  fill_chunks(scales, unit, seed, [&](std::byte* data, int64_t begin, int64_t end, Random& random) {
    for (int64_t b = begin; b < end; b += unit) {
      const float a = amplitude * (0.75f + 0.25f * random.symmetric());
      switch (spec.mode) {
        case weights::QuantMode::kAffine: {
          // w = scale·q + bias with q in [0, 2^bits − 1] spans [−a, a].
          const uint16_t scale = float_to_bf16(2.0f * a / static_cast<float>((1 << spec.bits) - 1));
          const uint16_t bias = float_to_bf16(-a);
          std::memcpy(data + b, &scale, 2);
          std::memcpy(biases.data() + b, &bias, 2);
          break;
        }
        case weights::QuantMode::kMxfp4:  // E2M1 reaches ±6
          data[b] = power_of_two_at_most(a / 6.0f);
          break;
        case weights::QuantMode::kMxfp8:  // E4M3 reaches ±448
          data[b] = power_of_two_at_most(a / 448.0f);
          break;
        case weights::QuantMode::kNvfp4:
          data[b] = static_cast<std::byte>(float_to_e4m3(a / 6.0f));
          break;
        case weights::QuantMode::kNone:
          break;
      }
    }
  });
}

// The manifest of a preset, read through the family's own config parser so that it follows what the model loads.
Manifest preset_manifest(const std::string& name, const json& config) {
  const weights::Snapshot config_only = weights::Snapshot::from_memory(name, config, {});
  if (config_only.architecture().starts_with("Gemma4")) {
    return gemma4_manifest(parse_gemma4_config(config_only), config_only);
  }
  return gemma3_manifest(parse_gemma3_config(config_only));
}

}  // namespace

int64_t synthetic_parameters(std::string_view preset) {
  int64_t total = 0;
  for (const Entry& e : preset_manifest(std::string(preset), synthetic_config(preset)).entries) {
    total += shape_elements(e.shape);
  }
  return total;
}

weights::Snapshot synthetic_snapshot(std::string_view preset, const SyntheticFormat& format, uint64_t seed) {
  json config = synthetic_config(preset);
  const weights::QuantSpec& spec = format.quant;
  const bool quantized = spec.mode != weights::QuantMode::kNone;
  if (quantized) {
    weights::validate_quant_spec(spec, "synthetic format");
    const char* mode = spec.mode == weights::QuantMode::kAffine  ? "affine"
                       : spec.mode == weights::QuantMode::kMxfp4 ? "mxfp4"
                       : spec.mode == weights::QuantMode::kMxfp8 ? "mxfp8"
                                                                 : "nvfp4";
    config["quantization"] = {{"group_size", spec.group_size}, {"bits", spec.bits}, {"mode", mode}};
  }
  const std::string name =
      fmt::format("synthetic/{}-{}", preset,
                  quantized ? weights::quant_spec_name(spec) : std::string(dtype_name(format.float_dtype)));
  const Manifest manifest = preset_manifest(name, config);

  struct Planned {
    const Entry* entry;
    bool quantized;
  };
  std::vector<Planned> order;
  std::vector<weights::PlannedTensor> plan;
  for (const Entry& e : manifest.entries) {
    const bool q = quantized && weights::is_quantizable_weight(e.name, e.shape, spec.group_size) &&
                   (e.shape[1] * spec.bits) % 32 == 0;
    order.push_back({&e, q});
    if (!q) {
      plan.push_back({e.name, format.float_dtype, e.shape});
      continue;
    }
    const std::string module = e.name.substr(0, e.name.size() - std::string_view(".weight").size());
    const int64_t rows = e.shape[0], cols = e.shape[1];
    const DType scale_dtype = spec.mode == weights::QuantMode::kAffine ? DType::kBF16 : DType::kU8;
    plan.push_back({e.name, DType::kU32, {rows, cols * spec.bits / 32}});
    plan.push_back({module + ".scales", scale_dtype, {rows, cols / spec.group_size}});
    if (spec.mode == weights::QuantMode::kAffine)
      plan.push_back({module + ".biases", scale_dtype, {rows, cols / spec.group_size}});
  }

  weights::SafetensorsImage image(std::move(plan));
  size_t index = 0;
  uint64_t tensor_seed = seed * 1000003;
  for (const Planned& p : order) {
    const Entry& e = *p.entry;
    ++tensor_seed;
    if (!p.quantized) {
      fill_float(image.tensor_bytes(index++), format.float_dtype, e.fill, e.amplitude, tensor_seed);
      continue;
    }
    fill_codes(image.tensor_bytes(index++), spec.mode, tensor_seed);
    const std::span<std::byte> scales = image.tensor_bytes(index++);
    const std::span<std::byte> biases =
        spec.mode == weights::QuantMode::kAffine ? image.tensor_bytes(index++) : std::span<std::byte>{};
    fill_scales(scales, biases, spec, e.amplitude, tensor_seed ^ 0x5CA1E5ull);
  }
  std::vector<weights::SafetensorsFile> files;
  files.push_back(image.open(name + "/model.safetensors"));
  return weights::Snapshot::from_memory(name, std::move(config), std::move(files));
}

}  // namespace loom::model
