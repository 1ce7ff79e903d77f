#pragma once
// Option types shared by the Backend contract and its implementations: how a norm uses its weight, which activation,
// which attention mask. Plain data with designated-initializer friendly defaults.

#include <cstdint>

namespace loom::backend {

enum class NormWeight : uint8_t {
  kNone,     // x · rsqrt(mean(x²) + eps)                     (Gemma 4 v_norm, embed_vision)
  kScale,    // x · rsqrt(mean(x²) + eps) · w                 (Gemma 4, Qwen)
  kOnePlus,  // x · rsqrt(mean(x²) + eps) · (1 + w)           (Gemma 3: weights stored as offsets from 1)
};

struct RmsNormSpec {
  float eps = 1e-6f;
  NormWeight weight = NormWeight::kScale;
};

enum class Activation : uint8_t {
  kGeluTanh,  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))  (gelu_pytorch_tanh)
  kGeluErf,   // 0.5·x·(1 + erf(x/√2))                       (exact GELU: Qwen3-VL merger)
  kSilu,      // x·sigmoid(x)
};

enum class MaskKind : uint8_t {
  kCausal,   // key k visible from query q when k ≤ q
  kSliding,  // k ≤ q and k > q − window
  kFull,     // every key of the sequence (vision encoders)
};

// How a layer treats the batch's bidirectional spans (SequenceSlice::bidirectional_spans).
enum class SpanMode : uint8_t {
  kWiden,         // visible = mask OR same span                              (Gemma 3: every layer)
  kWithinWindow,  // visible = (k > q − window) AND (k ≤ q OR same span)      (Gemma 4 sliding layers)
  kIgnore,        // spans have no effect                                     (Gemma 4 full layers, E2B/E4B)
};

struct AttentionSpec {
  float scale = 1.0f;  // multiplies q·k before the softcap and softmax
  MaskKind mask = MaskKind::kCausal;
  int64_t window = 0;       // kSliding only
  float logit_softcap = 0;  // > 0: logits become c·tanh(logits/c)
  SpanMode spans = SpanMode::kWiden;
};

}  // namespace loom::backend
