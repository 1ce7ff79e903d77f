#include "engine/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/machine_probe.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "model/registry.h"

namespace loom::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Tensors of the vision/audio towers and projectors run once per image, not per generated token.
bool is_text_tensor(std::string_view name) {
  for (std::string_view part :
       {"vision_tower", "multi_modal_projector", "audio_tower", "embed_vision", "embed_audio"}) {
    if (name.find(part) != std::string_view::npos) return false;
  }
  return true;
}

std::string module_of(std::string_view name) {
  const size_t dot = name.rfind('.');
  return std::string(name.substr(0, dot == std::string_view::npos ? 0 : dot));
}

// Logical [rows, cols] of the matrix `<module>.weight`, whatever its storage format.
std::pair<int64_t, int64_t> logical_shape(const weights::Snapshot& snapshot, const std::string& module) {
  const weights::TensorRef ref = snapshot.at(module + ".weight");
  const Shape& shape = ref.info->shape;
  const bool has_scales = snapshot.find(module + ".scales").has_value();
  const weights::QuantSpec spec = snapshot.quant_config().spec_for(module, has_scales);
  const int64_t cols = spec.mode == weights::QuantMode::kNone ? shape[1] : shape[1] * 32 / spec.bits;
  return {shape[0], cols};
}

bool all_finite(const Tensor& logits) {
  return std::all_of(logits.span<float>().begin(), logits.span<float>().end(),
                     [](float v) { return std::isfinite(v); });
}

int32_t argmax(const Tensor& logits) {
  const auto values = logits.span<float>();
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

backend::Batch single_sequence(std::span<const int32_t> ids, int64_t kv_start, const std::vector<int32_t>& table,
                               int position_axes) {
  backend::Batch batch;
  const auto tokens = static_cast<int64_t>(ids.size());
  batch.sequences.push_back({.token_offset = 0, .token_count = tokens, .kv_start = kv_start, .block_table = table});
  batch.token_ids.assign(ids.begin(), ids.end());
  batch.position_axes = position_axes;
  for (int axis = 0; axis < position_axes; ++axis) {
    for (int64_t i = 0; i < tokens; ++i) batch.positions.push_back(static_cast<int32_t>(kv_start + i));
  }
  return batch;
}

struct ImageLayout {
  int64_t image_size = 0, soft_tokens = 0;
  int32_t boi = -1, eoi = -1;
};

// Gemma 3's image placeholders: <boi> image-token × mm_tokens_per_image <eoi>, one 1-crop image of image_size².
ImageLayout image_layout(const weights::Snapshot& snapshot, const model::ModelInfo& info) {
  const nlohmann::json& config = snapshot.config();
  if (info.image_token_id < 0 || snapshot.vision_config() == nullptr ||
      info.architecture != "Gemma3ForConditionalGeneration") {
    fail(ErrorKind::kInvalidRequest, "--images needs a Gemma 3 vision model; {} takes no images", info.architecture);
  }
  ImageLayout layout;
  layout.image_size = snapshot.vision_config()->value("image_size", int64_t{224});
  layout.soft_tokens = config.value("mm_tokens_per_image", int64_t{256});
  layout.boi = config.value("boi_token_index", 255999);
  layout.eoi = config.value("eoi_token_index", 256000);
  return layout;
}

}  // namespace

