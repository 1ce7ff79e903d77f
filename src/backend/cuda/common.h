#pragma once
// What the CUDA op files share: error checks, argument checks (messages start with the op name, like the CPU
// backend's), grow-only device buffers and the per-call upload of host metadata.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace loom::backend::cuda {

// Throws loom::Error(kInternal) naming the failed call and the CUDA error.
void check_cuda(cudaError_t status, const char* what);
void check_cublas(cublasStatus_t status, const char* what);
#define LOOM_CUDA(call) ::loom::backend::cuda::check_cuda((call), #call)
#define LOOM_CUBLAS(call) ::loom::backend::cuda::check_cublas((call), #call)
// After a kernel launch: reports a bad launch configuration under the op's name.
void check_launch(std::string_view op);

// cudaMalloc / cudaFree that keep a process-wide count of the bytes loom holds on the device (and its high-water
// mark, see device_probe.h); every allocation of the backend goes through them.
void* tracked_malloc(size_t bytes);
void tracked_free(void* data, size_t bytes);
int64_t tracked_bytes();
int64_t tracked_peak_bytes();
void reset_tracked_peak();
// Counts every tracked_malloc of the process: a recorded step graph holds raw device addresses, and a buffer it uses
// can only have been replaced (and its memory handed to another tensor) through a new allocation.
uint64_t allocation_epoch();

// Device memory that only grows; reused across calls on the backend's one stream.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* reserve(size_t bytes);
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

class MetaRing;

// Host values gathered for one op and copied to the device in one transfer. add() returns the element offset of the
// values in the device copy, typed; every array starts 8-byte aligned.
class MetaUpload {
 public:
  template <typename T>
  size_t add(std::span<const T> values) {
    const size_t offset = (bytes_.size() + 7) / 8 * 8;
    bytes_.resize(offset + values.size_bytes());
    if (!values.empty()) std::memcpy(bytes_.data() + offset, values.data(), values.size_bytes());
    return offset;
  }
  // Queues the copy of everything to the device (see MetaRing) and returns the device base pointer, valid for the
  // kernels queued next on the backend's stream.
  const uint8_t* commit(MetaRing& ring);
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Per-op metadata travels through a ring of pinned host memory mirrored by a ring of device memory: commit() copies
// the bytes into the next free stretch of the pinned ring and queues an asynchronous copy to the same stretch of the
// device ring on the backend's stream, so the host does not wait for the GPU on every op (a synchronous copy from
// pageable memory did, which serialised host and GPU work and dominated the decode step). Stream order keeps the
// device side safe: the copy runs after every kernel queued before it, and the kernels that read it run after it.
// A stretch is written again only after the ring wraps, and the wrap waits for the stream to drain first, so no copy
// still reads the pinned stretch and no kernel still reads the device stretch. Blocks too large for the ring take a
// synchronous copy into a grow-only buffer.
//
// While a step graph is being recorded a commit throws: the recorded copy would read the pinned stretch again at every
// replay, long after it was reused. Every piece of metadata a recorded step needs comes from the bound step instead
// (StepBlock), and the recorder falls back to running that step shape eagerly.
class MetaRing {
 public:
  explicit MetaRing(size_t capacity = size_t{8} << 20) : capacity_(capacity) {}
  ~MetaRing();
  MetaRing(const MetaRing&) = delete;
  MetaRing& operator=(const MetaRing&) = delete;
  const uint8_t* commit(std::span<const uint8_t> bytes);
  void set_stream(cudaStream_t stream) { stream_ = stream; }
  void set_capturing(bool capturing) { capturing_ = capturing; }

