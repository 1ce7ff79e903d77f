// Argument checks and launches of the row, elementwise, RoPE, sampling and vision ops (kernels in ops_kernels.cu).
#include <algorithm>
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/kernels.h"

namespace loom::backend::cuda {
namespace {

using kernels::Binary;
using kernels::Unary;

void check_unary(const Tensor& x, const Tensor& out, std::string_view op) {
  expect_f32(x, op, "x");
  expect_f32(out, op, "out");
  expect_same_shape(x, out, op, "out");
}

void run_unary(kernels::Stream stream, Unary op, int act, float p, float q, const Tensor& x, Tensor& out,
               std::string_view name) {
  check_unary(x, out, name);
  kernels::unary(stream, op, act, p, q, x.data_as<float>(), x.elements(), out.data_as<float>());
  check_launch(name);
}

void run_binary(kernels::Stream stream, Binary op, int act, const Tensor& a, const Tensor& b, Tensor& out,
                std::string_view name, std::string_view a_name, std::string_view b_name) {
  expect_f32(a, name, a_name);
  expect_f32(b, name, b_name);
  expect_f32(out, name, "out");
  expect_same_shape(a, b, name, b_name);
  expect_same_shape(a, out, name, "out");
  kernels::binary(stream, op, act, a.data_as<float>(), b.data_as<float>(), a.elements(), out.data_as<float>());
  check_launch(name);
}

int64_t rows_of(const Tensor& x, std::string_view op) {
  expect_f32(x, op, "x");
  const int64_t n = last_dim(x);
  if (n <= 0) fail(ErrorKind::kInternal, "[{}] rows of x must not be empty", op);
  return x.elements() / n;
}

// The table's constant arrays on the device, uploaded on first use (before any step is recorded, since the first step
// of each shape runs eagerly).
const DeviceRopeTable& rope_table(const RopeTable& table, CudaBackend::State& state) {
  MetaUpload bytes;
  const size_t first = bytes.add(std::span<const int32_t>(table.first));
  const size_t second = bytes.add(std::span<const int32_t>(table.second));
  const size_t inv_freq = bytes.add(std::span<const float>(table.inv_freq));
  const size_t axis = bytes.add(std::span<const uint8_t>(table.axis));
  std::unique_ptr<DeviceRopeTable>& cached = state.rope_tables[&table];
  if (cached && std::ranges::equal(cached->host, bytes.bytes())) return *cached;
  if (state.capturing) fail(ErrorKind::kInternal, "[rope] a new table cannot be uploaded while a step is recorded");
  cached = std::make_unique<DeviceRopeTable>();
  cached->host.assign(bytes.bytes().begin(), bytes.bytes().end());
  cached->first = first;
  cached->second = second;
  cached->inv_freq = inv_freq;
  cached->axis = axis;
  void* device = cached->device.reserve(cached->host.size());
  LOOM_CUDA(cudaMemcpyAsync(device, cached->host.data(), cached->host.size(), cudaMemcpyHostToDevice, state.stream));
  LOOM_CUDA(cudaStreamSynchronize(state.stream));  // the host bytes may move; the copy must be done with them
  return *cached;
}

// Positions on the device: a view of the bound step's positions reads its upload, anything else is uploaded now.
const int32_t* device_positions(std::span<const int32_t> positions, CudaBackend::State& state) {
  if (state.step.batch != nullptr) {
    const std::vector<int32_t>& bound = state.step.batch->positions;
    const int32_t* begin = bound.data();
    if (positions.data() >= begin && positions.data() + positions.size() <= begin + bound.size()) {
      return state.step.positions + (positions.data() - begin);
    }
  }
  MetaUpload meta;
  const size_t offset = meta.add(positions);
  return at<int32_t>(meta.commit(state.meta), offset);
}

}  // namespace

void CudaBackend::rms_norm(const Tensor& x, const Tensor* weight, const RmsNormSpec& spec, Tensor& out) {
  expect_f32(x, "rms_norm", "x");
  expect_f32(out, "rms_norm", "out");
  expect_same_shape(x, out, "rms_norm", "out");
  const int64_t dim = last_dim(x);
  const float* w = nullptr;
  if (spec.weight != NormWeight::kNone) {
    if (weight == nullptr) fail(ErrorKind::kInternal, "[rms_norm] this variant needs a weight");
    expect_f32(*weight, "rms_norm", "weight");
    expect_shape(*weight, {dim}, "rms_norm", "weight");
    w = weight->data_as<float>();
  }
  if (dim == 0) return;
  const int mode = spec.weight == NormWeight::kNone ? 0 : spec.weight == NormWeight::kScale ? 1 : 2;
  kernels::rms_norm(state_->stream, x.data_as<float>(), w, mode, spec.eps, x.elements() / dim, dim,
                    out.data_as<float>());
  check_launch("rms_norm");
}

void CudaBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  expect_f32(x, "layer_norm", "x");
  expect_f32(out, "layer_norm", "out");
  expect_same_shape(x, out, "layer_norm", "out");
  const int64_t dim = last_dim(x);
  expect_f32(weight, "layer_norm", "weight");
  expect_f32(bias, "layer_norm", "bias");
  expect_shape(weight, {dim}, "layer_norm", "weight");
  expect_shape(bias, {dim}, "layer_norm", "bias");
  if (dim == 0) return;
  kernels::layer_norm(state_->stream, x.data_as<float>(), weight.data_as<float>(), bias.data_as<float>(), eps,
                      x.elements() / dim, dim, out.data_as<float>());
  check_launch("layer_norm");
}

