// The engine end to end on the deterministic test model (test_model.h): outputs against the cache-free reference,
// batching invariance, cancellation, KV block accounting, finish reasons, stop rules, queueing and errors.

#include "engine/engine.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "test_model.h"

namespace loom::engine {
namespace {

using testing::kEos;
using testing::make_tokenizer;
using testing::reference_text;
using testing::TestModel;
using Ids = std::vector<int32_t>;

std::shared_ptr<const text::Tokenizer> tokenizer() {
  static const auto tok = std::make_shared<const text::Tokenizer>(make_tokenizer());
  return tok;
}

Request greedy(Ids prompt, int64_t max_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  return r;
}

Ids prompt_of(int64_t length, int32_t salt) {
  Ids p;
  for (int64_t i = 0; i < length; ++i) p.push_back(static_cast<int32_t>((i * 13 + salt * 5 + 1) % 60));
  return p;
}

// Tokens up to (not including) the first id in `stops`, or `count` tokens.
Ids reference_until(const Ids& prompt, int64_t count, const Ids& stops, bool* stopped) {
  Ids all = reference_text(prompt, count);
  *stopped = false;
  for (size_t i = 0; i < all.size(); ++i) {
    if (std::find(stops.begin(), stops.end(), all[i]) != stops.end()) {
      all.resize(i);
      *stopped = true;
      break;
    }
  }
  return all;
}

TEST(Engine, OneGreedyRequestMatchesTheReference) {
  auto model = std::make_unique<TestModel>();
  Engine engine(std::move(model), tokenizer(), {.kv_tokens = 1024, .step_tokens = 64});
  const Ids prompt = {5, 9, 12, 3, 40};
  const Completion c = engine.submit(greedy(prompt, 20))->collect();
  bool stopped = false;
  const Ids expected = reference_until(prompt, 20, {kEos}, &stopped);
  ASSERT_FALSE(stopped);
  EXPECT_EQ(c.tokens, expected);
  EXPECT_EQ(c.finish.reason, FinishReason::kLength);
  EXPECT_EQ(c.finish.usage.prompt_tokens, 5);
  EXPECT_EQ(c.finish.usage.completion_tokens, 20);
  EXPECT_EQ(c.text, tokenizer()->decode(expected));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().generated_tokens, 20);
}

std::vector<Request> eight_requests() {
  std::vector<Request> out;
  const int64_t lengths[] = {1, 7, 16, 17, 63, 100, 250, 33};
  for (int i = 0; i < 8; ++i) out.push_back(greedy(prompt_of(lengths[i], i), 5 + 3 * i));
  return out;
}

TEST(Engine, ConcurrentRequestsMatchEachRunAlone) {
  const EngineConfig config{.kv_tokens = 4096, .step_tokens = 48};
  std::vector<Ids> alone;
  for (Request& r : eight_requests()) {
    Engine engine(std::make_unique<TestModel>(), tokenizer(), config);
    alone.push_back(engine.submit(std::move(r))->collect().tokens);
  }
  auto model = std::make_unique<TestModel>();
  TestModel* seen = model.get();
  Engine engine(std::move(model), tokenizer(), config);
  std::vector<Request> requests = eight_requests();
  std::vector<Completion> together(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { together[i] = engine.submit(std::move(requests[i]))->collect(); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < 8; ++i) {
    const Request r = eight_requests()[i];
    bool stopped = false;
    EXPECT_EQ(together[i].tokens, alone[i]) << "request " << i;
    EXPECT_EQ(together[i].tokens, reference_until(r.prompt, r.max_tokens, {kEos}, &stopped)) << "request " << i;
  }
  size_t widest = 0;
  for (const auto& record : seen->records()) {
    widest = std::max(widest, record.slices.size());
    EXPECT_LE(static_cast<int64_t>(record.token_ids.size()), 48 + 0) << "step over budget";
  }
  EXPECT_GT(widest, 1u) << "requests were never batched together";
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().requests_finished, 8);
}

TEST(Engine, CancellationTakesEffectAtTheNextStep) {
  auto model = std::make_unique<TestModel>();
  TestModel* seen = model.get();
  std::promise<void> reached, release;
  std::shared_future<void> released = release.get_future().share();
  seen->on_forward = [&](int64_t call) {
    if (call == 3) {
      reached.set_value();
      released.wait();
    }
  };
  Engine engine(std::move(model), tokenizer(), {.kv_tokens = 1024});
  auto stream = engine.submit(greedy({1, 2, 3}, 1000));
  reached.get_future().wait();
  stream->cancel();
  release.set_value();
  const Completion c = stream->collect();
  EXPECT_EQ(c.finish.reason, FinishReason::kCancelled);
  EXPECT_EQ(c.tokens.size(), 3u);  // the step in flight completes; no further step runs it
  EXPECT_EQ(c.finish.usage.completion_tokens, 3);
  EXPECT_EQ(seen->records().size(), 3u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().running, 0);
}

TEST(Engine, CancellingAQueuedRequestFinishesItWithoutRunningIt) {
  auto model = std::make_unique<TestModel>();
  TestModel* seen = model.get();
  std::promise<void> reached, release;
  std::shared_future<void> released = release.get_future().share();
  seen->on_forward = [&](int64_t call) {
    if (call == 1) {
      reached.set_value();
      released.wait();
    }
  };
  Engine engine(std::move(model), tokenizer(), {.kv_tokens = 1024});
  auto first = engine.submit(greedy({1, 2}, 3));
  reached.get_future().wait();
  auto queued = engine.submit(greedy({9, 9, 9}, 50));
  EXPECT_EQ(engine.stats().queued, 1);
  queued->cancel();
  release.set_value();
  const Completion c = queued->collect();
  EXPECT_EQ(c.finish.reason, FinishReason::kCancelled);
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_EQ(first->collect().tokens, reference_text({1, 2}, 3));
  for (const auto& record : seen->records()) {
    for (int32_t id : record.token_ids) EXPECT_NE(id, 9) << "the cancelled request reached the model";
  }
}

TEST(Engine, AFailingForwardFailsItsBatchAndTheEngineGoesOn) {
  auto model = std::make_unique<TestModel>();
  model->on_forward = [](int64_t call) {
    if (call == 2) fail(ErrorKind::kInternal, "device lost");
  };
  Engine engine(std::move(model), tokenizer(), {.kv_tokens = 1024});
  const Completion c = engine.submit(greedy({1, 2}, 10))->collect();
  EXPECT_EQ(c.finish.reason, FinishReason::kError);
  EXPECT_EQ(c.finish.error, "device lost");
  EXPECT_EQ(c.tokens.size(), 1u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.submit(greedy({1, 2}, 10))->collect().tokens, reference_text({1, 2}, 10));
}

TEST(Engine, StopIdsEndWithStopAndAreNotOutput) {
  const Ids prompt = {7, 7, 1};
  const Ids free_run = reference_text(prompt, 12);
  const int32_t stop_id = free_run[5];
  bool stopped = false;
  const Ids expected = reference_until(prompt, 12, {stop_id}, &stopped);
  ASSERT_TRUE(stopped);
  // From the request.
  {
    Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 1024});
    Request r = greedy(prompt, 12);
    r.stop.ids = {stop_id};
    const Completion c = engine.submit(std::move(r))->collect();
    EXPECT_EQ(c.tokens, expected);
    EXPECT_EQ(c.finish.reason, FinishReason::kStop);
    EXPECT_EQ(c.finish.stop_token, stop_id);
    EXPECT_EQ(c.finish.usage.completion_tokens, static_cast<int64_t>(expected.size()) + 1);
    EXPECT_EQ(c.text, tokenizer()->decode(expected));
  }
  // From the model, and ignored on request.
  {
    auto model = std::make_unique<TestModel>();
    model->mutable_info().stop_ids = {stop_id};
    Engine engine(std::move(model), tokenizer(), {.kv_tokens = 1024});
    EXPECT_EQ(engine.submit(greedy(prompt, 12))->collect().tokens, expected);
    Request r = greedy(prompt, 12);
    r.stop.ignore_model_stop_ids = true;
    const Completion c = engine.submit(std::move(r))->collect();
    EXPECT_EQ(c.tokens, free_run);
    EXPECT_EQ(c.finish.reason, FinishReason::kLength);
  }
}

