#pragma once
// The op set every model is written against. CPU and CUDA implement the same contract; a family file calls these and
// never touches a kernel. Tensors are row-major and contiguous; activations are F32 on CPU (DESIGN.md §4). Every op
// writes into an `out` the caller allocated with the documented shape; ops marked in-place modify their argument.
//
// Shapes use T for the tokens of a step (rows of the packed batch), H / Hkv for query / key-value heads, D for
// head_dim. Errors: a shape or dtype that does not match throws loom::Error(kInternal) starting with the op name
// ("[rms_norm] …"); a weight format without a kernel throws kUnsupported.
//
// Ops may run data-parallel on an internal thread pool; call them from one thread per backend, never from inside a
// task of that pool.
//
// Memory: every tensor an op takes or writes lives in the backend's memory (device()). Models allocate activations
// and caches through allocate(), put weights there once at load with upload(), and bring back only what the host
// needs (logits) with to_host(). On the CPU backend all of these are host memory and upload/to_host copy nothing.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "backend/batch.h"
#include "backend/device_probe.h"
#include "backend/kv_cache.h"
#include "backend/ops.h"
#include "backend/rope_table.h"
#include "core/tensor.h"
#include "weights/weight.h"

namespace loom::backend {

// A step's ops recorded once by a backend that can replay them (a CUDA graph); opaque to the caller.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Where this backend's tensors live.
  virtual Device device() const = 0;
  // A zero-filled tensor in this backend's memory.
  virtual Tensor allocate(DType dtype, Shape shape) = 0;
  // A copy of a host tensor (or of every tensor of a host weight) in this backend's memory; the CPU backend returns
  // its argument, sharing the storage. Throws kInternal when the argument is not in host memory.
  virtual Tensor upload(const Tensor& host) = 0;
  virtual weights::Weight upload(const weights::Weight& host) = 0;
  // A host copy of a tensor in this backend's memory (the CPU backend returns t itself).
  virtual Tensor to_host(const Tensor& t) = 0;
  // dst's bytes = src's bytes; each may be in host or this backend's memory; same dtype and element count.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  // Free and total memory of the device this backend allocates on; nullopt for host memory (the engine then sizes
  // the KV cache by token count alone).
  virtual std::optional<DeviceMemoryInfo> memory_info() const { return std::nullopt; }

  // out[t, :] = table[ids[t], :] · scale.  table: Weight [vocab, hidden]; out [T, hidden]. An id outside the table
  // throws kInvalidRequest.
  virtual void embedding(const weights::Weight& table, std::span<const int32_t> ids, float scale, Tensor& out) = 0;
  // Vocab-parallel embedding (tensor parallelism): `table` holds vocabulary rows [first_id, first_id + table.rows).
  // out[t, :] = table[ids[t] − first_id, :] · scale for ids in that range, +0 for every other id (another rank's
  // part; the all-reduce of every rank's out is the full lookup). Ids are not checked against a vocabulary.
  virtual void embedding_shard(const weights::Weight& table, std::span<const int32_t> ids, int64_t first_id,
                               float scale, Tensor& out) = 0;

  // out[n, out] = x[n, in] · Wᵀ for Weight [out, in].
  virtual void matmul(const Tensor& x, const weights::Weight& w, Tensor& out) = 0;
  // x[rows, cols] += bias[cols] (Linear biases, position embeddings broadcast over rows).
  virtual void add_bias(Tensor& x, const Tensor& bias) = 0;

