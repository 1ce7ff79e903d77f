#include "engine/tp_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "core/error.h"
#include "engine/bench_steps.h"
#include "engine/engine.h"

namespace loom::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::vector<int32_t> random_prompt(std::mt19937_64& random, const model::ModelInfo& info, int64_t tokens) {
  const auto vocab = static_cast<int32_t>(std::min<int64_t>(info.vocab_size, 1 << 30));
  const int32_t low = std::min(10, vocab - 1);
  std::uniform_int_distribution<int32_t> id(low, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  for (int32_t& t : ids) {
    t = id(random);
    if (t == info.image_token_id) t = low;
  }
  return ids;
}

// One all_reduce_sum of [rows, hidden] on the group, in microseconds: every rank issues the same calls at once; rank
// 0's wall time over `iterations` calls, the last one waited for (a read-back orders after it on the device).
double time_all_reduce(model::TensorParallelModel& model, int64_t rows, int64_t hidden, int iterations) {
  double us = 0;
  model.run_on_ranks([&](int rank, backend::Communicator& comm) {
    backend::Backend& backend = model.group().backend(rank);
    Tensor x = backend.allocate(DType::kF32, {rows, hidden});
    for (int i = 0; i < 3; ++i) comm.all_reduce_sum(x);
    (void)backend.to_host(x);
    const auto start = Clock::now();
    for (int i = 0; i < iterations; ++i) comm.all_reduce_sum(x);
    (void)backend.to_host(x);
    if (rank == 0) us = ms_between(start, Clock::now()) * 1000.0 / iterations;
  });
  return us;
}

}  // namespace