TEST(Engine, StopStringsAreExcludedAcrossTokenBoundaries) {
  const Ids prompt = {3, 1, 4, 1, 5};
  const Ids free_run = reference_text(prompt, 30);
  const std::string full = tokenizer()->decode(free_run);
  // A stop string made of the end of token k's text and the start of token k+1's (ASCII ones: ids 37 and 38 are
  // multi-byte characters).
  size_t k = 4;
  while (free_run[k] == 37 || free_run[k] == 38 || free_run[k + 1] == 37 || free_run[k + 1] == 38) ++k;
  ASSERT_LT(k, 20u);
  const std::string tk = tokenizer()->decode(Ids{free_run[k]});
  const std::string tk1 = tokenizer()->decode(Ids{free_run[k + 1]});
  const std::string stop = tk.substr(tk.size() - 1) + tk1.substr(0, 1);
  const std::string expected = full.substr(0, full.find(stop));
  Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 1024});
  Request r = greedy(prompt, 30);
  r.stop.strings = {"never-there", stop};
  const Completion c = engine.submit(std::move(r))->collect();
  EXPECT_EQ(c.text, expected);
  EXPECT_EQ(c.finish.reason, FinishReason::kStop);
  EXPECT_EQ(c.finish.stop_string, stop);
  EXPECT_LE(c.tokens.size(), k + 2);
  EXPECT_EQ(Ids(c.tokens.begin(), c.tokens.end()), Ids(free_run.begin(), free_run.begin() + c.tokens.size()));
}