WeightCensus weight_census(const weights::Snapshot& snapshot) {
  WeightCensus census;
  int64_t text_bytes = 0;
  std::string embed_module;
  const bool has_lm_head = snapshot.find("lm_head.weight").has_value();
  for (const std::string& name : snapshot.tensor_names()) {
    const weights::TensorRef ref = snapshot.at(name);
    census.stored_bytes += static_cast<int64_t>(ref.info->bytes());
    if (!is_text_tensor(name)) continue;
    text_bytes += static_cast<int64_t>(ref.info->bytes());
    if (!name.ends_with(".weight") || ref.info->shape.size() != 2) continue;
    const std::string module = module_of(name);
    const auto [rows, cols] = logical_shape(snapshot, module);
    if (module.ends_with("embed_tokens")) {
      embed_module = module;
      if (!has_lm_head) census.output_parameters = rows * cols;
    } else if (module == "lm_head") {
      census.output_parameters = rows * cols;
    } else {
      census.layer_parameters += rows * cols;
      if (name.ends_with("layers.0.mlp.up_proj.weight")) {
        census.intermediate = rows;
        census.hidden = cols;
      }
    }
  }
  // Decode reads every text weight once per token: the layers, the norms and the output projection. A tied embedding
  // is that projection; a separate lm_head leaves the embedding read one row per token.
  census.decode_bytes = text_bytes;
  if (has_lm_head && !embed_module.empty()) {
    int64_t embed_bytes = 0;
    for (const char* suffix : {".weight", ".scales", ".biases"}) {
      if (const auto ref = snapshot.find(embed_module + suffix))
        embed_bytes += static_cast<int64_t>(ref->info->bytes());
    }
    const int64_t rows = snapshot.at(embed_module + ".weight").info->shape[0];
    census.decode_bytes -= embed_bytes - embed_bytes / std::max<int64_t>(rows, 1);
  }
  return census;
}

std::string snapshot_format_name(const weights::Snapshot& snapshot) {
  const weights::QuantConfig& qc = snapshot.quant_config();
  if (qc.source == weights::QuantConfig::Source::kMlx) return weights::quant_spec_name(qc.base);
  if (qc.source == weights::QuantConfig::Source::kHuggingFace && qc.hf) return qc.hf->method;
  for (const std::string& name : snapshot.tensor_names()) {
    if (name.ends_with("embed_tokens.weight")) return std::string(dtype_name(snapshot.at(name).info->dtype));
  }
  return "unknown";
}

