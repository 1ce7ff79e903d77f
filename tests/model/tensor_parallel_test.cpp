// Tensor parallelism proven on the CPU: every committed golden snapshot (and its quantized copies) loaded whole and as
// N rank shards (threads + InProcessGroup, each rank its own CpuBackend, model and KV cache). The shards run the
// fixture's prompt with the most images (each rank encodes the images with its replicated vision tower), then greedy
// decode steps; every rank's logits must match the unsharded model's within 1e-4 (per row max|a − b| / max|b|: the
// split matmuls sum in another order) and be bit-identical across ranks, and the greedy tokens must agree. The
// reference is the unsharded model, itself checked against transformers by the golden tests. Splits the shapes do
// not allow must be refused with a message naming what does not divide.
#include "model/tensor_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/in_process_communicator.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "golden_prompt.h"
#include "model/registry.h"
#include "model_test_util.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using testing::GoldenPrompt;

constexpr double kTolerance = 1e-4;
constexpr int kDecodeSteps = 4;

// The logits of one run: the prefill rows, then one row per decode step; and the greedy tokens it chose.
struct RunResult {
  std::vector<std::vector<float>> rows;
  std::vector<int32_t> tokens;
};

std::vector<float> row_of(const Tensor& logits, int64_t r) {
  const int64_t vocab = logits.dim(1);
  return {logits.data_as<float>() + r * vocab, logits.data_as<float>() + (r + 1) * vocab};
}

// The prompt through forward() in one prefill step with every image's rows, then greedy decode steps.
RunResult run_prompt(Model& model, const GoldenPrompt& p, int steps) {
  const auto n = static_cast<int64_t>(p.ids.size());
  backend::KvCache cache({.layers = model.info().kv,
                          .blocks = (n + steps + backend::kDefaultBlockSize - 1) / backend::kDefaultBlockSize + 1},
                         model.backend());
  std::vector<int32_t> table;
  std::vector<ImageRows> images;
  std::vector<backend::TokenRange> spans;
  for (const testing::GoldenImage& image : p.images) {
    images.push_back({image.start, model.encode_image(image.pixels)});
    if (model.info().position_axes == 1) spans.push_back({image.start, image.end});  // Gemma: bidirectional images
  }
  RunResult result;
  int64_t length = 0;
  const auto step = [&](const std::vector<int32_t>& ids, const std::vector<std::vector<int32_t>>& positions,
                        std::span<const ImageRows> rows, bool all_logits) {
    const auto count = static_cast<int64_t>(ids.size());
    cache.reserve(table, length + count);
    backend::Batch batch;
    batch.token_ids = ids;
    batch.position_axes = static_cast<int>(positions.size());
    for (const auto& axis : positions) batch.positions.insert(batch.positions.end(), axis.begin(), axis.end());
    batch.sequences.push_back({.token_offset = 0,
                               .token_count = count,
                               .kv_start = length,
                               .block_table = table,
                               .bidirectional_spans = spans});
    const Tensor logits = model.forward({.batch = &batch, .images = rows, .all_logits = all_logits}, cache);
    length += count;
    for (int64_t r = 0; r < logits.dim(0); ++r) result.rows.push_back(row_of(logits, r));
  };
  step(p.ids, p.positions, images, true);
  for (int k = 0; k < steps; ++k) {
    const std::vector<float>& last = result.rows.back();
    result.tokens.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
    const auto position = static_cast<int32_t>(n + k) + p.rope_delta;
    step({result.tokens.back()}, std::vector<std::vector<int32_t>>(p.positions.size(), {position}), {}, false);
  }
  cache.release(table);
  return result;
}

struct RankRun {
  RunResult result;
  std::vector<backend::KvLayerShape> kv;
  std::string error;
};

