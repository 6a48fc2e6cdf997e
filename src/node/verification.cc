#include "node/verification.h"

#include "core/digest_tree.h"

namespace meridian::node {

using core::DigestTree;

bool AsksStates(const wire::VerifyRequest& request) {
  return request.keys_size() > 0;
}

Status CheckVerifyRequest(const wire::VerifyRequest& request) {
  const int asks =
      (request.nodes_size() > 0) + (request.buckets_size() > 0) + (request.keys_size() > 0);
  if (asks != 1) {
    return Status(StatusCode::kInvalidArgument,
                  "a verification request asks for exactly one of nodes, buckets or keys");
  }
  if (request.nodes_size() > kVerifyNodesMax || request.buckets_size() > kVerifyBucketsMax ||
      request.keys_size() > kVerifyKeysMax) {
    return Status(StatusCode::kInvalidArgument, "a verification request asks for too much");
  }
  if (request.nodes_size() > 0) {
    if (request.level() >= DigestTree::kLeafLevel) {
      return Status(StatusCode::kInvalidArgument,
                    "level " + std::to_string(request.level()) + " has no children");
    }
    for (uint32_t node : request.nodes()) {
      if (node >= DigestTree::Width(request.level())) {
        return Status(
            StatusCode::kInvalidArgument,
            "node " + std::to_string(node) + " is not in level " + std::to_string(request.level()));
      }
    }
  }
  for (uint32_t bucket : request.buckets()) {
    if (bucket >= DigestTree::kBuckets) {
      return Status(StatusCode::kInvalidArgument,
                    "bucket " + std::to_string(bucket) + " does not exist");
    }
  }
  return Status::Ok();
}

Result<wire::VerifyReply> AnswerTree(const Region& region, const wire::VerifyRequest& request) {
  if (Status status = CheckVerifyRequest(request); !status.ok()) return status;
  wire::VerifyReply reply;
  if (request.nodes_size() > 0) {
    const std::vector<uint32_t> nodes(request.nodes().begin(), request.nodes().end());
    for (uint64_t hash : region.TreeChildren(request.level(), nodes)) reply.add_hashes(hash);
    return reply;
  }
  for (uint32_t bucket : request.buckets()) {
    uint32_t size = 0;
    Status status = region.BucketEntries(bucket, [&](std::string_view key, uint64_t digest) {
      reply.add_entry_keys(std::string(key));
      reply.add_entry_digests(digest);
      ++size;
    });
    if (!status.ok()) return status;
    reply.add_bucket_sizes(size);
  }
  return reply;
}

std::vector<std::string> KeysOf(const wire::VerifyRequest& request) {
  return {request.keys().begin(), request.keys().end()};
}

wire::VerifyReply StatesReply(const Region::States& states) {
  wire::VerifyReply reply;
  for (const Region::States::Entry& entry : states.entries) {
    wire::DocumentCopy* copy = reply.add_copies();
    copy->set_key(entry.key);
    copy->set_held(entry.state.has_value());
    if (entry.state) copy->set_state(*entry.state);
    copy->set_damaged(entry.damaged);
    copy->set_indexed(entry.indexed);
  }
  states.applied.EncodeTo(reply.mutable_frontier());
  states.folded.EncodeTo(reply.mutable_folded());
  reply.set_hlc(states.hlc);
  return reply;
}

Region::States StatesOf(const wire::VerifyReply& reply) {
  Region::States states;
  for (const wire::DocumentCopy& copy : reply.copies()) {
    Region::States::Entry entry;
    entry.key = copy.key();
    if (copy.held()) entry.state = copy.state();
    entry.damaged = copy.damaged();
    entry.indexed = copy.indexed();
    states.entries.push_back(std::move(entry));
  }
  auto applied = core::VersionVector::Decode(reply.frontier());
  auto folded = core::VersionVector::Decode(reply.folded());
  if (applied.ok()) states.applied = std::move(applied).value();
  if (folded.ok()) states.folded = std::move(folded).value();
  states.hlc = reply.hlc();
  return states;
}

replication::RepairCounts CountsOf(const Region::RepairOutcome& outcome) {
  return {outcome.equal, outcome.repaired, outcome.theirs, outcome.deferred};
}

}  // namespace meridian::node
