#pragma once
// The inner loops that decide CPU speed, in one table per instruction set. The build has no -march flags: the AVX2
// table is compiled with per-function target attributes and chosen at run time when the CPU has AVX2, FMA and F16C;
// otherwise the portable table runs. Tests run every table the machine supports against the scalar reference.

#include <cstdint>
#include <optional>
#include <vector>

namespace loom::backend::cpu {

enum class Isa : uint8_t { kGeneric, kAvx2 };

// A "row block" GEMV: for weight rows r in [0, rows) at w + r·ld_w elements and activation rows i in [0, n) at
// x + i·len, writes out[i·ldo + r] = Σ_c x[i, c]·w[r, c]. The weight element type is the kernel's (f32, bf16, f16).
using GemvKernel = void (*)(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len,
                            float* out, int64_t ldo);
using ConvertKernel = void (*)(const void* src, float* dst, int64_t count);

struct SimdKernels {
  Isa isa;
  GemvKernel gemv_f32;
  GemvKernel gemv_bf16;
  GemvKernel gemv_f16;
  ConvertKernel bf16_to_f32;
  ConvertKernel f16_to_f32;
  float (*dot)(const float* a, const float* b, int64_t len);
  void (*axpy)(float a, const float* x, float* y, int64_t len);  // y += a·x
};

const SimdKernels& generic_kernels();
const SimdKernels& avx2_kernels();  // only call when isa_supported(Isa::kAvx2)
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();

// The table every op uses: the best supported one, unless a test forced another.
const SimdKernels& active_kernels();
void force_isa(std::optional<Isa> isa);  // tests: run the same op on each table

// Scalar conversions shared by the generic table and by code outside the hot loops.
float bf16_to_float(uint16_t bits);
float f16_to_float(uint16_t bits);

}  // namespace loom::backend::cpu
