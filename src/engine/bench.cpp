#include "engine/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <numeric>
#include <optional>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/machine_probe.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/bench_images.h"
#include "engine/bench_steps.h"
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

// One prefill of `ids` (a fresh cache) followed by `gen` greedy decode steps; returns the step times in ms (prefill
// first) and whether every logit was finite.
struct Pass {
  std::vector<double> ms;
  bool finite = true;
};

Pass forward_pass(model::Model& model, std::span<const int32_t> ids, int64_t gen) {
  const model::ModelInfo& info = model.info();
  const int block = backend::kDefaultBlockSize;
  const int64_t total = static_cast<int64_t>(ids.size()) + gen + 1;
  backend::KvCache cache({.layers = info.kv, .blocks = (total + block - 1) / block, .block_size = block},
                         model.backend());
  std::vector<int32_t> table;
  cache.reserve(table, total);
  Pass pass;
  const backend::Batch prefill = single_sequence(ids, 0, table, info.position_axes);
  auto start = Clock::now();
  Tensor logits = model.forward({.batch = &prefill}, cache);
  pass.ms.push_back(ms_since(start));
  pass.finite = all_finite(logits);
  int32_t next = argmax(logits);
  for (int64_t g = 0; g < gen; ++g) {
    const auto position = static_cast<int64_t>(ids.size()) + g;
    const backend::Batch step = single_sequence({&next, 1}, position, table, info.position_axes);
    start = Clock::now();
    logits = model.forward({.batch = &step}, cache);
    pass.ms.push_back(ms_since(start));
    pass.finite = pass.finite && all_finite(logits);
    next = argmax(logits);
  }
  return pass;
}

// The GEMM ideal of `shapes` on the CPU: OpenBLAS sgemm, 2·m·n·k / the measured rate, per distinct shape.
double cpu_gemm_seconds(std::span<const backend::GemmShape> shapes, int repeats) {
  double total = 0;
  for (const backend::GemmShape& s : shapes) {
    const double flops = backend::cpu::measure_sgemm_flops(s.m, s.n, s.k, repeats);
    total += static_cast<double>(s.count) * 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) *
             static_cast<double>(s.k) / flops;
  }
  return total;
}

}  // namespace

WeightCensus weight_census(const weights::Snapshot& snapshot) {
  WeightCensus census;
  int64_t text_bytes = 0;
  const bool has_lm_head = snapshot.find("lm_head.weight").has_value();
  std::vector<std::string> gathered;  // embedding tables of which a token reads one row
  std::map<std::pair<int64_t, int64_t>, int64_t> shapes;
  for (const std::string& name : snapshot.tensor_names()) {
    const weights::TensorRef ref = snapshot.at(name);
    census.stored_bytes += static_cast<int64_t>(ref.info->bytes());
    if (!is_text_tensor(name)) continue;
    text_bytes += static_cast<int64_t>(ref.info->bytes());
    if (!name.ends_with(".weight") || ref.info->shape.size() != 2) continue;
    const std::string module = module_of(name);
    const auto [rows, cols] = logical_shape(snapshot, module);
    if (module.ends_with("embed_tokens")) {
      if (has_lm_head) {
        gathered.push_back(module);
      } else {
        census.output_parameters = rows * cols;
        census.output_rows = rows;
        census.output_cols = cols;
      }
    } else if (module.ends_with("embed_tokens_per_layer")) {  // Gemma 4's per-layer embeddings: a gather too
      gathered.push_back(module);
    } else if (module == "lm_head") {
      census.output_parameters = rows * cols;
      census.output_rows = rows;
      census.output_cols = cols;
    } else {
      census.layer_parameters += rows * cols;
      ++shapes[{rows, cols}];
      if (name.ends_with("layers.0.mlp.up_proj.weight")) {
        census.intermediate = rows;
        census.hidden = cols;
      }
    }
  }
  for (const auto& [shape, count] : shapes) {
    census.layer_matrices.push_back({.m = 0, .n = shape.first, .k = shape.second, .count = count});
  }
  // Decode reads every text weight once per token: the layers, the norms and the output projection (a tied
  // embedding is that projection). Embedding tables that are only gathered from give one row per token.
  census.decode_bytes = text_bytes;
  for (const std::string& module : gathered) {
    int64_t table_bytes = 0;
    for (const char* suffix : {".weight", ".scales", ".biases"}) {
      if (const auto ref = snapshot.find(module + suffix)) table_bytes += static_cast<int64_t>(ref->info->bytes());
    }
    const int64_t rows = snapshot.at(module + ".weight").info->shape[0];
    census.decode_bytes -= table_bytes - table_bytes / std::max<int64_t>(rows, 1);
  }
  return census;
}

