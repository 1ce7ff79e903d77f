#pragma once
// `loom bench` as a library: loads a model on a backend (the CPU, or a GPU) and measures prefill and decode twice —
// through Model::forward directly (a clean per-token figure) and through the Engine (what a user of `loom run` or the
// server gets, sampler and scheduling included) — next to machine figures measured in the same run. On the CPU: a
// STREAM-style memory read bandwidth and OpenBLAS sgemm on the model's MLP shape. On a GPU (a DeviceProbe): the
// device-to-device copy bandwidth decode is held against (roofline ratio and per-step overhead), the vendor bf16 GEMM
// time of the matmuls one prefill pass runs (the prefill ideal), and device memory. Benchmarks report ratios of
// figures from one run; nothing here asserts absolute times.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/device_probe.h"
#include "model/model.h"
#include "weights/snapshot.h"

namespace loom::engine {

// What decode reads and prefill computes, from the snapshot's tensors (text model only: the vision tower runs once
// per image, not per token).
struct WeightCensus {
  int64_t stored_bytes = 0;       // every tensor of the snapshot
  int64_t decode_bytes = 0;       // weight bytes one decode step reads (see bench.cpp for what is counted)
  int64_t layer_parameters = 0;   // logical elements of the text layers' matrices (excluding embedding / lm_head)
  int64_t output_parameters = 0;  // logical elements of the output projection (lm_head, or the tied embedding)
  int64_t hidden = 0;             // columns of layer 0's MLP up projection
  int64_t intermediate = 0;       // rows of layer 0's MLP up projection
  // Logical [rows, cols] of every text matrix a prefill token multiplies (layer_parameters, one entry per distinct
  // shape with its count; stacked expert tensors are not included) and of the output projection.
  std::vector<backend::GemmShape> layer_matrices;  // m = 0: the token count is the caller's
  int64_t output_rows = 0, output_cols = 0;
};

WeightCensus weight_census(const weights::Snapshot& snapshot);

// The matmuls one forward pass of `tokens` prompt tokens of one sequence runs: every layer matrix with m = tokens,
// and the output projection for the last token only (m = 1). Σ 2·m·n·k·count = 2·tokens·layer_parameters +
// 2·output_parameters.
std::vector<backend::GemmShape> forward_gemm_shapes(const WeightCensus& census, int64_t tokens);

// One prefill pass timed against the GEMM ideal of its matmuls.
struct PrefillPoint {
  int64_t tokens = 0;
  double ms = 0;
  double tokens_per_s = 0;
  double ideal_ms = 0;    // the GEMM library's time for forward_gemm_shapes(tokens)
  double efficiency = 0;  // ideal_ms / ms
  bool logits_finite = true;
};
struct BenchOptions {
  int64_t prompt_tokens = 128;
  int64_t gen_tokens = 32;
  int images = 0;         // synthetic images in the engine's prompt (vision models only)
  uint64_t seed = 1;      // prompt ids and image pixels
  bool probes = true;     // measure memory bandwidth and sgemm (or the device's copy bandwidth and GEMMs)
  int probe_repeats = 5;  // best of this many passes
  // The backend the model runs on (null: a CPU backend of bench's own) and, for an accelerator, its probes (null on
  // the CPU). The engine's KV cache on a device takes gpu_memory_fraction of the memory free after the direct
  // measurements (EngineConfig::gpu_memory_fraction); 0 sizes it to the request.
  backend::Backend* backend = nullptr;
  backend::DeviceProbe* device_probe = nullptr;
  double gpu_memory_fraction = 0.9;
  // Extra prefill passes of these prompt lengths, each timed against the GEMM ideal of its matmuls (cuBLAS bf16 on a
  // GPU, OpenBLAS sgemm on the CPU).
  std::vector<int64_t> prefill_lengths;
  int64_t copy_probe_bytes = int64_t{1} << 30;  // the device copy probe's buffer
};

struct BenchReport {
  std::string model;  // snapshot name
  std::string architecture;
  std::string format;  // "bf16", "affine-4/g64", …
  std::string device = "cpu";
  std::string device_name;  // the GPU's name; empty on the CPU
  int threads = 0;          // loom's thread pool
  int blas_threads = 0;
  WeightCensus weights;
  int64_t prompt_tokens = 0, gen_tokens = 0, images = 0, image_tokens = 0;
  double load_s = 0;

  // Model::forward directly: one prefill step of the text prompt, then gen_tokens single-token steps (greedy).
  double prefill_ms = 0;
  double prefill_tokens_per_s = 0;
  double prefill_flops_per_s = 0;  // 2 · tokens · layer parameters + 2 · output parameters, over prefill time
  double decode_ms_median = 0;     // per token
  double decode_ms_mean = 0;
  double decode_tokens_per_s = 0;  // 1000 / mean
  double decode_bytes_per_s = 0;   // decode_bytes / median step time
  bool logits_finite = true;       // every logit of every step
  model::StepCounts decode_steps;  // how the timed pass's steps ran (recorded graphs and replays, or op by op)

  // Through the Engine (images included when requested).
  double engine_ttft_ms = 0;
  double engine_prefill_tokens_per_s = 0;  // prompt tokens (image soft tokens included) / TTFT
  double engine_decode_ms_per_token = 0;   // mean time between tokens after the first
  double engine_decode_tokens_per_s = 0;

  // Machine, same run.
  int64_t last_level_cache_bytes = 0;
  int64_t stream_buffer_bytes = 0;
  double stream_read_bytes_per_s = 0;
  double stream_copy_bytes_per_s = 0;
  double decode_bandwidth_ratio = 0;  // decode_bytes_per_s / stream_read_bytes_per_s (GPU: decode_roofline_ratio)
  double sgemm_flops_per_s = 0;       // [prompt_tokens × hidden] · [hidden × intermediate]
  double prefill_efficiency = 0;      // prefill_flops_per_s / sgemm_flops_per_s

  double peak_rss_bytes = 0;
  double load_average = -1;  // 1-minute load average at the end of the run; -1 when unknown

  // Prefill at options.prefill_lengths against the GEMM ideal.
  std::string gemm_name;
  std::vector<PrefillPoint> prefill_sweep;

  // The device (DeviceProbe), same run.
  int64_t copy_buffer_bytes = 0;
  double copy_bytes_per_s = 0;       // (read + written) / time of a device-to-device copy
  double decode_roofline_ratio = 0;  // (decode_bytes / median step) / copy_bytes_per_s
  double decode_overhead_ms = 0;     // median step − decode_bytes / copy_bytes_per_s
  int64_t device_total_bytes = 0;
  int64_t device_free_after_load_bytes = 0;  // cudaMemGetInfo once the weights are in
  int64_t weights_device_bytes = 0;          // loom's device allocations once the weights are in
  int64_t peak_device_bytes_before_kv = 0;   // loom's high-water mark through the direct measurements and probes
  int64_t peak_device_bytes = 0;             // … through the whole run, the engine's KV cache included
  int64_t kv_cache_tokens = 0;               // the engine's cache capacity
  int64_t kv_cache_bytes = 0;
};

// Throws loom::Error(kInvalidRequest) for out-of-range options (tokens < 1, images on a text-only model, a prompt
// beyond the model's context).
BenchReport run_bench(const weights::Snapshot& snapshot, const std::string& format, const BenchOptions& options);

nlohmann::ordered_json bench_report_json(const BenchReport& report);

// A storage-format name for a snapshot on disk: "affine-4/g64"-style from its quantization, else the dtype of its
// embedding table ("bf16").
std::string snapshot_format_name(const weights::Snapshot& snapshot);

}  // namespace loom::engine
