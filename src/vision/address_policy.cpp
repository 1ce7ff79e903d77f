#include "vision/address_policy.h"

#include <arpa/inet.h>

#include <string>

#include "core/error.h"

namespace loom::vision {
namespace {

// True when the first `bits` bits of `a` equal those of `prefix`.
template <size_t N>
bool in_prefix(const std::array<uint8_t, N>& a, std::initializer_list<uint8_t> prefix, int bits) {
  if (static_cast<int>(prefix.size()) * 8 < bits) fail(ErrorKind::kInternal, "address prefix shorter than its length");
  auto p = prefix.begin();
  for (int i = 0; bits > 0; ++i, ++p, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xFF : static_cast<uint8_t>(0xFF << (8 - bits));
    if ((a[i] & mask) != (*p & mask)) return false;
  }
  return true;
}

std::array<uint8_t, 4> embedded_v4(const std::array<uint8_t, 16>& a, int at) {
  return {a[at], a[at + 1], a[at + 2], a[at + 3]};
}

}  // namespace

bool is_public_ipv4(const std::array<uint8_t, 4>& a) {
  struct Range {
    std::initializer_list<uint8_t> prefix;
    int bits;
  };
  static const Range kRefused[] = {
      {{0, 0, 0, 0}, 8},        // "this network", includes 0.0.0.0
      {{10, 0, 0, 0}, 8},       // RFC 1918
      {{100, 64, 0, 0}, 10},    // CGNAT (RFC 6598)
      {{127, 0, 0, 0}, 8},      // loopback
      {{169, 254, 0, 0}, 16},   // link-local (cloud metadata lives here)
      {{172, 16, 0, 0}, 12},    // RFC 1918
      {{192, 0, 0, 0}, 24},     // IETF protocol assignments
      {{192, 0, 2, 0}, 24},     // TEST-NET-1
      {{192, 88, 99, 0}, 24},   // 6to4 relay anycast
      {{192, 168, 0, 0}, 16},   // RFC 1918
      {{198, 18, 0, 0}, 15},    // benchmarking
      {{198, 51, 100, 0}, 24},  // TEST-NET-2
      {{203, 0, 113, 0}, 24},   // TEST-NET-3
      {{224, 0, 0, 0}, 4},      // multicast
      {{240, 0, 0, 0}, 4},      // reserved, includes 255.255.255.255 broadcast
  };
  for (const Range& r : kRefused) {
    if (in_prefix(a, r.prefix, r.bits)) return false;
  }
  return true;
}

bool is_public_ipv6(const std::array<uint8_t, 16>& a) {
  // IPv4 inside IPv6: mapped (::ffff:0:0/96), NAT64 well-known prefix (64:ff9b::/96), 6to4 (2002::/16).
  if (in_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 96)) return is_public_ipv4(embedded_v4(a, 12));
  if (in_prefix(a, {0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0}, 96)) return is_public_ipv4(embedded_v4(a, 12));
  if (in_prefix(a, {0x20, 0x02}, 16)) return is_public_ipv4(embedded_v4(a, 2));
  // Only global unicast (2000::/3) may pass; this refuses ::, ::1, IPv4-compatible ::/96, 64:ff9b:1::/48, 100::/64,
  // fc00::/7, fe80::/10, fec0::/10 and ff00::/8 in one rule.
  if (!in_prefix(a, {0x20}, 3)) return false;
  if (in_prefix(a, {0x20, 0x01, 0x00}, 23)) return false;        // IETF protocol assignments (Teredo, ORCHID, …)
  if (in_prefix(a, {0x20, 0x01, 0x0D, 0xB8}, 32)) return false;  // documentation
  if (in_prefix(a, {0x3F, 0xFF, 0x00}, 20)) return false;        // documentation (RFC 9637)
  return true;
}

bool is_public_address(std::string_view literal) {
  const std::string text(literal);
  if (text.find_first_of("[]%") != std::string::npos) return false;
  std::array<uint8_t, 4> v4{};
  if (inet_pton(AF_INET, text.c_str(), v4.data()) == 1) return is_public_ipv4(v4);
  std::array<uint8_t, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) == 1) return is_public_ipv6(v6);
  return false;
}

}  // namespace loom::vision
