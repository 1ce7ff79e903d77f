#pragma once
// The CUDA kernels' launch functions: plain C++ (no CUDA or fmt headers), so the backend's host logic lives in .cpp
// files compiled by the host compiler and the .cu files hold only kernels. Every launcher queues its kernel on the
// given stream (the backend's) and returns at once; the caller checks cudaGetLastError (check_launch). Pointers are
// device memory.

#include <cstdint>

// cudaStream_t is a pointer to this runtime type; naming it here keeps CUDA headers out of the host files.
struct CUstream_st;

namespace loom::backend::cuda::kernels {

using Stream = CUstream_st*;

// A weight as kernels see it (plain data, passed by value to kernels).
struct WeightView {
  const uint8_t* values = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t row_bytes = 0;  // bytes of one packed (or float) row
  int64_t groups = 0;     // scale entries per row
  int group_size = 0;
  int scale_kind = 0;  // affine scales/biases and unaligned float values: 0 F32, 1 F16, 2 BF16
  float output_scale = 1.0f;
};

enum class Format : uint8_t {
  kF32,
  kF16,
  kBF16,
  kFloatAny,  // float weights whose columns are no multiple of 32 (element loads; dtype in scale_kind)
  kAffine2,
  kAffine3,
  kAffine4,
  kAffine5,
  kAffine6,
  kAffine8,
  kMxfp4,
  kMxfp8,
  kNvfp4,
};

inline constexpr int kGemvMaxRows = 16;

// out[k, :] = decode(w[row_k, :]) · scale, row_k = ids ? ids[k] : first + k.
void dequantize(Stream stream, const WeightView& w, Format format, const int32_t* ids, int64_t first, int64_t count,
                float scale, float* out);
// out[i·rows + r] = x[i, :] · w[r, :] for i < n ≤ kGemvMaxRows; x rows 16-byte aligned unless kFloatAny.
// `multiprocessors` (the GPU's) decides how finely short, wide matrices are split along their columns.
void gemv(Stream stream, const WeightView& w, Format format, const float* x, int n, int multiprocessors, float* out);
void add_bias(Stream stream, float* x, const float* bias, int64_t rows, int64_t cols);
// out[k, :] = 0 for every k with keep[k] == 0 (the rows of a vocab-parallel embedding outside this rank's range).
void zero_rows(Stream stream, float* out, const int32_t* keep, int64_t count, int64_t cols);

// mode: 0 none, 1 scale, 2 one-plus.
void rms_norm(Stream stream, const float* x, const float* w, int mode, float eps, int64_t rows, int64_t dim,
              float* out);
void layer_norm(Stream stream, const float* x, const float* w, const float* b, float eps, int64_t rows, int64_t dim,
                float* out);

enum class Unary : int { kActivation, kScale, kSoftcap, kClamp };
enum class Binary : int { kAdd, kMul, kGated };
// act: Activation as int. Unary parameters: scale p; softcap p = cap, q = 1/cap; clamp [p, q].
void unary(Stream stream, Unary op, int act, float p, float q, const float* x, int64_t n, float* out);
void binary(Stream stream, Binary op, int act, const float* a, const float* b, int64_t n, float* out);

void rope(Stream stream, float* x, const int32_t* first, const int32_t* second, const float* inv_freq,
          const uint8_t* axis, const int32_t* positions, int64_t tokens, int64_t heads, int pairs, int64_t d);

void softmax(Stream stream, const float* x, int64_t rows, int64_t n, float* out);
void top_k(Stream stream, const float* x, int64_t rows, int64_t n, int k, int32_t* indices, float* values);
void avg_pool_2d(Stream stream, const float* x, int64_t grid_w, int kernel, int64_t out_w, int64_t channels,
                 int64_t cells, float* out);
void extract_patches(Stream stream, const float* image, int64_t channels, int64_t height, int64_t width, int patch,
                     float* out);

// A step's sequences on the device (see attention.cpp).
struct SeqMeta {
  int64_t token_offset, token_count, kv_start;
  int32_t table_begin, span_begin, span_count, pad;
};
struct StepMeta {
  const SeqMeta* seqs;
  const int32_t* row_seq;  // packed row → sequence index
  const int32_t* tables;   // block tables back to back
  const int64_t* spans;    // bidirectional spans as (start, end) pairs
};
struct MaskParams {
  float scale;
  int mask;  // MaskKind
  int64_t window;
  float softcap;
  int spans;  // SpanMode: how the step's bidirectional spans change the mask
};
inline constexpr int kMaxHeadDim = 512;

void kv_append(Stream stream, const float* k, const float* v, const StepMeta& step, int64_t tokens, int64_t kv_heads,
               int64_t d, int64_t block_size, float* key_arena, float* value_arena);
// paged: keys/values are the layer's arenas [blocks, kv_heads, block_size, d]; else dense [T, kv_heads, d]. Each
// (row, head)'s keys are cut into `splits` ranges (1 ≤ splits ≤ kMaxSplits) worked on in parallel and joined in a
// second kernel; with splits > 1, `partials` holds rows · heads · splits · (d + 2) floats.
inline constexpr int kMaxSplits = 64;
void attention(Stream stream, bool paged, const float* q, int64_t rows, int64_t heads, int64_t kv_heads, int d,
               const float* keys, const float* values, int64_t block_size, const StepMeta& step, const MaskParams& mask,
               int splits, float* partials, float* out);

}  // namespace loom::backend::cuda::kernels
