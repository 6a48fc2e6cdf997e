// The configuration of one region node: the TOML file of `meridian start --config FILE`
// (every key is documented in docs/configuration.md), with command-line overrides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/escrow.h"
#include "core/event.h"
#include "core/version_vector.h"
#include "meridian/status.h"
#include "net/host_port.h"
#include "net/tls_files.h"

namespace meridian::node {

struct RegionAddress {
  std::string name;
  core::RegionId id = 0;
  std::string http;         // host:port
  std::string replication;  // host:port
  // host:port of the client gRPC API (docs/grpc-api.md); empty: none. Only the own region's entry
  // matters to a node: it listens there.
  std::string grpc;
  // host:port of the Redis protocol port (docs/redis.md); empty: none. Likewise only the own
  // region's entry is listened on; the others tell clients where to fail over.
  std::string resp = {};
};

struct NodeConfig {
  std::string region;    // [node] region: which of `regions` this node is
  std::string data_dir;  // [node] data_dir
  // [node] deployment: the name every region of one deployment shares. A data directory records
  // it, and peers of another deployment are refused (docs/operations.md#region-identity).
  std::string deployment = "meridian";
  // `meridian start --bootstrap` (command line only, never in the file): an empty data directory
  // is a new region of a new deployment, with no events anywhere to recover, and takes writes at
  // once. Without it an empty directory rebuilds first (docs/replication.md#rebuilding).
  bool bootstrap = false;
  // [node] insecure: listen on addresses other than loopback although nothing authenticates
  // peers or clients there (docs/security.md). Without it such addresses are refused.
  bool insecure = false;
  std::vector<RegionAddress> regions;
  // [[homes]] (docs/semantics.md#home-regions): keys under `prefix` have `region` as their home,
  // where consistency=strong operations run. The longest prefix of a key decides.
  struct HomeConfig {
    std::string prefix;
    std::string region;
  };
  std::vector<HomeConfig> homes;

  // [http]
  // A scan page (HTTP and gRPC) ends early, with its continuation cursor, before its items pass
  // this many bytes: one answer's memory stays bounded whatever the documents' sizes.
  size_t scan_page_bytes_max = 4 << 20;
  int http_threads = 0;               // 0: one per core but one (at least one)
  size_t body_bytes_max = 2 << 20;    // larger request bodies get 413
  size_t connections_max = 4096;      // beyond: a new connection gets 429 at once, and is closed
  uint64_t idle_timeout_ms = 60'000;  // keep-alive connections idle this long are closed
  // An answer, or a watch's frame, that the client does not take within this is given up and the
  // connection closed: a client that stops reading holds nothing for longer.
  uint64_t write_timeout_ms = 30'000;

  // [storage]
  bool sync = true;  // fsync before acknowledging (false only for tests)
  size_t block_cache_bytes = 64 << 20;
  size_t document_cache_max = 65536;  // recently written documents kept in memory for the
                                      // write path (decoded) and for reads (rendered)
  uint64_t conflicts_kept = 100'000;  // the newest conflict records the conflict log keeps

  // [writes]
  size_t write_batch_max = 512;            // writes grouped into one commit at most
  size_t write_queue_max = 10'000;         // pending writes beyond this get 429
  uint64_t idempotency_window_s = 86'400;  // how long an Idempotency-Key is remembered

  // [watch]
  size_t watch_buffer_max = 10'000;         // changes buffered per watcher before it is dropped
  size_t watch_buffer_bytes_max = 8 << 20;  // and their bytes (keys and documents)
  size_t watchers_max = 1'000;
  uint64_t changes_kept = 1'000'000;  // the newest changes the change log keeps: how far back a
                                      // watch can resume

  // [clock]
  uint64_t max_skew_ms = 500;

  // [log] (docs/operations.md#logs): "text" (one line per message) or "json" (one JSON object per
  // line: time, level, region, thread, message), and the least severe level written.
  std::string log_format = "text";
  std::string log_level = "info";

  // [tracing] (docs/operations.md#tracing): where the spans of traced writes are exported as
  // OTLP/JSON over HTTP ("http://host:port/v1/traces"; empty: not exported), and how often.
  std::string otlp_endpoint;
  uint64_t otlp_interval_ms = 1000;

  core::Limits limits;  // [limits]