std::vector<backend::GemmShape> forward_gemm_shapes(const WeightCensus& census, int64_t tokens) {
  std::vector<backend::GemmShape> gemms;
  for (backend::GemmShape shape : census.layer_matrices) {
    shape.m = tokens;
    gemms.push_back(shape);
  }
  if (census.output_rows > 0) gemms.push_back({.m = 1, .n = census.output_rows, .k = census.output_cols, .count = 1});
  return gemms;
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
  for (const int64_t length : options.prefill_lengths) {
    if (length < 1) fail(ErrorKind::kInvalidRequest, "--prefill-tokens must be >= 1, got {}", length);
  }
  if (!(options.gpu_memory_fraction >= 0 && options.gpu_memory_fraction <= 1)) {
    fail(ErrorKind::kInvalidRequest, "--gpu-memory-fraction must be within [0, 1], got {}",
         options.gpu_memory_fraction);
  }
  static backend::cpu::CpuBackend cpu;  // outlives every model built on it
  backend::Backend& backend = options.backend != nullptr ? *options.backend : cpu;
  backend::DeviceProbe* const probe = options.device_probe;
  BenchReport report;
  report.model = snapshot.dir().string();
  report.format = format;
  report.device = std::string(backend.name());
  report.threads = ThreadPool::global().parallelism();
  report.blas_threads = backend::cpu::blas_threads();
  report.weights = weight_census(snapshot);
  report.prompt_tokens = options.prompt_tokens;
  report.gen_tokens = options.gen_tokens;
  report.images = options.images;
  if (probe != nullptr) {
    report.device_name = probe->device_name();
    report.device_total_bytes = probe->memory().total_bytes;
    probe->reset_peak();
  }

  const int64_t allocated_before = probe != nullptr ? probe->allocated_bytes() : 0;
  auto start = Clock::now();
  std::unique_ptr<model::Model> model = model::load_model(snapshot, backend);
  report.load_s = ms_since(start) / 1000.0;
  const model::ModelInfo info = model->info();
  report.architecture = info.architecture;
  if (probe != nullptr) {
    report.weights_device_bytes = probe->allocated_bytes() - allocated_before;
    report.device_free_after_load_bytes = probe->memory().free_bytes;
  }

  std::optional<BenchImageLayout> layout;
  if (options.images > 0) layout = bench_image_layout(snapshot, info);
  report.image_tokens = layout ? options.images * (layout->soft_tokens + 2) : 0;
  const int64_t engine_prompt = options.prompt_tokens + report.image_tokens;
  if (engine_prompt + options.gen_tokens > info.context_length) {
    fail(ErrorKind::kInvalidRequest, "{} prompt tokens + {} generated exceed the model context of {}", engine_prompt,
         options.gen_tokens, info.context_length);
  }
  for (const int64_t length : options.prefill_lengths) {
    if (length + 1 > info.context_length) {
      fail(ErrorKind::kInvalidRequest, "--prefill-tokens {} exceeds the model context of {}", length,
           info.context_length);
    }
  }

  // A random text prompt that avoids the image placeholder ids, as long as the longest pass needs.
  std::mt19937_64 random(options.seed);
  const auto vocab = static_cast<int32_t>(std::min<int64_t>(info.vocab_size, 1 << 30));
  std::uniform_int_distribution<int32_t> id(std::min(10, vocab - 1), vocab - 1);
  int64_t longest = options.prompt_tokens;
  for (const int64_t length : options.prefill_lengths) longest = std::max(longest, length);
  std::vector<int32_t> ids(static_cast<size_t>(longest));
  for (int32_t& t : ids) {
    t = id(random);
    if (t == info.image_token_id || (layout && (t == layout->boi || t == layout->eoi))) t = std::min(10, vocab - 1);
  }
  const std::span<const int32_t> text(ids.data(), static_cast<size_t>(options.prompt_tokens));

  // --- Model::forward directly. A first pass grows the model's scratch buffers and warms the weights: the timed
  // pass measures steady state.
  {
    (void)forward_pass(*model, text, 0);
    const model::StepCounts before = model->step_counts();
    const Pass pass = forward_pass(*model, text, options.gen_tokens);
    const model::StepCounts after = model->step_counts();
    report.decode_steps = {.eager = after.eager - before.eager,
                           .recorded = after.recorded - before.recorded,
                           .replayed = after.replayed - before.replayed,
                           .refused = after.refused - before.refused};
    report.prefill_ms = pass.ms.front();
    report.logits_finite = pass.finite;
    const std::vector<double> steps(pass.ms.begin() + 1, pass.ms.end());
    report.prefill_tokens_per_s = static_cast<double>(options.prompt_tokens) * 1000.0 / report.prefill_ms;
    report.prefill_flops_per_s =
        (2.0 * static_cast<double>(options.prompt_tokens) * static_cast<double>(report.weights.layer_parameters) +
         2.0 * static_cast<double>(report.weights.output_parameters)) /
        (report.prefill_ms / 1000.0);
    report.decode_ms_median = median(steps);
    report.decode_ms_mean = std::accumulate(steps.begin(), steps.end(), 0.0) / static_cast<double>(steps.size());
    report.decode_tokens_per_s = 1000.0 / report.decode_ms_mean;
    report.decode_bytes_per_s = static_cast<double>(report.weights.decode_bytes) / (report.decode_ms_median / 1000.0);
  }

  // --- Prefill at the requested lengths against the GEMM ideal of the same matmuls.
  report.gemm_name = probe != nullptr ? probe->gemm_name() : "OpenBLAS sgemm";
  for (const int64_t length : options.prefill_lengths) {
    const std::span<const int32_t> prompt(ids.data(), static_cast<size_t>(length));
    (void)forward_pass(*model, prompt, 0);  // scratch buffers for this length
    const Pass pass = forward_pass(*model, prompt, 0);
    PrefillPoint point;
    point.tokens = length;
    point.ms = pass.ms.front();
    point.tokens_per_s = static_cast<double>(length) * 1000.0 / point.ms;
    point.logits_finite = pass.finite;
    report.logits_finite = report.logits_finite && pass.finite;
    const std::vector<backend::GemmShape> gemms = forward_gemm_shapes(report.weights, length);
    const double ideal_s = probe != nullptr ? probe->gemm_seconds(gemms, options.probe_repeats)
                                            : cpu_gemm_seconds(gemms, options.probe_repeats);
    point.ideal_ms = ideal_s * 1000.0;
    point.efficiency = point.ideal_ms / point.ms;
    report.prefill_sweep.push_back(point);
  }

  // --- The machine, same run and thread pool: the device's copy bandwidth, else the CPU's STREAM and sgemm.
  if (options.probes && probe != nullptr) {
    const backend::CopyBandwidth copy = probe->copy_bandwidth(options.copy_probe_bytes, options.probe_repeats);
    report.copy_buffer_bytes = copy.buffer_bytes;
    report.copy_bytes_per_s = copy.bytes_per_s;
    report.decode_roofline_ratio = report.decode_bytes_per_s / copy.bytes_per_s;
    report.decode_bandwidth_ratio = report.decode_roofline_ratio;
    report.decode_overhead_ms =
        report.decode_ms_median - static_cast<double>(report.weights.decode_bytes) / copy.bytes_per_s * 1000.0;
  } else if (options.probes) {
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
  if (probe != nullptr) report.peak_device_bytes_before_kv = probe->peak_allocated_bytes();

  // --- Through the engine: the images' soft tokens first (after <bos>), then the text.
  {
    Request request;
    request.prompt.push_back(2);
    for (int i = 0; layout && i < options.images; ++i) {
      request.prompt.push_back(layout->boi);
      ImageInput image;
      image.start = static_cast<int64_t>(request.prompt.size());
      image.length = layout->soft_tokens;
      image.index = i;
      image.bidirectional = info.bidirectional_images;
      image.pixels = bench_image_pixels(*layout, random);
      request.prompt.insert(request.prompt.end(), static_cast<size_t>(layout->soft_tokens), info.image_token_id);
      request.prompt.push_back(layout->eoi);
      request.images.push_back(std::move(image));
    }
    request.prompt.insert(request.prompt.end(), text.begin() + 1, text.end());
    request.max_tokens = options.gen_tokens;
    request.stop.ignore_model_stop_ids = true;
    const int64_t prompt = static_cast<int64_t>(request.prompt.size());

    Engine engine(std::move(model), nullptr,
                  {.kv_tokens = prompt + options.gen_tokens + 64, .gpu_memory_fraction = options.gpu_memory_fraction});
    report.kv_cache_tokens = engine.stats().kv_blocks_total * engine.config().block_size;
    report.kv_cache_bytes = report.kv_cache_tokens * kv_bytes_per_token(info.kv);
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
  if (probe != nullptr) report.peak_device_bytes = probe->peak_allocated_bytes();

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
  j["device"] = r.device;
  j["device_name"] = r.device_name;
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
                  {"logits_finite", r.logits_finite},
                  {"steps",
                   {{"eager", r.decode_steps.eager},
                    {"graph_recorded", r.decode_steps.recorded},
                    {"graph_replayed", r.decode_steps.replayed},
                    {"graph_refused", r.decode_steps.refused}}}};
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
  nlohmann::ordered_json sweep = nlohmann::ordered_json::array();
  for (const PrefillPoint& p : r.prefill_sweep) {
    sweep.push_back({{"tokens", p.tokens},
                     {"ms", p.ms},
                     {"tokens_per_s", p.tokens_per_s},
                     {"gemm_ideal_ms", p.ideal_ms},
                     {"efficiency", p.efficiency},
                     {"logits_finite", p.logits_finite}});
  }
  j["prefill_sweep"] = {{"gemm", r.gemm_name}, {"points", sweep}};
  if (r.copy_bytes_per_s > 0) {
    j["roofline"] = {
        {"copy_buffer_bytes", r.copy_buffer_bytes},
        {"copy_gb_per_s", r.copy_bytes_per_s / 1e9},
        {"convention", "device-to-device copy: (bytes read + bytes written) / time"},
        {"decode_gb_per_s", r.decode_bytes_per_s / 1e9},
        {"decode_roofline_ratio", r.decode_roofline_ratio},
        {"decode_ms_at_roofline", static_cast<double>(r.weights.decode_bytes) / r.copy_bytes_per_s * 1000.0},
        {"decode_overhead_ms_per_step", r.decode_overhead_ms}};
  } else {
    j["roofline"] = nullptr;
  }
  j["memory"] = {{"device_total_bytes", r.device_total_bytes},
                 {"device_free_after_load_bytes", r.device_free_after_load_bytes},
                 {"weights_device_bytes", r.weights_device_bytes},
                 {"peak_device_bytes_before_kv", r.peak_device_bytes_before_kv},
                 {"peak_device_bytes", r.peak_device_bytes},
                 {"kv_cache_tokens", r.kv_cache_tokens},
                 {"kv_cache_bytes", r.kv_cache_bytes}};
  return j;
}

}  // namespace loom::engine
