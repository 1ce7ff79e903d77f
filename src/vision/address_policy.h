#pragma once
// Which network addresses a server-side image fetch may connect to (SSRF guard). Only globally routable unicast
// addresses pass: loopback, private (RFC 1918, fc00::/7), link-local, CGNAT, multicast, reserved, documentation,
// benchmarking and unspecified ranges are refused, including their IPv4-mapped, NAT64 and 6to4 spellings. The
// fetcher must check every address a name resolves to, and connect to the checked address (no second lookup).

#include <array>
#include <cstdint>
#include <string_view>

namespace loom::vision {

bool is_public_ipv4(const std::array<uint8_t, 4>& address);
bool is_public_ipv6(const std::array<uint8_t, 16>& address);

// Parses a numeric IPv4 or IPv6 literal (brackets and a zone index are refused) and applies the rules above;
// anything that does not parse is not allowed.
bool is_public_address(std::string_view literal);

}  // namespace loom::vision
