#include "model/tp_step_codec.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <limits>
#include <string_view>

namespace loom::model {
namespace {

static_assert(std::endian::native == std::endian::little, "the tensor-parallel wire format is written as host bytes");

// The hello starts with these bytes and a version, so a stray connection that is not a loom worker is told apart.
constexpr std::string_view kMagic = "LOOMTP";
constexpr uint16_t kVersion = 1;
// Strings on the wire (architecture names, error messages) are short; a larger length is a corrupt message.
constexpr uint32_t kMaxString = 1 << 20;

class Writer {
 public:
  explicit Writer(TpMessageType type) { u8(static_cast<uint8_t>(type)); }
  void u8(uint8_t v) { bytes_.push_back(v); }
  // Not inlined: g++ 12 at -O3 otherwise "proves" overflows in the vector's growth for the small constant sizes of
  // the control messages (false -Wstringop-overflow / -Warray-bounds).
  [[gnu::noinline]] void raw(const void* data, size_t size) {
    if (size == 0) return;
    const size_t at = bytes_.size();
    bytes_.resize(at + size);
    std::memcpy(bytes_.data() + at, data, size);
  }
  template <typename T>
  void scalar(T v) {
    raw(&v, sizeof v);
  }
  void string(std::string_view s) {
    scalar(static_cast<uint32_t>(std::min<size_t>(s.size(), kMaxString)));
    raw(s.data(), std::min<size_t>(s.size(), kMaxString));
  }
  template <typename T>
  void vector(const std::vector<T>& v) {
    scalar(static_cast<int64_t>(v.size()));
    raw(v.data(), v.size() * sizeof(T));
  }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, TpMessageType type, const char* what) : bytes_(bytes), what_(what) {
    const auto got = u8("type");
    if (got != static_cast<uint8_t>(type)) {
      fail(ErrorKind::kInvalidRequest, "[tp message] expected a {} message (type {}), got type {}", what_,
           static_cast<int>(type), got);
    }
  }
  uint8_t u8(const char* field) {
    uint8_t v = 0;
    read(&v, 1, field);
    return v;
  }
  template <typename T>
  T scalar(const char* field) {
    T v{};
    read(&v, sizeof v, field);
    return v;
  }
  // A count of elements of `element_size` bytes each that the rest of the message must be able to hold.
  size_t count(const char* field, size_t element_size) {
    const auto n = scalar<int64_t>(field);
    if (n < 0 || static_cast<uint64_t>(n) > left() / element_size) {
      fail(ErrorKind::kInvalidRequest, "[tp {}] {}: count {} does not fit the {} bytes left", what_, field, n, left());
    }
    return static_cast<size_t>(n);
  }
  std::string string(const char* field) {
    const auto n = scalar<uint32_t>(field);
    if (n > kMaxString || n > left()) {
      fail(ErrorKind::kInvalidRequest, "[tp {}] {}: length {} does not fit the {} bytes left", what_, field, n, left());
    }
    std::string s(n, '\0');
    read(s.data(), n, field);
    return s;
  }
  template <typename T>
  std::vector<T> vector(const char* field) {
    std::vector<T> v(count(field, sizeof(T)));
    read(v.data(), v.size() * sizeof(T), field);
    return v;
  }
  void read(void* out, size_t size, const char* field) {
    if (size > left()) {
      fail(ErrorKind::kInvalidRequest, "[tp {}] truncated at {}: {} bytes needed, {} left", what_, field, size, left());
    }
    if (size > 0) std::memcpy(out, bytes_.data() + pos_, size);
    pos_ += size;
  }
  size_t left() const { return bytes_.size() - pos_; }
  void finish() const {
    if (left() != 0) fail(ErrorKind::kInvalidRequest, "[tp {}] {} unexpected bytes after the message", what_, left());
  }
  const char* what() const { return what_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  const char* what_;
};

void write_fingerprint(Writer& w, const ModelFingerprint& f) {
  w.string(f.architecture);
  w.scalar(f.layers);
  w.scalar(f.hidden_size);
  w.scalar(f.ranks);
}

ModelFingerprint read_fingerprint(Reader& r) {
  ModelFingerprint f;
  f.architecture = r.string("model.architecture");
  f.layers = r.scalar<int64_t>("model.layers");
  f.hidden_size = r.scalar<int64_t>("model.hidden_size");
  f.ranks = r.scalar<int32_t>("model.ranks");
  return f;
}

bool read_bool(Reader& r, const char* field) {
  const uint8_t v = r.u8(field);
  if (v > 1) fail(ErrorKind::kInvalidRequest, "[tp {}] {}: {} is not a boolean (0 or 1)", r.what(), field, v);
  return v == 1;
}

}  // namespace

std::string ModelFingerprint::to_string() const {
  return fmt::format("{}, {} layers, hidden {}, {} ranks", architecture, layers, hidden_size, ranks);
}

std::vector<uint8_t> encode_hello(const TpHello& hello) {
  Writer w(TpMessageType::kHello);
  w.raw(kMagic.data(), kMagic.size());
  w.scalar(kVersion);
  w.scalar(hello.rank);
  w.u8(static_cast<uint8_t>(hello.channel));
  write_fingerprint(w, hello.model);
  return w.take();
}

std::vector<uint8_t> encode_welcome(std::span<const uint8_t> bootstrap) {
  Writer w(TpMessageType::kWelcome);
  w.scalar(static_cast<int64_t>(bootstrap.size()));
  w.raw(bootstrap.data(), bootstrap.size());
  return w.take();
}

std::vector<uint8_t> encode_loaded(const TpLoaded& loaded) {
  Writer w(TpMessageType::kLoaded);
  w.scalar(loaded.vocab_size);
  w.scalar(loaded.kv_layers);
  return w.take();
}

std::vector<uint8_t> encode_step(const StepInputs& step, const CacheGeometry& cache) {
  if (step.batch == nullptr) fail(ErrorKind::kInternal, "[tp step] the step has no batch");
  const backend::Batch& batch = *step.batch;
  Writer w(TpMessageType::kStep);
  w.scalar(cache.key);
  w.scalar(cache.blocks);
  w.scalar(cache.block_size);
  w.u8(step.all_logits ? 1 : 0);
  w.scalar(static_cast<int32_t>(batch.position_axes));
  w.vector(batch.token_ids);
  w.vector(batch.positions);
  w.scalar(static_cast<int64_t>(batch.sequences.size()));
  for (const backend::SequenceSlice& s : batch.sequences) {
    w.scalar(s.token_offset);
    w.scalar(s.token_count);
    w.scalar(s.kv_start);
    w.vector(s.block_table);
    w.scalar(static_cast<int64_t>(s.bidirectional_spans.size()));
    for (const backend::TokenRange& span : s.bidirectional_spans) {
      w.scalar(span.start);
      w.scalar(span.end);
    }
  }
  w.scalar(static_cast<int64_t>(step.images.size()));
  for (const ImageRows& rows : step.images) {
    const Tensor& e = rows.embeddings;
    if (e.dtype() != DType::kF32 || e.device().kind != DeviceKind::kCpu || e.rank() != 2) {
      fail(ErrorKind::kInternal, "[tp step] image rows at {} must be host F32 [rows, width], got {} {}", rows.row_begin,
           dtype_name(e.dtype()), shape_string(e.shape()));
    }
    w.scalar(rows.row_begin);
    w.scalar(e.dim(0));
    w.scalar(e.dim(1));
    if (e.elements() > 0) w.raw(e.data(), e.bytes());
  }
  return w.take();
}

std::vector<uint8_t> encode_done() {
  return Writer(TpMessageType::kDone).take();
}

std::vector<uint8_t> encode_error(ErrorKind kind, std::string_view message) {
  Writer w(TpMessageType::kError);
  w.u8(static_cast<uint8_t>(kind));
  w.string(message);
  return w.take();
}

std::vector<uint8_t> encode_shutdown() {
  return Writer(TpMessageType::kShutdown).take();
}

TpMessageType message_type(std::span<const uint8_t> message) {
  if (message.empty()) fail(ErrorKind::kInvalidRequest, "[tp message] empty message: no type byte");
  const uint8_t t = message[0];
  if (t < static_cast<uint8_t>(TpMessageType::kHello) || t > static_cast<uint8_t>(TpMessageType::kShutdown)) {
    fail(ErrorKind::kInvalidRequest, "[tp message] unknown message type {}", t);
  }
  return static_cast<TpMessageType>(t);
}

TpHello decode_hello(std::span<const uint8_t> message) {
  Reader r(message, TpMessageType::kHello, "hello");
  char magic[kMagic.size()];
  r.read(magic, sizeof magic, "magic");
  if (std::string_view(magic, sizeof magic) != kMagic) {
    fail(ErrorKind::kInvalidRequest, "[tp hello] magic: not a loom tensor-parallel worker");
  }
  const auto version = r.scalar<uint16_t>("version");
  if (version != kVersion) {
    fail(ErrorKind::kInvalidRequest, "[tp hello] version: the worker speaks version {}, this loom {}", version,
         kVersion);
  }
  TpHello hello;
  hello.rank = r.scalar<int32_t>("rank");
  const uint8_t channel = r.u8("channel");
  if (channel > static_cast<uint8_t>(TpChannel::kData)) {
    fail(ErrorKind::kInvalidRequest, "[tp hello] channel: unknown channel {}", channel);
  }
  hello.channel = static_cast<TpChannel>(channel);
  hello.model = read_fingerprint(r);
  r.finish();
  return hello;
}

std::vector<uint8_t> decode_welcome(std::span<const uint8_t> message) {
  Reader r(message, TpMessageType::kWelcome, "welcome");
  std::vector<uint8_t> bootstrap(r.count("bootstrap", 1));
  r.read(bootstrap.data(), bootstrap.size(), "bootstrap");
  r.finish();
  return bootstrap;
}

TpLoaded decode_loaded(std::span<const uint8_t> message) {
  Reader r(message, TpMessageType::kLoaded, "loaded");
  TpLoaded loaded;
  loaded.vocab_size = r.scalar<int64_t>("vocab_size");
  loaded.kv_layers = r.scalar<int64_t>("kv_layers");
  r.finish();
  return loaded;
}

DecodedStep decode_step(std::span<const uint8_t> message) {
  Reader r(message, TpMessageType::kStep, "step");
  DecodedStep step;
  step.cache.key = r.scalar<uint64_t>("cache.key");
  step.cache.blocks = r.scalar<int64_t>("cache.blocks");
  step.cache.block_size = r.scalar<int32_t>("cache.block_size");
  if (step.cache.blocks < 1 || step.cache.block_size < 1) {
    fail(ErrorKind::kInvalidRequest, "[tp step] cache: {} blocks of {} tokens, expected at least 1 of 1",
         step.cache.blocks, step.cache.block_size);
  }
  step.all_logits = read_bool(r, "all_logits");
  backend::Batch& batch = step.batch;
  batch.position_axes = r.scalar<int32_t>("position_axes");
  if (batch.position_axes < 1 || batch.position_axes > 3) {
    fail(ErrorKind::kInvalidRequest, "[tp step] position_axes: {} outside 1..3", batch.position_axes);
  }
  batch.token_ids = r.vector<int32_t>("token_ids");
  batch.positions = r.vector<int32_t>("positions");
  if (batch.positions.size() != batch.token_ids.size() * static_cast<size_t>(batch.position_axes)) {
    fail(ErrorKind::kInvalidRequest, "[tp step] positions: {} for {} tokens on {} axes", batch.positions.size(),
         batch.token_ids.size(), batch.position_axes);
  }
  // A sequence takes at least 4 × 8 bytes (offset, count, kv_start, the two counts).
  batch.sequences.resize(r.count("sequences", 5 * sizeof(int64_t)));
  for (backend::SequenceSlice& s : batch.sequences) {
    s.token_offset = r.scalar<int64_t>("sequence.token_offset");
    s.token_count = r.scalar<int64_t>("sequence.token_count");
    s.kv_start = r.scalar<int64_t>("sequence.kv_start");
    s.block_table = r.vector<int32_t>("sequence.block_table");
    s.bidirectional_spans.resize(r.count("sequence.bidirectional_spans", 2 * sizeof(int64_t)));
    for (backend::TokenRange& span : s.bidirectional_spans) {
      span.start = r.scalar<int64_t>("span.start");
      span.end = r.scalar<int64_t>("span.end");
    }
  }
  step.images.resize(r.count("images", 3 * sizeof(int64_t)));
  for (ImageRows& rows : step.images) {
    rows.row_begin = r.scalar<int64_t>("image.row_begin");
    const auto count = r.scalar<int64_t>("image.rows");
    const auto width = r.scalar<int64_t>("image.width");
    if (count < 0 || width < 1 ||
        static_cast<uint64_t>(count) > r.left() / sizeof(float) / static_cast<uint64_t>(width)) {
      fail(ErrorKind::kInvalidRequest, "[tp step] image at row {}: [{}, {}] does not fit the {} bytes left",
           rows.row_begin, count, width, r.left());
    }
    rows.embeddings = Tensor::zeros(DType::kF32, {count, width});
    r.read(rows.embeddings.data(), static_cast<size_t>(count * width) * sizeof(float), "image.embeddings");
  }
  r.finish();
  return step;
}

TpErrorReply decode_error(std::span<const uint8_t> message) {
  Reader r(message, TpMessageType::kError, "error");
  TpErrorReply reply;
  const uint8_t kind = r.u8("kind");
  if (kind > static_cast<uint8_t>(ErrorKind::kInternal)) {
    fail(ErrorKind::kInvalidRequest, "[tp error] kind: unknown error kind {}", kind);
  }
  reply.kind = static_cast<ErrorKind>(kind);
  reply.message = r.string("message");
  r.finish();
  return reply;
}

}  // namespace loom::model