  // Over the last dimension of x (any rank: [T, hidden] or per head [T, H, D]); weight F32 [last dim] unless kNone.
  virtual void rms_norm(const Tensor& x, const Tensor* weight, const RmsNormSpec& spec, Tensor& out) = 0;
  // (x − mean) · rsqrt(var + eps) · w + b over the last dimension; weight and bias F32 [last dim].
  virtual void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) = 0;

  // Elementwise, all tensors of one shape (out may alias an input).
  virtual void activation(Activation act, const Tensor& x, Tensor& out) = 0;
  virtual void gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) = 0;  // act(g)·u
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void scale(const Tensor& x, float factor, Tensor& out) = 0;
  virtual void softcap(const Tensor& x, float cap, Tensor& out) = 0;  // cap·tanh(x/cap)
  virtual void clamp(const Tensor& x, float lo, float hi, Tensor& out) = 0;

  // In place on x [T, heads, D]; positions axis-major [table.axes, T] (Batch::positions).
  virtual void rope(Tensor& x, const RopeTable& table, std::span<const int32_t> positions) = 0;

  // Writes this step's k, v [T, Hkv, D] into the cache slots of each sequence (tokens kv_start … kv_start+count−1).
  virtual void kv_append(KvCache& cache, int layer, const Batch& batch, const Tensor& k, const Tensor& v) = 0;
  // out [T, H, D] = softmax(mask(q·kᵀ·scale)) · v over every cached key of each row's sequence; q [T, H, D].
  // Call after kv_append of the same step. H must be a multiple of the layer's Hkv; out must not alias q.
  virtual void attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                         const AttentionSpec& spec, Tensor& out) = 0;
  // The same attention without a cache: q [T, H, D], k and v [T, Hkv, D]; `sequences` splits the rows into
  // independent sequences (images of a vision batch); token_offset/token_count are used, kv_start must be 0.
  virtual void attention_dense(const Tensor& q, const Tensor& k, const Tensor& v,
                               std::span<const SequenceSlice> sequences, const AttentionSpec& spec, Tensor& out) = 0;

  // Row-wise over the last dimension of x [rows, n]. Sampling helpers.
  virtual void softmax(const Tensor& x, Tensor& out) = 0;
  virtual void argmax(const Tensor& x, std::span<int32_t> out) = 0;  // one index per row; ties → lowest index
  // The k largest of each row, descending (ties → lower index first): indices and values [rows, k].
  virtual void top_k(const Tensor& x, int k, std::span<int32_t> indices, std::span<float> values) = 0;

  // Vision helpers. x [grid_h·grid_w, C] token-major grid (row y, column x at y·grid_w + x) → out
  // [(grid_h/k)·(grid_w/k), C], the mean of each k×k window (AvgPool2d with stride = kernel).
  virtual void avg_pool_2d(const Tensor& x, int64_t grid_h, int64_t grid_w, int kernel, Tensor& out) = 0;
  // image [C, H, W] → patches [(H/p)·(W/p), C·p·p] in (c, py, px) order, patches row-major: Conv2d with stride =
  // kernel = p is then matmul(patches, weight.reshape(out, C·p·p)) plus the bias.
  virtual void extract_patches(const Tensor& image, int patch, Tensor& out) = 0;

  // Step binding and step graphs. A model may bind the batch of the step it is about to run; ops then given views of
  // that batch (its token ids, positions, the batch itself) may read an upload of it made once here instead of
  // uploading per op. Returns the capacity each sequence's block table was padded to in that upload (part of what a
  // recorded step depends on); 0 from backends that keep no such copy. bind_step(nullptr) unbinds; the batch must
  // outlive the binding and not change while bound.
  virtual int64_t bind_step(const Batch* /*batch*/) { return 0; }

  // Recording (model/step_runner.h drives it): ops issued between begin_capture() and end_capture() are recorded, not
  // run, into a graph that replay() runs again; before each replay the model binds the new step, whose values the
  // graph reads. Only backends for which can_capture() is true implement the rest; an op that cannot be recorded
  // (one needing an upload outside the bound step, a host read, a buffer that grows) throws, after which the caller
  // must call abort_capture() and run the step without recording.
  virtual bool can_capture() const { return false; }
  virtual void begin_capture();
  virtual std::unique_ptr<StepGraph> end_capture();
  virtual void abort_capture() {}
  virtual void replay(StepGraph& graph);
  // Changes whenever memory a recorded graph may point into could have been replaced: graphs recorded under another
  // epoch must not be replayed.
  virtual uint64_t memory_epoch() const { return 0; }
};

}  // namespace loom::backend
