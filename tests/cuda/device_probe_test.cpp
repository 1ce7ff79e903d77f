// The CUDA device probes behind `loom bench --device cuda`: positive, physically sane figures (bounds far outside any
// GPU's published range would mean a unit or timing error), GEMM times that scale with the work, and an allocation
// counter that follows the backend's allocations byte for byte. Skips without a GPU.

#include "backend/cuda/device_probe.h"

#include <gtest/gtest.h>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace loom::backend::cuda {
namespace {

class DeviceProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
    probe_ = make_device_probe(0);
  }
  std::unique_ptr<DeviceProbe> probe_;
};

TEST_F(DeviceProbeTest, CopyBandwidthIsPositiveAndSane) {
  const CopyBandwidth copy = probe_->copy_bandwidth(int64_t{1} << 30, 3);
  EXPECT_EQ(copy.buffer_bytes, int64_t{1} << 30);
  EXPECT_GT(copy.seconds, 0);
  EXPECT_DOUBLE_EQ(copy.bytes_per_s, 2.0 * static_cast<double>(int64_t{1} << 30) / copy.seconds);
  // Read + written bytes per second: every datacenter GPU lies between 100 GB/s and 20 TB/s (H200 HBM3e: 4.8 TB/s).
  EXPECT_GT(copy.bytes_per_s, 100e9);
  EXPECT_LT(copy.bytes_per_s, 20e12);
  EXPECT_FALSE(probe_->device_name().empty());
}

TEST_F(DeviceProbeTest, GemmTimesAreSaneAndScaleWithTheWork) {
  const GemmShape square{.m = 4096, .n = 4096, .k = 4096, .count = 1};
  const double one = probe_->gemm_seconds({&square, 1}, 5);
  ASSERT_GT(one, 0);
  const double tflops = 2.0 * 4096.0 * 4096.0 * 4096.0 / one / 1e12;
  EXPECT_GT(tflops, 5);     // far below any tensor-core GPU's bf16 rate
  EXPECT_LT(tflops, 5000);  // far above any (H200 dense bf16: ~990)
  // count multiplies the best time of the shape.
  const GemmShape thrice{.m = 4096, .n = 4096, .k = 4096, .count = 3};
  const double three = probe_->gemm_seconds({&thrice, 1}, 5);
  EXPECT_NEAR(three / one, 3.0, 0.6);
  // Eight times the arithmetic takes clearly longer; a decode-like GEMV (m = 1) over a 262144 × 5376 weight is
  // bound by reading its 2.8 GB, so it takes at least that over 20 TB/s.
  const GemmShape big{.m = 8192, .n = 8192, .k = 8192, .count = 1};
  EXPECT_GT(probe_->gemm_seconds({&big, 1}, 3), 3 * one);
  const GemmShape gemv{.m = 1, .n = 262144, .k = 5376, .count = 1};
  EXPECT_GT(probe_->gemm_seconds({&gemv, 1}, 3), 262144.0 * 5376.0 * 2.0 / 20e12);
  EXPECT_NE(probe_->gemm_name().find("bf16"), std::string::npos);
  const GemmShape bad{.m = 0, .n = 1, .k = 1, .count = 1};
  EXPECT_THROW(probe_->gemm_seconds({&bad, 1}, 1), Error);
}

TEST_F(DeviceProbeTest, MemoryFollowsTheBackendsAllocations) {
  const DeviceMemoryInfo memory = probe_->memory();
  EXPECT_GT(memory.total_bytes, int64_t{1} << 30);
  EXPECT_GT(memory.free_bytes, 0);
  EXPECT_LE(memory.free_bytes, memory.total_bytes);

  CudaBackend gpu(0);
  ASSERT_TRUE(gpu.memory_info().has_value());
  EXPECT_EQ(gpu.memory_info()->total_bytes, memory.total_bytes);

  const int64_t before = probe_->allocated_bytes();
  probe_->reset_peak();
  EXPECT_EQ(probe_->peak_allocated_bytes(), before);
  {
    const Tensor t = gpu.allocate(DType::kF32, {1024, 1024});
    EXPECT_EQ(probe_->allocated_bytes() - before, 4 << 20);
    EXPECT_GE(probe_->peak_allocated_bytes(), before + (4 << 20));
    // cudaMemGetInfo sees the allocation too (the driver rounds up to its page size).
    EXPECT_LE(gpu.memory_info()->free_bytes, memory.free_bytes - (4 << 20) + (2 << 20));
  }
  EXPECT_EQ(probe_->allocated_bytes(), before);
  EXPECT_GE(probe_->peak_allocated_bytes(), before + (4 << 20));  // the high-water mark stays until reset
  probe_->reset_peak();
  EXPECT_EQ(probe_->peak_allocated_bytes(), probe_->allocated_bytes());
}

TEST(DeviceProbeNoGpu, AMissingGpuIsRefused) {
  EXPECT_THROW(make_device_probe(device_count()), Error);
}

}  // namespace
}  // namespace loom::backend::cuda
