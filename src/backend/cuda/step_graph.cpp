// The bound step (one upload of a step's ids, positions and attention metadata, at a fixed device address) and the
// recording and replay of a step's ops as a CUDA graph.
//
// Why graphs: a decode step issues several hundred small kernels; launched one by one from the host they cost more
// than the GPU needs to run them (the step was mostly host time). Recorded once per step shape, the same kernels run
// from one cudaGraphLaunch. A recording holds raw addresses — weights, the model's scratch buffers, the KV cache, the
// bound step's device block — and the values it reads each time from the bound step's block, which bind_step rewrites
// in place before each replay. Everything else a step needs must not change between replays; the model's step runner
// keys graphs by what shapes a step (sequence count, table capacity, cache) and drops them when memory_epoch() moves.
#include <algorithm>
#include <bit>

#include "backend/cuda/common.h"

namespace loom::backend::cuda {
namespace {

class CudaStepGraph final : public StepGraph {
 public:
  explicit CudaStepGraph(cudaGraphExec_t exec) : exec_(exec) {}
  ~CudaStepGraph() override { cudaGraphExecDestroy(exec_); }
  CudaStepGraph(const CudaStepGraph&) = delete;
  CudaStepGraph& operator=(const CudaStepGraph&) = delete;
  cudaGraphExec_t exec() const { return exec_; }

 private:
  cudaGraphExec_t exec_;
};

// Each sequence's block table is padded to a power of two (at least 16 entries): the block's layout, and with it a
// recorded graph, then stays valid while sequences grow, and changes only every doubling.
int64_t table_capacity(const Batch& batch) {
  size_t longest = 0;
  for (const SequenceSlice& seq : batch.sequences) longest = std::max(longest, seq.block_table.size());
  return static_cast<int64_t>(std::bit_ceil(std::max<size_t>(longest, 16)));
}

}  // namespace

int64_t CudaBackend::bind_step(const Batch* batch) {
  StepBlock& step = state_->step;
  step.batch = nullptr;
  if (batch == nullptr || batch->tokens() == 0) return 0;
  if (state_->capturing) fail(ErrorKind::kInternal, "[bind_step] a step cannot be bound while one is recorded");
  const int64_t capacity = table_capacity(*batch);
  MetaUpload upload;
  const size_t ids = upload.add(std::span<const int32_t>(batch->token_ids));
  const size_t positions = upload.add(std::span<const int32_t>(batch->positions));
  const PackedStep packed = pack_step_meta(upload, batch->sequences, batch->tokens(), capacity);
  const std::span<const uint8_t> bytes = upload.bytes();

  // The previous step's copy must have left the staging before it is overwritten (long done in practice: that step's
  // logits were read back since).
  LOOM_CUDA(cudaEventSynchronize(step.copied));
  if (bytes.size() > step.staging_size) {
    if (step.staging != nullptr) LOOM_CUDA(cudaFreeHost(step.staging));
    step.staging = nullptr;
    const size_t size = std::bit_ceil(std::max<size_t>(bytes.size(), 4096));
    LOOM_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&step.staging), size, cudaHostAllocDefault));
    step.staging_size = size;
  }
  std::memcpy(step.staging, bytes.data(), bytes.size());
  auto* device = static_cast<uint8_t*>(step.device.reserve(bytes.size()));
  LOOM_CUDA(cudaMemcpyAsync(device, step.staging, bytes.size(), cudaMemcpyHostToDevice, state_->stream));
  LOOM_CUDA(cudaEventRecord(step.copied, state_->stream));

  step.batch = batch;
  step.table_capacity = capacity;
  step.ids = at<int32_t>(device, ids);
  step.positions = at<int32_t>(device, positions);
  step.meta = resolve(device, packed);
  return capacity;
}

bool CudaBackend::can_capture() const {
  return state_->graphs_enabled;
}

void CudaBackend::set_step_graphs(bool enabled) {
  state_->graphs_enabled = enabled;
}

void CudaBackend::begin_capture() {
  if (!state_->graphs_enabled) fail(ErrorKind::kUnsupported, "[cuda] step graphs are turned off");
  if (state_->capturing) fail(ErrorKind::kInternal, "[cuda] a step is already being recorded");
  // Thread-local mode: only this thread's unsafe calls are refused during the recording; other threads (other ranks,
  // other models) keep working on their own streams.
  LOOM_CUDA(cudaStreamBeginCapture(state_->stream, cudaStreamCaptureModeThreadLocal));
  state_->capturing = true;
  state_->meta.set_capturing(true);
}

std::unique_ptr<StepGraph> CudaBackend::end_capture() {
  if (!state_->capturing) fail(ErrorKind::kInternal, "[cuda] end_capture without begin_capture");
  state_->capturing = false;
  state_->meta.set_capturing(false);
  cudaGraph_t graph = nullptr;
  LOOM_CUDA(cudaStreamEndCapture(state_->stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  LOOM_CUDA(status);
  return std::make_unique<CudaStepGraph>(exec);
}

void CudaBackend::abort_capture() {
  if (!state_->capturing) return;
  state_->capturing = false;
  state_->meta.set_capturing(false);
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(state_->stream, &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
  cudaGetLastError();  // the invalidated recording's error is not sticky; clear it for the eager run that follows
}

void CudaBackend::replay(StepGraph& graph) {
  auto* recorded = dynamic_cast<CudaStepGraph*>(&graph);
  if (recorded == nullptr) fail(ErrorKind::kInternal, "[cuda] replay of a graph another backend recorded");
  LOOM_CUDA(cudaGraphLaunch(recorded->exec(), state_->stream));
}

uint64_t CudaBackend::memory_epoch() const {
  return allocation_epoch();
}

}  // namespace loom::backend::cuda
