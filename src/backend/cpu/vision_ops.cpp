// Helpers the vision towers need around their matmuls: average pooling over the patch grid and the patch gather that
// turns a stride = kernel convolution into a matmul.
#include <algorithm>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {

void CpuBackend::avg_pool_2d(const Tensor& x, int64_t grid_h, int64_t grid_w, int kernel, Tensor& out) {
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
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  const float inv = 1.0f / static_cast<float>(kernel * kernel);
  parallel(out_h * out_w, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cell = begin; cell < end; ++cell) {
      const int64_t oy = cell / out_w, ox = cell % out_w;
      float* dst = o + cell * channels;
      std::fill_n(dst, channels, 0.0f);
      for (int dy = 0; dy < kernel; ++dy) {
        for (int dx = 0; dx < kernel; ++dx) {
          const float* src = in + ((oy * kernel + dy) * grid_w + ox * kernel + dx) * channels;
          for (int64_t c = 0; c < channels; ++c) dst[c] += src[c];
        }
      }
      for (int64_t c = 0; c < channels; ++c) dst[c] *= inv;
    }
  });
}

void CpuBackend::extract_patches(const Tensor& image, int patch, Tensor& out) {
  expect_f32(image, "extract_patches", "image");
  expect_f32(out, "extract_patches", "out");
  if (image.rank() != 3 || patch <= 0 || image.dim(1) % patch != 0 || image.dim(2) % patch != 0) {
    fail(ErrorKind::kInternal, "[extract_patches] image {} does not split into {}×{} patches",
         shape_string(image.shape()), patch, patch);
  }
  const int64_t channels = image.dim(0), height = image.dim(1), width = image.dim(2);
  const int64_t cols = width / patch;
  const int64_t patch_elems = channels * patch * patch;
  expect_shape(out, {(height / patch) * cols, patch_elems}, "extract_patches", "out");
  const float* in = image.data_as<float>();
  float* o = out.data_as<float>();
  parallel((height / patch) * cols, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t py = p / cols, px = p % cols;
      float* dst = o + p * patch_elems;
      for (int64_t c = 0; c < channels; ++c) {
        for (int y = 0; y < patch; ++y) {
          const float* src = in + (c * height + py * patch + y) * width + px * patch;
          std::copy_n(src, patch, dst + (c * patch + y) * patch);
        }
      }
    }
  });
}

}  // namespace loom::backend::cpu
