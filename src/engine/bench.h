#pragma once
// `loom bench` as a library: loads a model on the CPU backend and measures prefill and decode twice — through
// Model::forward directly (a clean per-token figure) and through the Engine (what a user of `loom run` or the server
// gets, sampler and scheduling included) — next to machine figures measured in the same run: a STREAM-style memory
// read bandwidth and OpenBLAS sgemm on the model's MLP shape. Benchmarks report ratios of figures from one run;
// nothing here asserts absolute times.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

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
};

WeightCensus weight_census(const weights::Snapshot& snapshot);

struct BenchOptions {
  int64_t prompt_tokens = 128;
  int64_t gen_tokens = 32;
  int images = 0;         // synthetic images in the engine's prompt (vision models only)
  uint64_t seed = 1;      // prompt ids and image pixels
  bool probes = true;     // measure memory bandwidth and sgemm
  int probe_repeats = 5;  // best of this many passes
};

struct BenchReport {
  std::string model;  // snapshot name
  std::string architecture;
  std::string format;  // "bf16", "affine-4/g64", …
  int threads = 0;     // loom's thread pool
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
  double decode_bandwidth_ratio = 0;  // decode_bytes_per_s / stream_read_bytes_per_s
  double sgemm_flops_per_s = 0;       // [prompt_tokens × hidden] · [hidden × intermediate]
  double prefill_efficiency = 0;      // prefill_flops_per_s / sgemm_flops_per_s

  double peak_rss_bytes = 0;
  double load_average = -1;  // 1-minute load average at the end of the run; -1 when unknown
};

// Throws loom::Error(kInvalidRequest) for out-of-range options (tokens < 1, images on a text-only model, a prompt
// beyond the model's context).
BenchReport run_bench(const weights::Snapshot& snapshot, const std::string& format, const BenchOptions& options);

nlohmann::ordered_json bench_report_json(const BenchReport& report);

// A storage-format name for a snapshot on disk: "affine-4/g64"-style from its quantization, else the dtype of its
// embedding table ("bf16").
std::string snapshot_format_name(const weights::Snapshot& snapshot);

}  // namespace loom::engine
