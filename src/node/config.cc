#include "node/config.h"

#include <toml++/toml.h>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>

#include "core/check.h"
#include "net/host_port.h"

namespace meridian::node {

const RegionAddress& NodeConfig::self() const {
  for (const RegionAddress& address : regions) {
    if (address.name == region) return address;
  }
  MERIDIAN_CHECK(false && "config not validated");
  return regions.front();
}

namespace {

template <typename T>
Status ReadInteger(const toml::table& table, std::string_view section, std::string_view key,
                   T* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  const auto* value = node->as_integer();
  if (value == nullptr || value->get() < 0 ||
      static_cast<uint64_t>(value->get()) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
    return InvalidArgument(std::string(section) + "." + std::string(key) +
                           " must be a non-negative integer in range");
  }
  *out = static_cast<T>(value->get());
  return Status::Ok();
}

Status ReadString(const toml::table& table, std::string_view section, std::string_view key,
                  std::string* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  const auto* value = node->as_string();
  if (value == nullptr)
    return InvalidArgument(std::string(section) + "." + std::string(key) + " must be a string");
  *out = value->get();
  return Status::Ok();
}

Status ReadBool(const toml::table& table, std::string_view section, std::string_view key,
                bool* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  const auto* value = node->as_boolean();
  if (value == nullptr)
    return InvalidArgument(std::string(section) + "." + std::string(key) +
                           " must be true or false");
  *out = value->get();
  return Status::Ok();
}

// Every key of a section must be known: a misspelt key is an error, not a silent default.
Status CheckKeys(const toml::table& table, std::string_view section,
                 std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : table) {
    bool found = false;
    for (std::string_view name : known) found = found || key.str() == name;
    if (!found) {
      const std::string prefix = section.empty() ? std::string() : std::string(section) + ".";
      return InvalidArgument("unknown key " + prefix + std::string(key.str()));
    }
  }
  return Status::Ok();
}

const toml::table* Section(const toml::table& root, std::string_view name, Status* error) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return nullptr;
  const toml::table* table = node->as_table();
  if (table == nullptr) *error = InvalidArgument("[" + std::string(name) + "] must be a table");
  return table;
}

}  // namespace

