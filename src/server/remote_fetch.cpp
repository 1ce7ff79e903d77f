#include "server/remote_fetch.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>

#include <algorithm>

#include "core/error.h"
#include "vision/address_policy.h"

namespace loom::server {
namespace {

struct Url {
  std::string host;
  int port = 80;
  std::string target = "/";
};

Url parse_http_url(const std::string& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.rfind("https://", 0) == 0) {
    fail(ErrorKind::kUnsupported, "https image URLs are not fetched by this server; send the image as base64");
  }
  if (url.rfind(kHttp, 0) != 0) fail(ErrorKind::kInvalidRequest, "not an http URL: {}", url);
  Url out;
  const auto rest = url.substr(kHttp.size());
  const auto slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.target = rest.substr(slash);
  if (const auto hash = out.target.find('#'); hash != std::string::npos) out.target.resize(hash);
  if (out.target.empty() || out.target[0] != '/') out.target = "/" + out.target;
  if (authority.find('@') != std::string::npos)
    fail(ErrorKind::kInvalidRequest, "image URLs may not carry credentials");
  if (!authority.empty() && authority[0] == '[')
    fail(ErrorKind::kUnsupported, "IPv6 literal image URLs are not fetched");
  if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    const auto port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoi(port) == 0 ||
        std::stoi(port) > 65535) {
      fail(ErrorKind::kInvalidRequest, "bad port in image URL {}", url);
    }
    out.port = std::stoi(port);
    authority.resize(colon);
  }
  if (authority.empty()) fail(ErrorKind::kInvalidRequest, "image URL {} has no host", url);
  std::transform(authority.begin(), authority.end(), authority.begin(), ::tolower);
  out.host = authority;
  return out;
}

// Every address of `host` must be public; returns the first one.
std::string checked_address(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found) {
    fail(ErrorKind::kInvalidRequest, "cannot resolve the image host {}", host);
  }
  std::vector<std::string> addresses;
  for (auto* entry = found; entry; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = entry->ai_family == AF_INET
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(entry->ai_addr)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(entry->ai_addr)->sin6_addr);
    if (inet_ntop(entry->ai_family, raw, text, sizeof text)) addresses.emplace_back(text);
  }
  freeaddrinfo(found);
  if (addresses.empty()) fail(ErrorKind::kInvalidRequest, "cannot resolve the image host {}", host);
  for (const auto& address : addresses) {
    if (!vision::is_public_address(address)) {
      fail(ErrorKind::kInvalidRequest, "the image host {} resolves to a non-public address ({}): refused", host,
           address);
    }
  }
  return addresses.front();
}

}  // namespace

prompt::RemoteFetcher make_remote_fetcher(RemoteFetchOptions options) {
  return [options](const std::string& url) {
    const Url parsed = parse_http_url(url);
    if (!options.allowed_hosts.empty() && std::find(options.allowed_hosts.begin(), options.allowed_hosts.end(),
                                                    parsed.host) == options.allowed_hosts.end()) {
      fail(ErrorKind::kInvalidRequest, "the image host {} is not in the allowed list", parsed.host);
    }
    const std::string address = checked_address(parsed.host);
    const std::string literal = address.find(':') != std::string::npos ? "[" + address + "]" : address;
    httplib::Client client(literal, parsed.port);
    client.set_connection_timeout(options.timeout_seconds);
    client.set_read_timeout(options.timeout_seconds);
    client.set_follow_location(false);
    std::string body;
    bool too_large = false;
    const httplib::Headers headers = {
        {"Host", parsed.port == 80 ? parsed.host : parsed.host + ":" + std::to_string(parsed.port)}};
    auto result = client.Get(parsed.target, headers, [&](const char* data, size_t length) {
      if (body.size() + length > options.max_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, length);
      return true;
    });
    if (too_large) fail(ErrorKind::kInvalidRequest, "the image at {} exceeds {} bytes", url, options.max_bytes);
    if (!result) fail(ErrorKind::kInvalidRequest, "cannot fetch the image at {}", url);
    if (result->status != 200) fail(ErrorKind::kInvalidRequest, "fetching {} answered HTTP {}", url, result->status);
    return std::vector<uint8_t>(body.begin(), body.end());
  };
}

}  // namespace loom::server
