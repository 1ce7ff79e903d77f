#pragma once
// Fetches an image over http(s) for a request, without letting the request reach into the server's network (SSRF).
// Every hop (the URL, then each redirect) is checked the same way: the scheme is http or https, the URL carries no
// user info, the host is on the allow-list when one is set, every address the host name resolves to is allowed
// (address_policy.h: public unicast only), and the connection goes to the address that was checked — the name is
// never looked up a second time, so a DNS answer cannot change between the check and the connect. At most
// max_redirects redirects are followed; the body is cut off past max_bytes; connect and read have timeouts.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::vision {

struct RemoteFetchOptions {
  size_t max_bytes = size_t{20} << 20;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{10000};
  int max_redirects = 3;
  // Host names (case-insensitive, exact) that may be fetched; empty: any host whose addresses pass the policy.
  std::vector<std::string> allowed_hosts;
  // Decides whether a numeric address may be connected to; is_public_address when empty. Tests substitute a policy
  // that admits their loopback server.
  std::function<bool(std::string_view address)> address_allowed;
};

// The body of a 2xx answer. Throws Error(kInvalidRequest) naming the host and the reason for anything refused or
// failed: scheme, user info, host not allowed, a name that does not resolve or resolves to a refused address,
// connection or read failure or timeout, too many redirects, an HTTP error status, a body over max_bytes.
std::vector<uint8_t> fetch_remote_image(const std::string& url, const RemoteFetchOptions& options);

}  // namespace loom::vision
