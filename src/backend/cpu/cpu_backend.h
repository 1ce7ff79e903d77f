#pragma once
// The CPU backend: fp32 activations, weights read in their stored format, SIMD inner loops chosen at run time
// (simd.h), OpenBLAS for prefill GEMMs, loom::ThreadPool for everything data-parallel. One op family per .cpp file.

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace loom::backend::cpu {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(ThreadPool& pool = ThreadPool::global()) : pool_(pool) {}

  std::string_view name() const override { return "cpu"; }

  Device device() const override { return {}; }
  Tensor allocate(DType dtype, Shape shape) override;
  Tensor upload(const Tensor& host) override;
  weights::Weight upload(const weights::Weight& host) override;
  Tensor to_host(const Tensor& t) override;
  void copy(const Tensor& src, Tensor& dst) override;

  void embedding(const weights::Weight& table, std::span<const int32_t> ids, float scale, Tensor& out) override;
  void embedding_shard(const weights::Weight& table, std::span<const int32_t> ids, int64_t first_id, float scale,
                       Tensor& out) override;
  void matmul(const Tensor& x, const weights::Weight& w, Tensor& out) override;
  void add_bias(Tensor& x, const Tensor& bias) override;

  void rms_norm(const Tensor& x, const Tensor* weight, const RmsNormSpec& spec, Tensor& out) override;
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) override;

  void activation(Activation act, const Tensor& x, Tensor& out) override;
  void gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void scale(const Tensor& x, float factor, Tensor& out) override;
  void softcap(const Tensor& x, float cap, Tensor& out) override;
  void clamp(const Tensor& x, float lo, float hi, Tensor& out) override;

  void rope(Tensor& x, const RopeTable& table, std::span<const int32_t> positions) override;

  void kv_append(KvCache& cache, int layer, const Batch& batch, const Tensor& k, const Tensor& v) override;
  void attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch, const AttentionSpec& spec,
                 Tensor& out) override;
  void attention_dense(const Tensor& q, const Tensor& k, const Tensor& v, std::span<const SequenceSlice> sequences,
                       const AttentionSpec& spec, Tensor& out) override;

  void softmax(const Tensor& x, Tensor& out) override;
  void argmax(const Tensor& x, std::span<int32_t> out) override;
  void top_k(const Tensor& x, int k, std::span<int32_t> indices, std::span<float> values) override;

  void avg_pool_2d(const Tensor& x, int64_t grid_h, int64_t grid_w, int kernel, Tensor& out) override;
  void extract_patches(const Tensor& image, int patch, Tensor& out) override;

 private:
  // Runs body(begin, end) over [0, count) on the pool, in chunks of at least `grain` items.
  template <typename Body>
  void parallel(int64_t count, int64_t grain, Body&& body) {
    pool_.parallel_for(count, body, grain < 1 ? 1 : grain);
  }

  ThreadPool& pool_;
};

}  // namespace loom::backend::cpu
