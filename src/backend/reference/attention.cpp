#include <cmath>
#include <limits>

#include "backend/reference/reference.h"

namespace loom::backend::reference {

bool mask_allows(const AttentionSpec& spec, std::span<const TokenRange> spans, int64_t q, int64_t k) {
  bool same_span = false;
  for (const TokenRange& span : spans) {
    if (span.start <= q && q < span.end && span.start <= k && k < span.end) same_span = true;
  }
  if (same_span && spec.spans == SpanMode::kWiden) return true;
  if (spec.spans == SpanMode::kWithinWindow) {
    const bool in_window = spec.mask != MaskKind::kSliding || k > q - spec.window;
    const bool base = spec.mask == MaskKind::kFull || k <= q;
    return in_window && (base || same_span);
  }
  switch (spec.mask) {
    case MaskKind::kFull:
      return true;
    case MaskKind::kCausal:
      return k <= q;
    case MaskKind::kSliding:
      return k <= q && k > q - spec.window;
  }
  return false;
}

std::vector<float> attention(std::span<const float> q, std::span<const float> k, std::span<const float> v, int64_t tq,
                             int64_t tk, int64_t q_start, int heads, int kv_heads, int d,
                             std::span<const TokenRange> spans, const AttentionSpec& spec) {
  std::vector<float> out(static_cast<size_t>(tq * heads * d), 0.0f);
  const int group = heads / kv_heads;
  for (int64_t t = 0; t < tq; ++t) {
    for (int h = 0; h < heads; ++h) {
      const int kvh = h / group;
      const float* qv = q.data() + (t * heads + h) * d;
      std::vector<double> logits(static_cast<size_t>(tk), -std::numeric_limits<double>::infinity());
      double max_logit = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < tk; ++j) {
        if (!mask_allows(spec, spans, q_start + t, j)) continue;
        const float* kv = k.data() + (j * kv_heads + kvh) * d;
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += static_cast<double>(qv[i]) * kv[i];
        double logit = dot * spec.scale;
        if (spec.logit_softcap > 0) logit = softcap(logit, spec.logit_softcap);
        logits[static_cast<size_t>(j)] = logit;
        max_logit = std::max(max_logit, logit);
      }
      if (max_logit == -std::numeric_limits<double>::infinity()) continue;
      double total = 0;
      std::vector<double> acc(static_cast<size_t>(d), 0.0);
      for (int64_t j = 0; j < tk; ++j) {
        const double p = std::exp(logits[static_cast<size_t>(j)] - max_logit);  // exp(-inf) = 0 for masked keys
        total += p;
        const float* vv = v.data() + (j * kv_heads + kvh) * d;
        for (int i = 0; i < d; ++i) acc[static_cast<size_t>(i)] += p * vv[i];
      }
      float* o = out.data() + (t * heads + h) * d;
      for (int i = 0; i < d; ++i) o[i] = static_cast<float>(acc[static_cast<size_t>(i)] / total);
    }
  }
  return out;
}

}  // namespace loom::backend::reference
