// libFuzzer target: arbitrary bytes as a whole safetensors file image. The header parser must either accept the
// input (and then every tensor lies inside the data buffer) or throw loom::Error; anything else is a bug.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto header = loom::weights::parse_safetensors_header(file, "fuzz.safetensors");
    uint64_t covered = 0;
    for (const auto& t : header.tensors) {
      if (t.begin != covered || t.end > header.data_bytes) std::abort();  // accepted a file that is not tiled
      covered = t.end;
    }
    if (covered != header.data_bytes || header.data_offset + header.data_bytes != size) std::abort();
  } catch (const loom::Error&) {
  }
  return 0;
}
