#include "cli/client_commands.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meridian/client.h"
#include "node/config.h"

namespace meridian::cli {

namespace {

// What every client subcommand shares.
struct Common {
  std::vector<std::string> regions;  // NAME=HOST:PORT
  std::string config_path;           // or the regions of a node's config file
  std::string prefer;
  bool json = false;
  std::string session;
  uint64_t timeout_ms = 3000;
  std::string token;    // or MERIDIAN_TOKEN
  std::string ca_file;  // or MERIDIAN_CA_FILE
};

struct Command {
  CLI::App* app = nullptr;
  Common common;
  std::string key;
  std::string body;
  std::vector<std::string> deltas;  // FIELD=N
  std::string idempotency_key;
  uint32_t durability = 0;
  std::string prefix;
  std::string after;
  size_t limit = 100;
  bool all = false;
  std::string from;
  uint64_t count = 0;
  std::string region;
  bool strong = false;         // --strong: consistency=strong
  std::string if_match;        // --if-match VERSION
  bool if_none_match = false;  // --if-none-match
  bool force = false;          // move-home --force
  std::string field;           // bounds FIELD
  std::string min;             // bounds MIN
};

std::vector<std::unique_ptr<Command>>& Commands() {
  static std::vector<std::unique_ptr<Command>> commands;
  return commands;
}

std::atomic<bool> g_interrupted{false};

void AddCommon(CLI::App* app, Common& common) {
  app->add_option("--regions", common.regions,
                  "NAME=HOST:PORT of each region's HTTP API (or MERIDIAN_REGIONS, comma-separated)")
      ->delimiter(',');
  app->add_option("--config", common.config_path,
                  "Take the regions from a node's config file instead")
      ->check(CLI::ExistingFile);
  app->add_option("--prefer", common.prefer, "Use this region while it is healthy");
  app->add_flag("--json", common.json, "Print JSON instead of text");
  app->add_option("--session", common.session,
                  "A session token (from an earlier --json answer): reads wait until the region "
                  "has applied it (or MERIDIAN_SESSION)");
  app->add_option("--token", common.token,
                  "A bearer token, sent with every request (or MERIDIAN_TOKEN)");
  app->add_option("--ca-file", common.ca_file,
                  "The CA (PEM) that https:// regions' certificates must chain to (or "
                  "MERIDIAN_CA_FILE; default: the [tls] ca_file of --config, else the system's)");
  app->add_option("--timeout-ms", common.timeout_ms,
                  "How long a call may keep trying regions before it fails")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
}

Result<std::unique_ptr<Client>> Connect(const Common& common) {
  ClientOptions options;
  std::vector<std::string> texts = common.regions;
  if (texts.empty() && common.config_path.empty()) {
    if (const char* env = std::getenv("MERIDIAN_REGIONS")) {
      std::stringstream stream(env);
      std::string item;
      while (std::getline(stream, item, ',')) {
        if (!item.empty()) texts.push_back(item);
      }
    }
  }
  for (const std::string& text : texts) {
    auto endpoint = ParseRegionEndpoint(text);
    if (!endpoint.ok()) return endpoint.status();
    options.regions.push_back(*endpoint);
  }
  if (!common.config_path.empty()) {
    auto config = node::LoadConfigFile(common.config_path);
    if (!config.ok()) return config.status();
    // A deployment with [tls] serves HTTPS, with certificates from its CA.
    const std::string scheme = config->tls.enabled() ? "https://" : "";
    for (const node::RegionAddress& address : config->regions) {
      auto endpoint = ParseRegionEndpoint(address.name + "=" + scheme + address.http);
      if (!endpoint.ok()) return endpoint.status();
      options.regions.push_back(*endpoint);
    }
    if (common.prefer.empty()) options.preferred_region = config->region;
    options.ca_file = config->tls.ca_file;
  }
  const char* env_ca_file = std::getenv("MERIDIAN_CA_FILE");
  if (!common.ca_file.empty()) {
    options.ca_file = common.ca_file;
  } else if (env_ca_file != nullptr && *env_ca_file != '\0') {
    options.ca_file = env_ca_file;
  }
  options.token = common.token;
  if (const char* env = std::getenv("MERIDIAN_TOKEN"); options.token.empty() && env != nullptr) {
    options.token = env;
  }
  if (options.regions.empty()) {
    return InvalidArgument(
        "no regions: give --regions NAME=HOST:PORT,... or --config FILE, or set "
        "MERIDIAN_REGIONS");
  }
  if (!common.prefer.empty()) options.preferred_region = common.prefer;
  options.failover_budget = std::chrono::milliseconds(common.timeout_ms);
  options.background_probes = false;  // one call: probes only when it needs them
  auto client = Client::Create(std::move(options));
  if (!client.ok()) return client.status();
  std::string session = common.session;
  if (session.empty()) {
    if (const char* env = std::getenv("MERIDIAN_SESSION")) session = env;
  }
  if (!session.empty()) {
    if (Status status = (*client)->set_session(session); !status.ok()) {
      return InvalidArgument("--session: not a session token");
    }
  }
  return client;
}

int Failed(const Command& command, const Client* client, const Status& status) {
  const CallError error = client != nullptr ? client->last_error() : CallError{};
  if (command.common.json) {
    nlohmann::json body = {
        {"error", error.code.empty() ? std::string(StatusCodeName(status.code())) : error.code},
        {"message", status.message()}};
    if (!error.region.empty()) body["region"] = error.region;
    if (!error.idempotency_key.empty()) body["idempotency_key"] = error.idempotency_key;
    std::printf("%s\n", body.dump().c_str());
  } else {
    std::fprintf(stderr, "meridian %s: %s\n", command.app->get_name().c_str(),
                 status.message().c_str());
  }
  // 1: the call failed; 3: not found (get); 4: the outcome of a write is unknown.
  if (error.code == "outcome_unknown") return 4;
  if (status.code() == StatusCode::kNotFound) return 3;
  return 1;
}

std::string Pretty(const std::string& json_text) {
  auto json = nlohmann::json::parse(json_text, nullptr, false);
  return json.is_discarded() ? json_text : json.dump(2);
}

int PrintReceipt(const Command& command, Client& client, const WriteReceipt& receipt) {
  if (command.common.json) {
    nlohmann::json body = {{"event", receipt.event},
                           {"hlc", receipt.hlc},
                           {"region", receipt.region},
                           {"session", client.session()},
                           {"idempotency_key", receipt.idempotency_key},
                           {"replayed", receipt.replayed}};
    if (receipt.confirmed_regions >= 0) body["confirmed_regions"] = receipt.confirmed_regions;
    if (!receipt.version.empty()) body["version"] = receipt.version;
    if (command.app->get_name() == "txn") {
      body["succeeded"] = receipt.succeeded;
      body["events"] = receipt.events;
    }
    std::printf("%s\n", body.dump().c_str());
  } else if (command.app->get_name() == "txn") {
    std::string events;
    for (const std::string& event : receipt.events) events += (events.empty() ? "" : " ") + event;
    std::printf("%s branch in %s: %s%s\n", receipt.succeeded ? "then" : "else",
                receipt.region.c_str(), events.empty() ? "no events" : events.c_str(),
                receipt.replayed ? " (an earlier attempt with this idempotency key)" : "");
  } else {
    std::printf(
        "%s in %s%s%s\n", receipt.event.c_str(), receipt.region.c_str(),
        receipt.replayed ? " (an earlier attempt with this idempotency key)" : "",
        receipt.confirmed_regions >= 0
            ? (", confirmed by " + std::to_string(receipt.confirmed_regions) + " other regions")
                  .c_str()
            : "");
  }
  return 0;
}

int RunWrite(Command& command, Client& client) {
  WriteOptions options;
  options.idempotency_key = command.idempotency_key;
  options.durability_regions = command.durability;
  options.durability_timeout = std::chrono::milliseconds(command.common.timeout_ms);
  options.strong = command.strong;
  options.if_match = command.if_match;
  options.if_none_match = command.if_none_match;
  const std::string name = command.app->get_name();
  Result<WriteReceipt> receipt = Status(StatusCode::kInternal, "unknown command");
  if (name == "put" || name == "patch" || name == "txn") {
    auto parsed = nlohmann::json::parse(command.body, nullptr, false);
    if (!parsed.is_object()) {
      return Failed(command, nullptr,
                    InvalidArgument(name == "txn" ? "the transaction must be a JSON object"
                                                  : "the document must be a JSON object"));
    }
    receipt = name == "put"     ? client.Put(command.key, command.body, options)
              : name == "patch" ? client.Patch(command.key, command.body, options)
                                : client.Transaction(command.body, options);
  } else if (name == "bounds") {
    char* end = nullptr;
    errno = 0;
    const long long min = std::strtoll(command.min.c_str(), &end, 10);
    if (command.min.empty() || errno != 0 || *end != '\0') {
      return Failed(command, nullptr, InvalidArgument("MIN must be an integer"));
    }
    receipt = client.DeclareBound(command.key, command.field, min, options);
  } else if (name == "incr") {
    std::map<std::string, int64_t> deltas;
    for (const std::string& text : command.deltas) {
      const size_t equals = text.rfind('=');
      const std::string field = equals == std::string::npos ? text : text.substr(0, equals);
      int64_t delta = 1;
      if (equals != std::string::npos) {
        char* end = nullptr;
        errno = 0;
        delta = std::strtoll(text.c_str() + equals + 1, &end, 10);
        if (errno != 0 || end == text.c_str() + equals + 1 || *end != '\0') {
          return Failed(command, nullptr,
                        InvalidArgument("'" + text + "' is not FIELD or FIELD=INTEGER"));
        }
      }
      deltas[field] += delta;
    }
    receipt = client.Increment(command.key, deltas, options);
  } else {
    receipt = client.Delete(command.key, options);
  }
  if (!receipt.ok()) return Failed(command, &client, receipt.status());
  return PrintReceipt(command, client, *receipt);
}

int RunGet(Command& command, Client& client) {
  auto read = client.Get(command.key, command.strong);
  if (!read.ok()) return Failed(command, &client, read.status());
  if (!read->doc) {
    if (command.common.json) {
      std::printf("%s\n", nlohmann::json{{"error", "not_found"},
                                         {"message", "no document with this key"},
                                         {"region", read->region}}
                              .dump()
                              .c_str());
    } else {
      std::fprintf(stderr, "meridian get: no document '%s' (in %s)\n", command.key.c_str(),
                   read->region.c_str());
    }
    return 3;
  }
  std::printf("%s\n", command.common.json ? read->doc->c_str() : Pretty(*read->doc).c_str());
  return 0;
}

int RunScan(Command& command, Client& client) {
  std::string after = command.after;
  nlohmann::json items = nlohmann::json::array();
  std::optional<std::string> next;
  for (int page = 0; page < 1'000'000; ++page) {
    auto scanned = client.Scan(command.prefix, after, command.limit);
    if (!scanned.ok()) return Failed(command, &client, scanned.status());
    for (const ScanItem& item : scanned->items) {
      if (command.common.json) {
        items.push_back({{"key", item.key}, {"doc", nlohmann::json::parse(item.doc)}});
      } else {
        std::printf("%s\t%s\n", item.key.c_str(), item.doc.c_str());
      }
    }
    next = scanned->next;
    if (!command.all || !next) break;
    after = *next;
  }
  if (command.common.json) {
    std::printf("%s\n", nlohmann::json{{"items", items},
                                       {"next", next ? nlohmann::json(*next) : nlohmann::json()}}
                            .dump()
                            .c_str());
  } else if (next) {
    std::fprintf(stderr, "(more: --after '%s', or --all)\n", next->c_str());
  }
  return 0;
}

int RunWatch(Command& command, Client& client) {
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  uint64_t seen = 0;
  std::string last;
  Status status = client.Watch(
      command.prefix, command.from,
      [&](const WatchChange& change) {
        if (command.common.json) {
          nlohmann::json line = {
              {"key", change.key},
              {"doc", change.doc ? nlohmann::json::parse(*change.doc) : nlohmann::json()},
              {"event", change.event},
              {"hlc", change.hlc}};
          std::printf("%s\n", line.dump().c_str());
        } else {
          std::printf("%s %s %s\n", change.event.c_str(), change.key.c_str(),
                      change.doc ? change.doc->c_str() : "(deleted)");
        }
        std::fflush(stdout);
        return command.count == 0 || ++seen < command.count;
      },
      [] { return g_interrupted.load(); }, &last);
  if (!status.ok()) return Failed(command, &client, status);
  if (!command.common.json && !last.empty()) {
    std::fprintf(stderr, "(resume with --since %s)\n", last.c_str());
  }
  return 0;
}

int RunStatus(Command& command, Client& client) {
  auto status = client.StatusJson(command.region);
  if (!status.ok()) return Failed(command, &client, status.status());
  if (command.common.json) {
    std::printf("%s\n", status->c_str());
    return 0;
  }
  auto json = nlohmann::json::parse(*status, nullptr, false);
  if (!json.is_object()) {
    std::printf("%s\n", status->c_str());
    return 0;
  }
  std::printf("region     %s\n", json.value("region", "").c_str());
  std::printf("documents  %llu\n",
              static_cast<unsigned long long>(json.value("documents", uint64_t{0})));
  std::printf("digest     %s\n", json.value("digest", "").c_str());
  std::printf("frontier   %s\n", json["frontier"].dump().c_str());
  std::printf("conflicts  %llu\n",
              static_cast<unsigned long long>(json.value("conflicts", uint64_t{0})));
  if (json.contains("incarnation")) {
    std::printf("identity   deployment %s, incarnation %s\n", json.value("deployment", "").c_str(),
                json.value("incarnation", "").c_str());
  }
  // Rebuilding and re-seeding (docs/replication.md): what the region waits for.
  if (const nlohmann::json& reseed = json["reseed"];
      reseed.is_object() && reseed.value("state", "") == "running") {
    std::printf("reseed     running: %llu of %llu documents from %s (%llu bytes, %llu ms)\n",
                static_cast<unsigned long long>(reseed.value("installed", uint64_t{0})),
                static_cast<unsigned long long>(reseed.value("documents", uint64_t{0})),
                reseed["source"].is_string() ? reseed["source"].get<std::string>().c_str() : "?",
                static_cast<unsigned long long>(reseed.value("wire_bytes", uint64_t{0})),
                static_cast<unsigned long long>(reseed.value("elapsed_ms", uint64_t{0})));
  } else if (reseed.is_object() && reseed.value("state", "") == "done") {
    std::printf("reseed     done: %llu documents from %s\n",
                static_cast<unsigned long long>(reseed.value("installed", uint64_t{0})),
                reseed["source"].is_string() ? reseed["source"].get<std::string>().c_str() : "?");
  }
  if (const nlohmann::json& rebuild = json["rebuild"];
      rebuild.is_object() && rebuild.value("rebuilding", false)) {
    std::string waiting;
    for (const auto& peer : rebuild.value("waiting_for", nlohmann::json::array())) {
      waiting += (waiting.empty() ? "" : ",") + peer.get<std::string>();
    }
    std::printf("rebuild    writes wait: own events %llu of %llu%s\n",
                static_cast<unsigned long long>(rebuild.value("own_applied", uint64_t{0})),
                static_cast<unsigned long long>(rebuild.value("own_target", uint64_t{0})),
                waiting.empty() ? "" : (", waiting to hear from " + waiting).c_str());
  }
  if (json["peers"].is_array()) {
    // One line per peer: the link, how far behind this region is, and how often it failed.
    for (const nlohmann::json& peer : json["peers"]) {
      if (!peer.is_object()) continue;
      std::string line =
          peer.value("name", "?") + " " + (peer.value("connected", false) ? "connected" : "down");
      if (peer.contains("relayed_by") && peer["relayed_by"].is_string()) {
        line += ", relayed by " + peer["relayed_by"].get<std::string>();
      }
      if (peer.contains("refused")) line += ", REFUSED: " + peer["refused"].get<std::string>();
      line += ", lag " + std::to_string(peer.value("lag_events", uint64_t{0})) + " events (" +
              std::to_string(peer.value("lag_ms", uint64_t{0})) + " ms), reconnects " +
              std::to_string(peer.value("reconnects", uint64_t{0})) + ", hedges " +
              std::to_string(peer.value("hedges", uint64_t{0}));
      std::printf("peer       %s\n", line.c_str());
    }
  }
  std::printf("client     ");
  for (const RegionHealth& health : client.health()) {
    std::printf("%s:%s%s ", health.name.c_str(), health.healthy ? "ready" : "down",
                health.rtt_ms >= 0
                    ? ("(" + std::to_string(health.rtt_ms).substr(0, 5) + " ms)").c_str()
                    : "");
  }
  std::printf("\n");
  return 0;
}

int RunConflicts(Command& command, Client& client) {
  auto conflicts = client.ConflictsJson(command.limit, command.region);
  if (!conflicts.ok()) return Failed(command, &client, conflicts.status());
  if (command.common.json) {
    std::printf("%s\n", conflicts->c_str());
    return 0;
  }
  auto json = nlohmann::json::parse(*conflicts, nullptr, false);
  if (!json.is_object() || !json["conflicts"].is_array()) {
    std::printf("%s\n", conflicts->c_str());
    return 0;
  }
  for (const auto& record : json["conflicts"]) std::printf("%s\n", record.dump().c_str());
  std::printf("(%llu recorded in all)\n",
              static_cast<unsigned long long>(json.value("total", uint64_t{0})));
  return 0;
}

// Every region's latest comparison with each of its peers (GET /v1/verify), as a table; exit 0
// when every pair is identical, 1 otherwise (a region that did not answer, a pair not compared
// yet or unknown, documents found differing).
int RunVerify(Command& command, Client& client) {
  nlohmann::json all = nlohmann::json::array();
  bool identical = true;
  for (const RegionHealth& region : client.health()) {
    auto answer = client.VerifyJson(region.name);
    nlohmann::json json =
        answer.ok() ? nlohmann::json::parse(*answer, nullptr, false)
                    : nlohmann::json{{"region", region.name}, {"error", answer.status().message()}};
    if (!json.is_object()) json = {{"region", region.name}, {"error", "not JSON"}};
    if (json.contains("error") || !json["peers"].is_array()) identical = false;
    for (const nlohmann::json& peer : json.value("peers", nlohmann::json::array())) {
      if (peer.value("state", "") != "identical") identical = false;
    }
    all.push_back(std::move(json));
  }
  if (command.common.json) {
    std::printf("%s\n", nlohmann::json{{"regions", all}, {"identical", identical}}.dump().c_str());
    return identical ? 0 : 1;
  }
  std::printf("%-8s %-8s %-10s %9s %9s %9s %7s %9s  %s\n", "region", "peer", "state", "differing",
              "repaired", "there", "trips", "bytes", "");
  for (const nlohmann::json& region : all) {
    const std::string name = region.value("region", "?");
    if (region.contains("error")) {
      std::printf("%-8s %-8s %-10s  %s\n", name.c_str(), "-", "unknown",
                  region.value("error", "").c_str());
      continue;
    }
    for (const nlohmann::json& peer : region["peers"]) {
      std::string note;
      if (!peer.value("compared", false)) note = "not compared yet";
      if (peer.contains("error")) note = peer.value("error", "");
      if (peer.value("truncated", false)) note = "more to compare";
      std::printf("%-8s %-8s %-10s %9llu %9llu %9llu %7llu %9llu  %s\n", name.c_str(),
                  peer.value("peer", "?").c_str(), peer.value("state", "?").c_str(),
                  static_cast<unsigned long long>(peer.value("differing", uint64_t{0})),
                  static_cast<unsigned long long>(peer.value("repaired_here", uint64_t{0})),
                  static_cast<unsigned long long>(peer.value("repaired_there", uint64_t{0})),
                  static_cast<unsigned long long>(peer.value("round_trips", uint64_t{0})),
                  static_cast<unsigned long long>(peer.value("bytes", uint64_t{0})), note.c_str());
    }
    if (region.value("damaged_documents", uint64_t{0}) > 0) {
      std::printf("%-8s %llu documents marked damaged, waiting for a repair\n", name.c_str(),
                  static_cast<unsigned long long>(region.value("damaged_documents", uint64_t{0})));
    }
  }
  std::printf(identical ? "every pair identical\n" : "not every pair is identical\n");
  return identical ? 0 : 1;
}

// A region's review queue of repairs (GET /v1/repairs) or its dead letters, newest first.
int RunQueue(Command& command, Client& client, bool repairs) {
  auto answer = repairs ? client.RepairsJson(command.limit, command.region)
                        : client.DeadLettersJson(command.limit, command.region);
  if (!answer.ok()) return Failed(command, &client, answer.status());
  if (command.common.json) {
    std::printf("%s\n", answer->c_str());
    return 0;
  }
  auto json = nlohmann::json::parse(*answer, nullptr, false);
  if (!json.is_object() || !json["items"].is_array()) {
    std::printf("%s\n", answer->c_str());
    return 0;
  }
  for (const auto& item : json["items"]) std::printf("%s\n", item.dump().c_str());
  std::printf("(%llu recorded in all)\n",
              static_cast<unsigned long long>(json.value("total", uint64_t{0})));
  return 0;
}

// A document's bounds (GET /v1/docs/{key}/bounds), or a declaration (bounds KEY FIELD MIN).
int RunBounds(Command& command, Client& client) {
  if (!command.field.empty() || !command.min.empty()) {
    if (command.field.empty() || command.min.empty()) {
      return Failed(command, nullptr, InvalidArgument("declare with: bounds KEY FIELD MIN"));
    }
    return RunWrite(command, client);
  }
  auto answer = client.BoundsJson(command.key, command.region);
  if (!answer.ok()) return Failed(command, &client, answer.status());
  std::printf("%s\n", answer->c_str());
  return 0;
}

// Each home prefix and its home region (GET /v1/homes), or a move of one (POST /v1/homes/move).
int RunHomes(Command& command, Client& client) {
  const bool move = command.app->get_name() == "move-home";
  auto answer = move ? client.MoveHome(command.prefix, command.region, command.force)
                     : client.HomesJson();
  if (!answer.ok()) return Failed(command, &client, answer.status());
  if (command.common.json) {
    std::printf("%s\n", answer->c_str());
    return 0;
  }
  auto json = nlohmann::json::parse(*answer, nullptr, false);
  nlohmann::json homes = move ? nlohmann::json::array({json}) : json.value("homes", json);
  for (const nlohmann::json& home : homes) {
    std::printf("%-24s %-10s epoch %llu%s\n", home.value("prefix", "").c_str(),
                home.value("region", "").c_str(),
                static_cast<unsigned long long>(home.value("epoch", uint64_t{0})),
                home.value("forced", false) ? " (forced)" : "");
  }
  return 0;
}

// New unique ids of one region (POST /v1/ids), one per line, in increasing order.
int RunIds(Command& command, Client& client) {
  auto ids = client.Ids(static_cast<uint32_t>(command.count), command.region);
  if (!ids.ok()) return Failed(command, &client, ids.status());
  if (command.common.json) {
    nlohmann::json list = nlohmann::json::array();
    for (uint64_t id : *ids) list.push_back(std::to_string(id));
    const std::string region = command.region.empty() ? client.current_region() : command.region;
    std::printf("%s\n", nlohmann::json{{"ids", list}, {"region", region}}.dump().c_str());
    return 0;
  }
  for (uint64_t id : *ids) std::printf("%llu\n", static_cast<unsigned long long>(id));
  return 0;
}

Command& NewCommand(CLI::App& app, const std::string& name, const std::string& help) {
  Commands().push_back(std::make_unique<Command>());
  Command& command = *Commands().back();
  command.app = app.add_subcommand(name, help);
  AddCommon(command.app, command.common);
  return command;
}

void AddWriteOptions(Command& command) {
  command.app->add_flag("--strong", command.strong,
                        "consistency=strong: run in the key's home region (docs/semantics.md)");
  command.app->add_option("--if-match", command.if_match,
                          "Apply only over this version of the document (a receipt's version, "
                          "GET's ETag; * for: it exists)");
  command.app->add_flag("--if-none-match", command.if_none_match,
                        "Apply only when the document does not exist");
  command.app->add_option("--idempotency-key", command.idempotency_key,
                          "Key of this write; a retry with the same key is applied once "
                          "(default: a random key)");
  command.app
      ->add_option("--durability", command.durability,
                   "Answer once N other regions hold the write (durability=regions:N)")
      ->check(CLI::Range(0, 31));
}

}  // namespace

void AddClientCommands(CLI::App& app) {
  Command& put = NewCommand(app, "put", "Replace a document: meridian put KEY '{\"a\":1}'");
  put.app->add_option("key", put.key, "Document key")->required();
  put.app->add_option("document", put.body, "JSON object")->required();
  AddWriteOptions(put);

  Command& patch = NewCommand(app, "patch", "Set fields of a document, keep the others");
  patch.app->add_option("key", patch.key, "Document key")->required();
  patch.app->add_option("fields", patch.body, "JSON object of the fields to set")->required();
  AddWriteOptions(patch);

  Command& incr = NewCommand(app, "incr", "Add to counter fields: meridian incr KEY stock=-1");
  incr.app->add_option("key", incr.key, "Document key")->required();
  incr.app->add_option("deltas", incr.deltas, "FIELD=INTEGER (or FIELD: +1), one or more")
      ->required();
  AddWriteOptions(incr);

  Command& del = NewCommand(app, "del", "Delete a document");
  del.app->add_option("key", del.key, "Document key")->required();
  AddWriteOptions(del);

  Command& txn = NewCommand(app, "txn",
                            "Run a transaction: meridian txn '{\"if\":[...],\"then\":[...],"
                            "\"else\":[...]}' (docs/http-api.md#transactions)");
  txn.app->add_option("transaction", txn.body, "JSON object")->required();
  AddWriteOptions(txn);

  Command& bounds = NewCommand(app, "bounds",
                               "A document's bounded fields and this region's rights, or declare "
                               "one: meridian bounds KEY [FIELD MIN]");
  bounds.app->add_option("key", bounds.key, "Document key")->required();
  bounds.app->add_option("field", bounds.field, "The field to bound (declare)");
  bounds.app->add_option("min", bounds.min, "Its lower bound, an integer (declare)");
  bounds.app->add_option("--region", bounds.region,
                         "Read in this region (default: the current one)");
  AddWriteOptions(bounds);

  Command& get = NewCommand(app, "get", "Print a document (exit 3 when there is none)");
  get.app->add_option("key", get.key, "Document key")->required();
  get.app->add_flag("--strong", get.strong,
                    "consistency=strong: answered by the key's home region");

  NewCommand(app, "homes", "Each home prefix and its home region (docs/semantics.md)");
  Command& move_home = NewCommand(
      app, "move-home", "Move a prefix's home: meridian move-home PREFIX REGION [--force]");
  move_home.app->add_option("prefix", move_home.prefix, "The [[homes]] prefix")->required();
  move_home.app->add_option("region", move_home.region, "The new home region")->required();
  move_home.app->add_flag("--force", move_home.force,
                          "The home is lost: take over without it (may lose what it had not "
                          "replicated; docs/semantics.md#moving-a-home)");

  Command& scan = NewCommand(app, "scan", "List documents whose key starts with PREFIX");
  scan.app->add_option("prefix", scan.prefix, "Key prefix (default: every document)");
  scan.app->add_option("--after", scan.after, "Start after this key (paging)");
  scan.app->add_option("--limit", scan.limit, "Documents per page")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  scan.app->add_flag("--all", scan.all, "Follow every page");

  Command& watch = NewCommand(app, "watch", "Print changes under PREFIX as they happen (Ctrl-C)");
  watch.app->add_option("prefix", watch.prefix, "Key prefix (default: every document)");
  watch.app->add_option("--since", watch.from,
                        "Resume after these events, the last seen of each origin (us:42,eu:17), "
                        "as the previous watch printed; default: from now");
  watch.app->add_option("--count", watch.count, "Stop after this many changes");

  Command& status = NewCommand(app, "status", "A region's status, and the client's view of all");
  status.app->add_option("--region", status.region, "This region (default: the current one)");

  Command& conflicts = NewCommand(app, "conflicts", "Recent conflicts recorded by a region");
  conflicts.app->add_option("--limit", conflicts.limit, "How many")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  conflicts.app->add_option("--region", conflicts.region, "This region (default: the current one)");

  NewCommand(app, "verify",
             "Every region's latest comparison with each peer (exit 0: every pair identical)");

  Command& repairs =
      NewCommand(app, "repairs", "A region's review queue: documents found to differ");
  repairs.app->add_option("--limit", repairs.limit, "How many")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  repairs.app->add_option("--region", repairs.region, "This region (default: the current one)");

  Command& ids = NewCommand(app, "ids", "New unique ids of one region, one per line");
  ids.count = 1;
  ids.app->add_option("--count", ids.count, "How many")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  ids.app->add_option("--region", ids.region, "This region (default: the current one)");

  Command& dead =
      NewCommand(app, "dead-letters", "Events a region parked: it could not apply them");
  dead.app->add_option("--limit", dead.limit, "How many")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  dead.app->add_option("--region", dead.region, "This region (default: the current one)");
}

int RunClientCommands() {
  for (const auto& owned : Commands()) {
    Command& command = *owned;
    if (!command.app->parsed()) continue;
    auto client = Connect(command.common);
    if (!client.ok()) return Failed(command, nullptr, client.status());
    const std::string name = command.app->get_name();
    if (name == "put" || name == "patch" || name == "incr" || name == "del") {
      return RunWrite(command, **client);
    }
    if (name == "txn") return RunWrite(command, **client);
    if (name == "bounds") return RunBounds(command, **client);
    if (name == "get") return RunGet(command, **client);
    if (name == "scan") return RunScan(command, **client);
    if (name == "watch") return RunWatch(command, **client);
    if (name == "status") return RunStatus(command, **client);
    if (name == "conflicts") return RunConflicts(command, **client);
    if (name == "verify") return RunVerify(command, **client);
    if (name == "repairs") return RunQueue(command, **client, /*repairs=*/true);
    if (name == "dead-letters") return RunQueue(command, **client, /*repairs=*/false);
    if (name == "ids") return RunIds(command, **client);
    if (name == "homes" || name == "move-home") return RunHomes(command, **client);
  }
  return -1;
}

}  // namespace meridian::cli