TEST(Engine, QueuesWhenTheCacheIsTooSmallForAllAtOnce) {
  auto model = std::make_unique<TestModel>();
  TestModel* seen = model.get();
  // 8 blocks of 16; each request needs up to 4 blocks (20 prompt + 40 generated).
  Engine engine(std::move(model), tokenizer(), {.kv_tokens = 128, .step_tokens = 64});
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<Ids> prompts;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(prompt_of(20, 10 + i));
    streams.push_back(engine.submit(greedy(prompts.back(), 40)));
  }
  for (int i = 0; i < 6; ++i) {
    const Completion c = streams[static_cast<size_t>(i)]->collect();
    bool stopped = false;
    const Ids expected = reference_until(prompts[static_cast<size_t>(i)], 40, {kEos}, &stopped);
    EXPECT_EQ(c.tokens, expected) << "request " << i;
    EXPECT_EQ(c.finish.reason, stopped ? FinishReason::kStop : FinishReason::kLength);
  }
  size_t widest = 0;
  for (const auto& record : seen->records()) widest = std::max(widest, record.slices.size());
  EXPECT_LT(widest, 6u) << "all requests ran at once in a cache too small for them";
  const EngineStats stats = engine.stats();
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_EQ(stats.kv_blocks_total, 8);
  EXPECT_EQ(stats.requests_finished, 6);
}

TEST(Engine, ARequestThatCannotFitAloneFinishesWithAnError) {
  Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 64});
  EXPECT_EQ(engine.max_sequence_tokens(), 64);
  const Completion c = engine.submit(greedy(prompt_of(30, 1), 40))->collect();
  EXPECT_EQ(c.finish.reason, FinishReason::kError);
  EXPECT_EQ(c.finish.error_kind, ErrorKind::kOverloaded);
  EXPECT_NE(c.finish.error.find("64"), std::string::npos) << c.finish.error;
  EXPECT_TRUE(c.tokens.empty());
  // The same prompt with a budget that fits runs normally.
  EXPECT_EQ(engine.submit(greedy(prompt_of(30, 1), 30))->collect().finish.reason, FinishReason::kLength);
}

TEST(Engine, PromptsLongerThanTheContextAreRejectedAtSubmit) {
  Engine engine(std::make_unique<TestModel>(1, false, 100), tokenizer(), {.kv_tokens = 1024});
  try {
    engine.submit(greedy(prompt_of(100, 0), 5));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kContextLength);
    EXPECT_NE(std::string(e.what()).find("100 tokens"), std::string::npos) << e.what();
  }
  // 99 prompt tokens leave room for one generated token: "length" after 1, whatever max_tokens says.
  const Completion c = engine.submit(greedy(prompt_of(99, 0), 5))->collect();
  EXPECT_EQ(c.finish.reason, FinishReason::kLength);
  EXPECT_EQ(c.tokens.size(), 1u);
}

TEST(Engine, InvalidRequestsAreRejectedAtSubmit) {
  Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 1024});
  Request bad = greedy({1, 2}, 5);
  bad.sampling.top_p = 2.0f;
  try {
    engine.submit(std::move(bad));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  EXPECT_THROW(engine.submit(greedy({}, 5)), Error);
  EXPECT_THROW(engine.submit(greedy({1, 64}, 5)), Error);
  EXPECT_THROW(engine.submit(greedy({1}, 0)), Error);
  Request image_outside = greedy({1, 2, 3}, 5);
  ImageInput outside;
  outside.start = 2;
  outside.length = 2;
  image_outside.images.push_back(std::move(outside));
  EXPECT_THROW(engine.submit(std::move(image_outside)), Error);
}

TEST(Engine, SeededSamplingIsReproducibleInsideABatch) {
  Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 2048});
  auto sampled = [](uint64_t seed) {
    Request r = greedy({4, 4, 2}, 40);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = 2;
    return r;
  };
  auto a = engine.submit(sampled(7)), b = engine.submit(sampled(7)), c = engine.submit(sampled(8));
  const Completion ca = a->collect(), cb = b->collect(), cc = c->collect();
  EXPECT_EQ(ca.tokens, cb.tokens);
  EXPECT_NE(ca.tokens, cc.tokens);
  ASSERT_EQ(ca.token_events.size(), 40u);
  for (const StreamEvent& e : ca.token_events) {
    ASSERT_TRUE(e.logprob.has_value());
    ASSERT_EQ(e.top.size(), 2u);
    EXPECT_LE(*e.logprob, e.top[0].logprob);
  }
}

TEST(Engine, ShutdownFinishesUnfinishedRequests) {
  std::shared_ptr<RequestStream> stream;
  {
    Engine engine(std::make_unique<TestModel>(), tokenizer(), {.kv_tokens = 4096});
    stream = engine.submit(greedy({1}, 2000));
  }
  const Completion c = stream->collect();
  EXPECT_TRUE(c.finish.reason == FinishReason::kCancelled || c.finish.reason == FinishReason::kLength);
}

}  // namespace
}  // namespace loom::engine
