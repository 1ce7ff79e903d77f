#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace loom::server {
namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string label(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  return fmt::format("{}", value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

std::string Histogram::text(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(bounds_[i]), cumulative);
  }
  cumulative += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, number(sum_), name, count_);
  return out;
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      request_({0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

void Metrics::add_tokens(int64_t prompt_tokens, int64_t completion_tokens) {
  prompt_tokens_ += prompt_tokens;
  completion_tokens_ += completion_tokens;
}

std::string Metrics::text(const std::vector<EngineGauges>& engines, size_t models_known) const {
  std::string out;
  out += "# HELP loom_requests_total HTTP requests answered, by route and status.\n";
  out += "# TYPE loom_requests_total counter\n";
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, count] : requests_) {
      out += fmt::format("loom_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", label(key.first), key.second, count);
    }
  }
  out += "# HELP loom_prompt_tokens_total Prompt tokens of the generation requests served.\n";
  out += "# TYPE loom_prompt_tokens_total counter\n";
  out += fmt::format("loom_prompt_tokens_total {}\n", prompt_tokens_.load());
  out += "# HELP loom_generation_tokens_total Tokens generated.\n";
  out += "# TYPE loom_generation_tokens_total counter\n";
  out += fmt::format("loom_generation_tokens_total {}\n", completion_tokens_.load());
  out += ttft_.text("loom_time_to_first_token_seconds", "Time from request arrival to the first generated token.");
  out += inter_token_.text("loom_inter_token_latency_seconds", "Time between consecutive generated tokens.");
  out += request_.text("loom_request_duration_seconds", "Time from arrival to the end of a generation request.");

  out += "# HELP loom_models_loaded Models loaded now.\n# TYPE loom_models_loaded gauge\n";
  out += fmt::format("loom_models_loaded {}\n", engines.size());
  out += "# HELP loom_models_available Models the server can load.\n# TYPE loom_models_available gauge\n";
  out += fmt::format("loom_models_available {}\n", models_known);
  const auto gauge = [&](const char* name, const char* help, auto value_of) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
    for (const auto& engine : engines) {
      out += fmt::format("{}{{model=\"{}\"}} {}\n", name, label(engine.model), value_of(engine.stats));
    }
  };
  gauge("loom_queue_depth", "Requests waiting to be scheduled.", [](const auto& s) { return s.queued; });
  gauge("loom_requests_running", "Requests being generated.", [](const auto& s) { return s.running; });
  gauge("loom_kv_blocks_used", "KV cache blocks in use.", [](const auto& s) { return s.kv_blocks_used; });
  gauge("loom_kv_blocks_total", "KV cache blocks in all.", [](const auto& s) { return s.kv_blocks_total; });
  gauge("loom_engine_preemptions", "Sequences preempted because the KV cache was full (since load).",
        [](const auto& s) { return s.preemptions; });
  return out;
}

}  // namespace loom::server
