// `loom bench`: prefill and decode throughput of a model on this machine, next to the machine's own memory bandwidth
// and sgemm throughput measured in the same run (src/engine/bench.h). The model comes from a snapshot folder or is
// built in memory with random weights (--synthetic PRESET --format FMT), so no download is needed.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/device_choice.h"
#include "core/error.h"
#include "engine/bench.h"
#include "engine/tp_bench.h"
#include "model/synthetic.h"
#include "weights/snapshot.h"

namespace loom::cli {
namespace {

struct BenchCommandOptions {
  std::string model;
  std::string synthetic;
  std::string format = "bf16";
  engine::BenchOptions bench;
  bool json = false;
  // --tensor-parallel given (1 included: the baseline): the tensor-parallel report instead (tp_bench.h).
  bool tensor_parallel = false;
  Placement placement;
  int streams = 64;
};

void print_tp_table(const engine::TpBenchReport& r) {
  std::cout << fmt::format("model        {} on {} rank{}\n", r.architecture, r.ranks, r.ranks == 1 ? "" : "s");
  std::cout << fmt::format("batch 1      {:.2f} ms/token median, {:.2f} tokens/s (prefill {:.1f} ms)\n",
                           r.decode_ms_median, r.decode_tokens_per_s, r.prefill_ms);
  std::cout << fmt::format("streams      {} decoding together: {:.1f} tokens/s ({} tokens in {:.2f} s)\n", r.streams,
                           r.streams_decode_tokens_per_s, r.stream_tokens, r.streams_wall_s);
  std::cout << fmt::format("collectives  per decode step: {} all-reduce, {} all-gather, {} broadcast\n",
                           r.decode_collectives.all_reduces, r.decode_collectives.all_gathers,
                           r.decode_collectives.broadcasts);
  std::cout << fmt::format(
      "all-reduce   [1, {}] {:.1f} us, [{}, {}] {:.1f} us; per decode step {:.3f} ms (batch 1, {:.0f}% of the step), "
      "{:.3f} ms (batch {})\n",
      r.hidden, r.all_reduce_us_batch1, r.streams, r.hidden, r.all_reduce_us_batch, r.all_reduce_ms_per_step_batch1,
      100.0 * r.all_reduce_share_batch1, r.all_reduce_ms_per_step_batch, r.streams);
  if (!r.logits_finite) std::cout << "             (non-finite logits!)\n";
}

void print_table(const engine::BenchReport& r) {
  const auto gb = [](double bytes) { return bytes / 1e9; };
  std::cout << fmt::format("model        {} ({}, {})\n", r.model, r.architecture, r.format);
  std::cout << fmt::format("weights      {:.3f} GB stored, {:.3f} GB read per decode token\n",
                           gb(r.weights.stored_bytes), gb(r.weights.decode_bytes));
  std::cout << fmt::format("threads      {} (OpenBLAS {}), load average {:.2f}\n", r.threads, r.blas_threads,
                           r.load_average);
  std::cout << fmt::format("prefill      {} tokens: {:.1f} ms, {:.1f} tokens/s, {:.1f} GFLOP/s\n", r.prompt_tokens,
                           r.prefill_ms, r.prefill_tokens_per_s, r.prefill_flops_per_s / 1e9);
  std::cout << fmt::format(
      "decode       {} tokens: {:.2f} ms/token median ({:.2f} mean), {:.2f} tokens/s, {:.2f} GB/s\n", r.gen_tokens,
      r.decode_ms_median, r.decode_ms_mean, r.decode_tokens_per_s, gb(r.decode_bytes_per_s));
  std::cout << fmt::format(
      "engine       TTFT {:.1f} ms ({} prompt tokens, {} images), {:.2f} ms/token, {:.2f} tokens/s\n", r.engine_ttft_ms,
      r.prompt_tokens + r.image_tokens, r.images, r.engine_decode_ms_per_token, r.engine_decode_tokens_per_s);
  if (r.stream_read_bytes_per_s > 0) {
    std::cout << fmt::format("memory       read {:.2f} GB/s, copy {:.2f} GB/s ({} MiB buffer)\n",
                             gb(r.stream_read_bytes_per_s), gb(r.stream_copy_bytes_per_s), r.stream_buffer_bytes >> 20);
    std::cout << fmt::format(
        "ratios       decode / memory read {:.2f}, prefill / sgemm {:.2f} (sgemm {:.1f} GFLOP/s)\n",
        r.decode_bandwidth_ratio, r.prefill_efficiency, r.sgemm_flops_per_s / 1e9);
  }
  std::cout << fmt::format("peak RSS     {:.3f} GB{}\n", gb(r.peak_rss_bytes),
                           r.logits_finite ? "" : "  (non-finite logits!)");
}

void bench(const BenchCommandOptions& options) {
  if (options.model.empty() == options.synthetic.empty()) {
    fail(ErrorKind::kInvalidRequest, "give either --model DIR or --synthetic PRESET (one of {})",
         fmt::join(model::synthetic_presets(), ", "));
  }
  if (options.tensor_parallel) {
    if (options.bench.images > 0) fail(ErrorKind::kInvalidRequest, "--images is not measured with --tensor-parallel");
    check_placement(options.placement, gpu_count());
  }
  std::optional<weights::Snapshot> snapshot;
  std::string format;
  if (!options.synthetic.empty()) {
    const model::SyntheticFormat parsed = model::parse_synthetic_format(options.format);
    model::synthetic_config(options.synthetic);  // an unknown preset fails before anything is built
    snapshot.emplace(model::synthetic_snapshot(options.synthetic, parsed, options.bench.seed));
    format = options.format;
  } else {
    snapshot.emplace(weights::Snapshot::open(options.model));
    format = engine::snapshot_format_name(*snapshot);
  }
  if (options.tensor_parallel) {
    engine::TpBenchOptions tp;
    tp.prompt_tokens = options.bench.prompt_tokens;
    tp.gen_tokens = options.bench.gen_tokens;
    tp.streams = options.streams;
    tp.seed = options.bench.seed;
    const engine::TpBenchReport report =
        engine::run_tp_bench(model::load_tensor_parallel(*snapshot, make_rank_group(options.placement)), tp);
    if (options.json) {
      std::cout << engine::tp_bench_report_json(report).dump(2) << '\n';
    } else {
      print_tp_table(report);
    }
    if (!report.logits_finite) exit_code = 3;
    return;
  }
  const engine::BenchReport report = engine::run_bench(*snapshot, format, options.bench);
  if (options.json) {
    std::cout << engine::bench_report_json(report).dump(2) << '\n';
  } else {
    print_table(report);
  }
  if (!report.logits_finite) exit_code = 3;
}

}  // namespace

void register_bench_command(CLI::App& app) {
  auto options = std::make_shared<BenchCommandOptions>();
  auto* command = app.add_subcommand("bench", "Measure prefill and decode speed against this machine's bandwidth");
  auto* model = command->add_option("--model", options->model, "snapshot folder")->check(CLI::ExistingDirectory);
  auto* synthetic = command->add_option("--synthetic", options->synthetic,
                                        "build random weights in memory for a preset: gemma3-270m, gemma3-1b, "
                                        "gemma3-4b, gemma3-12b or tiny");
  model->excludes(synthetic);
  command
      ->add_option("--format", options->format,
                   "weight format of --synthetic: f32, f16, bf16, affine-B[/gG], mxfp4, mxfp8, nvfp4")
      ->capture_default_str()
      ->needs(synthetic);
  command->add_option("--prompt-tokens", options->bench.prompt_tokens, "prompt length")->capture_default_str();
  command->add_option("--gen-tokens", options->bench.gen_tokens, "tokens to generate")->capture_default_str();
  command->add_option("--images", options->bench.images, "synthetic images in the prompt (vision models)")
      ->capture_default_str();
  command->add_option("--seed", options->bench.seed, "seed of the prompt, images and synthetic weights")
      ->capture_default_str();
  command->add_option("--repeats", options->bench.probe_repeats, "passes of the bandwidth and sgemm probes (best)")
      ->capture_default_str();
  command->add_flag("--json", options->json, "print one JSON document");
  auto* tensor_parallel = add_tensor_parallel_options(*command, options->placement);
  command->add_option("--streams", options->streams, "with --tensor-parallel: sequences decoding together")
      ->capture_default_str()
      ->needs(tensor_parallel);
  command->callback([options, command] {
    options->tensor_parallel = command->count("--tensor-parallel") > 0;
    bench(*options);
  });
}

}  // namespace loom::cli
