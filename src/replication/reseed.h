// Re-seeding (docs/replication.md#re-seeding), written once for both drivers of the exchange:
//
//   - Reseeding: the receiving region's side, a state machine with no I/O. It says which peer to
//     ask next and with what request (resuming the same snapshot after a broken call), what each
//     chunk means (start over on a new snapshot, install this page, the last page with the
//     snapshot's frontier), and how long to wait after a failure. The driver makes the calls and
//     installs the pages through the commit path.
//   - SnapshotServer: the serving side. It keeps the snapshots taken for re-seeding regions (one
//     reused by a resuming call, a bounded number at once, dropped once unused for a while) and
//     cuts them into pages bounded by bytes. It reads the store; thread-safe.
//
// The gRPC transport and the simulator both drive these.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/version_vector.h"
#include "meridian/replication.pb.h"
#include "meridian/status.h"
#include "replication/snapshot_codec.h"
#include "storage/store.h"

namespace meridian::replication {

// Why a region refuses a snapshot while it is being re-seeded itself (both drivers send it; the
// asking region recognises it by this text).
inline constexpr const char* kReseedingItself =
    "this region is itself being re-seeded; ask another region";

// Whether a region refuses to serve a snapshot (with kReseedingItself): while it merges one
// itself (its documents then hold events its frontier does not cover), and while it re-seeds
// holding nothing. A region that re-seeds while holding data serves what it holds until its
// first page is merged: two regions each behind the other's retention re-seed from each other.
inline bool RefusesSnapshots(bool reseeding, bool merging, const core::VersionVector& applied) {
  return merging || (reseeding && applied.empty());
}

class Reseeding {
 public:
  // `peers` to ask, `unit` uniform in [0, 1) from the driver's random source (the first peer).
  Reseeding(std::vector<core::RegionId> peers, uint64_t now_ms, double unit);

  // The next call: the peer to ask and the request, from `base` (the exchange's
  // SnapshotRequestMessage) with the snapshot to resume when the peer is the current source.
  // The peer: the source while failures make progress, another (round robin) after failures
  // that made none.
  wire::SnapshotRequest Ask(wire::SnapshotRequest base, core::RegionId* peer);

  // A chunk of the current call arrived: merge `page` into the region (node::Region::
  // MergeSnapshotPage): the snapshot's states with keys in (after, through], through nullopt on
  // the last page (then the re-seed is done), with the snapshot's frontier and fold bound. A new
  // snapshot (`fresh`) starts again from the first key. A non-empty `error` ends the call (then
  // Failed).
  struct Step {
    bool fresh = false;
    StatePage page;
    std::string after;
    std::optional<std::string> through;
    core::VersionVector applied;
    core::VersionVector folded;
    core::HlcTimestamp hlc = 0;        // the serving region's clock at the snapshot
    std::vector<std::string> damaged;  // the page's documents marked damaged at the source
    std::string error;
  };
  Step Chunk(const wire::SnapshotChunk& chunk);
  // The step's page was installed.
  void Installed(const Step& step);
  // The current call ended before the last chunk (or a step failed): the delay before the next
  // Ask. `peer_reseeding`: the peer refused because it is being re-seeded itself.
  uint64_t Failed(const std::string& why, bool peer_reseeding = false);
  // Every peer, one after another, refused because it is being re-seeded itself, and nothing of
  // a snapshot is installed here: no region holds a copy to take (the whole deployment lost its
  // data). The driver then forgets any document a cut-short earlier re-seed left and starts
  // from nothing, as the others do.
  bool Hopeless() const;

  bool done() const { return done_; }
  core::RegionId source() const { return source_; }
  const core::VersionVector& frontier() const { return frontier_; }
  uint64_t installed() const { return installed_; }
  // /v1/status "reseed" (`names`: region names), and the /readyz reason while it runs.
  nlohmann::json Status(const std::map<core::RegionId, std::string>& names, uint64_t now_ms) const;
  std::string Problem(const std::map<core::RegionId, std::string>& names) const;

 private:
  std::vector<core::RegionId> peers_;
  size_t next_ = 0;
  int failures_ = 0;
  uint64_t started_ms_ = 0;
  // The current call.
  core::RegionId asked_ = 0;
  bool resuming_ = false;
  uint64_t installed_at_ask_ = 0;
  uint64_t resumes_at_ask_ = 0;
  // The snapshot being installed.
  uint64_t snapshot_id_ = 0;
  core::RegionId source_ = 0;
  std::string after_;  // the last key installed
  core::VersionVector frontier_;
  core::VersionVector folded_;
  core::HlcTimestamp hlc_ = 0;
  uint64_t documents_ = 0;  // in the snapshot
  uint64_t installed_ = 0;
  uint64_t bytes_ = 0;                           // received, compressed
  uint64_t resumes_ = 0;                         // calls that went on with the same snapshot
  std::vector<core::RegionId> reseeding_peers_;  // refused in a row, being re-seeded
  core::RegionId last_error_peer_ = 0;
  std::string last_error_;
  bool done_ = false;
};

class SnapshotServer {
 public:
  struct Options {
    size_t page_bytes = 1 << 20;
    size_t page_documents = 8192;
    uint64_t keep_ms = 10 * 60 * 1000;  // an unused snapshot is kept this long for a resume
    size_t snapshots_max = 4;           // at once
  };
  // `first_id`: the first snapshot id, distinct from any an earlier process of this region gave
  // out (a resume naming one of those must not match a new snapshot).
  SnapshotServer(Options options, uint64_t first_id) : options_(options), next_id_(first_id) {}

  // One call serving `request` (already accepted by the exchange). Reuses the snapshot it
  // resumes when this server still has it, else takes a new one of `store`.
  class Call {
   public:
    // The next chunk; its done() is the last one.
    Result<wire::SnapshotChunk> Next(uint64_t now_ms);
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    bool fresh() const { return fresh_; }  // a new snapshot (not a resume)
    const storage::StoreSnapshot& snapshot() const;

   private:
    friend class SnapshotServer;
    struct Lease;
    Call(SnapshotServer* server, std::shared_ptr<Lease> lease, std::string after, bool fresh);
    SnapshotServer* server_;
    std::shared_ptr<Lease> lease_;
    std::string after_;
    std::string frontier_;
    std::string folded_;
    bool fresh_ = false;
    bool finished_ = false;
  };
  // kOverloaded when too many re-seeds run at once; kUnavailable when the store fails.
  Result<std::unique_ptr<Call>> Open(const wire::SnapshotRequest& request, storage::Store& store,
                                     uint64_t now_ms);

 private:
  const Options options_;
  std::mutex mutex_;
  std::map<uint64_t, std::shared_ptr<Call::Lease>> leases_;
  uint64_t next_id_;
};

}  // namespace meridian::replication