// N ranks on N threads, each opening the snapshot, loading its shard on its own backend and running the prompt.
std::vector<RankRun> run_sharded(const std::filesystem::path& dir, const GoldenPrompt& p, int ranks, int steps) {
  backend::cpu::InProcessGroup group(ranks);
  std::vector<RankRun> runs(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      RankRun& run = runs[static_cast<size_t>(r)];
      try {
        const weights::Snapshot snapshot = weights::Snapshot::open(dir);
        ThreadPool pool(1);
        backend::cpu::CpuBackend backend(pool);
        const std::unique_ptr<Model> model = load_model(snapshot, backend, Sharding{&group.rank(r)});
        run.kv = model->info().kv;
        run.result = run_prompt(*model, p, steps);
      } catch (const Error& e) {
        run.error = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return runs;
}

struct TpCase {
  std::string fixture;
  int ranks = 2;
};

void PrintTo(const TpCase& c, std::ostream* os) {
  *os << c.fixture << " over " << c.ranks << " ranks";
}

std::string case_name(const ::testing::TestParamInfo<TpCase>& info) {
  return info.param.fixture + "_x" + std::to_string(info.param.ranks);
}

class TensorParallel : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallel, EveryRankReturnsTheUnshardedLogits) {
  const TpCase& c = GetParam();
  const auto dir = testing::golden_dir() / c.fixture;
  if (!std::filesystem::exists(dir / "config.json") ||
      !std::filesystem::exists(testing::golden_dir() / (c.fixture + "_expected") / "cases.json")) {
    GTEST_SKIP() << "fixture tests/golden/models/" << c.fixture << "{,_expected} is absent";
  }
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cpu::CpuBackend backend;
  const std::unique_ptr<Model> whole = load_model(snapshot, backend);
  const GoldenPrompt prompt = testing::read_golden_prompt(c.fixture, whole->info().position_axes);
  const RunResult want = run_prompt(*whole, prompt, kDecodeSteps);
  const int64_t vocab = whole->info().vocab_size;

  const std::vector<RankRun> runs = run_sharded(dir, prompt, c.ranks, kDecodeSteps);
  const std::string where = c.fixture + " over " + std::to_string(c.ranks) + " ranks (case " + prompt.case_name + ")";
  for (size_t r = 0; r < runs.size(); ++r) {
    const RankRun& run = runs[r];
    ASSERT_EQ(run.error, "") << where << " rank " << r;
    // Per-rank KV shape: kv_heads / N heads, or the one head a rank's query heads read when there are fewer.
    ASSERT_EQ(run.kv.size(), whole->info().kv.size()) << where;
    for (size_t l = 0; l < run.kv.size(); ++l) {
      const int all = whole->info().kv[l].kv_heads;
      EXPECT_EQ(run.kv[l].kv_heads, all % c.ranks == 0 ? all / c.ranks : 1) << where << " layer " << l;
      EXPECT_EQ(run.kv[l].head_dim, whole->info().kv[l].head_dim) << where << " layer " << l;
    }
    ASSERT_EQ(run.result.rows.size(), want.rows.size()) << where;
    for (size_t i = 0; i < want.rows.size(); ++i) {
      ASSERT_EQ(static_cast<int64_t>(run.result.rows[i].size()), vocab) << where;
      EXPECT_LE(testing::row_relative_error(run.result.rows[i].data(), want.rows[i].data(), vocab), kTolerance)
          << where << " rank " << r << " logits row " << i;
      EXPECT_EQ(run.result.rows[i], runs[0].result.rows[i]) << where << " rank " << r << " differs from rank 0";
    }
    EXPECT_EQ(run.result.tokens, want.tokens) << where << " rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, TensorParallel,
    ::testing::Values(TpCase{"tiny_gemma3_vlm", 2}, TpCase{"tiny_gemma3_vlm", 4}, TpCase{"tiny_gemma4_e2b", 2},
                      TpCase{"tiny_gemma4_e2b", 4}, TpCase{"tiny_gemma4_moe", 2}, TpCase{"tiny_gemma4_moe", 4},
                      TpCase{"tiny_qwen3", 2}, TpCase{"tiny_qwen3", 4}, TpCase{"tiny_qwen3vl", 2},
                      TpCase{"tiny_qwen3vl", 4}, TpCase{"tiny_qwen3vl_moe", 2}, TpCase{"tiny_qwen3vl_moe", 4},
                      // Quantized copies: o_proj (64 columns) splits into whole groups of 32 (mx) / 16 (nvfp4).
                      TpCase{"tiny_gemma3_vlm_mxfp4", 2}, TpCase{"tiny_gemma3_vlm_mxfp8", 2},
                      TpCase{"tiny_gemma3_vlm_nvfp4", 2}, TpCase{"tiny_gemma3_vlm_nvfp4", 4},
                      TpCase{"tiny_qwen3vl_mxfp4", 2}),
    case_name);

// Loads rank 0 of an N-rank group (loading runs no collective) and returns the error it throws.
std::string load_error(const std::string& fixture, int ranks) {
  const auto dir = testing::golden_dir() / fixture;
  if (!std::filesystem::exists(dir / "config.json")) return "absent";
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cpu::CpuBackend backend;
  backend::cpu::InProcessGroup group(ranks);
  try {
    (void)load_model(snapshot, backend, Sharding{&group.rank(0)});
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported) << e.what();
    return e.what();
  }
  return "";
}

TEST(TensorParallelErrors, QuantizedColumnsCutInsideAGroupAreRefused) {
  // Affine group 64: o_proj's 64 input columns cannot split over 2 ranks; mxfp4's groups of 32 not over 4.
  for (const auto& [fixture, ranks, group] :
       std::vector<std::tuple<std::string, int, int>>{{"tiny_gemma3_vlm_affine4", 2, 64},
                                                      {"tiny_gemma3_vlm_affine8", 2, 64},
                                                      {"tiny_qwen3vl_affine4", 2, 64},
                                                      {"tiny_gemma3_vlm_mxfp4", 4, 32},
                                                      {"tiny_qwen3vl_mxfp4", 4, 32}}) {
    const std::string message = load_error(fixture, ranks);
    if (message == "absent") continue;
    EXPECT_NE(message.find("o_proj"), std::string::npos) << fixture << ": " << message;
    EXPECT_NE(message.find("groups of " + std::to_string(group)), std::string::npos) << fixture << ": " << message;
  }
}

TEST(TensorParallelErrors, HeadsTheRanksDoNotDivideAreRefused) {
  for (const char* fixture : {"tiny_gemma3_vlm", "tiny_gemma4_e2b", "tiny_qwen3vl"}) {
    const std::string message = load_error(fixture, 3);
    if (message == "absent") continue;
    EXPECT_NE(message.find("4 attention heads"), std::string::npos) << fixture << ": " << message;
    EXPECT_NE(message.find("3 tensor-parallel ranks"), std::string::npos) << fixture << ": " << message;
  }
}

TEST(TensorParallelErrors, KvHeadsThatNeitherDivideNorAreDividedAreRefused) {
  const Sharding none;
  backend::cpu::InProcessGroup group(4);
  const Sharding four{&group.rank(3)};
  // 8 query heads, 4 KV heads over 4 ranks: one each; 8 over 4 with 2 KV heads: the KV head of each pair of ranks.
  EXPECT_EQ(shard_heads(four, 8, 4, "t").kv_begin, 3);
  EXPECT_EQ(shard_heads(four, 8, 2, "t").kv_heads, 1);
  EXPECT_EQ(shard_heads(four, 8, 2, "t").kv_begin, 1);
  EXPECT_EQ(shard_heads(none, 8, 2, "t").kv_heads, 2);
  backend::cpu::InProcessGroup six(6);
  // 12 heads, 4 KV heads, 6 ranks: 4 does not divide by 6, nor 6 by 4.
  EXPECT_THROW(shard_heads(Sharding{&six.rank(0)}, 12, 4, "t"), Error);
  EXPECT_THROW(even_shard(four, 30, "intermediate_size"), Error);
}

TEST(TensorParallel, AGroupOfOneIsTheUnshardedModelBitForBit) {
  const auto dir = testing::golden_dir() / "tiny_qwen3";
  if (!std::filesystem::exists(dir / "config.json")) GTEST_SKIP() << "fixture " << dir << " is absent";
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cpu::CpuBackend backend;
  backend::cpu::InProcessGroup group(1);
  const std::unique_ptr<Model> whole = load_model(snapshot, backend);
  const std::unique_ptr<Model> one = load_model(snapshot, backend, Sharding{&group.rank(0)});
  const GoldenPrompt prompt = testing::read_golden_prompt("tiny_qwen3", 1);
  const RunResult a = run_prompt(*whole, prompt, 2), b = run_prompt(*one, prompt, 2);
  EXPECT_EQ(a.rows, b.rows);
}

// A row-parallel Linear (o / down with a bias and output clamps, as Qwen3 attention_bias and Gemma 4's clippable
// linears have): each rank holds some input columns; the bias and the clamp must apply once, after the reduce. The
// column-parallel partner keeps its rows of the bias. Against the formula computed here in double.
TEST(TensorParallel, RowParallelBiasAndClampApplyOnceAfterTheReduce) {
  constexpr int64_t kIn = 8, kOut = 3, kRows = 2, kRanks = 2;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1, 1);
  weights::Weight w;
  w.rows = kOut;
  w.cols = kIn;
  w.values = Tensor::zeros(DType::kF32, {kOut, kIn});
  for (float& v : w.values.span<float>()) v = dist(rng);
  Tensor bias = Tensor::zeros(DType::kF32, {kOut});
  for (float& v : bias.span<float>()) v = 2.0f * dist(rng);
  Tensor x = Tensor::zeros(DType::kF32, {kRows, kIn});
  for (float& v : x.span<float>()) v = dist(rng);
  const LinearClip clip{.output_min = -0.75f, .output_max = 0.75f};

  backend::cpu::InProcessGroup group(kRanks);
  std::vector<Tensor> outs(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      ThreadPool pool(1);
      backend::cpu::CpuBackend backend(pool);
      const ShardRange part = even_shard(Sharding{&group.rank(r)}, kIn, "in");
      const Linear layer{weight_cols(w, part.begin, part.count, "o_proj"), bias, clip};
      Tensor local_x = Tensor::zeros(DType::kF32, {kRows, part.count});
      for (int64_t i = 0; i < kRows; ++i) {
        std::copy_n(x.data_as<float>() + i * kIn + part.begin, part.count, local_x.data_as<float>() + i * part.count);
      }
      outs[static_cast<size_t>(r)] = Tensor::zeros(DType::kF32, {kRows, kOut});
      linear(backend, layer, local_x, outs[static_cast<size_t>(r)], nullptr, &group.rank(r));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    for (int64_t i = 0; i < kRows; ++i) {
      for (int64_t o = 0; o < kOut; ++o) {
        double sum = bias.data_as<float>()[o];
        for (int64_t c = 0; c < kIn; ++c)
          sum += double{x.data_as<float>()[i * kIn + c]} * w.values.data_as<float>()[o * kIn + c];
        const double want = std::clamp(sum, -0.75, 0.75);
        EXPECT_NEAR(outs[static_cast<size_t>(r)].data_as<float>()[i * kOut + o], want, 1e-5)
            << "rank " << r << " row " << i << " output " << o;
      }
    }
  }
}

