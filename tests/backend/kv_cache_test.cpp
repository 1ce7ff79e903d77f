#include "backend/kv_cache.h"

#include <gtest/gtest.h>

#include "backend/batch.h"
#include "core/error.h"

namespace loom::backend {
namespace {

TEST(KvCache, ReservesWholeBlocksAndReleasesThem) {
  KvCache cache({.layers = {{2, 8}}, .blocks = 5});
  std::vector<int32_t> a, b;
  cache.reserve(a, 1);
  EXPECT_EQ(a.size(), 1u);
  cache.reserve(a, 16);
  EXPECT_EQ(a.size(), 1u);
  cache.reserve(a, 17);
  EXPECT_EQ(a.size(), 2u);
  cache.reserve(b, 48);
  EXPECT_EQ(cache.free_blocks(), 0);
  for (int32_t block : a) EXPECT_EQ(std::count(b.begin(), b.end(), block), 0) << "block handed out twice";
  cache.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(cache.free_blocks(), 2);
}

TEST(KvCache, OutOfBlocksThrowsOverloadedAndChangesNothing) {
  KvCache cache({.layers = {{1, 4}}, .blocks = 2});
  std::vector<int32_t> table;
  cache.reserve(table, 10);
  try {
    cache.reserve(table, 100);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOverloaded);
  }
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(cache.free_blocks(), 1);
}

TEST(KvCache, ReleasingAFreeBlockIsAnError) {
  KvCache cache({.layers = {{1, 4}}, .blocks = 2});
  std::vector<int32_t> table;
  cache.reserve(table, 1);
  std::vector<int32_t> copy = table;
  cache.release(table);
  EXPECT_THROW(cache.release(copy), Error);
}

TEST(KvCache, LayersMayDifferInShape) {
  KvCache cache({.layers = {{1, 256}, {1, 512}}, .blocks = 3});
  std::vector<int32_t> table;
  cache.reserve(table, 16);
  // Distinct, non-overlapping storage per layer and block.
  EXPECT_EQ(cache.keys(1, 1) - cache.keys(1, 0), 16 * 512);
  EXPECT_EQ(cache.keys(0, 1) - cache.keys(0, 0), 16 * 256);
  EXPECT_THROW(cache.keys(2, 0), Error);
}

TEST(Batch, ValidateCatchesInconsistentSlices) {
  Batch batch;
  batch.token_ids = {1, 2, 3};
  batch.positions = {0, 1, 0};
  batch.sequences = {{.token_offset = 0, .token_count = 2, .kv_start = 0, .block_table = {0}},
                     {.token_offset = 2, .token_count = 1, .kv_start = 16, .block_table = {1, 2}}};
  EXPECT_NO_THROW(batch.validate(16));
  Batch gap = batch;
  gap.sequences[1].token_offset = 3;
  EXPECT_THROW(gap.validate(16), Error);
  Batch short_table = batch;
  short_table.sequences[1].block_table = {1};  // token 16 needs a second block
  EXPECT_THROW(short_table.validate(16), Error);
  Batch bad_span = batch;
  bad_span.sequences[0].bidirectional_spans = {{1, 5}};  // ends beyond the 2 tokens held
  EXPECT_THROW(bad_span.validate(16), Error);
  Batch bad_positions = batch;
  bad_positions.position_axes = 3;
  EXPECT_THROW(bad_positions.validate(16), Error);
}

}  // namespace
}  // namespace loom::backend