Result<NodeConfig> ParseConfig(std::string_view toml_text, std::string_view origin) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& error) {
    std::ostringstream message;
    message << origin << ": " << error.description() << " (line " << error.source().begin.line
            << ")";
    return InvalidArgument(message.str());
  }
  NodeConfig config;
  MERIDIAN_RETURN_IF_ERROR(
      CheckKeys(root, "",
                {"node", "regions", "homes", "http", "storage", "writes", "watch", "clock",
                 "limits", "replication", "verify", "tls", "auth", "escrow", "log", "tracing"}));
  Status error;
  if (const toml::table* tracing = Section(root, "tracing", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*tracing, "tracing", {"otlp_endpoint", "interval_ms"}));
    MERIDIAN_RETURN_IF_ERROR(
        ReadString(*tracing, "tracing", "otlp_endpoint", &config.otlp_endpoint));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*tracing, "tracing", "interval_ms", &config.otlp_interval_ms));
  }
  if (const toml::table* log = Section(root, "log", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*log, "log", {"format", "level"}));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*log, "log", "format", &config.log_format));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*log, "log", "level", &config.log_level));
  }
  if (const toml::table* node = Section(root, "node", &error)) {
    MERIDIAN_RETURN_IF_ERROR(
        CheckKeys(*node, "node", {"region", "data_dir", "deployment", "insecure"}));
    MERIDIAN_RETURN_IF_ERROR(ReadBool(*node, "node", "insecure", &config.insecure));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*node, "node", "region", &config.region));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*node, "node", "deployment", &config.deployment));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*node, "node", "data_dir", &config.data_dir));
  }
  if (const toml::table* tls = Section(root, "tls", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*tls, "tls", {"cert_file", "key_file", "ca_file"}));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*tls, "tls", "cert_file", &config.tls.cert_file));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*tls, "tls", "key_file", &config.tls.key_file));
    MERIDIAN_RETURN_IF_ERROR(ReadString(*tls, "tls", "ca_file", &config.tls.ca_file));
    if (config.tls.cert_file.empty() || config.tls.key_file.empty() || config.tls.ca_file.empty()) {
      return InvalidArgument("[tls] needs cert_file, key_file and ca_file");
    }
  }
  if (const toml::table* auth = Section(root, "auth", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*auth, "auth", {"jwt_secret_file"}));
    MERIDIAN_RETURN_IF_ERROR(
        ReadString(*auth, "auth", "jwt_secret_file", &config.auth.jwt_secret_file));
    if (config.auth.jwt_secret_file.empty()) return InvalidArgument("[auth] needs jwt_secret_file");
  }
  if (const toml::table* http = Section(root, "http", &error)) {
    MERIDIAN_RETURN_IF_ERROR(
        CheckKeys(*http, "http",
                  {"threads", "body_bytes_max", "connections_max", "idle_timeout_ms",
                   "write_timeout_ms", "scan_page_bytes_max"}));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*http, "http", "threads", &config.http_threads));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*http, "http", "body_bytes_max", &config.body_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*http, "http", "scan_page_bytes_max", &config.scan_page_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*http, "http", "connections_max", &config.connections_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*http, "http", "idle_timeout_ms", &config.idle_timeout_ms));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*http, "http", "write_timeout_ms", &config.write_timeout_ms));
  }
  if (const toml::table* storage = Section(root, "storage", &error)) {
    MERIDIAN_RETURN_IF_ERROR(
        CheckKeys(*storage, "storage",
                  {"sync", "block_cache_bytes", "document_cache_max", "conflicts_kept"}));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*storage, "storage", "document_cache_max", &config.document_cache_max));
    MERIDIAN_RETURN_IF_ERROR(ReadBool(*storage, "storage", "sync", &config.sync));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*storage, "storage", "block_cache_bytes", &config.block_cache_bytes));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*storage, "storage", "conflicts_kept", &config.conflicts_kept));
  }
  if (const toml::table* writes = Section(root, "writes", &error)) {
    MERIDIAN_RETURN_IF_ERROR(
        CheckKeys(*writes, "writes", {"batch_max", "queue_max", "idempotency_window_s"}));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*writes, "writes", "idempotency_window_s", &config.idempotency_window_s));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*writes, "writes", "batch_max", &config.write_batch_max));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*writes, "writes", "queue_max", &config.write_queue_max));
  }
  if (const toml::table* watch = Section(root, "watch", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(
        *watch, "watch", {"buffer_max", "buffer_bytes_max", "watchers_max", "changes_kept"}));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*watch, "watch", "buffer_max", &config.watch_buffer_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*watch, "watch", "buffer_bytes_max", &config.watch_buffer_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*watch, "watch", "watchers_max", &config.watchers_max));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*watch, "watch", "changes_kept", &config.changes_kept));
  }
  if (const toml::table* clock = Section(root, "clock", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*clock, "clock", {"max_skew_ms"}));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*clock, "clock", "max_skew_ms", &config.max_skew_ms));
  }
  if (const toml::table* limits = Section(root, "limits", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*limits, "limits",
                                       {"key_bytes_max", "field_name_bytes_max", "value_bytes_max",
                                        "document_bytes_max", "fields_max"}));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*limits, "limits", "key_bytes_max", &config.limits.key_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(ReadInteger(*limits, "limits", "field_name_bytes_max",
                                         &config.limits.field_name_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*limits, "limits", "value_bytes_max", &config.limits.value_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*limits, "limits", "document_bytes_max", &config.limits.document_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(
        ReadInteger(*limits, "limits", "fields_max", &config.limits.fields_max));
  }
  if (const toml::table* replication = Section(root, "replication", &error)) {
    NodeConfig::Replication& r = config.replication;
    MERIDIAN_RETURN_IF_ERROR(
        CheckKeys(*replication, "replication",
                  {"linger_ms", "batch_events_max", "batch_bytes_max", "window_batches",
                   "heartbeat_ms", "relay_after_ms", "backoff_initial_ms", "backoff_max_ms",
                   "silence_timeout_ms", "dial_timeout_ms", "hedge_after_ms", "retention_bytes",
                   "retention_age_s", "retention_hold_s", "reseed_after_s", "hlc_ahead_max_ms"}));
    const auto read = [&](std::string_view key, auto* out) {
      return ReadInteger(*replication, "replication", key, out);
    };
    MERIDIAN_RETURN_IF_ERROR(read("linger_ms", &r.linger_ms));
    MERIDIAN_RETURN_IF_ERROR(read("batch_events_max", &r.batch_events_max));
    MERIDIAN_RETURN_IF_ERROR(read("batch_bytes_max", &r.batch_bytes_max));
    MERIDIAN_RETURN_IF_ERROR(read("window_batches", &r.window_batches));
    MERIDIAN_RETURN_IF_ERROR(read("heartbeat_ms", &r.heartbeat_ms));
    MERIDIAN_RETURN_IF_ERROR(read("relay_after_ms", &r.relay_after_ms));
    MERIDIAN_RETURN_IF_ERROR(read("backoff_initial_ms", &r.backoff_initial_ms));
    MERIDIAN_RETURN_IF_ERROR(read("backoff_max_ms", &r.backoff_max_ms));
    MERIDIAN_RETURN_IF_ERROR(read("silence_timeout_ms", &r.silence_timeout_ms));
    MERIDIAN_RETURN_IF_ERROR(read("dial_timeout_ms", &r.dial_timeout_ms));
    MERIDIAN_RETURN_IF_ERROR(read("hedge_after_ms", &r.hedge_after_ms));
    MERIDIAN_RETURN_IF_ERROR(read("retention_bytes", &r.retention_bytes));
    MERIDIAN_RETURN_IF_ERROR(read("retention_age_s", &r.retention_age_s));
    MERIDIAN_RETURN_IF_ERROR(read("retention_hold_s", &r.retention_hold_s));
    MERIDIAN_RETURN_IF_ERROR(read("reseed_after_s", &r.reseed_after_s));
    MERIDIAN_RETURN_IF_ERROR(read("hlc_ahead_max_ms", &r.hlc_ahead_max_ms));
  }
  if (const toml::table* verify = Section(root, "verify", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(*verify, "verify",
                                       {"interval_ms", "align_timeout_ms", "scrub_documents_per_s",
                                        "timeout_ms", "rebuild_log_bytes_max"}));
    const auto read = [&](std::string_view key, auto* out) {
      return ReadInteger(*verify, "verify", key, out);
    };
    MERIDIAN_RETURN_IF_ERROR(read("interval_ms", &config.verify.interval_ms));
    MERIDIAN_RETURN_IF_ERROR(read("align_timeout_ms", &config.verify.align_timeout_ms));
    MERIDIAN_RETURN_IF_ERROR(read("scrub_documents_per_s", &config.verify.scrub_documents_per_s));
    MERIDIAN_RETURN_IF_ERROR(read("timeout_ms", &config.verify.timeout_ms));
    MERIDIAN_RETURN_IF_ERROR(read("rebuild_log_bytes_max", &config.verify.rebuild_log_bytes_max));
  }
  if (const toml::table* escrow = Section(root, "escrow", &error)) {
    MERIDIAN_RETURN_IF_ERROR(CheckKeys(
        *escrow, "escrow",
        {"rebalance_ms", "low_water", "high_water", "give_percent", "keys_per_round", "keys_max"}));
    const auto read = [&](std::string_view key, auto* out) {
      return ReadInteger(*escrow, "escrow", key, out);
    };
    MERIDIAN_RETURN_IF_ERROR(read("rebalance_ms", &config.escrow.rebalance_ms));
    MERIDIAN_RETURN_IF_ERROR(read("low_water", &config.escrow.low_water));
    MERIDIAN_RETURN_IF_ERROR(read("high_water", &config.escrow.high_water));
    MERIDIAN_RETURN_IF_ERROR(read("give_percent", &config.escrow.give_percent));
    MERIDIAN_RETURN_IF_ERROR(read("keys_per_round", &config.escrow.keys_per_round));
    MERIDIAN_RETURN_IF_ERROR(read("keys_max", &config.escrow.keys_max));
  }
  MERIDIAN_RETURN_IF_ERROR(error);
  if (const toml::node* regions = root.get("regions")) {
    const toml::array* array = regions->as_array();
    if (array == nullptr)
      return InvalidArgument("regions must be an array of tables ([[regions]])");
    for (const toml::node& element : *array) {
      const toml::table* table = element.as_table();
      if (table == nullptr) return InvalidArgument("each [[regions]] entry must be a table");
      MERIDIAN_RETURN_IF_ERROR(
          CheckKeys(*table, "regions", {"name", "id", "http", "replication", "grpc", "resp"}));
      RegionAddress address;
      int64_t id = -1;
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "regions", "name", &address.name));
      MERIDIAN_RETURN_IF_ERROR(ReadInteger(*table, "regions", "id", &id));
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "regions", "http", &address.http));
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "regions", "replication", &address.replication));
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "regions", "grpc", &address.grpc));
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "regions", "resp", &address.resp));
      if (id < 0 || id > static_cast<int64_t>(core::kRegionIdMax)) {
        return InvalidArgument("region '" + address.name + "': id must be 0..31");
      }
      address.id = static_cast<core::RegionId>(id);
      config.regions.push_back(std::move(address));
    }
  }
  if (const toml::node* homes = root.get("homes")) {
    const toml::array* array = homes->as_array();
    if (array == nullptr) return InvalidArgument("homes must be an array of tables ([[homes]])");
    for (const toml::node& element : *array) {
      const toml::table* table = element.as_table();
      if (table == nullptr) return InvalidArgument("each [[homes]] entry must be a table");
      MERIDIAN_RETURN_IF_ERROR(CheckKeys(*table, "homes", {"prefix", "region"}));
      NodeConfig::HomeConfig home;
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "homes", "prefix", &home.prefix));
      MERIDIAN_RETURN_IF_ERROR(ReadString(*table, "homes", "region", &home.region));
      config.homes.push_back(std::move(home));
    }
  }
  return config;
}

