// A region's side of verification (docs/verification.md) over node::Region, written once for the
// replication transport's host and the simulator: answering a peer's requests, reading this
// region's tree and index for the Verifier, and converting states between Region and the wire.
#pragma once

#include "meridian/replication.pb.h"
#include "meridian/status.h"
#include "node/region.h"
#include "replication/verify.h"
#include "storage/store.h"

namespace meridian::node {

// What one request may ask at most.
inline constexpr int kVerifyNodesMax = 4096;
inline constexpr int kVerifyBucketsMax = 4096;
inline constexpr int kVerifyKeysMax = 1024;

// Whether a request asks for states (answered on the commit thread: Region::ReadStates) rather
// than tree hashes or bucket entries (AnswerTree, any thread).
bool AsksStates(const wire::VerifyRequest& request);
// kInvalidArgument for a request that asks for none or several things, or beyond the limits.
Status CheckVerifyRequest(const wire::VerifyRequest& request);
Result<wire::VerifyReply> AnswerTree(const Region& region, const wire::VerifyRequest& request);
std::vector<std::string> KeysOf(const wire::VerifyRequest& request);
wire::VerifyReply StatesReply(const Region::States& states);
// The peer's answer as Region::Repair takes it (the Verifier has checked its form).
Region::States StatesOf(const wire::VerifyReply& reply);
replication::RepairCounts CountsOf(const Region::RepairOutcome& outcome);

class RegionVerifyLocal final : public replication::VerifyLocal {
 public:
  explicit RegionVerifyLocal(const Region* region) : region_(region) {}
  std::vector<uint64_t> TreeChildren(uint32_t level,
                                     const std::vector<uint32_t>& nodes) const override {
    return region_->TreeChildren(level, nodes);
  }
  Status BucketEntries(uint32_t bucket,
                       const std::function<void(std::string_view, uint64_t)>& visit) override {
    return region_->BucketEntries(bucket, visit);
  }
  std::vector<std::string> Damaged(size_t limit) const override {
    return region_->DamagedKeys(limit);
  }

 private:
  const Region* const region_;
};

}  // namespace meridian::node
