// The CPU backend's memory: plain host tensors. Upload and download are identities so a model written against the
// Backend contract pays nothing for them on the CPU.
#include <cstring>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {
namespace {

void expect_host(const Tensor& t, std::string_view op, std::string_view what) {
  if (!t.empty() && t.device().kind != DeviceKind::kCpu) {
    fail(ErrorKind::kInternal, "[{}] {} is not in host memory", op, what);
  }
}

}  // namespace

Tensor CpuBackend::allocate(DType dtype, Shape shape) {
  return Tensor::zeros(dtype, std::move(shape));
}

Tensor CpuBackend::upload(const Tensor& host) {
  expect_host(host, "upload", "tensor");
  return host;
}

weights::Weight CpuBackend::upload(const weights::Weight& host) {
  expect_host(host.values, "upload", "weight values");
  expect_host(host.scales, "upload", "weight scales");
  expect_host(host.biases, "upload", "weight biases");
  return host;
}

Tensor CpuBackend::to_host(const Tensor& t) {
  expect_host(t, "to_host", "tensor");
  return t;
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  expect_host(src, "copy", "src");
  expect_host(dst, "copy", "dst");
  if (src.dtype() != dst.dtype() || src.elements() != dst.elements()) {
    fail(ErrorKind::kInternal, "[copy] {} {} into {} {}", dtype_name(src.dtype()), shape_string(src.shape()),
         dtype_name(dst.dtype()), shape_string(dst.shape()));
  }
  if (src.bytes() != 0 && src.data() != dst.data()) std::memcpy(dst.data(), src.data(), src.bytes());
}

}  // namespace loom::backend::cpu
