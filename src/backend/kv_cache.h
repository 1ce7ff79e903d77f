#pragma once
// A paged key/value cache: every layer owns one arena of fixed-size blocks (block_size tokens each), and a sequence
// owns a block table listing the blocks that hold its tokens in order. A block id means the same slot in every
// layer's arena, so one table serves the whole model. Blocks are handed out from a free list; nothing moves when a
// sequence grows or ends.
//
// Storage (fp32, in the memory of the backend that allocated it: host by default) per layer and block: [kv_heads,
// block_size, head_dim] for keys and again for values, so the keys of one head in one block are contiguous for the
// attention inner loop.

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace loom::backend {

class Backend;

inline constexpr int kDefaultBlockSize = 16;

struct KvLayerShape {
  int kv_heads = 0;
  int head_dim = 0;
};

struct KvCacheConfig {
  std::vector<KvLayerShape> layers;  // one entry per layer that stores K/V (shape may differ: Gemma 4 full layers)
  int64_t blocks = 0;                // arena size in blocks, shared by all sequences
  int block_size = kDefaultBlockSize;
};

class KvCache {
 public:
  // The arenas come from backend->allocate() (host memory when backend is null); ops of that backend read them.
  explicit KvCache(KvCacheConfig config, Backend* backend = nullptr);

  Device device() const { return device_; }
  int block_size() const { return config_.block_size; }
  int layers() const { return static_cast<int>(config_.layers.size()); }
  const KvLayerShape& layer_shape(int layer) const;
  int64_t total_blocks() const { return config_.blocks; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }

  // Grows `table` so it covers `tokens` tokens. All or nothing: throws loom::Error(kOverloaded) and leaves the table
  // unchanged when the arena has too few free blocks.
  void reserve(std::vector<int32_t>& table, int64_t tokens);
  // Returns every block of `table` to the free list and clears it.
  void release(std::vector<int32_t>& table);

  // [kv_heads, block_size, head_dim] keys (or values) of one block of one layer, in device() memory.
  float* keys(int layer, int32_t block);
  float* values(int layer, int32_t block);
  const float* keys(int layer, int32_t block) const;
  const float* values(int layer, int32_t block) const;

 private:
  size_t block_offset(int layer, int32_t block) const;

  KvCacheConfig config_;
  Device device_;
  std::vector<Tensor> keys_;    // per layer: F32 [blocks, kv_heads, block_size, head_dim]
  std::vector<Tensor> values_;  // same
  std::vector<int32_t> free_;   // LIFO free list: recently freed blocks are still warm in cache
  std::vector<uint8_t> in_use_;
};

}  // namespace loom::backend
