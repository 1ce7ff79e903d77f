#include "backend/kv_cache.h"

#include "backend/backend.h"
#include "core/error.h"

namespace loom::backend {

KvCache::KvCache(KvCacheConfig config, Backend* backend)
    : config_(std::move(config)), device_(backend != nullptr ? backend->device() : Device{}) {
  if (config_.block_size <= 0 || config_.blocks <= 0 || config_.blocks > INT32_MAX) {
    fail(ErrorKind::kInternal, "[kv_cache] needs a positive block size and 1..2^31-1 blocks, got {} and {}",
         config_.block_size, config_.blocks);
  }
  for (size_t i = 0; i < config_.layers.size(); ++i) {
    const KvLayerShape& shape = config_.layers[i];
    if (shape.kv_heads <= 0 || shape.head_dim <= 0) {
      fail(ErrorKind::kInternal, "[kv_cache] layer {} has {} kv heads of dim {}", i, shape.kv_heads, shape.head_dim);
    }
    const Shape arena{config_.blocks, shape.kv_heads, config_.block_size, shape.head_dim};
    keys_.push_back(backend != nullptr ? backend->allocate(DType::kF32, arena) : Tensor::zeros(DType::kF32, arena));
    values_.push_back(backend != nullptr ? backend->allocate(DType::kF32, arena) : Tensor::zeros(DType::kF32, arena));
  }
  free_.reserve(static_cast<size_t>(config_.blocks));
  // Highest id at the bottom of the stack so fresh caches hand out 0, 1, 2, … (easier to read in logs).
  for (int64_t b = config_.blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  in_use_.assign(static_cast<size_t>(config_.blocks), 0);
}

const KvLayerShape& KvCache::layer_shape(int layer) const {
  if (layer < 0 || layer >= layers()) fail(ErrorKind::kInternal, "[kv_cache] layer {} of {}", layer, layers());
  return config_.layers[static_cast<size_t>(layer)];
}

void KvCache::reserve(std::vector<int32_t>& table, int64_t tokens) {
  const int64_t needed = (tokens + config_.block_size - 1) / config_.block_size;
  const int64_t missing = needed - static_cast<int64_t>(table.size());
  if (missing <= 0) return;
  if (missing > free_blocks()) {
    fail(ErrorKind::kOverloaded, "[kv_cache] {} more blocks needed for {} tokens, {} free", missing, tokens,
         free_blocks());
  }
  for (int64_t i = 0; i < missing; ++i) {
    const int32_t block = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(block)] = 1;
    table.push_back(block);
  }
}

void KvCache::release(std::vector<int32_t>& table) {
  for (int32_t block : table) {
    if (block < 0 || block >= config_.blocks || !in_use_[static_cast<size_t>(block)]) {
      fail(ErrorKind::kInternal, "[kv_cache] releasing block {} that is not allocated", block);
    }
    in_use_[static_cast<size_t>(block)] = 0;
    free_.push_back(block);
  }
  table.clear();
}

size_t KvCache::block_offset(int layer, int32_t block) const {
  const KvLayerShape& shape = layer_shape(layer);
  if (block < 0 || block >= config_.blocks) fail(ErrorKind::kInternal, "[kv_cache] block {} out of range", block);
  return static_cast<size_t>(block) * static_cast<size_t>(shape.kv_heads) * static_cast<size_t>(config_.block_size) *
         static_cast<size_t>(shape.head_dim);
}

float* KvCache::keys(int layer, int32_t block) {
  const size_t offset = block_offset(layer, block);  // validates layer and block before indexing
  return keys_[static_cast<size_t>(layer)].data_as<float>() + offset;
}
float* KvCache::values(int layer, int32_t block) {
  const size_t offset = block_offset(layer, block);  // validates layer and block before indexing
  return values_[static_cast<size_t>(layer)].data_as<float>() + offset;
}
const float* KvCache::keys(int layer, int32_t block) const {
  const size_t offset = block_offset(layer, block);  // validates layer and block before indexing
  return keys_[static_cast<size_t>(layer)].data_as<float>() + offset;
}
const float* KvCache::values(int layer, int32_t block) const {
  const size_t offset = block_offset(layer, block);  // validates layer and block before indexing
  return values_[static_cast<size_t>(layer)].data_as<float>() + offset;
}

}  // namespace loom::backend
