// Routes and options of the WAN proxy: parsing, validation, and the /status document. No I/O.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <system_error>

#include "net/host_port.h"
#include "wanproxy/json_quote.h"
#include "wanproxy/wan_proxy.h"

namespace meridian::wanproxy {

namespace {

constexpr std::string_view kRouteSyntax =
    "LISTEN=TARGET[,delay=MS][,jitter=MS][,drop=P][,stall=P][,stall-ms=MS][,bandwidth=BYTES_PER_S]";

// "host:port" or "[v6]:port". On failure, *error says what is wrong (without the address).
bool SplitHostPort(std::string_view address, std::string* host, uint16_t* port,
                   std::string* error) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    *error = "is not HOST:PORT";
    return false;
  }
  std::string_view host_part = address.substr(0, colon);
  const std::string_view port_part = address.substr(colon + 1);
  if (!host_part.empty() && host_part.front() == '[') {
    if (host_part.size() < 3 || host_part.back() != ']') {
      *error = "has an unclosed '[' (an IPv6 address is written [::1]:PORT)";
      return false;
    }
    host_part = host_part.substr(1, host_part.size() - 2);
  } else if (host_part.find(':') != std::string_view::npos) {
    *error = "has an IPv6 address without brackets (write [::1]:PORT)";
    return false;
  }
  if (host_part.empty()) {
    *error = "has no host (e.g. 127.0.0.1:9101)";
    return false;
  }
  if (host_part.find_first_of(" \t,=[]") != std::string_view::npos) {
    *error = "has a host with a space or one of ,=[]";
    return false;
  }
  unsigned value = 0;
  const char* end = port_part.data() + port_part.size();
  auto [ptr, parse_error] = std::from_chars(port_part.data(), end, value);
  if (port_part.empty() || parse_error != std::errc() || ptr != end || value > 65535) {
    *error = "has a port that is not a number from 0 to 65535";
    return false;
  }
  host->assign(host_part);
  *port = static_cast<uint16_t>(value);
  return true;
}

template <typename T>
bool ParseUnsigned(std::string_view text, T max, T* out) {
  T value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end || value > max) return false;
  *out = value;
  return true;
}

bool ParseProbability(std::string_view text, double* out) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end || !(value >= 0.0 && value <= 1.0)) {
    return false;
  }
  *out = value;
  return true;
}

bool ValidProbability(double p) {
  return p >= 0.0 && p <= 1.0;
}