// The vocab-parallel embedding and lm_head with a vocabulary the ranks do not divide (10 over 3: shards of 4, the
// last padded with 2 zero rows), against the unsharded backend ops on the whole table.
TEST(TensorParallel, VocabParallelEmbeddingAndLogitsPadAndTrim) {
  constexpr int64_t kVocab = 10, kHidden = 6, kRanks = 3;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1, 1);
  weights::Weight table;
  table.rows = kVocab;
  table.cols = kHidden;
  table.values = Tensor::zeros(DType::kF32, {kVocab, kHidden});
  for (float& v : table.values.span<float>()) v = dist(rng);
  const std::vector<int32_t> ids = {9, 0, 4, 3, 8, 7};
  const auto tokens = static_cast<int64_t>(ids.size());
  Tensor rows = Tensor::zeros(DType::kF32, {2, kHidden});
  for (float& v : rows.span<float>()) v = dist(rng);

  backend::cpu::CpuBackend whole;
  Tensor want_embed = Tensor::zeros(DType::kF32, {tokens, kHidden});
  whole.embedding(table, ids, 0.5f, want_embed);
  Tensor want_logits = Tensor::zeros(DType::kF32, {2, kVocab});
  whole.matmul(rows, table, want_logits);
  whole.softcap(want_logits, 3.0f, want_logits);

  backend::cpu::InProcessGroup group(kRanks);
  std::vector<Tensor> embeds(kRanks), logits(kRanks);
  std::vector<int> bad_id_refused(kRanks, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      ThreadPool pool(1);
      backend::cpu::CpuBackend backend(pool);
      const Sharding sharding{&group.rank(r)};
      const ShardRange part = vocab_shard(sharding, kVocab);
      const weights::Weight shard = weight_rows(table, part.begin, part.count, "table");
      embeds[static_cast<size_t>(r)] = Tensor::zeros(DType::kF32, {tokens, kHidden});
      embed_tokens(backend, sharding, shard, kVocab, ids, 0.5f, embeds[static_cast<size_t>(r)]);
      Scratch scratch(&backend);
      logits[static_cast<size_t>(r)] = lm_head_logits(backend, sharding, shard, kVocab, rows, 3.0f, scratch);
      try {  // every rank checks the ids before any collective, so all of them throw
        Tensor out = Tensor::zeros(DType::kF32, {1, kHidden});
        embed_tokens(backend, sharding, shard, kVocab, std::vector<int32_t>{static_cast<int32_t>(kVocab)}, 1.0f, out);
      } catch (const Error& e) {
        bad_id_refused[static_cast<size_t>(r)] = e.kind() == ErrorKind::kInvalidRequest;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    const Tensor& e = embeds[static_cast<size_t>(r)];
    EXPECT_EQ(std::vector<float>(e.data_as<float>(), e.data_as<float>() + e.elements()),
              std::vector<float>(want_embed.data_as<float>(), want_embed.data_as<float>() + want_embed.elements()))
        << "rank " << r << ": the reduced lookup is the whole table's row exactly";
    const Tensor& l = logits[static_cast<size_t>(r)];
    ASSERT_EQ(l.shape(), (Shape{2, kVocab})) << "rank " << r;
    for (int64_t i = 0; i < 2; ++i) {
      EXPECT_LE(testing::row_relative_error(l.data_as<float>() + i * kVocab, want_logits.data_as<float>() + i * kVocab,
                                            kVocab),
                1e-6)
          << "rank " << r << " row " << i;
    }
    EXPECT_EQ(bad_id_refused[static_cast<size_t>(r)], 1) << "rank " << r;
  }
}

}  // namespace
}  // namespace loom::model
