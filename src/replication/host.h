// Host: what the replication transport needs of the region node it serves, and StatusBoard: where
// it reports what /v1/status, /readyz and the metrics show. Both are owned here; src/node
// implements them (node::ReplicationHost over a node::Node, node::ReplicationBoard), so the
// transport depends on these interfaces and the node does not depend on the transport.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/event.h"
#include "core/hlc.h"
#include "core/trace.h"
#include "core/version_vector.h"
#include "meridian/status.h"
#include "net/tls_files.h"
#include "replication/event_log.h"
#include "replication/exchange.h"
#include "replication/links.h"
#include "replication/reseed.h"
#include "replication/verify.h"
#include "storage/store.h"

namespace meridian::replication {

// How the transport runs: the exchange's and retention's options and the addresses.
struct TransportConfig {
  ExchangeOptions exchange;
  RetentionOptions retention;
  std::string listen;                               // this region's replication address
  std::map<core::RegionId, std::string> addresses;  // every peer's replication address
  VerifyOptions verify;
  // How long a verification request may take before the comparison ends as unknown.
  uint64_t verify_timeout_ms = 10'000;
  // [tls] (docs/security.md): with a certificate, the replication port and every dial use mutual
  // TLS with the deployment's CA, and a peer is taken only as the region its certificate names.
  net::TlsFiles tls;
};

// Where the transport reports (status, readiness, metrics). Thread-safe.
class StatusBoard {
 public:
  virtual ~StatusBoard() = default;
  // The newest event per origin this region holds, for a heartbeat.
  virtual std::vector<OriginHead> Heads(const core::VersionVector& frontier) const = 0;
  // Serving side.
  virtual void SubscriberAttached(core::RegionId peer, uint64_t incarnation) = 0;
  virtual void SubscriberDetached(core::RegionId peer) = 0;
  virtual void Acked(core::RegionId peer, const core::VersionVector& applied) = 0;
  virtual void ForgetAcknowledgements(core::RegionId peer) = 0;
  virtual void SetReleased(std::vector<core::RegionId> released) = 0;
  virtual void SetRetention(uint64_t log_bytes, const core::VersionVector& trimmed_through) = 0;
  virtual void BatchSent(core::RegionId peer, size_t events, size_t wire_bytes,
                         size_t raw_bytes) = 0;
  virtual void SubscriberBehindRetention(core::RegionId peer, core::RegionId origin,
                                         uint64_t wanted, uint64_t oldest) = 0;
  // Receiving side.
  virtual void LinksChanged(std::vector<Links::View> views, size_t relays_active) = 0;
  virtual void Reconnecting(core::RegionId peer) = 0;
  virtual void Hedged(core::RegionId peer) = 0;
  virtual void HeadsHeard(std::span<const OriginHead> heads) = 0;
  virtual void BatchReceived(core::RegionId peer, size_t events, size_t wire_bytes,
                             size_t raw_bytes) = 0;
  virtual void Arrived(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
                       uint64_t now_ms) = 0;
  virtual void Visible(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
                       uint64_t now_ms) = 0;
  virtual void BehindRetention(core::RegionId peer, core::RegionId origin, uint64_t wanted,
                               uint64_t oldest) = 0;
  virtual void Refused(core::RegionId peer, std::string reason) = 0;
  virtual void Accepted(core::RegionId peer) = 0;
  // Rebuilding and re-seeding: shown in /v1/status; a non-empty `problem` is a /readyz reason.
  virtual void SetRebuild(nlohmann::json status, std::string problem) = 0;
  virtual void SetReseed(nlohmann::json status, std::string problem) = 0;
  // Verification (docs/verification.md): a comparison with a peer finished. An operator asked
  // for comparisons now: the peer (0: every peer), taken once; nullopt: nothing asked.
  virtual void Verified(const VerifyResult& result) = 0;
  virtual std::optional<core::RegionId> TakeVerifyRequest() = 0;
};

// What the commit path did with a batch of remote events.
struct RemoteApplied {
  size_t applied = 0;
  size_t duplicates = 0;
  size_t gaps = 0;
  std::vector<core::HlcTimestamp> applied_hlcs;  // of the applied events, in order
  size_t parked = 0;  // parked as dead letters (docs/replication.md#dead-letters)
  std::vector<std::string> parked_keys;  // their readable document keys, each once
};

// The region node, as the transport sees it. Thread-safe.
class Host {
 public:
  virtual ~Host() = default;
  virtual TransportConfig Config() const = 0;
  virtual StatusBoard& status() = 0;

  // --- the region ---
  virtual core::VersionVector Applied() const = 0;  // durable applied frontier
  virtual core::HlcTimestamp Clock() const = 0;
  // A peer's frontier (from its heartbeat), for causal stability.
  virtual void ObserveFrontier(core::RegionId peer, const core::VersionVector& frontier) = 0;
  // The write gate: closed while rebuilding.
  virtual void SetRebuilding(bool rebuilding) = 0;
  // The rebuild is done: recorded in the data directory.
  virtual void Rebuilt() = 0;
  virtual storage::Store& store() = 0;

  // --- this start (docs/replication.md#rebuilding, #re-seeding) ---
  virtual std::string DataStart() const = 0;  // "intact", "empty" or "copied"
  virtual bool ConfirmOwnEvents() const = 0;
  virtual bool NeedsReseed() const = 0;
  virtual bool Reseeding() const = 0;
  virtual void SetReseeding(bool on) = 0;
  virtual bool Merging() const = 0;  // a re-seed's merge is under way (node::Region::merging)

  // --- the commit path ---
  // Queues remote events for the commit thread; false when stopping. Nothing of the batch is
  // committed once *dropped is set (the fence of an earlier incarnation).
  virtual bool SubmitRemote(core::RemoteBatch events,
                            std::function<void(Result<RemoteApplied>)> done,
                            std::shared_ptr<const std::atomic<bool>> dropped) = 0;
  // Re-seeding, on the commit thread (waits for it): merge a page of a snapshot's states
  // (node::Region::MergeSnapshotPage); forget every document (a region that held nothing, when
  // no region holds a copy).
  virtual Status MergeSnapshotPage(const replication::Reseeding::Step& step) = 0;
  virtual Status ClearDocuments() = 0;
  // Commit notifications: `listener` runs after each commit and each Notify.
  using Listener = uint64_t;
  virtual Listener OnCommit(std::function<void()> listener) = 0;
  virtual void RemoveOnCommit(Listener listener) = 0;
  // Wakes the commit listeners and durability waits (an acknowledgement arrived, or stopping).
  virtual void Notify() = 0;

  // --- verification (docs/verification.md) ---
  // A peer's request (checked by the exchange for identity), answered: states on the commit
  // thread (waits for it), the tree and index from anywhere.
  virtual Result<wire::VerifyReply> AnswerVerify(const wire::VerifyRequest& request) = 0;
  virtual VerifyLocal& verify_local() = 0;
  virtual void Watch(const std::vector<std::string>& keys) = 0;
  virtual void Unwatch(const std::vector<std::string>& keys) = 0;
  // node::Region::Repair with a peer's states, on the commit thread (waits for it).
  virtual Result<RepairCounts> Repair(core::RegionId peer, const wire::VerifyReply& states) = 0;

  // --- tracing (docs/operations.md#tracing) ---
  // The spans of traced events of other regions: received here, and visible here.
  virtual void RecordSpans(std::vector<core::Span> spans) = 0;
};

}  // namespace meridian::replication
