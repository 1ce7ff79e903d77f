#pragma once
// The CUDA backend: the Backend contract on one NVIDIA GPU. Tensors live in device memory (cudaMalloc, Device{kCuda});
// weights are uploaded once in their stored format and dequantized inside the kernels.
//
// This first version keeps activations in F32 on the device, as the CPU backend does, so both backends share every
// model file and test unchanged. Decode is bound by reading the weights, which stay in their compact format, so F32
// activations cost little there; bf16 activations (and bf16 tensor-core GEMMs for prefill) are the next step.
//
// Every op is issued on the backend's own stream, so ops run in call order and a host read-back (to_host, argmax,
// top_k) waits for everything before it. Per-step metadata (token ids, positions, block tables) arrives in host memory:
// a bound step (bind_step) is uploaded once per step, anything else by the op that needs it. A decode step can be
// recorded into a CUDA graph and replayed (begin_capture … replay): one launch instead of hundreds.
//
// This header needs no CUDA headers: the model and CLI include it when LOOM_HAS_CUDA is defined.

#include <memory>

#include "backend/backend.h"

struct CUstream_st;  // cudaStream_t points to it

namespace loom::backend::cuda {

// GPUs the CUDA runtime sees; 0 when there is no driver or no device (never throws).
int device_count();

class CudaBackend final : public Backend {
 public:
  // Binds to GPU `device`; throws loom::Error(kUnsupported) when there is none.
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view name() const override { return "cuda"; }

  Device device() const override { return {DeviceKind::kCuda, device_}; }
  Tensor allocate(DType dtype, Shape shape) override;
  Tensor upload(const Tensor& host) override;
  weights::Weight upload(const weights::Weight& host) override;
  Tensor to_host(const Tensor& t) override;
  void copy(const Tensor& src, Tensor& dst) override;
  std::optional<DeviceMemoryInfo> memory_info() const override;

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

  int64_t bind_step(const Batch* batch) override;
  bool can_capture() const override;
  void begin_capture() override;
  std::unique_ptr<StepGraph> end_capture() override;
  void abort_capture() override;
  void replay(StepGraph& graph) override;
  uint64_t memory_epoch() const override;
  // Step graphs are on unless turned off here (`--enforce-eager`; tests compare both ways).
  void set_step_graphs(bool enabled);

  // The stream every op of this backend is issued on (cudaStream_t); collectives of a tensor-parallel group join it.
  CUstream_st* stream() const;

  struct State;  // CUDA handles and reusable device buffers (cuda_backend.cu)

 private:
  int device_;
  std::unique_ptr<State> state_;
};

}  // namespace loom::backend::cuda
