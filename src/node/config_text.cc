#include "node/config_text.h"

#include <cstdio>
#include <sstream>

#include "core/check.h"
#include "net/host_port.h"

namespace meridian::node {

std::string TomlString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string WriteConfigToml(const ConfigPlan& plan) {
  MERIDIAN_CHECK(plan.dial.empty() || plan.dial.size() == plan.regions.size());
  std::ostringstream out;
  for (const std::string& line : plan.comment) out << "# " << line << "\n";
  if (!plan.comment.empty()) out << "\n";
  out << "[node]\nregion = " << TomlString(plan.region) << "  # which [[regions]] entry this node is\n"
      << "data_dir = " << TomlString(plan.data_dir) << "\n";
  if (!plan.deployment.empty()) out << "deployment = " << TomlString(plan.deployment) << "\n";
  out << "\n";
  for (size_t i = 0; i < plan.regions.size(); ++i) {
    const PlannedRegion& region = plan.regions[i];
    const std::string& replication =
        plan.dial.empty() || plan.dial[i].empty() ? region.replication : plan.dial[i];
    out << "[[regions]]\nname = " << TomlString(region.name) << "\nid = " << region.id
        << "\nhttp = " << TomlString(region.http) << "\nreplication = " << TomlString(replication)
        << "\n";
    if (!region.resp.empty()) out << "resp = " << TomlString(region.resp) << "\n";
    if (!region.grpc.empty()) out << "grpc = " << TomlString(region.grpc) << "\n";
    out << "\n";
  }
  if (plan.http_threads >= 0) out << "[http]\nthreads = " << plan.http_threads << "\n\n";
  out << "[storage]\nsync = " << (plan.sync ? "true" : "false") << "\n";
  if (!plan.cert_file.empty()) {
    out << "\n[tls]\ncert_file = " << TomlString(plan.cert_file)
        << "\nkey_file = " << TomlString(plan.key_file) << "\nca_file = " << TomlString(plan.ca_file)
        << "\n";
  }
  if (!plan.jwt_secret_file.empty()) {
    out << "\n[auth]\njwt_secret_file = " << TomlString(plan.jwt_secret_file) << "\n";
  }
  return out.str();
}

Result<PlannedRegion> PlanRegion(const std::string& name, int index, const std::string& host,
                                 int base_port, bool grpc) {
  MERIDIAN_CHECK(index >= 0 && index < 32);
  if (base_port < 0 || base_port + 301 + index > 65535) {
    return InvalidArgument("--base-port " + std::to_string(base_port) + ": the ports of " +
                           std::to_string(index + 1) + " regions pass 65535 (at most " +
                           std::to_string(65535 - 301 - index) + ")");
  }
  const auto at = [&](int offset) {
    return net::FormatHostPort(host, static_cast<uint16_t>(base_port + offset + index));
  };
  PlannedRegion region;
  region.name = name;
  region.id = index + 1;
  region.http = at(1);
  region.replication = at(101);
  region.resp = at(201);
  if (grpc) region.grpc = at(301);
  return region;
}

ConfigPlan SingleRegionPlan() {
  ConfigPlan plan;
  plan.comment = {"One region on loopback: what `meridian start` runs without a config file."};
  plan.region = "local";
  plan.data_dir = "meridian-data";
  Result<PlannedRegion> local = PlanRegion("local", 0, "127.0.0.1", 7000, false);
  MERIDIAN_CHECK(local.ok());
  plan.regions.push_back(*local);
  return plan;
}

}  // namespace meridian::node
