// The tensor-parallel wire messages (model/tp_step_codec.h): any bytes as a message from a peer → every decoder.
// Bad input must end in loom::Error, never in a crash, an out-of-bounds read, an allocation the message could not
// describe, or another exception type. A step that decodes must encode back to the same bytes (the format has one
// encoding per step).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/error.h"
#include "model/tp_step_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> message(data, size);
  try {
    (void)loom::model::message_type(message);
  } catch (const loom::Error&) {
  }
  try {
    const loom::model::DecodedStep step = loom::model::decode_step(message);
    const std::vector<uint8_t> again = loom::model::encode_step(step.inputs(), step.cache);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
  } catch (const loom::Error&) {
  }
  try {
    (void)loom::model::decode_hello(message);
  } catch (const loom::Error&) {
  }
  try {
    (void)loom::model::decode_welcome(message);
  } catch (const loom::Error&) {
  }
  try {
    (void)loom::model::decode_loaded(message);
  } catch (const loom::Error&) {
  }
  try {
    (void)loom::model::decode_error(message);
  } catch (const loom::Error&) {
  }
  return 0;
}
