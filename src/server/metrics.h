#pragma once
// The server's counters and latency histograms, written as Prometheus text (exposition format 0.0.4). Engine-side
// numbers (queue depth, KV blocks, loaded models) are read from the engines when the text is written.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace loom::server {

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // `name`_bucket{le=...}, `name`_sum, `name`_count lines.
  std::string text(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), plus +Inf last
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// Per-model engine numbers for the text.
struct EngineGauges {
  std::string model;
  engine::EngineStats stats;
};

class Metrics {
 public:
  Metrics();

  void count_request(const std::string& route, int status);
  void add_tokens(int64_t prompt_tokens, int64_t completion_tokens);
  void observe_ttft(double seconds) { ttft_.observe(seconds); }
  void observe_inter_token(double seconds) { inter_token_.observe(seconds); }
  void observe_request(double seconds) { request_.observe(seconds); }

  std::string text(const std::vector<EngineGauges>& engines, size_t models_known) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<int64_t> prompt_tokens_{0}, completion_tokens_{0};
  Histogram ttft_, inter_token_, request_;
};

}  // namespace loom::server