Result<NodeConfig> LoadConfigFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return InvalidArgument("cannot read config file " + path);
  std::stringstream text;
  text << file.rdbuf();
  Result<NodeConfig> config = ParseConfig(text.str(), path);
  if (!config.ok()) return config;
  // Files named in the config are found beside it, wherever the node is started from.
  const std::filesystem::path directory = std::filesystem::path(path).parent_path();
  for (std::string* file_name : {&config->tls.cert_file, &config->tls.key_file,
                                 &config->tls.ca_file, &config->auth.jwt_secret_file}) {
    if (!file_name->empty() && std::filesystem::path(*file_name).is_relative())
      *file_name = (directory / *file_name).lexically_normal().string();
  }
  return config;
}

bool SplitHttpUrl(std::string_view url, std::string* host, uint16_t* port, std::string* path) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return false;
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  const std::string_view address = url.substr(0, slash);
  *path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  return net::SplitHostPort(address, host, port) && net::IsIpAddress(*host) && *port != 0;
}

Status ValidateConfig(const NodeConfig& config) {
  if (config.region.empty()) return InvalidArgument("node.region is not set");
  if (!config.otlp_endpoint.empty()) {
    std::string host, path;
    uint16_t port = 0;
    if (!SplitHttpUrl(config.otlp_endpoint, &host, &port, &path)) {
      return InvalidArgument("tracing.otlp_endpoint must be http://IP:PORT/PATH, not \"" +
                             config.otlp_endpoint + "\"");
    }
  }
  if (config.otlp_interval_ms < 100 || config.otlp_interval_ms > 60'000) {
    return InvalidArgument("tracing.interval_ms must be from 100 to 60000, not " +
                           std::to_string(config.otlp_interval_ms));
  }
  if (config.log_format != "text" && config.log_format != "json") {
    return InvalidArgument("log.format must be \"text\" or \"json\", not \"" + config.log_format +
                           "\"");
  }
  if (!std::set<std::string>{"trace", "debug", "info", "warn", "error"}.contains(
          config.log_level)) {
    return InvalidArgument("log.level must be one of trace, debug, info, warn, error, not \"" +
                           config.log_level + "\"");
  }
  if (config.data_dir.empty()) return InvalidArgument("node.data_dir is not set");
  if (config.deployment.empty() || config.deployment.size() > 64 ||
      config.deployment.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-_.") != std::string::npos) {
    return InvalidArgument(
        "node.deployment must be 1 to 64 letters, digits, '-', '_' or '.', not '" +
        config.deployment + "'");
  }
  std::set<std::string> names;
  std::set<core::RegionId> ids;
  bool self_found = false;
  for (const RegionAddress& address : config.regions) {
    if (address.name.empty()) return InvalidArgument("a region has no name");
    if (!names.insert(address.name).second)
      return InvalidArgument("region '" + address.name + "' is listed twice");
    if (!ids.insert(address.id).second) {
      return InvalidArgument("region id " + std::to_string(address.id) + " is used twice");
    }
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(address.http, &host, &port) || !net::IsIpAddress(host)) {
      return InvalidArgument("region '" + address.name +
                             "': http must be ip:port (127.0.0.1:7001, [::1]:7001), not '" +
                             address.http + "'");
    }
    if (address.replication.empty() && config.regions.size() > 1) {
      return InvalidArgument("region '" + address.name +
                             "': replication (ip:port) is required: the other regions dial it, "
                             "and a node listens on its own");
    }
    if (!address.replication.empty() &&
        (!SplitHostPort(address.replication, &host, &port) || !net::IsIpAddress(host))) {
      return InvalidArgument("region '" + address.name + "': replication must be ip:port, not '" +
                             address.replication + "'");
    }
    for (const auto& [what, listen] :
         {std::pair<const char*, const std::string&>{"grpc", address.grpc},
          {"resp", address.resp}}) {
      if (!listen.empty() && (!SplitHostPort(listen, &host, &port) || !net::IsIpAddress(host))) {
        return InvalidArgument("region '" + address.name + "': " + what +
                               " must be ip:port (127.0.0.1:7201, [::1]:7201), not '" + listen +
                               "'");
      }
    }
    if (address.name == config.region && !config.insecure) {
      // Secure by default: a port listens beyond loopback only when what arrives there is
      // authenticated: replication by mutual TLS, the client APIs by TLS and tokens.
      const bool clients_secured = config.tls.enabled() && config.auth.enabled();
      for (const auto& [what, listen, secured, needs] :
           {std::tuple<const char*, const std::string&, bool, const char*>{
                "http", address.http, clients_secured, "[tls] and [auth]"},
            {"replication", address.replication, config.tls.enabled(), "[tls]"},
            {"grpc", address.grpc, clients_secured, "[tls] and [auth]"},
            {"resp", address.resp, clients_secured, "[tls] and [auth]"}}) {
        if (secured || listen.empty() || !SplitHostPort(listen, &host, &port)) continue;
        if (!net::IsLoopbackAddress(host)) {
          return InvalidArgument("region '" + address.name + "': " + what + " listens on " +
                                 listen + ", which is not a loopback address, without " + needs +
                                 " to authenticate who connects: configure them, or set [node] "
                                 "insecure = true to accept that (docs/security.md)");
        }
      }
    }
    self_found = self_found || address.name == config.region;
  }
  if (!self_found)
    return InvalidArgument("node.region '" + config.region + "' is not among [[regions]]");
  std::set<std::string> home_prefixes;
  for (const NodeConfig::HomeConfig& home : config.homes) {
    if (home.prefix.empty() || home.prefix.size() > config.limits.key_bytes_max ||
        !core::IsValidUtf8(home.prefix) || home.prefix.starts_with("_meridian/")) {
      return InvalidArgument("[[homes]] prefix '" + home.prefix +
                             "' must be 1 to limits.key_bytes_max bytes of UTF-8, not under "
                             "'_meridian/'");
    }
    if (!home_prefixes.insert(home.prefix).second) {
      return InvalidArgument("[[homes]] prefix '" + home.prefix + "' is listed twice");
    }
    if (!names.contains(home.region)) {
      return InvalidArgument("[[homes]] prefix '" + home.prefix + "': region '" + home.region +
                             "' is not among [[regions]]");
    }
  }
  struct Bound {
    const char* name;
    uint64_t value;
    uint64_t min;
    uint64_t max;
  };
  const Bound bounds[] = {
      {"http.threads", static_cast<uint64_t>(config.http_threads), 0, 256},
      {"http.body_bytes_max", config.body_bytes_max, 1024, uint64_t{1} << 30},
      {"http.scan_page_bytes_max", config.scan_page_bytes_max, 1024, uint64_t{1} << 30},
      {"http.connections_max", config.connections_max, 1, 1'000'000},
      {"http.idle_timeout_ms", config.idle_timeout_ms, 100, 86'400'000},
      {"http.write_timeout_ms", config.write_timeout_ms, 100, 3'600'000},
      {"storage.document_cache_max", config.document_cache_max, 0, 100'000'000},
      {"storage.block_cache_bytes", config.block_cache_bytes, 1 << 20, uint64_t{1} << 40},
      {"storage.conflicts_kept", config.conflicts_kept, 1, 1'000'000'000'000},
      {"writes.batch_max", config.write_batch_max, 1, 100'000},
      {"writes.queue_max", config.write_queue_max, 1, 10'000'000},
      {"writes.idempotency_window_s", config.idempotency_window_s, 1, 365 * 86'400},
      {"watch.buffer_max", config.watch_buffer_max, 1, 10'000'000},
      {"watch.buffer_bytes_max", config.watch_buffer_bytes_max, 65536, uint64_t{1} << 40},
      {"watch.watchers_max", config.watchers_max, 1, 1'000'000},
      {"watch.changes_kept", config.changes_kept, 1, 1'000'000'000'000},
      {"clock.max_skew_ms", config.max_skew_ms, 1, 86'400'000},
      {"limits.key_bytes_max", config.limits.key_bytes_max, 1, 64 * 1024},
      {"limits.field_name_bytes_max", config.limits.field_name_bytes_max, 1, 64 * 1024},
      {"limits.value_bytes_max", config.limits.value_bytes_max, 16, uint64_t{256} << 20},
      {"limits.document_bytes_max", config.limits.document_bytes_max, 16, uint64_t{256} << 20},
      {"limits.fields_max", config.limits.fields_max, 1, 1'000'000},
      {"replication.linger_ms", config.replication.linger_ms, 0, 1000},
      {"replication.batch_events_max", config.replication.batch_events_max, 1, 4096},
      {"replication.batch_bytes_max", config.replication.batch_bytes_max, 1024, 8 << 20},
      {"replication.window_batches", config.replication.window_batches, 1, 65536},
      {"replication.heartbeat_ms", config.replication.heartbeat_ms, 10, 60'000},
      {"replication.relay_after_ms", config.replication.relay_after_ms, 0, 3'600'000},
      {"replication.backoff_initial_ms", config.replication.backoff_initial_ms, 1, 60'000},
      {"replication.backoff_max_ms", config.replication.backoff_max_ms, 1, 600'000},
      {"replication.silence_timeout_ms", config.replication.silence_timeout_ms, 100, 3'600'000},
      {"replication.dial_timeout_ms", config.replication.dial_timeout_ms, 100, 3'600'000},
      {"replication.hedge_after_ms", config.replication.hedge_after_ms, 10, 3'600'000},
      {"replication.retention_bytes", config.replication.retention_bytes, 1 << 20,
       uint64_t{1} << 50},
      {"replication.retention_age_s", config.replication.retention_age_s, 1, 10 * 365 * 86'400},
      {"replication.retention_hold_s", config.replication.retention_hold_s, 1, 10 * 365 * 86'400},
      {"replication.reseed_after_s", config.replication.reseed_after_s, 0, 30 * 86'400},
      {"replication.hlc_ahead_max_ms", config.replication.hlc_ahead_max_ms, 1000, 86'400'000},
      {"verify.interval_ms", config.verify.interval_ms, 0, 30 * 86'400'000ull},
      {"verify.align_timeout_ms", config.verify.align_timeout_ms, 100, 3'600'000},
      {"verify.scrub_documents_per_s", config.verify.scrub_documents_per_s, 0, 10'000'000},
      {"verify.timeout_ms", config.verify.timeout_ms, 100, 3'600'000},
      {"verify.rebuild_log_bytes_max", config.verify.rebuild_log_bytes_max, 0, uint64_t{1} << 50},
      {"escrow.rebalance_ms", config.escrow.rebalance_ms, 0, 3'600'000},
      {"escrow.low_water", config.escrow.low_water, 0, uint64_t{1} << 62},
      {"escrow.high_water", config.escrow.high_water, config.escrow.low_water, uint64_t{1} << 62},
      {"escrow.give_percent", config.escrow.give_percent, 0, 100},
      {"escrow.keys_per_round", config.escrow.keys_per_round, 1, 100'000},
      {"escrow.keys_max", config.escrow.keys_max, 1, 10'000'000},
  };
  for (const Bound& bound : bounds) {
    if (bound.value < bound.min || bound.value > bound.max) {
      return InvalidArgument(std::string(bound.name) + " must be from " +
                             std::to_string(bound.min) + " to " + std::to_string(bound.max) +
                             ", not " + std::to_string(bound.value));
    }
  }
  if (config.replication.heartbeat_ms * 2 > config.replication.silence_timeout_ms) {
    return InvalidArgument(
        "replication.silence_timeout_ms must be at least twice "
        "replication.heartbeat_ms");
  }
  return Status::Ok();
}

core::EscrowPolicy EscrowPolicyOf(const NodeConfig& config) {
  return core::EscrowPolicy{static_cast<int64_t>(config.escrow.low_water),
                            static_cast<int64_t>(config.escrow.high_water),
                            static_cast<int64_t>(config.escrow.give_percent)};
}

}  // namespace meridian::node
