// meridian::Client: the C++ client of a Meridian deployment (docs/client.md).
//
// It knows every region's HTTP address and sends each call to one region: the nearest healthy
// one by measured round-trip time, and the same one for as long as it stays healthy. Background
// probes (GET /readyz) measure round trips and watch health. A region that fails a call (no
// connection, a timeout, 5xx) has its circuit opened: no call goes there until a probe finds it
// ready again, and the call moves to the next region within the call's failover budget.
//
// Sessions: the client carries one session token across regions. Every receipt and every read
// merges into it; every read sends it, so a read in any region waits until that region has applied
// everything this client wrote or saw (read-your-writes after a failover).
//
// Writes and retries: every write carries an idempotency key (a random one unless the caller
// gives one). A write that could not have reached its region (no connection) moves to another
// region. A write that was sent but got no answer may have been applied: the client asks that
// region again, with the same key (a region remembers the keys of its own writes), while it may
// answer; when it refuses connections or the failover budget runs out, the call fails with
// kUnavailable and `outcome_unknown`. The client remembers which region took each key (the last
// 100,000), so retrying later with the same key (WriteOptions::idempotency_key) goes to that
// region and either applies the write or answers the original receipt: never twice.
//
// Thread-safe: calls may be made from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meridian/status.h"

namespace meridian {

struct RegionEndpoint {
  std::string name;   // "us"
  std::string host;   // an IP address: "127.0.0.1"
  uint16_t port = 0;  // its HTTP port
  bool tls = false;   // HTTPS (the node has [tls]): its certificate must name `host`
};

// "us=127.0.0.1:7001" -> {"us", "127.0.0.1", 7001}; "us=https://127.0.0.1:7001" is the same over
// TLS ("http://" may be written too). kInvalidArgument when malformed.
Result<RegionEndpoint> ParseRegionEndpoint(const std::string& text);

struct ClientOptions {
  std::vector<RegionEndpoint> regions;
  // Start in this region (by name) instead of the nearest one, while it is healthy.
  std::string preferred_region;
  // One attempt of a call in one region: connect, send, answer (plus the durability wait of a
  // write that asks for one). A hung region costs a call this long before it moves on.
  std::chrono::milliseconds attempt_timeout{500};
  // A call keeps trying (other regions, or for a write of unknown outcome its own region) this
  // long before it fails.
  std::chrono::milliseconds failover_budget{3000};
  // Health probes of every region: how often, and how long one may take.
  std::chrono::milliseconds probe_interval{200};
  std::chrono::milliseconds probe_timeout{300};
  // How long a session read may wait for its region to catch up (wait_ms of the API).
  std::chrono::milliseconds session_wait{1000};
  bool background_probes = true;  // false: probe only when a call finds no healthy region
  // HTTPS regions: the CA (PEM) their certificates must chain to; empty: the system's trust
  // store. Each region's certificate must also name its address (a subject alternative name).
  std::string ca_file;
  // A bearer token (docs/security.md) sent as `Authorization: Bearer <token>` with every
  // request, watches and health probes included; empty: none.
  std::string token;
};

struct WriteOptions {
  std::string idempotency_key;      // empty: a fresh random key
  uint32_t durability_regions = 0;  // durability=regions:N
  std::chrono::milliseconds durability_timeout{5000};  // also bounds the wait for a home
  // consistency=strong: run in the key's home region (docs/semantics.md#home-regions).
  bool strong = false;
  // Conditions (docs/semantics.md#conditional-writes): If-Match with this version (a
  // ReadResult's or WriteReceipt's `version`; "*": the document exists), If-None-Match: *.
  std::string if_match;
  bool if_none_match = false;
};

struct WriteReceipt {
  std::string event;  // "us:42"
  std::string hlc;
  std::string region;  // the region that answered
  std::string idempotency_key;
  bool replayed = false;       // the original receipt of an earlier attempt with this key
  int confirmed_regions = -1;  // with durability_regions > 0
  std::string version = {};    // the document's version after the write ("" when none is left)
  // A transaction (Client::Transaction): whether its conditions held (the then branch ran) and
  // its events, in order.
  bool succeeded = true;
  std::vector<std::string> events = {};
};

struct ScanItem {
  std::string key;
  std::string doc;  // JSON
};
struct ScanPage {
  std::vector<ScanItem> items;
  std::optional<std::string> next;  // pass as `after` for the next page
};

struct ReadResult {
  std::optional<std::string> doc;  // JSON; nullopt: no such document
  std::string region;
  std::string version = {};  // the document's version (its ETag), for If-Match
};

// One region as the client sees it.
struct RegionHealth {
  std::string name;
  bool healthy = false;       // the last probe found it ready
  bool circuit_open = false;  // calls avoid it
  double rtt_ms = -1;         // smoothed probe round trip; -1 before the first answer
  uint64_t failures = 0;      // calls that failed there
};

// A change on a watch (docs/http-api.md#watches).
struct WatchChange {
  std::string key;
  std::optional<std::string> doc;  // nullopt: deleted
  std::string event;
  std::string hlc;
};

// The last error's details beyond its Status: what the API answered.
struct CallError {
  int http_status = 0;  // 0: no answer
  std::string code;     // the API's error code ("not_found", "outcome_unknown", ...)
  std::string region;
  std::string idempotency_key;  // writes
};

class Client {
 public:
  // kInvalidArgument when there is no region, a name repeats, or the CA file cannot be loaded.
  static Result<std::unique_ptr<Client>> Create(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Writes. `json` is a JSON object (put: the whole document; patch: the fields to set).
  Result<WriteReceipt> Put(const std::string& key, const std::string& json,
                           const WriteOptions& options = {});
  Result<WriteReceipt> Patch(const std::string& key, const std::string& json,
                             const WriteOptions& options = {});
  Result<WriteReceipt> Increment(const std::string& key,
                                 const std::map<std::string, int64_t>& deltas,
                                 const WriteOptions& options = {});
  Result<WriteReceipt> Delete(const std::string& key, const WriteOptions& options = {});
  // POST /v1/txn (docs/http-api.md#transactions): `json` is the transaction, {"if": [...],
  // "then": [...], "else": [...]}. With options.strong, it runs in its keys' home, or across
  // their homes with two-phase commit (docs/semantics.md#transactions-across-homes). The receipt
  // says which branch ran and its events; `event` is the last of them.
  Result<WriteReceipt> Transaction(const std::string& json, const WriteOptions& options = {});
  // Bounded counters (docs/semantics.md#bounded-counters): declares `field` of `key` bounded below
  // by `min` (PUT /v1/docs/{key}/bounds), and reads a document's bounds and this region's rights
  // (GET .../bounds, JSON).
  Result<WriteReceipt> DeclareBound(const std::string& key, const std::string& field, int64_t min,
                                    const WriteOptions& options = {});
  Result<std::string> BoundsJson(const std::string& key, const std::string& region = "");

  // Reads (each waits, bounded by session_wait, for its region to cover the session).
  // strong: consistency=strong, answered by the key's home region.
  Result<ReadResult> Get(const std::string& key, bool strong = false);
  // Home regions: GET /v1/homes of a region (default: the current one), and a move
  // (POST /v1/homes/move; admin).
  Result<std::string> HomesJson(const std::string& region = "");
  Result<std::string> MoveHome(const std::string& prefix, const std::string& to, bool force);
  Result<ScanPage> Scan(const std::string& prefix, const std::string& after = "",
                        size_t limit = 100);
  // The raw JSON of GET /v1/status and GET /v1/conflicts, of `region` or of the current one.
  Result<std::string> StatusJson(const std::string& region = "");
  Result<std::string> ConflictsJson(size_t limit = 100, const std::string& region = "");
  // Verification (docs/verification.md): a region's latest comparisons with its peers
  // (GET /v1/verify), its review queue of repairs (GET /v1/repairs) and its dead letters
  // (GET /v1/dead-letters), as JSON.
  Result<std::string> VerifyJson(const std::string& region = "");
  Result<std::string> RepairsJson(size_t limit = 100, const std::string& region = "");
  Result<std::string> DeadLettersJson(size_t limit = 100, const std::string& region = "");

  // New unique ids (POST /v1/ids; docs/semantics.md#unique-ids): `count` (1..10000) ids of one
  // region, increasing, never issued before by any region, the region's id in bits 58-62. From
  // `region` (by name) or else the current one; a call that fails over takes them from the next
  // region (ids of an attempt whose answer was lost are never issued again, only never used).
  Result<std::vector<uint64_t>> Ids(uint32_t count = 1, const std::string& region = "");

  // Follows changes under `prefix`, calling on_change for each until on_change returns false,
  // `stop` returns true (checked at least every second), or no region can serve it for
  // failover_budget. `since` is what the caller has already seen: the last event id of each origin
  // ("us:42,eu:17", as *last_seen returns it), or empty for "from now". When a region fails the
  // watch resumes in another after exactly what it delivered: no change is missed or repeated
  // (GET /v1/watch?since=). *last_seen receives the position to resume from.
  Status Watch(const std::string& prefix, const std::string& since,
               const std::function<bool(const WatchChange&)>& on_change,
               const std::function<bool()>& stop, std::string* last_seen = nullptr);

  std::string session() const;
  // Replaces the session (a token from another client or process); kInvalidArgument when it is
  // not a session token.
  Status set_session(const std::string& token);
  std::string current_region() const;
  std::vector<RegionHealth> health() const;
  // What the API answered for the last failed call of this thread.
  CallError last_error() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian
