// `loom bench`: prefill and decode throughput of a model on this machine (the GPU when present, as `loom run`), next to
// the machine's own figures measured in the same run (src/engine/bench.h): memory bandwidth and sgemm on the CPU; the
// device copy bandwidth (roofline), the cuBLAS bf16 GEMM time of the same matmuls and device memory on a GPU. The
// model comes from a snapshot folder or is built in memory with random weights (--synthetic PRESET --format FMT), so
// no download is needed; --save DIR writes that synthetic snapshot to a folder instead of measuring it.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <optional>

#ifdef LOOM_HAS_CUDA
#include "backend/cuda/device_probe.h"
#endif
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
  std::vector<int64_t> prefill_tokens;
  bool prefill_tokens_given = false;
  std::string save;
  // --tensor-parallel given (1 included: the baseline): the tensor-parallel report instead (tp_bench.h).
  bool tensor_parallel = false;
  Placement placement;
  int streams = 64;
};

// Prefill lengths measured against the GEMM ideal when --prefill-tokens is not given: 512 and 4096 on a GPU (those
// within the model's context), none on the CPU.
std::vector<int64_t> default_prefill_lengths(const backend::Backend& backend, const weights::Snapshot& snapshot) {
  if (backend.device().kind == DeviceKind::kCpu) return {};
  const nlohmann::json& config = snapshot.config();
  const nlohmann::json& text = config.contains("text_config") ? config["text_config"] : config;
  const int64_t context = text.value("max_position_embeddings", int64_t{131072});
  std::vector<int64_t> lengths;
  for (const int64_t length : {int64_t{512}, int64_t{4096}}) {
    if (length < context) lengths.push_back(length);
  }
  return lengths;
}

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
  for (const engine::PrefillPoint& p : r.prefill_sweep) {
    std::cout << fmt::format("prefill {:<5}{:.1f} ms, {:.1f} tokens/s; {} {:.1f} ms: efficiency {:.3f}\n", p.tokens,
                             p.ms, p.tokens_per_s, r.gemm_name, p.ideal_ms, p.efficiency);
  }
  if (r.copy_bytes_per_s > 0) {
    std::cout << fmt::format("device       {} ({} MiB copy: {:.1f} GB/s read + written)\n", r.device_name,
                             r.copy_buffer_bytes >> 20, gb(r.copy_bytes_per_s));
    std::cout << fmt::format("roofline     decode / copy bandwidth {:.3f}, overhead {:.3f} ms per step\n",
                             r.decode_roofline_ratio, r.decode_overhead_ms);
    std::cout << fmt::format(
        "memory       weights {:.3f} GB, peak {:.3f} GB before the KV cache, {:.3f} GB with it ({} tokens, {:.3f} GB)"
        " of {:.3f} GB\n",
        gb(static_cast<double>(r.weights_device_bytes)), gb(static_cast<double>(r.peak_device_bytes_before_kv)),
        gb(static_cast<double>(r.peak_device_bytes)), r.kv_cache_tokens, gb(static_cast<double>(r.kv_cache_bytes)),
        gb(static_cast<double>(r.device_total_bytes)));
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
  if (!options.save.empty()) {
    if (options.synthetic.empty()) fail(ErrorKind::kInvalidRequest, "--save needs --synthetic PRESET");
    model::save_snapshot(*snapshot, options.save);
    std::cout << options.save << '\n';
    return;
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
  // Declared before the model run_bench loads on it, so that it outlives the model.
  const std::unique_ptr<backend::Backend> backend = make_backend(options.placement.device, 0, options.placement.eager);
  std::unique_ptr<backend::DeviceProbe> probe;
#ifdef LOOM_HAS_CUDA
  if (backend->device().kind == DeviceKind::kCuda) probe = backend::cuda::make_device_probe(backend->device().index);
#endif
  engine::BenchOptions bench = options.bench;
  bench.backend = backend.get();
  bench.device_probe = probe.get();
  bench.prefill_lengths =
      options.prefill_tokens_given ? options.prefill_tokens : default_prefill_lengths(*backend, *snapshot);
  const engine::BenchReport report = engine::run_bench(*snapshot, format, bench);
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
                                        "gemma3-4b, gemma3-12b, gemma4-e4b, gemma4-31b or tiny");
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
  command->add_option("--device", options->placement.device, "cuda or cpu (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  command
      ->add_option("--gpu-memory-fraction", options->bench.gpu_memory_fraction,
                   "the engine's KV cache on a GPU takes this fraction of the device memory free after loading")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command
      ->add_option("--prefill-tokens", options->prefill_tokens,
                   "prefill lengths timed against the GEMM ideal (default: 512 and 4096 on a GPU, none on the CPU)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  command->add_option("--save", options->save, "write the --synthetic snapshot to this new folder and exit")
      ->needs(synthetic);
  command->add_flag("--json", options->json, "print one JSON document");
  auto* tensor_parallel = add_tensor_parallel_options(*command, options->placement);
  command->add_option("--streams", options->streams, "with --tensor-parallel: sequences decoding together")
      ->capture_default_str()
      ->needs(tensor_parallel);
  command->callback([options, command] {
    options->tensor_parallel = command->count("--tensor-parallel") > 0;
    options->prefill_tokens_given = command->count("--prefill-tokens") > 0;
    bench(*options);
  });
}

}  // namespace loom::cli
