#include "vision/address_policy.h"

#include <gtest/gtest.h>

namespace loom::vision {
namespace {

TEST(AddressPolicy, RefusesNonPublicIpv4) {
  for (const char* a :
       {"0.0.0.0",     "0.1.2.3",     "10.0.0.1",        "10.255.255.255", "100.64.0.1",     "100.127.255.254",
        "127.0.0.1",   "127.255.0.1", "169.254.169.254", "172.16.0.1",     "172.31.255.255", "192.0.0.8",
        "192.0.2.1",   "192.88.99.1", "192.168.1.1",     "198.18.0.1",     "198.19.255.255", "198.51.100.7",
        "203.0.113.9", "224.0.0.1",   "239.255.255.250", "240.0.0.1",      "255.255.255.255"}) {
    EXPECT_FALSE(is_public_address(a)) << a;
  }
}

TEST(AddressPolicy, AllowsPublicIpv4) {
  for (const char* a : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255",
                        "172.32.0.0", "192.169.0.1", "198.20.0.1", "223.255.255.255", "11.0.0.1"}) {
    EXPECT_TRUE(is_public_address(a)) << a;
  }
}

TEST(AddressPolicy, RefusesNonPublicIpv6IncludingEmbeddedIpv4) {
  for (const char* a : {"::",
                        "::1",
                        "fc00::1",
                        "fd12:3456::1",
                        "fe80::1",
                        "febf::1",
                        "fec0::1",
                        "ff02::1",
                        "ff0e::1",
                        "::ffff:127.0.0.1",
                        "::ffff:10.1.2.3",
                        "::ffff:169.254.169.254",
                        "::ffff:0.0.0.0",
                        "::127.0.0.1",
                        "64:ff9b::10.0.0.1",
                        "64:ff9b:1::1",
                        "2002:7f00:1::1",
                        "2002:c0a8:101::1",
                        "2001:db8::1",
                        "2001::1",
                        "100::1",
                        "3fff::1",
                        "4000::1"}) {
    EXPECT_FALSE(is_public_address(a)) << a;
  }
}

TEST(AddressPolicy, AllowsPublicIpv6) {
  for (const char* a : {"2606:4700:4700::1111", "2a00:1450:4001:81b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
                        "2002:808:808::1", "2001:4860:4860::8888"}) {
    EXPECT_TRUE(is_public_address(a)) << a;
  }
}

TEST(AddressPolicy, RefusesWhatDoesNotParse) {
  for (const char* a : {"", "localhost", "example.com", "127.1", "0x7f.0.0.1", "2130706433", "[::1]", "fe80::1%eth0",
                        "1.2.3.4.5", "::ffff:1.2.3"}) {
    EXPECT_FALSE(is_public_address(a)) << a;
  }
}

}  // namespace
}  // namespace loom::vision