void AppendJsonString(std::string* out, std::string_view text) {
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          *out += escaped;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string FormatDouble(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

std::string JsonQuote(std::string_view text) {
  std::string out;
  AppendJsonString(&out, text);
  return out;
}

std::string Route::listen() const {
  return net::FormatHostPort(listen_host, listen_port);
}
std::string Route::target() const {
  return net::FormatHostPort(target_host, target_port);
}

Result<Route> ParseRoute(std::string_view text) {
  if (text.empty()) {
    return InvalidArgument("empty route; expected " + std::string(kRouteSyntax));
  }
  const std::string prefix = "route '" + std::string(text) + "': ";
  const auto comma = text.find(',');
  const std::string_view head = text.substr(0, comma);
  const auto equals = head.find('=');
  if (equals == std::string_view::npos) {
    return InvalidArgument(prefix + "expected LISTEN=TARGET, e.g. 127.0.0.1:9101=127.0.0.1:7102");
  }
  Route route;
  std::string error;
  const std::string_view listen = head.substr(0, equals);
  const std::string_view target = head.substr(equals + 1);
  if (listen.empty()) return InvalidArgument(prefix + "the LISTEN address before '=' is missing");
  if (target.empty()) return InvalidArgument(prefix + "the TARGET address after '=' is missing");
  if (!SplitHostPort(listen, &route.listen_host, &route.listen_port, &error)) {
    return InvalidArgument(prefix + "listen address '" + std::string(listen) + "' " + error);
  }
  if (!SplitHostPort(target, &route.target_host, &route.target_port, &error)) {
    return InvalidArgument(prefix + "target address '" + std::string(target) + "' " + error);
  }
  if (route.target_port == 0) return InvalidArgument(prefix + "the target port must not be 0");

  std::set<std::string, std::less<>> seen;
  std::string_view rest = comma == std::string_view::npos ? std::string_view() : text.substr(comma);
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the ','
    const auto next = rest.find(',');
    const std::string_view option = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
    if (option.empty()) return InvalidArgument(prefix + "an empty option (a stray ',')");
    const auto option_equals = option.find('=');
    const std::string_view key = option.substr(0, option_equals);
    if (option_equals == std::string_view::npos || option_equals + 1 == option.size()) {
      return InvalidArgument(prefix + "option '" + std::string(key) + "' needs a value, e.g. " +
                             std::string(key) + "=40");
    }
    const std::string_view value = option.substr(option_equals + 1);
    if (!seen.insert(std::string(key)).second) {
      return InvalidArgument(prefix + "option '" + std::string(key) + "' is given twice");
    }
    const std::string quoted = std::string(key) + " '" + std::string(value) + "'";
    if (key == "delay" || key == "jitter" || key == "stall-ms") {
      uint32_t ms = 0;
      const uint32_t min = key == "stall-ms" ? 1 : 0;
      if (!ParseUnsigned(value, kMaxMilliseconds, &ms) || ms < min) {
        return InvalidArgument(prefix + quoted + " is not a whole number of milliseconds from " +
                               std::to_string(min) + " to " + std::to_string(kMaxMilliseconds));
      }
      (key == "delay" ? route.delay_ms : key == "jitter" ? route.jitter_ms : route.stall_ms) = ms;
    } else if (key == "drop" || key == "stall") {
      double p = 0;
      if (!ParseProbability(value, &p)) {
        return InvalidArgument(prefix + quoted + " is not a probability per second from 0 to 1");
      }
      (key == "drop" ? route.drop : route.stall) = p;
    } else if (key == "bandwidth") {
      uint64_t bytes = 0;
      if (!ParseUnsigned(value, UINT64_MAX, &bytes)) {
        return InvalidArgument(prefix + quoted +
                               " is not a whole number of bytes per second (0: no cap)");
      }
      route.bandwidth = bytes;
    } else {
      return InvalidArgument(prefix + "unknown option '" + std::string(key) +
                             "' (known: delay, jitter, drop, stall, stall-ms, bandwidth)");
    }
  }
  return route;
}

Status ValidateOptions(const WanProxyOptions& options) {
  if (options.routes.empty()) {
    return InvalidArgument("no routes: give at least one route " + std::string(kRouteSyntax));
  }
  const std::string max = std::to_string(kMaxMilliseconds);
  if (options.delay_ms > kMaxMilliseconds) return InvalidArgument("delay is over " + max + " ms");
  if (options.jitter_ms > kMaxMilliseconds) return InvalidArgument("jitter is over " + max + " ms");
  if (!ValidProbability(options.drop)) return InvalidArgument("drop is not from 0 to 1");
  if (!ValidProbability(options.stall)) return InvalidArgument("stall is not from 0 to 1");
  if (options.stall_ms < 1 || options.stall_ms > kMaxMilliseconds) {
    return InvalidArgument("stall length is not from 1 to " + max + " ms");
  }
  if (options.buffer_bytes < 1) return InvalidArgument("the buffer must hold at least one byte");
  std::string error;
  if (!options.control.empty()) {
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(options.control, &host, &port, &error)) {
      return InvalidArgument("control address '" + options.control + "' " + error);
    }
  }
  std::set<std::string> listens;
  for (const Route& route : options.routes) {
    const std::string name = "route " + route.listen() + "=" + route.target() + ": ";
    if (route.listen_host.empty() || route.target_host.empty()) {
      return InvalidArgument(name + "a host is empty");
    }
    if (route.target_port == 0) return InvalidArgument(name + "the target port must not be 0");
    if (route.delay_ms.value_or(0) > kMaxMilliseconds ||
        route.jitter_ms.value_or(0) > kMaxMilliseconds) {
      return InvalidArgument(name + "delay or jitter over " + max + " ms");
    }
    if (route.stall_ms && (*route.stall_ms < 1 || *route.stall_ms > kMaxMilliseconds)) {
      return InvalidArgument(name + "stall-ms is not from 1 to " + max);
    }
    if (!ValidProbability(route.drop.value_or(0)) || !ValidProbability(route.stall.value_or(0))) {
      return InvalidArgument(name + "drop or stall is not from 0 to 1");
    }
    if (route.listen_port != 0 && !listens.insert(route.listen()).second) {
      return InvalidArgument("two routes listen on " + route.listen());
    }
  }
  return Status::Ok();
}

std::string StatsJson(const WanProxyStats& stats) {
  std::string out = "{\"seed\":" + std::to_string(stats.seed) + ",\"control\":";
  AppendJsonString(&out, stats.control);
  out += ",\"routes\":[";
  bool first = true;
  for (const RouteStats& route : stats.routes) {
    if (!first) out += ',';
    first = false;
    out += "{\"listen\":";
    AppendJsonString(&out, route.listen);
    out += ",\"target\":";
    AppendJsonString(&out, route.target);
    out += ",\"delay_ms\":" + std::to_string(route.delay_ms);
    out += ",\"jitter_ms\":" + std::to_string(route.jitter_ms);
    out += ",\"drop\":" + FormatDouble(route.drop);
    out += ",\"stall\":" + FormatDouble(route.stall);
    out += ",\"stall_ms\":" + std::to_string(route.stall_ms);
    out += ",\"bandwidth\":" + std::to_string(route.bandwidth);
    out += ",\"partitioned\":";
    out += route.partitioned ? "true" : "false";
    out += ",\"connections_open\":" + std::to_string(route.connections_open);
    out += ",\"connections_total\":" + std::to_string(route.connections_total);
    out += ",\"connections_refused\":" + std::to_string(route.connections_refused);
    out += ",\"connect_failures\":" + std::to_string(route.connect_failures);
    out += ",\"bytes_to_target\":" + std::to_string(route.bytes_to_target);
    out += ",\"bytes_to_client\":" + std::to_string(route.bytes_to_client);
    out += ",\"drops\":" + std::to_string(route.drops);
    out += ",\"stalls\":" + std::to_string(route.stalls);
    out += ",\"buffered_peak\":" + std::to_string(route.buffered_peak);
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace meridian::wanproxy
