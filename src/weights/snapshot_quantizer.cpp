#include "weights/snapshot_quantizer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/float_formats.h"
#include "core/thread_pool.h"
#include "weights/quant/quantize.h"
#include "weights/quant_config.h"
#include "weights/quantize_policy.h"
#include "weights/safetensors_stream_writer.h"
#include "weights/snapshot.h"

namespace loom::weights {
namespace {

namespace fs = std::filesystem;

// Tensor names that only exist in quantized checkpoints (MLX and the Hugging Face formats of weight-formats.md §4).
constexpr std::string_view kQuantizedSuffixes[] = {".scales", ".weight_scale", ".weight_scale_inv", ".weight_packed"};
// gpt-oss MXFP4 stores U8 `*_blocks` / `*_scales`; only U8 tensors with those suffixes are taken as quantized.
constexpr std::string_view kQuantizedByteSuffixes[] = {"_blocks", "_scales"};

struct SourceTensor {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;
  bool quantize = false;
};

// One output tensor and where its bytes come from.
struct OutputTensor {
  PlannedTensor planned;
  size_t source = 0;  // index into the source list
  enum class Part { kCopy, kWeight, kScales, kBiases } part = Part::kCopy;
};

std::string module_of(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::string_view(".weight").size());
}

void refuse_quantized(const Snapshot& snapshot) {
  const QuantConfig& quant = snapshot.quant_config();
  if (quant.quantized()) {
    const std::string what = quant.hf ? quant.hf->method : quant_spec_name(quant.base);
    fail(ErrorKind::kInvalidRequest, "{}: the snapshot is already quantized ({}); loom quantize needs a float snapshot",
         snapshot.dir().string(), what);
  }
  for (const SafetensorsFile& file : snapshot.files()) {
    for (const TensorInfo& t : file.tensors()) {
      bool quantized = t.dtype == DType::kU32 && t.name.ends_with(".weight");
      for (std::string_view suffix : kQuantizedSuffixes) quantized = quantized || t.name.ends_with(suffix);
      for (std::string_view suffix : kQuantizedByteSuffixes) {
        quantized = quantized || (t.dtype == DType::kU8 && t.name.ends_with(suffix));
      }
      if (quantized) {
        fail(ErrorKind::kInvalidRequest,
             "{}: tensor '{}' in {} is quantized storage; loom quantize needs a float snapshot",
             snapshot.dir().string(), t.name, file.path().filename().string());
      }
    }
  }
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

void check_output(const fs::path& model, const fs::path& out, bool force) {
  const fs::path model_dir = fs::weakly_canonical(model);
  const fs::path out_dir = fs::weakly_canonical(out);
  if (is_within(out_dir, model_dir) || is_within(model_dir, out_dir)) {
    fail(ErrorKind::kInvalidRequest, "--out {} must not be the model folder {}, lie inside it or contain it",
         out.string(), model.string());
  }
  std::error_code error;
  if (!fs::exists(fs::symlink_status(out, error))) return;
  const bool empty_dir = fs::is_directory(out) && fs::is_empty(out);
  if (!empty_dir && !force) {
    fail(ErrorKind::kInvalidRequest, "{} already exists and is not empty; pass --force to replace it", out.string());
  }
}

// Rows [row_begin, row_end) of a 2-D F32/F16/BF16 tensor, rounded to bf16 as MLX does before quantizing.
void read_rows_as_bf16(const SafetensorsFile& file, const TensorInfo& info, int64_t row_begin, int64_t row_end,
                       float* out) {
  const std::span<const std::byte> bytes = file.bytes(info.name);
  const int64_t cols = info.shape[1];
  const size_t width = info.dtype == DType::kF32 ? 4 : 2;
  const std::byte* p = bytes.data() + static_cast<size_t>(row_begin * cols) * width;
  const int64_t count = (row_end - row_begin) * cols;
  for (int64_t i = 0; i < count; ++i, p += width) {
    float value = 0.0f;
    if (info.dtype == DType::kF32) {
      std::memcpy(&value, p, 4);
      value = bf16_to_float(float_to_bf16(value));
    } else {
      uint16_t bits = 0;
      std::memcpy(&bits, p, 2);
      value = info.dtype == DType::kBF16 ? bf16_to_float(bits) : bf16_to_float(float_to_bf16(f16_to_float(bits)));
    }
    if (!std::isfinite(value)) {
      fail(ErrorKind::kInvalidRequest, "{}: tensor '{}' holds {} at row {}, column {}; it cannot be quantized",
           file.path().string(), info.name, value, row_begin + i / cols, i % cols);
    }
    out[i] = value;
  }
}

struct QuantizedBytes {
  std::vector<std::byte> weight, scales, biases;
};

// Quantizes one source weight in row blocks spread over the thread pool; the blocks' outputs are rows of the whole
// result, so they are copied side by side.
QuantizedBytes quantize_tensor(const SafetensorsFile& file, const TensorInfo& info, const QuantSpec& spec,
                               const std::vector<PlannedTensor>& planned) {
  const int64_t rows = info.shape[0], cols = info.shape[1];
  QuantizedBytes out;
  out.weight.resize(planned[0].bytes());
  out.scales.resize(planned[1].bytes());
  if (planned.size() > 2) out.biases.resize(planned[2].bytes());
  const size_t weight_row = out.weight.size() / static_cast<size_t>(rows);
  const size_t scales_row = out.scales.size() / static_cast<size_t>(rows);
  const int64_t block_rows = std::max<int64_t>(1, (int64_t{1} << 16) / cols);
  const int64_t blocks = (rows + block_rows - 1) / block_rows;

  std::mutex error_mutex;
  std::exception_ptr error;
  ThreadPool::global().parallel_for(blocks, [&](int64_t begin, int64_t end) {
    try {
      std::vector<float> buffer;
      for (int64_t b = begin; b < end; ++b) {
        const int64_t r0 = b * block_rows, r1 = std::min(rows, r0 + block_rows);
        buffer.resize(static_cast<size_t>((r1 - r0) * cols));
        read_rows_as_bf16(file, info, r0, r1, buffer.data());
        const Weight w = quant::quantize(buffer.data(), r1 - r0, cols, spec, DType::kBF16);
        const auto place = [&](const Tensor& t, size_t part, std::vector<std::byte>& dst, size_t row_bytes) {
          if (t.dtype() != planned[part].dtype || t.bytes() != static_cast<size_t>(r1 - r0) * row_bytes) {
            fail(ErrorKind::kInternal, "tensor '{}': quantizer output does not match the planned layout", info.name);
          }
          std::memcpy(dst.data() + static_cast<size_t>(r0) * row_bytes, t.data(), t.bytes());
        };
        place(w.values, 0, out.weight, weight_row);
        place(w.scales, 1, out.scales, scales_row);
        if (!out.biases.empty()) place(w.biases, 2, out.biases, scales_row);
      }
    } catch (...) {
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
  return out;
}

std::vector<PlannedTensor> quantized_plan(const TensorInfo& info, const QuantSpec& spec) {
  const std::string module = module_of(info.name);
  const int64_t rows = info.shape[0], cols = info.shape[1];
  const DType scale_dtype = spec.mode == QuantMode::kAffine ? DType::kBF16 : DType::kU8;
  std::vector<PlannedTensor> plan = {
      {info.name, DType::kU32, {rows, cols * spec.bits / 32}},
      {module + ".scales", scale_dtype, {rows, cols / spec.group_size}},
  };
  if (spec.mode == QuantMode::kAffine)
    plan.push_back({module + ".biases", scale_dtype, {rows, cols / spec.group_size}});
  return plan;
}

std::string shard_name(size_t index, size_t count) {
  if (count == 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

void write_text_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) fail(ErrorKind::kInvalidRequest, "{}: write failed", path.string());
}

// The mode as MLX configs spell it.
std::string_view mode_name(QuantMode mode) {
  switch (mode) {
    case QuantMode::kAffine:
      return "affine";
    case QuantMode::kMxfp4:
      return "mxfp4";
    case QuantMode::kMxfp8:
      return "mxfp8";
    case QuantMode::kNvfp4:
      return "nvfp4";
    case QuantMode::kNone:
      break;
  }
  fail(ErrorKind::kInternal, "no MLX name for an unquantized mode");
}

// config.json with the quantization keys added; key order and every other value are kept.
void write_config(const fs::path& model, const fs::path& dir, const QuantSpec& spec) {
  std::ifstream in(model / "config.json", std::ios::binary);
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  const nlohmann::ordered_json quantization = {
      {"group_size", spec.group_size}, {"bits", spec.bits}, {"mode", mode_name(spec.mode)}};
  config["quantization"] = quantization;
  config["quantization_config"] = quantization;
  write_text_file(dir / "config.json", config.dump(4) + "\n");
}

// Every file except config.json and the weights, at the same relative path.
int64_t copy_other_files(const fs::path& model, const fs::path& dir) {
  int64_t copied = 0;
  for (auto it = fs::recursive_directory_iterator(model); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path relative = fs::relative(it->path(), model);
    const bool top = it.depth() == 0;
    const std::string name = relative.filename().string();
    if (top && (name == "config.json" || name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json"))) {
      continue;
    }
    if (it->is_directory()) {
      fs::create_directories(dir / relative);
    } else if (it->is_regular_file()) {
      fs::copy_file(it->path(), dir / relative, fs::copy_options::overwrite_existing);
      ++copied;
    }
  }
  return copied;
}

}  // namespace

SnapshotQuantizeResult quantize_snapshot(const fs::path& model, const fs::path& out_arg,
                                         const SnapshotQuantizeOptions& options) {
  const QuantSpec& spec = options.spec;
  if (spec.mode == QuantMode::kNone) fail(ErrorKind::kInvalidRequest, "loom quantize needs a quantized mode");
  validate_quant_spec(spec, "loom quantize");
  fs::path out = fs::absolute(out_arg).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();

  const Snapshot snapshot = Snapshot::open(model);
  refuse_quantized(snapshot);
  check_output(model, out, options.force);

  // Source tensors in name order, each either quantized or copied.
  std::vector<SourceTensor> sources;
  for (const SafetensorsFile& file : snapshot.files()) {
    for (const TensorInfo& t : file.tensors()) {
      sources.push_back({&file, &t, is_quantizable_weight(t.name, t.shape, spec.group_size)});
    }
  }
  std::sort(sources.begin(), sources.end(),
            [](const SourceTensor& a, const SourceTensor& b) { return a.info->name < b.info->name; });

  SnapshotQuantizeResult result;
  std::vector<OutputTensor> outputs;
  for (size_t i = 0; i < sources.size(); ++i) {
    const TensorInfo& t = *sources[i].info;
    result.bytes_before += t.bytes();
    if (!sources[i].quantize) {
      outputs.push_back({{t.name, t.dtype, t.shape}, i, OutputTensor::Part::kCopy});
      ++result.tensors_kept;
      continue;
    }
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' is {}; loom quantize reads F32, F16 or BF16 weights",
           sources[i].file->path().string(), t.name, dtype_name(t.dtype));
    }
    const auto plan = quantized_plan(t, spec);
    constexpr OutputTensor::Part kParts[] = {OutputTensor::Part::kWeight, OutputTensor::Part::kScales,
                                             OutputTensor::Part::kBiases};
    for (size_t p = 0; p < plan.size(); ++p) outputs.push_back({plan[p], i, kParts[p]});
    ++result.tensors_quantized;
  }

  // Shards: consecutive runs of output tensors, a new one started when the next tensor would pass the limit.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const uint64_t size = outputs[i].planned.bytes();
    if (!shards.back().empty() && shard_bytes + size > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += size;
    result.bytes_after += size;
  }

  const fs::path staging =
      out.parent_path() / fmt::format(".{}.loom-partial-{}", out.filename().string(), static_cast<long>(::getpid()));
  std::error_code ignored;
  fs::remove_all(staging, ignored);
  fs::create_directories(staging);
  try {
    QuantizeProgress progress{.tensors_total = static_cast<int64_t>(sources.size()),
                              .bytes_total = result.bytes_before};
    std::vector<std::pair<std::string, std::string>> index_entries;
    std::optional<QuantizedBytes> pending;  // the current quantized source's outputs
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string file_name = shard_name(s, shards.size());
      std::vector<PlannedTensor> plan;
      for (size_t i : shards[s]) plan.push_back(outputs[i].planned);
      SafetensorsStreamWriter writer(staging / file_name, plan, {{"format", "mlx"}});
      for (size_t i : shards[s]) {
        const OutputTensor& o = outputs[i];
        const SourceTensor& source = sources[o.source];
        index_entries.emplace_back(o.planned.name, file_name);
        switch (o.part) {
          case OutputTensor::Part::kCopy:
            writer.write(o.planned.name, source.file->bytes(source.info->name));
            break;
          case OutputTensor::Part::kWeight:
            pending = quantize_tensor(*source.file, *source.info, spec, quantized_plan(*source.info, spec));
            writer.write(o.planned.name, pending->weight);
            break;
          case OutputTensor::Part::kScales:
            writer.write(o.planned.name, pending->scales);
            break;
          case OutputTensor::Part::kBiases:
            writer.write(o.planned.name, pending->biases);
            break;
        }
        const bool last_part = i + 1 == outputs.size() || outputs[i + 1].source != o.source;
        if (last_part) {
          pending.reset();
          ++progress.tensors_done;
          progress.bytes_done += source.info->bytes();
          progress.tensor = source.info->name;
          if (options.progress) options.progress(progress);
        }
      }
      writer.finish();
      result.files.push_back(file_name);
    }
    if (shards.size() > 1) {
      std::sort(index_entries.begin(), index_entries.end());
      nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
      for (const auto& [name, file] : index_entries) weight_map[name] = file;
      const nlohmann::ordered_json index = {{"metadata", {{"total_size", result.bytes_after}}},
                                            {"weight_map", weight_map}};
      write_text_file(staging / "model.safetensors.index.json", index.dump(4) + "\n");
    }
    write_config(model, staging, spec);
    result.files_copied = copy_other_files(model, staging);

    // Swap into place: an existing `out` (empty, or replaced under --force) is moved aside first and removed last.
    fs::path previous;
    if (fs::exists(fs::symlink_status(out))) {
      previous = staging;
      previous += ".previous";
      fs::rename(out, previous);
    }
    fs::rename(staging, out);
    if (!previous.empty()) fs::remove_all(previous);
  } catch (...) {
    fs::remove_all(staging, ignored);
    throw;
  }
  return result;
}

}  // namespace loom::weights
