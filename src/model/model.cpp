#include "model/model.h"

#include "core/error.h"

namespace loom::model {

void check_cache_layout(const backend::KvCache& cache, const ModelInfo& info, std::string_view family) {
  bool ok = cache.layers() == static_cast<int>(info.kv.size());
  for (int i = 0; ok && i < cache.layers(); ++i) {
    ok = cache.layer_shape(i).kv_heads == info.kv[static_cast<size_t>(i)].kv_heads &&
         cache.layer_shape(i).head_dim == info.kv[static_cast<size_t>(i)].head_dim;
  }
  if (!ok) fail(ErrorKind::kInternal, "[{}] the KV cache's layer shapes do not match ModelInfo::kv", family);
}

}  // namespace loom::model