 private:
  size_t capacity_;
  cudaStream_t stream_ = nullptr;
  bool capturing_ = false;
  size_t head_ = 0;
  uint8_t* host_ = nullptr;    // pinned
  uint8_t* device_ = nullptr;  // device mirror
  DeviceBuffer oversize_;
};

template <typename T>
const T* at(const uint8_t* base, size_t offset) {
  return reinterpret_cast<const T*>(base + offset);
}

// Where a step's attention metadata lies in an upload (byte offsets; see step_meta.h).
struct PackedStep {
  size_t seqs = 0, row_seq = 0, tables = 0, spans = 0;
};

inline kernels::StepMeta resolve(const uint8_t* base, const PackedStep& p) {
  return {at<kernels::SeqMeta>(base, p.seqs), at<int32_t>(base, p.row_seq), at<int32_t>(base, p.tables),
          at<int64_t>(base, p.spans)};
}

// Adds the attention metadata of `sequences` (their rows tile [0, tokens)) to `upload`: per-sequence records, the
// row → sequence map, the block tables and the bidirectional spans. table_capacity 0 packs the tables back to back;
// otherwise sequence s's table starts at s · table_capacity (it must fit), so the layout depends on the sequence count
// and the capacity only, not on each table's current length.
PackedStep pack_step_meta(MetaUpload& upload, std::span<const SequenceSlice> sequences, int64_t tokens,
                          int64_t table_capacity = 0);

// The bound step (Backend::bind_step): its token ids, positions and attention metadata uploaded once, at an address
// that stays put from step to step, so a recorded graph reads each new step's values from the same place. The pinned
// staging is rewritten only after the previous step's copy out of it has finished (`copied`).
struct StepBlock {
  const Batch* batch = nullptr;  // the bound batch; null when none
  int64_t table_capacity = 0;
  const int32_t* ids = nullptr;        // device, [tokens]
  const int32_t* positions = nullptr;  // device, [axes · tokens]
  kernels::StepMeta meta{};
  uint8_t* staging = nullptr;  // pinned
  size_t staging_size = 0;
  DeviceBuffer device;
  cudaEvent_t copied = nullptr;
};

// A RoPE table's constant arrays on the device, kept per table so a step uploads only its positions. The host bytes
// are kept to notice a different table that reuses the address of a destroyed one.
struct DeviceRopeTable {
  std::vector<uint8_t> host;
  DeviceBuffer device;
  size_t first = 0, second = 0, inv_freq = 0, axis = 0;
};

struct CudaBackend::State {
  // Every op of this backend runs on `stream`, created non-blocking: it never waits on, or makes wait, the legacy
  // default stream that other threads (another model on the same GPU) may use, which is also what lets a step be
  // recorded into a graph while they work. Host reads (to_host, top_k) synchronise this stream.
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  MetaRing meta;                    // per-op metadata (ids, positions, block tables)
  DeviceBuffer tile;                // weights dequantized to f32 for prefill GEMMs
  DeviceBuffer result;              // small results read back by argmax / top_k
  DeviceBuffer attention_partials;  // per-split softmax states of split attention
  int multiprocessors = 1;
  StepBlock step;
  std::unordered_map<const RopeTable*, std::unique_ptr<DeviceRopeTable>> rope_tables;
  bool capturing = false;
  bool graphs_enabled = true;
};

inline bool on_device(const Tensor& t) {
  return t.device().kind == DeviceKind::kCuda;
}

inline void expect_f32(const Tensor& t, std::string_view op, std::string_view what) {
  if (t.empty()) fail(ErrorKind::kInternal, "[{}] {} is empty", op, what);
  if (t.dtype() != DType::kF32)
    fail(ErrorKind::kInternal, "[{}] {} must be F32, got {}", op, what, dtype_name(t.dtype()));
  if (!on_device(t)) fail(ErrorKind::kInternal, "[{}] {} is not in CUDA device memory", op, what);
}

inline void expect_same_shape(const Tensor& a, const Tensor& b, std::string_view op, std::string_view what) {
  if (a.shape() != b.shape()) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(b.shape()),
         shape_string(a.shape()));
  }
}

inline void expect_shape(const Tensor& t, const Shape& shape, std::string_view op, std::string_view what) {
  if (t.shape() != shape) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(t.shape()),
         shape_string(shape));
  }
}

inline int64_t last_dim(const Tensor& t) {
  return t.rank() == 0 ? 1 : t.dim(-1);
}

inline unsigned grid_for(int64_t items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

}  // namespace loom::backend::cuda