void CudaBackend::activation(Activation act, const Tensor& x, Tensor& out) {
  run_unary(state_->stream, Unary::kActivation, static_cast<int>(act), 0, 0, x, out, "activation");
}

void CudaBackend::gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) {
  run_binary(state_->stream, Binary::kGated, static_cast<int>(act), gate, up, out, "gated_activation", "gate", "up");
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary(state_->stream, Binary::kAdd, 0, a, b, out, "add", "a", "b");
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary(state_->stream, Binary::kMul, 0, a, b, out, "mul", "a", "b");
}

void CudaBackend::scale(const Tensor& x, float factor, Tensor& out) {
  run_unary(state_->stream, Unary::kScale, 0, factor, 0, x, out, "scale");
}

void CudaBackend::softcap(const Tensor& x, float cap, Tensor& out) {
  if (!(cap > 0)) fail(ErrorKind::kInternal, "[softcap] cap must be positive, got {}", cap);
  run_unary(state_->stream, Unary::kSoftcap, 0, cap, 1.0f / cap, x, out, "softcap");
}

void CudaBackend::clamp(const Tensor& x, float lo, float hi, Tensor& out) {
  run_unary(state_->stream, Unary::kClamp, 0, lo, hi, x, out, "clamp");
}

void CudaBackend::rope(Tensor& x, const RopeTable& table, std::span<const int32_t> positions) {
  expect_f32(x, "rope", "x");
  if (x.rank() != 3 || x.dim(2) != table.head_dim) {
    fail(ErrorKind::kInternal, "[rope] x has shape {}, expected [tokens, heads, {}]", shape_string(x.shape()),
         table.head_dim);
  }
  const int64_t tokens = x.dim(0), heads = x.dim(1);
  if (static_cast<int64_t>(positions.size()) != tokens * table.axes) {
    fail(ErrorKind::kInternal, "[rope] {} positions for {} tokens × {} axes", positions.size(), tokens, table.axes);
  }
  const int pairs = table.pairs();
  if (tokens * heads * pairs == 0) return;
  const DeviceRopeTable& device_table = rope_table(table, *state_);
  const auto* base = static_cast<const uint8_t*>(device_table.device.data());
  kernels::rope(state_->stream, x.data_as<float>(), at<int32_t>(base, device_table.first),
                at<int32_t>(base, device_table.second), at<float>(base, device_table.inv_freq),
                at<uint8_t>(base, device_table.axis), device_positions(positions, *state_), tokens, heads, pairs,
                table.head_dim);
  check_launch("rope");
}

void CudaBackend::softmax(const Tensor& x, Tensor& out) {
  const int64_t rows = rows_of(x, "softmax");
  expect_f32(out, "softmax", "out");
  expect_same_shape(x, out, "softmax", "out");
  if (rows == 0) return;
  const int64_t n = last_dim(x);
  kernels::softmax(state_->stream, x.data_as<float>(), rows, n, out.data_as<float>());
  check_launch("softmax");
}

