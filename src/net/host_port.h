// "host:port" addresses as configs and command lines write them ("127.0.0.1:7001",
// "[::1]:7001"). Shared by the node's config and the client library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace meridian::net {

// Splits "host:port" or "[v6]:port"; false when malformed (no port, a port over 65535, an IPv6
// address without brackets).
bool SplitHostPort(std::string_view address, std::string* host, uint16_t* port);
// The other way: "host:port", or "[v6]:port" for an IPv6 address.
std::string FormatHostPort(const std::string& host, uint16_t port);

// True when `host` is an IPv4 or IPv6 literal (no names: nothing is resolved).
bool IsIpAddress(const std::string& host);
// An IPv4 address in 127.0.0.0/8 or the IPv6 address ::1 (or ::ffff:127.x.y.z).
bool IsLoopbackAddress(const std::string& host);

}  // namespace meridian::net
