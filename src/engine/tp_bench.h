#pragma once
// `loom bench --tensor-parallel N`: what splitting a model over N ranks buys and costs, measured on the loaded
// tensor-parallel model: batch-1 decode (Model::forward, one token per step), the throughput of many sequences
// decoding together through the Engine, and the time the all-reduces of one decode step take (timed on the group
// itself on the activation shapes of batch 1 and of the concurrent batch, times the all-reduces one decode step
// calls, counted on the rank's communicator). Run with N = 1 for the baseline on one GPU.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "model/tensor_parallel_model.h"

namespace loom::engine {

struct TpBenchOptions {
  int64_t prompt_tokens = 128;  // batch-1 prompt
  int64_t gen_tokens = 32;      // tokens each decode measurement generates
  int streams = 64;             // sequences decoding together through the Engine
  int64_t stream_prompt_tokens = 32;
  int all_reduce_iterations = 100;  // timed calls per shape
  uint64_t seed = 1;
};

struct TpBenchReport {
  int ranks = 0;
  std::string architecture;
  int64_t hidden = 0;

  // Batch 1, Model::forward.
  double prefill_ms = 0;
  double decode_ms_median = 0;
  double decode_tokens_per_s = 0;  // 1000 / mean step time
  bool logits_finite = true;
  // Collectives one decode step called (rank 0; all ranks call the same).
  model::CollectiveCounts decode_collectives;

  // `streams` sequences through the Engine: tokens generated while all of them were decoding, over that time.
  int streams = 0;
  int64_t stream_tokens = 0;               // every token generated
  double streams_decode_tokens_per_s = 0;  // aggregate
  double streams_wall_s = 0;               // submit to the last finish

  // all_reduce_sum on the group: one call, in microseconds, of [1, hidden] and [streams, hidden].
  double all_reduce_us_batch1 = 0;
  double all_reduce_us_batch = 0;
  // × decode_collectives.all_reduces: the all-reduce time of one decode step, and its share of the batch-1 step.
  double all_reduce_ms_per_step_batch1 = 0;
  double all_reduce_ms_per_step_batch = 0;
  double all_reduce_share_batch1 = 0;
};

// Takes the model (the Engine phase owns it last). Throws kInvalidRequest for options out of range.
TpBenchReport run_tp_bench(std::unique_ptr<model::TensorParallelModel> model, const TpBenchOptions& options);

nlohmann::ordered_json tp_bench_report_json(const TpBenchReport& report);

}  // namespace loom::engine
