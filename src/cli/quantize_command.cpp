// `loom quantize --model DIR --out DIR --mode affine|mxfp4|mxfp8|nvfp4 [--bits N] [--group-size N] [--force]`:
// writes an MLX-layout quantized copy of a float snapshot (src/weights/snapshot_quantizer.h does the work).

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "weights/quantize_policy.h"
#include "weights/snapshot_quantizer.h"

namespace loom::cli {
namespace {

std::string human_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (bytes >= (uint64_t{1} << 10)) return fmt::format("{:.1f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

// One line, redrawn in place: [#####-----]  42%  120/300  <tensor>.
void draw_progress(const weights::QuantizeProgress& p) {
  constexpr int kWidth = 30;
  constexpr size_t kNameWidth = 48;
  const double fraction =
      p.bytes_total == 0 ? 1.0 : static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
  const int filled = static_cast<int>(fraction * kWidth);
  std::string name(p.tensor);
  if (name.size() > kNameWidth) name = "..." + name.substr(name.size() - (kNameWidth - 3));
  const std::string line = fmt::format("\r\033[K[{}{}] {:3d}% {}/{} {}", std::string(static_cast<size_t>(filled), '#'),
                                       std::string(static_cast<size_t>(kWidth - filled), '-'),
                                       static_cast<int>(fraction * 100), p.tensors_done, p.tensors_total, name);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

void register_quantize_command(CLI::App& app) {
  auto* command = app.add_subcommand("quantize",
                                     "Write an MLX-layout quantized copy of a float snapshot: text-model Linear and "
                                     "Embedding weights quantized, vision/audio towers, projector and norms kept");
  struct Options {
    std::string model;
    std::string out;
    std::string mode;
    int bits = 0;        // 0: the mode's default
    int group_size = 0;  // 0: the mode's default
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--model", options->model, "float snapshot directory (F32, F16 or BF16)")->required();
  command->add_option("--out", options->out, "output directory (must not exist or be empty, unless --force)")
      ->required();
  command->add_option("--mode", options->mode, "affine, mxfp4, mxfp8 or nvfp4")->required();
  auto* bits =
      command->add_option("--bits", options->bits, "affine: 2, 3, 4, 5, 6 or 8 (default 4); implied by the fp modes");
  auto* group_size = command->add_option("--group-size", options->group_size,
                                         "affine: 32, 64 or 128 (default 64); mxfp4/mxfp8 32; nvfp4 16");
  command->add_flag("--force", options->force, "replace --out if it exists and is not empty");
  command->callback([options, bits, group_size] {
    weights::SnapshotQuantizeOptions quantize;
    quantize.spec =
        weights::resolve_quant_spec(options->mode, bits->count() > 0 ? std::optional<int>(options->bits) : std::nullopt,
                                    group_size->count() > 0 ? std::optional<int>(options->group_size) : std::nullopt);
    quantize.force = options->force;
    const bool terminal = ::isatty(STDERR_FILENO) == 1;
    if (terminal) quantize.progress = draw_progress;
    weights::SnapshotQuantizeResult result;
    try {
      result = weights::quantize_snapshot(options->model, options->out, quantize);
    } catch (...) {
      if (terminal) std::fputs("\n", stderr);  // keep the error off the progress line
      throw;
    }
    if (terminal) std::fputs("\n", stderr);
    std::fputs(fmt::format("quantized {} tensors to {}, kept {} unchanged: {} -> {} in {} file(s) at {}\n",
                           result.tensors_quantized, weights::quant_spec_name(quantize.spec), result.tensors_kept,
                           human_bytes(result.bytes_before), human_bytes(result.bytes_after), result.files.size(),
                           options->out)
                   .c_str(),
               stdout);
  });
}

}  // namespace loom::cli