BenchReport run_bench(const weights::Snapshot& snapshot, const std::string& format, const BenchOptions& options) {
  if (options.prompt_tokens < 1 || options.gen_tokens < 1 || options.images < 0) {
    fail(ErrorKind::kInvalidRequest, "--prompt-tokens and --gen-tokens must be >= 1 and --images >= 0");
  }
  BenchReport report;
  report.model = snapshot.dir().string();
  report.format = format;
  report.threads = ThreadPool::global().parallelism();
  report.blas_threads = backend::cpu::blas_threads();
  report.weights = weight_census(snapshot);
  report.prompt_tokens = options.prompt_tokens;
  report.gen_tokens = options.gen_tokens;
  report.images = options.images;

  static backend::cpu::CpuBackend cpu;  // outlives every model built on it
  auto start = Clock::now();
  std::unique_ptr<model::Model> model = model::load_model(snapshot, cpu);
  report.load_s = ms_since(start) / 1000.0;
  const model::ModelInfo info = model->info();
  report.architecture = info.architecture;

  std::optional<ImageLayout> layout;
  if (options.images > 0) layout = image_layout(snapshot, info);
  report.image_tokens = layout ? options.images * (layout->soft_tokens + 2) : 0;
  const int64_t engine_prompt = options.prompt_tokens + report.image_tokens;
  if (engine_prompt + options.gen_tokens > info.context_length) {
    fail(ErrorKind::kInvalidRequest, "{} prompt tokens + {} generated exceed the model context of {}", engine_prompt,
         options.gen_tokens, info.context_length);
  }

  // A random text prompt that avoids the image placeholder ids.
  std::mt19937_64 random(options.seed);
  const auto vocab = static_cast<int32_t>(std::min<int64_t>(info.vocab_size, 1 << 30));
  std::uniform_int_distribution<int32_t> id(std::min(10, vocab - 1), vocab - 1);
  std::vector<int32_t> text(static_cast<size_t>(options.prompt_tokens));
  for (int32_t& t : text) {
    t = id(random);
    if (t == info.image_token_id || (layout && (t == layout->boi || t == layout->eoi))) t = std::min(10, vocab - 1);
  }

  // --- Model::forward directly.
  {
    const int block = backend::kDefaultBlockSize;
    const int64_t total = options.prompt_tokens + options.gen_tokens + 1;
    backend::KvCache cache({.layers = info.kv, .blocks = (total + block - 1) / block, .block_size = block});
    std::vector<int32_t> table;
    cache.reserve(table, total);
    backend::Batch prefill = single_sequence(text, 0, table, info.position_axes);
    {
      // A first pass grows the model's scratch buffers and warms the weights: the timed pass measures steady state.
      backend::KvCache warm({.layers = info.kv, .blocks = (total + block - 1) / block, .block_size = block});
      std::vector<int32_t> warm_table;
      warm.reserve(warm_table, total);
      const backend::Batch warm_prefill = single_sequence(text, 0, warm_table, info.position_axes);
      (void)model->forward({.batch = &warm_prefill}, warm);
    }
    start = Clock::now();
    Tensor logits = model->forward({.batch = &prefill}, cache);
    report.prefill_ms = ms_since(start);
    report.logits_finite = all_finite(logits);
    int32_t next = argmax(logits);
    std::vector<double> steps;
    for (int64_t g = 0; g < options.gen_tokens; ++g) {
      const backend::Batch step = single_sequence({&next, 1}, options.prompt_tokens + g, table, info.position_axes);
      start = Clock::now();
      logits = model->forward({.batch = &step}, cache);
      steps.push_back(ms_since(start));
      report.logits_finite = report.logits_finite && all_finite(logits);
      next = argmax(logits);
    }
    report.prefill_tokens_per_s = options.prompt_tokens * 1000.0 / report.prefill_ms;
    report.prefill_flops_per_s =
        (2.0 * static_cast<double>(options.prompt_tokens) * static_cast<double>(report.weights.layer_parameters) +
         2.0 * static_cast<double>(report.weights.output_parameters)) /
        (report.prefill_ms / 1000.0);
    report.decode_ms_median = median(steps);
    report.decode_ms_mean = std::accumulate(steps.begin(), steps.end(), 0.0) / static_cast<double>(steps.size());
    report.decode_tokens_per_s = 1000.0 / report.decode_ms_mean;
    report.decode_bytes_per_s = static_cast<double>(report.weights.decode_bytes) / (report.decode_ms_median / 1000.0);
  }

  // --- Through the engine: the images' soft tokens first (after <bos>), then the text.
  {
    Request request;
    std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
    request.prompt.push_back(2);
    for (int i = 0; layout && i < options.images; ++i) {
      request.prompt.push_back(layout->boi);
      ImageInput image;
      image.start = static_cast<int64_t>(request.prompt.size());
      image.length = layout->soft_tokens;
      image.index = i;
      image.bidirectional = info.bidirectional_images;
      image.pixels.pixel_values = Tensor::zeros(DType::kF32, {1, 3, layout->image_size, layout->image_size});
      for (float& p : image.pixels.pixel_values.span<float>()) p = pixel(random);
      image.pixels.soft_tokens = layout->soft_tokens;
      request.prompt.insert(request.prompt.end(), static_cast<size_t>(layout->soft_tokens), info.image_token_id);
      request.prompt.push_back(layout->eoi);
      request.images.push_back(std::move(image));
    }
    request.prompt.insert(request.prompt.end(), text.begin() + 1, text.end());
    request.max_tokens = options.gen_tokens;
    request.stop.ignore_model_stop_ids = true;
    const int64_t prompt = static_cast<int64_t>(request.prompt.size());

    Engine engine(std::move(model), nullptr, {.kv_tokens = prompt + options.gen_tokens + 64});
    start = Clock::now();
    auto stream = engine.submit(std::move(request));
    std::vector<double> token_ms;
    while (auto event = stream->next()) {
      if (event->kind == StreamEvent::Kind::kFinish) {
        if (event->reason == FinishReason::kError) fail(event->error_kind, "{}", event->error);
        break;
      }
      token_ms.push_back(ms_since(start));
    }
    if (token_ms.empty()) fail(ErrorKind::kInternal, "the engine generated no token");
    report.engine_ttft_ms = token_ms.front();
    report.engine_prefill_tokens_per_s = static_cast<double>(prompt) * 1000.0 / report.engine_ttft_ms;
    if (token_ms.size() > 1) {
      report.engine_decode_ms_per_token =
          (token_ms.back() - token_ms.front()) / static_cast<double>(token_ms.size() - 1);
      report.engine_decode_tokens_per_s = 1000.0 / report.engine_decode_ms_per_token;
    }
  }

  // --- The machine, same run and thread pool.
  if (options.probes) {
    report.last_level_cache_bytes = backend::cpu::last_level_cache_bytes();
    const int64_t buffer = std::max<int64_t>(4 * report.last_level_cache_bytes, int64_t{256} << 20);
    const auto bandwidth = backend::cpu::measure_memory_bandwidth(ThreadPool::global(), buffer, options.probe_repeats);
    report.stream_buffer_bytes = bandwidth.buffer_bytes;
    report.stream_read_bytes_per_s = bandwidth.read_bytes_per_s;
    report.stream_copy_bytes_per_s = bandwidth.copy_bytes_per_s;
    report.decode_bandwidth_ratio = report.decode_bytes_per_s / report.stream_read_bytes_per_s;
    if (report.weights.hidden > 0 && report.weights.intermediate > 0) {
      report.sgemm_flops_per_s = backend::cpu::measure_sgemm_flops(options.prompt_tokens, report.weights.intermediate,
                                                                   report.weights.hidden, options.probe_repeats);
      report.prefill_efficiency = report.prefill_flops_per_s / report.sgemm_flops_per_s;
    }
  }

  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) report.peak_rss_bytes = static_cast<double>(usage.ru_maxrss) * 1024.0;
  double load[1];
  if (::getloadavg(load, 1) == 1) report.load_average = load[0];
  return report;
}

