// Verifier: one region's side of anti-entropy with every peer (docs/verification.md), a state
// machine with no I/O in the shape of the Exchange: time, answers and commit outcomes go in;
// requests to send, documents to watch, states to repair and finished comparisons come out. The
// gRPC transport and the simulator are its two drivers.
//
// A comparison with one peer:
//   1. walks the digest trees (core/digest_tree.h) down from the root: it asks the peer for the
//      children of the nodes that differ, level after level, comparing each answer with its own
//      tree (VerifyLocal); identical trees end it after one round trip of 16 hashes;
//   2. asks for the entries of the leaf buckets that differ and compares them with its own: the
//      keys whose digests differ (or that one side lacks) are the candidates;
//      (with the documents marked damaged here, whatever the trees say);
//   3. per page of candidates: watches them (the driver calls Region::Watch), notes its own
//      frontier, and asks for the peer's states; until the peer's answer reflects at least that
//      frontier (the peer has applied everything this region had), asks again; then waits until
//      this region has applied everything the answer reflects, and hands the states to the commit
//      path (Region::Repair). Both copies then reflect the same events unless a document changed
//      meanwhile: a difference left is damage, not replication in flight.
// A comparison ends identical (every candidate was in flight), differing (documents differed,
// whichever side repaired them), or unknown (the peer did not answer, or would not align).
//
// Not thread-safe: the driver holds one mutex around every call.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/version_vector.h"
#include "meridian/replication.pb.h"
#include "meridian/status.h"

namespace meridian::replication {

struct VerifyOptions {
  uint64_t interval_ms = 60'000;  // between comparisons with one peer; 0: only on demand
  // How long a page of candidates may wait for the two regions to align before it is deferred
  // to the next comparison.
  uint64_t align_timeout_ms = 10'000;
  uint64_t retry_ms = 100;    // asking again for states while the peer is behind
  size_t buckets_max = 1024;  // differing buckets one comparison fetches
  size_t keys_max = 8192;     // candidate documents one comparison compares
  size_t keys_per_request = 256;
};

// This region's tree and index, as the verifier compares them with a peer's answers.
class VerifyLocal {
 public:
  virtual ~VerifyLocal() = default;
  // The hashes of the children of each node of `nodes` at `level` (core::DigestTree::Children).
  virtual std::vector<uint64_t> TreeChildren(uint32_t level,
                                             const std::vector<uint32_t>& nodes) const = 0;
  // The digest index's entries of one bucket, in key order.
  virtual Status BucketEntries(uint32_t bucket,
                               const std::function<void(std::string_view, uint64_t)>& visit) = 0;
  // Documents marked damaged here (up to `limit`): compared whatever the trees say, since one
  // rewritten after its damage may match the peer's digest and still hold less.
  virtual std::vector<std::string> Damaged(size_t limit) const = 0;
};

// What Region::Repair did with one page of states.
struct RepairCounts {
  size_t equal = 0;
  size_t repaired = 0;
  size_t theirs = 0;
  size_t deferred = 0;
};

struct VerifyResult {
  enum class State { kUnknown, kIdentical, kDiffering };
  core::RegionId peer = 0;
  State state = State::kUnknown;
  uint64_t started_ms = 0;
  uint64_t finished_ms = 0;  // 0: under way
  size_t round_trips = 0;
  uint64_t bytes = 0;  // requests and answers on the wire
  size_t buckets_differing = 0;
  size_t candidates = 0;   // documents whose digests differed when compared
  size_t in_flight = 0;    // of those: the same once aligned, or changed meanwhile
  size_t repaired = 0;     // restored here from the peer
  size_t theirs = 0;       // the peer's copy was the damaged one
  bool truncated = false;  // more differed than one comparison takes (the next goes on)
  std::string error;
};
std::string_view VerifyStateName(VerifyResult::State state);

class Verifier {
 public:
  Verifier(VerifyOptions options, std::vector<core::RegionId> peers, uint64_t now_ms);

  struct Ready {
    std::vector<std::string> watch;  // first: Region::Watch these keys
    struct Request {
      core::RegionId peer = 0;
      wire::VerifyRequest message;  // the driver adds this region's identity
    };
    std::vector<Request> requests;  // then: send each; answer with Answered or Failed
    struct Repair {
      core::RegionId peer = 0;
      wire::VerifyReply states;
    };
    std::vector<Repair> repairs;       // on the commit path (Region::Repair), then Repaired
    std::vector<std::string> unwatch;  // Region::Unwatch, after any repair listed above
    std::vector<VerifyResult> finished;

    void Join(Ready other);
  };

  // Compares with `peer` now (0: every peer) unless a comparison with it is under way.
  Ready Start(core::RegionId peer, uint64_t now_ms);
  // Periodic (every 50-100 ms): starts comparisons that are due, asks again, and hands a page to
  // repair once this region has applied everything the peer's answer reflects.
  Ready Tick(uint64_t now_ms, const core::VersionVector& applied);
  // The peer answered the last request (`bytes`: request and answer on the wire).
  Ready Answered(core::RegionId peer, const wire::VerifyReply& reply, size_t bytes,
                 VerifyLocal& local, const core::VersionVector& applied, uint64_t now_ms);
  Ready Failed(core::RegionId peer, const std::string& why, uint64_t now_ms);
  // The commit path repaired (or failed to) the page handed out.
  Ready Repaired(core::RegionId peer, const Result<RepairCounts>& counts,
                 const core::VersionVector& applied, uint64_t now_ms);

  bool Busy(core::RegionId peer) const;
  // The last finished comparison with each peer (none until one finished), and the one under way.
  std::vector<VerifyResult> Latest() const;
  std::optional<VerifyResult> Current(core::RegionId peer) const;

 private:
  // kWatching: the page is watched from the driver's next Tick on, which notes the frontier
  // (after the watch began) and asks for the states.
  enum class Phase { kIdle, kTree, kBuckets, kWatching, kStates, kAligning, kRepairing };
  struct Comparison {
    Phase phase = Phase::kIdle;
    bool outstanding = false;  // a request is out
    uint32_t level = 0;
    std::vector<uint32_t> nodes;    // kTree: asked
    std::vector<uint32_t> buckets;  // kBuckets: asked
    std::vector<std::string> keys;  // candidates
    size_t next_key = 0;            // the next page starts here
    std::vector<std::string> page;  // watched, asked
    core::VersionVector asked_at;   // this region's frontier when the page was watched
    uint64_t page_since_ms = 0;
    uint64_t retry_at_ms = 0;
    wire::VerifyReply states;
    core::VersionVector their_applied;
    VerifyResult result;
    uint64_t due_ms = 0;
    std::optional<VerifyResult> latest;
  };

  void Begin(core::RegionId peer, Comparison& comparison, uint64_t now_ms, Ready* ready);
  void AskTree(core::RegionId peer, Comparison& comparison, Ready* ready);
  void NextPage(core::RegionId peer, Comparison& comparison, const core::VersionVector& applied,
                uint64_t now_ms, Ready* ready);
  void AskStates(core::RegionId peer, Comparison& comparison, Ready* ready);
  void Defer(Comparison& comparison, Ready* ready);
  void Finish(core::RegionId peer, Comparison& comparison, std::string error, uint64_t now_ms,
              Ready* ready);
  void Align(core::RegionId peer, Comparison& comparison, const core::VersionVector& applied,
             uint64_t now_ms, Ready* ready);

  const VerifyOptions options_;
  std::map<core::RegionId, Comparison> peers_;
};

}  // namespace meridian::replication
