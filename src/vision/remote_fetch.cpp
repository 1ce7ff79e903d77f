#include "vision/remote_fetch.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <optional>

#include "core/error.h"
#include "vision/address_policy.h"

namespace loom::vision {
namespace {

struct ParsedUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 literals
  int port = 0;
  std::string target;  // path and query, at least "/"
};

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

ParsedUrl parse_url(const std::string& url) {
  ParsedUrl parsed;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) fail(ErrorKind::kInvalidRequest, "image URL has no scheme");
  parsed.scheme = lowercase(url.substr(0, scheme_end));
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    fail(ErrorKind::kInvalidRequest, "image URL scheme \"{}\" is not allowed (http or https)", parsed.scheme);
  }
  const auto authority_begin = scheme_end + 3;
  const auto authority_end = url.find_first_of("/?#", authority_begin);
  const std::string authority = url.substr(
      authority_begin, authority_end == std::string::npos ? std::string::npos : authority_end - authority_begin);
  if (authority.find('@') != std::string::npos) fail(ErrorKind::kInvalidRequest, "image URL must not carry user info");
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) fail(ErrorKind::kInvalidRequest, "image URL has an unterminated IPv6 host");
    parsed.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') fail(ErrorKind::kInvalidRequest, "image URL has a malformed host");
      port_text = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    parsed.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  parsed.host = lowercase(parsed.host);
  if (parsed.host.empty()) fail(ErrorKind::kInvalidRequest, "image URL has no host");
  parsed.port = parsed.scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), ::isdigit)) {
      fail(ErrorKind::kInvalidRequest, "image URL port \"{}\" is not a number", port_text);
    }
    parsed.port = std::stoi(port_text);
    if (parsed.port < 1 || parsed.port > 65535) fail(ErrorKind::kInvalidRequest, "image URL port is out of range");
  }
  parsed.target = authority_end == std::string::npos ? "/" : url.substr(authority_end);
  if (parsed.target.front() != '/') parsed.target.insert(0, "/");
  if (const auto fragment = parsed.target.find('#'); fragment != std::string::npos) parsed.target.resize(fragment);
  return parsed;
}

// Every numeric address the host resolves to (a literal resolves to itself).
std::vector<std::string> resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &list) != 0 || list == nullptr) {
    fail(ErrorKind::kInvalidRequest, "image host {} does not resolve", host);
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(list, &::freeaddrinfo);
  std::vector<std::string> addresses;
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    char text[NI_MAXHOST];
    if (::getnameinfo(entry->ai_addr, entry->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0) {
      if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) addresses.emplace_back(text);
    }
  }
  if (addresses.empty()) fail(ErrorKind::kInvalidRequest, "image host {} does not resolve", host);
  return addresses;
}

// The checked address to connect to, or a refusal naming the host.
std::string checked_address(const ParsedUrl& url, const RemoteFetchOptions& options) {
  if (!options.allowed_hosts.empty()) {
    const bool listed = std::any_of(options.allowed_hosts.begin(), options.allowed_hosts.end(),
                                    [&](const std::string& allowed) { return lowercase(allowed) == url.host; });
    if (!listed) fail(ErrorKind::kInvalidRequest, "image host {} is not on the allowed list", url.host);
  }
  const auto allowed = [&](const std::string& address) {
    return options.address_allowed ? options.address_allowed(address) : is_public_address(address);
  };
  const auto addresses = resolve(url.host);
  // All of them, not only the one we connect to: a name that also points inward is refused outright.
  for (const auto& address : addresses) {
    if (!allowed(address)) {
      fail(ErrorKind::kInvalidRequest, "image host {} resolves to {}, which is not a public address", url.host,
           address);
    }
  }
  return addresses.front();
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// A Location header resolved against the URL that answered with it.
std::string redirect_target(const ParsedUrl& from, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  const std::string host = from.host.find(':') != std::string::npos ? "[" + from.host + "]" : from.host;
  const std::string origin = from.scheme + "://" + host + ":" + std::to_string(from.port);
  if (location.rfind("//", 0) == 0) return from.scheme + ":" + location;
  if (!location.empty() && location.front() == '/') return origin + location;
  const auto slash = from.target.rfind('/');
  return origin + from.target.substr(0, slash + 1) + location;
}

struct Answer {
  int status = 0;
  std::string location;
  std::vector<uint8_t> body;
};

Answer get_once(const ParsedUrl& url, const std::string& address, const RemoteFetchOptions& options) {
  const std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  httplib::Client client(url.scheme + "://" + host + ":" + std::to_string(url.port));
  // Connect to the checked address; the name still goes into Host and TLS SNI and certificate verification.
  client.set_hostname_addr_map({{url.host, address}});
  client.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.connect_timeout));
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.read_timeout));
  client.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.read_timeout));
  client.set_follow_location(false);
  client.set_keep_alive(false);
  client.enable_server_certificate_verification(true);

  Answer answer;
  bool oversize = false;
  auto result = client.Get(
      url.target, httplib::Headers{{"Accept", "image/*"}},
      [&](const httplib::Response& response) {
        answer.status = response.status;
        if (is_redirect(response.status)) return true;
        if (response.has_header("Content-Length")) {
          const auto length = response.get_header_value("Content-Length");
          uint64_t declared = 0;
          const auto parsed = std::from_chars(length.data(), length.data() + length.size(), declared);
          // An unparsable length is left to the body limit below; a declared excess stops before any body.
          if (parsed.ec == std::errc::result_out_of_range ||
              (parsed.ec == std::errc() && declared > options.max_bytes)) {
            oversize = true;
            return false;
          }
        }
        return true;
      },
      [&](const char* data, size_t length) {
        if (answer.body.size() + length > options.max_bytes) {
          oversize = true;
          return false;
        }
        answer.body.insert(answer.body.end(), data, data + length);
        return true;
      });
  if (oversize) {
    fail(ErrorKind::kInvalidRequest, "image from {} is larger than the {} byte limit", url.host, options.max_bytes);
  }
  if (!result) {
    fail(ErrorKind::kInvalidRequest, "image from {} could not be fetched: {}", url.host,
         httplib::to_string(result.error()));
  }
  answer.status = result->status;
  if (is_redirect(answer.status)) answer.location = result->get_header_value("Location");
  return answer;
}

}  // namespace

std::vector<uint8_t> fetch_remote_image(const std::string& url_text, const RemoteFetchOptions& options) {
  std::string current = url_text;
  for (int hop = 0;; ++hop) {
    const ParsedUrl url = parse_url(current);
    const std::string address = checked_address(url, options);
    Answer answer = get_once(url, address, options);
    if (is_redirect(answer.status)) {
      if (hop >= options.max_redirects) {
        fail(ErrorKind::kInvalidRequest, "image URL redirects more than {} times", options.max_redirects);
      }
      if (answer.location.empty()) fail(ErrorKind::kInvalidRequest, "image redirect from {} has no Location", url.host);
      current = redirect_target(url, answer.location);
      continue;
    }
    if (answer.status < 200 || answer.status > 299) {
      fail(ErrorKind::kInvalidRequest, "image from {} answered HTTP {}", url.host, answer.status);
    }
    return std::move(answer.body);
  }
}

}  // namespace loom::vision