void CudaBackend::argmax(const Tensor& x, std::span<int32_t> out) {
  const int64_t rows = rows_of(x, "argmax");
  if (static_cast<int64_t>(out.size()) != rows)
    fail(ErrorKind::kInternal, "[argmax] out holds {} of {} rows", out.size(), rows);
  if (rows == 0) return;
  std::vector<float> values(static_cast<size_t>(rows));
  top_k(x, 1, out, values);
}

void CudaBackend::top_k(const Tensor& x, int k, std::span<int32_t> indices, std::span<float> values) {
  const int64_t rows = rows_of(x, "top_k");
  const int64_t n = last_dim(x);
  if (k <= 0 || k > n) fail(ErrorKind::kInternal, "[top_k] k = {} for rows of {}", k, n);
  if (static_cast<int64_t>(indices.size()) != rows * k || static_cast<int64_t>(values.size()) != rows * k) {
    fail(ErrorKind::kInternal, "[top_k] outputs must hold {} × {} entries", rows, k);
  }
  if (rows == 0) return;
  const size_t count = static_cast<size_t>(rows * k);
  auto* device = static_cast<uint8_t*>(state_->result.reserve(count * (sizeof(int32_t) + sizeof(float))));
  auto* device_indices = reinterpret_cast<int32_t*>(device);
  auto* device_values = reinterpret_cast<float*>(device + count * sizeof(int32_t));
  kernels::top_k(state_->stream, x.data_as<float>(), rows, n, k, device_indices, device_values);
  check_launch("top_k");
  LOOM_CUDA(
      cudaMemcpyAsync(indices.data(), device_indices, count * sizeof(int32_t), cudaMemcpyDeviceToHost, state_->stream));
  LOOM_CUDA(
      cudaMemcpyAsync(values.data(), device_values, count * sizeof(float), cudaMemcpyDeviceToHost, state_->stream));
  LOOM_CUDA(cudaStreamSynchronize(state_->stream));
}

void CudaBackend::avg_pool_2d(const Tensor& x, int64_t grid_h, int64_t grid_w, int kernel, Tensor& out) {
  expect_f32(x, "avg_pool_2d", "x");
  expect_f32(out, "avg_pool_2d", "out");
  if (kernel <= 0 || grid_h % kernel != 0 || grid_w % kernel != 0) {
    fail(ErrorKind::kInternal, "[avg_pool_2d] a {}×{} grid does not split into {}×{} windows", grid_h, grid_w, kernel,
         kernel);
  }
  if (x.rank() != 2 || x.dim(0) != grid_h * grid_w) {
    fail(ErrorKind::kInternal, "[avg_pool_2d] x has shape {}, expected [{}, channels]", shape_string(x.shape()),
         grid_h * grid_w);
  }
  const int64_t channels = x.dim(1);
  const int64_t out_h = grid_h / kernel, out_w = grid_w / kernel;
  expect_shape(out, {out_h * out_w, channels}, "avg_pool_2d", "out");
  const int64_t cells = out_h * out_w;
  if (cells * channels == 0) return;
  kernels::avg_pool_2d(state_->stream, x.data_as<float>(), grid_w, kernel, out_w, channels, cells,
                       out.data_as<float>());
  check_launch("avg_pool_2d");
}

void CudaBackend::extract_patches(const Tensor& image, int patch, Tensor& out) {
  expect_f32(image, "extract_patches", "image");
  expect_f32(out, "extract_patches", "out");
  if (image.rank() != 3 || patch <= 0 || image.dim(1) % patch != 0 || image.dim(2) % patch != 0) {
    fail(ErrorKind::kInternal, "[extract_patches] image {} does not split into {}×{} patches",
         shape_string(image.shape()), patch, patch);
  }
  const int64_t channels = image.dim(0), height = image.dim(1), width = image.dim(2);
  const int64_t patch_elems = channels * patch * patch;
  expect_shape(out, {(height / patch) * (width / patch), patch_elems}, "extract_patches", "out");
  kernels::extract_patches(state_->stream, image.data_as<float>(), channels, height, width, patch,
                           out.data_as<float>());
  check_launch("extract_patches");
}

}  // namespace loom::backend::cuda
