#pragma once
// The messages between rank 0 of a tensor-parallel group and its worker processes (`loom tp-worker`), as bytes: what a
// remote rank needs for each forward call (the step's Batch, its image rows as host F32 rows, whether every row wants
// logits, and the geometry of the engine's KV cache so the worker can keep a mirror of it) and the control messages
// around it (hello, welcome, loaded, done, error, shutdown).
//
// Encoding: little-endian, fixed-width integers, every vector and string preceded by its element count (i64 / u32).
// The transport frames each message (backend/tcp_link.h); a message is one frame. Decoding checks every read against
// the bytes left and every count against what those bytes can hold before allocating, so a truncated or malformed
// message throws loom::Error(kInvalidRequest) naming the field, never reads out of bounds and never allocates more than
// the message could describe.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backend/batch.h"
#include "core/error.h"
#include "model/model.h"

namespace loom::model {

enum class TpMessageType : uint8_t {
  kHello = 1,     // worker → rank 0, first message on each connection
  kWelcome = 2,   // rank 0 → worker: accepted (carries the transport's bootstrap bytes: NCCL's unique id)
  kLoaded = 3,    // worker → rank 0: its shard is loaded
  kStep = 4,      // rank 0 → worker: one forward call
  kDone = 5,      // worker → rank 0: the step ran
  kError = 6,     // either way: a failure (the connection ends after it)
  kShutdown = 7,  // rank 0 → worker: exit cleanly
};

// Which of a worker's connections a hello opens: the control channel (steps and replies) or, for the CPU socket
// communicator, the channel its collectives use.
enum class TpChannel : uint8_t { kControl = 0, kData = 1 };

// What rank 0 and a worker must agree on before they can form a group: the same model (architecture, decoder layers,
// hidden size, read from the snapshot's config) split the same way (ranks).
struct ModelFingerprint {
  std::string architecture;
  int64_t layers = 0;
  int64_t hidden_size = 0;
  int32_t ranks = 0;
  bool operator==(const ModelFingerprint&) const = default;
  std::string to_string() const;  // "Gemma3ForConditionalGeneration, 2 layers, hidden 64, 2 ranks"
};

struct TpHello {
  int32_t rank = 0;
  TpChannel channel = TpChannel::kControl;
  ModelFingerprint model;
};

// The part of the engine's KV cache a worker mirrors: the same block count and block size (its own per-rank KV shape),
// so the engine's block tables are valid on it. `key` tells caches apart (a new key or new geometry is a new cache).
struct CacheGeometry {
  uint64_t key = 0;
  int64_t blocks = 0;
  int32_t block_size = 0;
  bool operator==(const CacheGeometry&) const = default;
};

// One forward call as a worker receives it: owns what StepInputs points to.
struct DecodedStep {
  backend::Batch batch;
  std::vector<ImageRows> images;  // host F32 [rows, width]
  bool all_logits = false;
  CacheGeometry cache;
  StepInputs inputs() const { return {&batch, images, all_logits}; }
};

struct TpLoaded {
  int64_t vocab_size = 0;
  int64_t kv_layers = 0;
};

struct TpErrorReply {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

// Encoders: one message each. Image rows must be host F32 [rows, width] tensors (kInternal otherwise).
std::vector<uint8_t> encode_hello(const TpHello& hello);
std::vector<uint8_t> encode_welcome(std::span<const uint8_t> bootstrap);
std::vector<uint8_t> encode_loaded(const TpLoaded& loaded);
std::vector<uint8_t> encode_step(const StepInputs& step, const CacheGeometry& cache);
std::vector<uint8_t> encode_done();
std::vector<uint8_t> encode_error(ErrorKind kind, std::string_view message);
std::vector<uint8_t> encode_shutdown();

// The type byte of a message (throws on an empty message or an unknown type).
TpMessageType message_type(std::span<const uint8_t> message);

// Decoders: each checks the type byte and that the message ends where its fields do.
TpHello decode_hello(std::span<const uint8_t> message);
std::vector<uint8_t> decode_welcome(std::span<const uint8_t> message);
TpLoaded decode_loaded(std::span<const uint8_t> message);
DecodedStep decode_step(std::span<const uint8_t> message);
TpErrorReply decode_error(std::span<const uint8_t> message);

}  // namespace loom::model