nlohmann::ordered_json bench_report_json(const BenchReport& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["architecture"] = r.architecture;
  j["format"] = r.format;
  j["threads"] = r.threads;
  j["blas_threads"] = r.blas_threads;
  j["weight_bytes"] = r.weights.stored_bytes;
  j["decode_bytes_per_token"] = r.weights.decode_bytes;
  j["layer_parameters"] = r.weights.layer_parameters;
  j["output_parameters"] = r.weights.output_parameters;
  j["prompt_tokens"] = r.prompt_tokens;
  j["gen_tokens"] = r.gen_tokens;
  j["images"] = r.images;
  j["image_tokens"] = r.image_tokens;
  j["load_s"] = r.load_s;
  j["forward"] = {{"prefill_ms", r.prefill_ms},
                  {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                  {"prefill_gflops", r.prefill_flops_per_s / 1e9},
                  {"decode_ms_per_token_median", r.decode_ms_median},
                  {"decode_ms_per_token_mean", r.decode_ms_mean},
                  {"decode_tokens_per_s", r.decode_tokens_per_s},
                  {"decode_gb_per_s", r.decode_bytes_per_s / 1e9},
                  {"logits_finite", r.logits_finite}};
  j["engine"] = {{"ttft_ms", r.engine_ttft_ms},
                 {"prefill_tokens_per_s", r.engine_prefill_tokens_per_s},
                 {"decode_ms_per_token", r.engine_decode_ms_per_token},
                 {"decode_tokens_per_s", r.engine_decode_tokens_per_s}};
  j["machine"] = {{"last_level_cache_bytes", r.last_level_cache_bytes},
                  {"stream_buffer_bytes", r.stream_buffer_bytes},
                  {"stream_read_gb_per_s", r.stream_read_bytes_per_s / 1e9},
                  {"stream_copy_gb_per_s", r.stream_copy_bytes_per_s / 1e9},
                  {"sgemm_gflops", r.sgemm_flops_per_s / 1e9},
                  {"sgemm_shape", {r.prompt_tokens, r.weights.hidden, r.weights.intermediate}},
                  {"load_average", r.load_average}};
  j["decode_bandwidth_ratio"] = r.decode_bandwidth_ratio;
  j["prefill_efficiency"] = r.prefill_efficiency;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  return j;
}

}  // namespace loom::engine
