// The Backend contract's defaults for the optional step-graph calls: a backend that does not record steps refuses them
// (callers ask can_capture() first).
#include "backend/backend.h"

#include "core/error.h"

namespace loom::backend {

void Backend::begin_capture() {
  fail(ErrorKind::kUnsupported, "[{}] this backend does not record step graphs", name());
}

std::unique_ptr<StepGraph> Backend::end_capture() {
  fail(ErrorKind::kUnsupported, "[{}] this backend does not record step graphs", name());
}

void Backend::replay(StepGraph& /*graph*/) {
  fail(ErrorKind::kUnsupported, "[{}] this backend does not record step graphs", name());
}

}  // namespace loom::backend
