// The KV cache sized from device memory (EngineConfig::gpu_memory_fraction, `--gpu-memory-fraction`): the block count
// against a formula written here from the cache layout (F32 keys and values, [kv_heads, block, head_dim] per layer and
// block), and an engine on a backend that reports device memory takes exactly that many blocks, while a host backend
// keeps kv_tokens.

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "test_model.h"

namespace loom::engine {
namespace {

using testing::TestModel;

TEST(KvBudget, BlocksFollowTheCacheLayout) {
  const std::vector<backend::KvLayerShape> layers = {{.kv_heads = 16, .head_dim = 256},
                                                     {.kv_heads = 4, .head_dim = 512}};
  // Per token: keys + values, 4 bytes each: 2·4·(16·256 + 4·512) = 49152 bytes; a block of 16 tokens 786432.
  EXPECT_EQ(kv_bytes_per_token(layers), 49152);
  const int64_t free = int64_t{80} << 30;
  EXPECT_EQ(kv_blocks_for_memory(layers, 16, free, 0.9), static_cast<int64_t>(0.9 * 85899345920.0 / 786432.0));
  EXPECT_EQ(kv_blocks_for_memory(layers, 16, free, 1.0), 85899345920 / 786432);
  EXPECT_EQ(kv_blocks_for_memory(layers, 16, 786431, 1.0), 0);  // not one whole block
  EXPECT_EQ(kv_blocks_for_memory(layers, 16, free, 0.0), 0);
  EXPECT_EQ(kv_blocks_for_memory({}, 16, free, 0.5), 0);
}

// A backend that allocates host memory (all the test model's cache needs) and reports a device of `free` bytes.
class DeviceLikeBackend final : public backend::Backend {
 public:
  explicit DeviceLikeBackend(int64_t free) : free_(free) {}
  std::string_view name() const override { return "device-like"; }
  Device device() const override { return {}; }
  Tensor allocate(DType dtype, Shape shape) override { return Tensor::zeros(dtype, std::move(shape)); }
  std::optional<backend::DeviceMemoryInfo> memory_info() const override {
    return backend::DeviceMemoryInfo{.free_bytes = free_, .total_bytes = 2 * free_};
  }
  // Nothing else is called by the engine with the test model.
  Tensor upload(const Tensor&) override { unused(); }
  weights::Weight upload(const weights::Weight&) override { unused(); }
  Tensor to_host(const Tensor&) override { unused(); }
  void copy(const Tensor&, Tensor&) override { unused(); }
  void embedding(const weights::Weight&, std::span<const int32_t>, float, Tensor&) override { unused(); }
  void embedding_shard(const weights::Weight&, std::span<const int32_t>, int64_t, float, Tensor&) override { unused(); }
  void matmul(const Tensor&, const weights::Weight&, Tensor&) override { unused(); }
  void add_bias(Tensor&, const Tensor&) override { unused(); }
  void rms_norm(const Tensor&, const Tensor*, const backend::RmsNormSpec&, Tensor&) override { unused(); }
  void layer_norm(const Tensor&, const Tensor&, const Tensor&, float, Tensor&) override { unused(); }
  void activation(backend::Activation, const Tensor&, Tensor&) override { unused(); }
  void gated_activation(backend::Activation, const Tensor&, const Tensor&, Tensor&) override { unused(); }
  void add(const Tensor&, const Tensor&, Tensor&) override { unused(); }
  void mul(const Tensor&, const Tensor&, Tensor&) override { unused(); }
  void scale(const Tensor&, float, Tensor&) override { unused(); }
  void softcap(const Tensor&, float, Tensor&) override { unused(); }
  void clamp(const Tensor&, float, float, Tensor&) override { unused(); }
  void rope(Tensor&, const backend::RopeTable&, std::span<const int32_t>) override { unused(); }
  void kv_append(backend::KvCache&, int, const backend::Batch&, const Tensor&, const Tensor&) override { unused(); }
  void attention(const Tensor&, const backend::KvCache&, int, const backend::Batch&, const backend::AttentionSpec&,
                 Tensor&) override {
    unused();
  }
  void attention_dense(const Tensor&, const Tensor&, const Tensor&, std::span<const backend::SequenceSlice>,
                       const backend::AttentionSpec&, Tensor&) override {
    unused();
  }
  void softmax(const Tensor&, Tensor&) override { unused(); }
  void argmax(const Tensor&, std::span<int32_t>) override { unused(); }
  void top_k(const Tensor&, int, std::span<int32_t>, std::span<float>) override { unused(); }
  void avg_pool_2d(const Tensor&, int64_t, int64_t, int, Tensor&) override { unused(); }
  void extract_patches(const Tensor&, int, Tensor&) override { unused(); }

 private:
  [[noreturn]] static void unused() { fail(ErrorKind::kInternal, "not used by these tests"); }
  int64_t free_;
};

class ModelOn : public TestModel {
 public:
  explicit ModelOn(backend::Backend* backend) : backend_(backend) {}
  backend::Backend* backend() override { return backend_; }

 private:
  backend::Backend* backend_;
};

TEST(KvBudget, AnEngineOnADeviceTakesTheFractionOfFreeMemory) {
  // The test model's cache: two layers of 1 head × 2 → 2·4·(2 + 2) = 32 bytes per token, 512 per block of 16.
  DeviceLikeBackend device(1'000'000);
  Engine engine(std::make_unique<ModelOn>(&device), nullptr, {.kv_tokens = 64, .gpu_memory_fraction = 0.5});
  EXPECT_EQ(engine.stats().kv_blocks_total, 500'000 / 512);
  // It still generates.
  Request request;
  request.prompt = {1, 2, 3};
  request.max_tokens = 3;
  request.stop.ignore_model_stop_ids = true;
  EXPECT_EQ(engine.submit(std::move(request))->collect().tokens.size(), 3u);
}

TEST(KvBudget, WithoutAFractionOrDeviceMemoryTheTokenCountDecides) {
  DeviceLikeBackend device(1'000'000);
  Engine on_device(std::make_unique<ModelOn>(&device), nullptr, {.kv_tokens = 64, .gpu_memory_fraction = 0});
  EXPECT_EQ(on_device.stats().kv_blocks_total, 4);
  Engine on_host(std::make_unique<TestModel>(), nullptr, {.kv_tokens = 64, .gpu_memory_fraction = 0.9});
  EXPECT_EQ(on_host.stats().kv_blocks_total, 4);
}

TEST(KvBudget, TooLittleMemoryOrABadFractionIsRefused) {
  DeviceLikeBackend tiny(100);
  try {
    Engine engine(std::make_unique<ModelOn>(&tiny), nullptr, {.kv_tokens = 64, .gpu_memory_fraction = 0.9});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOverloaded);
    EXPECT_NE(std::string(e.what()).find("gpu_memory_fraction"), std::string::npos);
  }
  try {
    Engine engine(std::make_unique<TestModel>(), nullptr, {.kv_tokens = 64, .gpu_memory_fraction = 1.5});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
  }
}

}  // namespace
}  // namespace loom::engine
