#include "engine/scheduler.h"

#include <algorithm>

namespace loom::engine {

Scheduler::Scheduler(SchedulerConfig config, model::Model& model, backend::KvCache& cache)
    : config_(config), model_(model), cache_(cache) {
  if (config_.step_tokens < 1 || config_.max_running < 1) {
    fail(ErrorKind::kInvalidRequest, "[engine] step_tokens and max_running must be >= 1, got {} and {}",
         config_.step_tokens, config_.max_running);
  }
}

namespace {

int64_t blocks_for(int64_t tokens, int block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace

std::vector<std::unique_ptr<Sequence>> Scheduler::take_cancelled() {
  std::vector<std::unique_ptr<Sequence>> out;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->stream->cancel_requested()) {
      cache_.release((*it)->block_table);
      out.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->stream->cancel_requested()) {
      cache_.release((*it)->block_table);
      out.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::unique_ptr<Sequence> Scheduler::remove(Sequence* sequence) {
  const auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s.get() == sequence; });
  if (it == running_.end()) fail(ErrorKind::kInternal, "[scheduler] sequence {} is not running", sequence->id);
  std::unique_ptr<Sequence> out = std::move(*it);
  running_.erase(it);
  cache_.release(out->block_table);
  return out;
}

std::vector<std::unique_ptr<Sequence>> Scheduler::take_all() {
  std::vector<std::unique_ptr<Sequence>> out;
  for (auto& s : running_) out.push_back(std::move(s));
  for (auto& s : waiting_) out.push_back(std::move(s));
  running_.clear();
  waiting_.clear();
  for (auto& s : out) cache_.release(s->block_table);
  return out;
}

void Scheduler::preempt(size_t index) {
  std::unique_ptr<Sequence> seq = std::move(running_[index]);
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  cache_.release(seq->block_table);
  seq->computed = 0;
  seq->embeddings.clear();
  ++seq->preemptions;
  ++preemptions_;
  waiting_.push_front(std::move(seq));
}

void Scheduler::reserve_decodes() {
  const int bs = cache_.block_size();
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& seq = *running_[i];
    if (seq.pending() != 1) continue;  // prefill sequences got all their blocks at admission
    auto missing = [&] { return blocks_for(seq.computed + 1, bs) - static_cast<int64_t>(seq.block_table.size()); };
    bool self_preempted = false;
    while (missing() > cache_.free_blocks()) {
      const size_t victim = running_.size() - 1;
      preempt(victim);
      if (victim == i) {
        self_preempted = true;
        break;
      }
    }
    if (!self_preempted) cache_.reserve(seq.block_table, seq.computed + 1);
  }
}

void Scheduler::admit() {
  const int bs = cache_.block_size();
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < config_.max_running) {
    Sequence& seq = *waiting_.front();
    const int64_t need = blocks_for(static_cast<int64_t>(seq.tokens.size()), bs);
    // Keep one block per running sequence free so that their next decode steps do not preempt this newcomer at once.
    const auto headroom = static_cast<int64_t>(running_.size());
    if (need + headroom > cache_.free_blocks()) break;
    cache_.reserve(seq.block_table, static_cast<int64_t>(seq.tokens.size()));
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

int64_t Scheduler::chunk_end(const Sequence& seq, int64_t budget, bool first_prefill) const {
  const int64_t begin = seq.computed;
  int64_t end = std::min(static_cast<int64_t>(seq.tokens.size()), begin + budget);
  for (const ImageInput& image : seq.request.images) {
    if (!image.bidirectional) continue;
    const int64_t span_begin = image.start;
    const int64_t span_end = image.start + image.length;
    if (span_begin < end && end < span_end) {
      if (span_begin > begin) {
        end = span_begin;  // stop before the span; it starts the next chunk
      } else {
        end = first_prefill ? span_end : begin;  // a span longer than the budget runs whole, alone
      }
      break;
    }
  }
  return end;
}

void Scheduler::add_slice(StepPlan& plan, Sequence& seq, int64_t end) {
  const int64_t begin = seq.computed;
  backend::SequenceSlice slice;
  slice.token_offset = plan.batch.tokens();
  slice.token_count = end - begin;
  slice.kv_start = begin;
  slice.block_table = seq.block_table;
  plan.batch.token_ids.insert(plan.batch.token_ids.end(), seq.tokens.begin() + begin, seq.tokens.begin() + end);
  const int64_t width = model_.info().image_width();
  for (size_t k = 0; k < seq.request.images.size(); ++k) {
    const ImageInput& image = seq.request.images[k];
    const int64_t lo = std::max(image.start, begin);
    const int64_t hi = std::min(image.start + image.length, end);
    if (lo >= hi) continue;
    if (k >= seq.embeddings.size() || seq.embeddings[k].empty()) {
      fail(ErrorKind::kInternal, "[scheduler] image {} of sequence {} has no embeddings at token {}", image.index,
           seq.id, lo);
    }
    float* rows = seq.embeddings[k].data_as<float>() + (lo - image.start) * width;
    plan.images.push_back({slice.token_offset + (lo - begin), Tensor::borrow(DType::kF32, {hi - lo, width}, rows)});
    if (image.bidirectional && image.start >= begin && image.start + image.length <= end) {
      slice.bidirectional_spans.push_back({image.start, image.start + image.length});
    }
  }
  plan.batch.sequences.push_back(std::move(slice));
  plan.sequences.push_back(&seq);
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  const model::ModelInfo& info = model_.info();
  // Embeddings of spans already in the cache are no longer needed.
  for (auto& seq : running_) {
    for (size_t k = 0; k < seq->embeddings.size(); ++k) {
      const ImageInput& image = seq->request.images[k];
      if (seq->computed >= image.start + image.length) seq->embeddings[k] = Tensor();
    }
  }
  reserve_decodes();
  admit();

  // Sequences starting prefill encode their images now.
  for (size_t i = running_.size(); i-- > 0;) {
    Sequence& seq = *running_[i];
    if (seq.computed != 0 || seq.request.images.empty() || !seq.embeddings.empty()) continue;
    try {
      for (const ImageInput& image : seq.request.images) {
        Tensor e = model_.encode_image(image.pixels);
        if (e.dtype() != DType::kF32 || e.rank() != 2 || e.dim(0) != image.length || e.dim(1) != info.image_width()) {
          fail(ErrorKind::kInternal, "[engine] image {} encoded to {} {}, expected F32 [{}, {}]", image.index,
               dtype_name(e.dtype()), shape_string(e.shape()), image.length, info.image_width());
        }
        seq.embeddings.push_back(std::move(e));
      }
    } catch (const Error& e) {
      plan.dropped.push_back({remove(&seq), e.kind(), e.what()});
    } catch (const std::exception& e) {
      plan.dropped.push_back({remove(&seq), ErrorKind::kInternal, e.what()});
    }
  }

  int64_t decodes = 0;
  for (const auto& seq : running_) decodes += seq->pending() == 1;
  int64_t budget = std::max<int64_t>(config_.step_tokens - decodes, 0);
  bool first_prefill = true;
  for (auto& seq : running_) {
    if (seq->pending() == 1) {
      add_slice(plan, *seq, seq->computed + 1);
      continue;
    }
    if (budget <= 0) continue;
    const int64_t end = chunk_end(*seq, budget, first_prefill);
    if (end == seq->computed) continue;
    budget -= end - seq->computed;
    first_prefill = false;
    add_slice(plan, *seq, end);
  }

  // Positions are axis-major over the whole step.
  const int axes = info.position_axes;
  plan.batch.position_axes = axes;
  plan.batch.positions.reserve(static_cast<size_t>(plan.batch.tokens() * axes));
  for (int axis = 0; axis < axes; ++axis) {
    for (size_t s = 0; s < plan.sequences.size(); ++s) {
      const backend::SequenceSlice& slice = plan.batch.sequences[s];
      for (int64_t i = 0; i < slice.token_count; ++i) {
        plan.batch.positions.push_back(plan.sequences[s]->position(slice.kv_start + i, axis));
      }
    }
  }
  plan.batch.validate(cache_.block_size());
  return plan;
}

}  // namespace loom::engine