TpBenchReport run_tp_bench(std::unique_ptr<model::TensorParallelModel> model, const TpBenchOptions& options) {
  if (options.prompt_tokens < 1 || options.gen_tokens < 2 || options.streams < 1 || options.stream_prompt_tokens < 1 ||
      options.all_reduce_iterations < 1) {
    fail(ErrorKind::kInvalidRequest,
         "tensor-parallel bench: --prompt-tokens and --streams must be >= 1, --gen-tokens >= 2, got {}, {}, {}",
         options.prompt_tokens, options.streams, options.gen_tokens);
  }
  const model::ModelInfo info = model->info();
  if (options.prompt_tokens + options.gen_tokens + 2 > info.context_length) {
    fail(ErrorKind::kInvalidRequest, "{} prompt tokens + {} generated exceed the model context of {}",
         options.prompt_tokens, options.gen_tokens, info.context_length);
  }
  TpBenchReport report;
  report.ranks = model->ranks();
  report.architecture = info.architecture;
  report.hidden = info.hidden_size;
  report.streams = options.streams;
  std::mt19937_64 random(options.seed);

  // --- Batch 1 through Model::forward: a prefill, two untimed decode steps (scratch buffers grow), then timed ones.
  {
    const int block = backend::kDefaultBlockSize;
    const int64_t total = options.prompt_tokens + options.gen_tokens + 3;
    backend::KvCache cache({.layers = info.kv, .blocks = (total + block - 1) / block, .block_size = block},
                           model->backend());
    std::vector<int32_t> table;
    cache.reserve(table, total);
    const std::vector<int32_t> prompt = random_prompt(random, info, options.prompt_tokens);
    const backend::Batch prefill = single_sequence(prompt, 0, table, info.position_axes);
    auto start = Clock::now();
    Tensor logits = model->forward({.batch = &prefill}, cache);
    report.prefill_ms = ms_between(start, Clock::now());
    report.logits_finite = all_finite(logits);
    int32_t next = argmax(logits);
    std::vector<double> steps;
    for (int64_t g = 0; g < options.gen_tokens + 2; ++g) {
      const backend::Batch step = single_sequence({&next, 1}, options.prompt_tokens + g, table, info.position_axes);
      start = Clock::now();
      logits = model->forward({.batch = &step}, cache);
      if (g >= 2) steps.push_back(ms_between(start, Clock::now()));
      report.logits_finite = report.logits_finite && all_finite(logits);
      next = argmax(logits);
    }
    report.decode_collectives = model->last_step_collectives();
    report.decode_ms_median = median(steps);
    report.decode_tokens_per_s =
        1000.0 * static_cast<double>(steps.size()) / std::accumulate(steps.begin(), steps.end(), 0.0);
  }

  // --- The all-reduces of one decode step, timed on the group.
  if (info.hidden_size > 0) {
    report.all_reduce_us_batch1 = time_all_reduce(*model, 1, info.hidden_size, options.all_reduce_iterations);
    report.all_reduce_us_batch =
        time_all_reduce(*model, options.streams, info.hidden_size, options.all_reduce_iterations);
    const auto per_step = static_cast<double>(report.decode_collectives.all_reduces);
    report.all_reduce_ms_per_step_batch1 = report.all_reduce_us_batch1 * per_step / 1000.0;
    report.all_reduce_ms_per_step_batch = report.all_reduce_us_batch * per_step / 1000.0;
    if (report.decode_ms_median > 0) {
      report.all_reduce_share_batch1 = report.all_reduce_ms_per_step_batch1 / report.decode_ms_median;
    }
  }

  // --- `streams` sequences decoding together through the Engine.
  {
    const int64_t per_sequence = options.stream_prompt_tokens + options.gen_tokens + backend::kDefaultBlockSize;
    EngineConfig config;
    config.kv_tokens = per_sequence * options.streams;
    config.max_running = options.streams;
    config.step_tokens = std::max<int64_t>(512, options.streams);
    Engine engine(std::move(model), nullptr, config);
    struct Timeline {
      std::vector<Clock::time_point> tokens;
      std::string error;
    };
    std::vector<Timeline> timelines(static_cast<size_t>(options.streams));
    std::vector<std::shared_ptr<RequestStream>> streams;
    const auto start = Clock::now();
    for (int s = 0; s < options.streams; ++s) {
      Request request;
      request.prompt = random_prompt(random, info, options.stream_prompt_tokens);
      request.max_tokens = options.gen_tokens;
      request.stop.ignore_model_stop_ids = true;
      streams.push_back(engine.submit(std::move(request)));
    }
    std::vector<std::thread> readers;
    for (int s = 0; s < options.streams; ++s) {
      readers.emplace_back([&, s] {
        Timeline& timeline = timelines[static_cast<size_t>(s)];
        while (auto event = streams[static_cast<size_t>(s)]->next()) {
          if (event->kind == StreamEvent::Kind::kFinish) {
            if (event->reason == FinishReason::kError) timeline.error = event->error;
            break;
          }
          timeline.tokens.push_back(Clock::now());
        }
      });
    }
    for (auto& reader : readers) reader.join();
    const auto end = Clock::now();
    report.streams_wall_s = ms_between(start, end) / 1000.0;
    for (const Timeline& timeline : timelines) {
      if (!timeline.error.empty()) fail(ErrorKind::kInternal, "a bench stream failed: {}", timeline.error);
      if (timeline.tokens.empty()) fail(ErrorKind::kInternal, "a bench stream generated no token");
      report.stream_tokens += static_cast<int64_t>(timeline.tokens.size());
    }
    // The window in which every stream was decoding: from the last first token to the first last token.
    Clock::time_point from = timelines.front().tokens.front(), to = timelines.front().tokens.back();
    for (const Timeline& timeline : timelines) {
      from = std::max(from, timeline.tokens.front());
      to = std::min(to, timeline.tokens.back());
    }
    int64_t inside = 0;
    for (const Timeline& timeline : timelines) {
      inside += std::count_if(timeline.tokens.begin(), timeline.tokens.end(),
                              [&](Clock::time_point t) { return t > from && t <= to; });
    }
    const double window_ms = ms_between(from, to);
    if (window_ms > 0 && inside > 0) {
      report.streams_decode_tokens_per_s = static_cast<double>(inside) * 1000.0 / window_ms;
    } else {
      // Too short to find a common window (a single step, or one stream): every token after the first per stream.
      const double decode_ms = ms_between(from, end);
      const int64_t after_first = report.stream_tokens - options.streams;
      report.streams_decode_tokens_per_s = decode_ms > 0 ? static_cast<double>(after_first) * 1000.0 / decode_ms : 0;
    }
  }
  return report;
}

nlohmann::ordered_json tp_bench_report_json(const TpBenchReport& r) {
  nlohmann::ordered_json j;
  j["ranks"] = r.ranks;
  j["architecture"] = r.architecture;
  j["hidden"] = r.hidden;
  j["batch1"] = {{"prefill_ms", r.prefill_ms},
                 {"decode_ms_per_token_median", r.decode_ms_median},
                 {"decode_tokens_per_s", r.decode_tokens_per_s},
                 {"logits_finite", r.logits_finite}};
  j["decode_step_collectives"] = {{"all_reduces", r.decode_collectives.all_reduces},
                                  {"all_gathers", r.decode_collectives.all_gathers},
                                  {"broadcasts", r.decode_collectives.broadcasts}};
  j["streams"] = {{"count", r.streams},
                  {"tokens", r.stream_tokens},
                  {"decode_tokens_per_s", r.streams_decode_tokens_per_s},
                  {"wall_s", r.streams_wall_s}};
  j["all_reduce"] = {{"us_batch1", r.all_reduce_us_batch1},
                     {"us_batch", r.all_reduce_us_batch},
                     {"ms_per_decode_step_batch1", r.all_reduce_ms_per_step_batch1},
                     {"ms_per_decode_step_batch", r.all_reduce_ms_per_step_batch},
                     {"share_of_batch1_decode_step", r.all_reduce_share_batch1}};
  return j;
}

}  // namespace loom::engine
