#pragma once
// The fetcher for http image URLs (--allow-remote-media): resolves the host, refuses it unless every address it
// resolves to is public (vision::is_public_address: no loopback, private, link-local, ... — the SSRF guard), and
// connects to the checked address itself, so a second lookup cannot swap in another one. No redirects, a size cap
// and timeouts. https is refused: verifying a certificate needs the host name, and connecting by name would resolve it
// again.

#include <cstddef>
#include <string>
#include <vector>

#include "prompt/image_inputs.h"

namespace loom::server {

struct RemoteFetchOptions {
  std::vector<std::string> allowed_hosts;  // empty: any host with public addresses
  size_t max_bytes = size_t{20} << 20;
  int timeout_seconds = 10;
};

prompt::RemoteFetcher make_remote_fetcher(RemoteFetchOptions options);

}  // namespace loom::server