  // [tls] (docs/security.md): when set, every port of the node speaks TLS only, and replication is
  // mutual TLS: a peer is accepted only with a certificate from `ca_file` whose subject CN names a
  // configured region, and only as that region. Relative paths are taken from the config file's
  // directory. The files are read again when they change (within a second); the HTTP server also
  // at once on SIGHUP.
  net::TlsFiles tls;

  // [auth] (docs/security.md): when set, every request but /healthz and /readyz needs a bearer
  // token (a JWT signed with the secret) whose claims allow it.
  struct Auth {
    std::string jwt_secret_file;  // HS256 secret, at least 32 bytes
    bool enabled() const { return !jwt_secret_file.empty(); }
  } auth;

  // [replication]
  struct Replication {
    uint64_t linger_ms = 10;             // batches at most this often while one is unacked
    size_t batch_events_max = 2000;      // events per batch at most
    size_t batch_bytes_max = 1 << 20;    // raw bytes per batch, about
    size_t window_batches = 4096;        // unacknowledged batches per stream at most
    uint64_t heartbeat_ms = 100;         // heartbeats at least this often
    uint64_t relay_after_ms = 1000;      // direct link down this long: relay through a live peer
    uint64_t backoff_initial_ms = 50;    // first redial delay
    uint64_t backoff_max_ms = 2000;      // redial delay ceiling
    uint64_t silence_timeout_ms = 3000;  // a link silent this long is redialled
    uint64_t dial_timeout_ms = 3000;     // a dial unanswered this long is redialled
    uint64_t hedge_after_ms = 1000;      // a dial unanswered this long gets a second beside it
    uint64_t retention_bytes = uint64_t{1} << 30;  // log bytes kept beyond what peers acknowledged
    uint64_t retention_age_s = 7 * 24 * 3600;      // and their age
    // A peer that has acknowledged nothing (and has no stream open here) for this long no longer
    // holds the log: it is re-seeded when it returns (docs/replication.md#retention).
    uint64_t retention_hold_s = 14 * 24 * 3600;
    // Stuck behind the peers' log retention this long, the region re-seeds from a peer's
    // snapshot, merged with what it holds (0: never; docs/replication.md#re-seeding).
    uint64_t reseed_after_s = 30;
    // Another region's event whose HLC time is further ahead of this node's clock than this is
    // parked as a dead letter, not applied (docs/replication.md#what-a-peer-may-do).
    uint64_t hlc_ahead_max_ms = 60'000;
  } replication;

  // [verify] (docs/verification.md)
  struct Verify {
    uint64_t interval_ms = 60'000;          // between comparisons with one peer; 0: on demand
    uint64_t align_timeout_ms = 10'000;     // a page of documents waits this long to align
    uint64_t scrub_documents_per_s = 1000;  // the scrub's pace (0: no scrub)
    uint64_t timeout_ms = 10'000;           // one request to a peer at most
    // Damaged documents are rebuilt from the region's own event log while it holds at most this
    // many bytes (a pass over it per new damage, on the commit thread); 0: never.
    uint64_t rebuild_log_bytes_max = 64 << 20;
  } verify;

  // [escrow] (docs/semantics.md#bounded-counters): rebalancing of bounded counters' rights.
  struct Escrow {
    uint64_t rebalance_ms = 200;    // the tick: keys whose last round gave look again; 0: never
    uint64_t low_water = 10;        // below this many rights a region asks for more...
    uint64_t high_water = 50;       // ...up to this level (at least low_water)
    uint64_t give_percent = 50;     // at most this part of its rights leaves a region per round
    uint64_t keys_per_round = 256;  // keys rebalanced per round at most
    uint64_t keys_max = 10'000;     // keys waiting for a round, and kept for the tick, at most
  } escrow;

  const RegionAddress& self() const;  // requires Validate() to have passed
};

// "http://IP:PORT/PATH" (the path may be empty: "/") into its parts; false when it is not that.
bool SplitHttpUrl(std::string_view url, std::string* host, uint16_t* port, std::string* path);

// Parses TOML text; `origin` names it in errors (a file name).
Result<NodeConfig> ParseConfig(std::string_view toml_text, std::string_view origin);
Result<NodeConfig> LoadConfigFile(const std::string& path);
// The rebalancing policy of [escrow] (a validated config's: in range for core::Rebalance).
core::EscrowPolicy EscrowPolicyOf(const NodeConfig& config);
// Checks the config as a whole: the region is listed, ids are 0..31 and unique, names unique,
// addresses host:port.
Status ValidateConfig(const NodeConfig& config);

using net::SplitHostPort;

}  // namespace meridian::node
