// Writing a snapshot held in memory (a synthetic model) to a folder, for tools that read snapshots from disk
// (`loom bench --model`, transformers' from_pretrained).

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "model/synthetic.h"
#include "weights/safetensors_stream_writer.h"

namespace loom::model {

void save_snapshot(const weights::Snapshot& snapshot, const std::filesystem::path& dir) {
  std::error_code error;
  if (std::filesystem::exists(dir, error) &&
      (!std::filesystem::is_directory(dir, error) || !std::filesystem::is_empty(dir, error))) {
    fail(ErrorKind::kInvalidRequest, "--save {}: the path exists and is not an empty folder", dir.string());
  }
  std::filesystem::create_directories(dir, error);
  if (error) fail(ErrorKind::kInvalidRequest, "--save {}: cannot create the folder: {}", dir.string(), error.message());

  {
    std::ofstream config(dir / "config.json", std::ios::binary);
    config << snapshot.config().dump(2) << '\n';
    if (!config) fail(ErrorKind::kInvalidRequest, "--save {}: cannot write config.json", dir.string());
  }
  std::vector<std::string> names = snapshot.tensor_names();
  std::sort(names.begin(), names.end());
  std::vector<weights::PlannedTensor> plan;
  for (const std::string& name : names) {
    const weights::TensorRef ref = snapshot.at(name);
    plan.push_back({name, ref.info->dtype, ref.info->shape});
  }
  weights::SafetensorsStreamWriter writer(dir / "model.safetensors", plan, {{"format", "pt"}});
  for (const std::string& name : names) {
    const weights::TensorRef ref = snapshot.at(name);
    writer.write(name, ref.file->bytes(ref.info->name));
  }
  writer.finish();
}

}  // namespace loom::model
