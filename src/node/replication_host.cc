#include "node/replication_host.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace meridian::node {

replication::TransportConfig ReplicationHost::Config() const {
  const NodeConfig& config = node_->config();
  replication::TransportConfig out;
  replication::ExchangeOptions& exchange = out.exchange;
  exchange.deployment = config.deployment;
  exchange.self = config.self().id;
  exchange.incarnation = node_->identity().incarnation;
  for (const RegionAddress& region : config.regions) {
    exchange.names[region.id] = region.name;
    if (region.id != exchange.self) out.addresses[region.id] = region.replication;
  }
  out.listen = config.self().replication;
  exchange.sender.linger_ms = config.replication.linger_ms;
  exchange.sender.batch_events_max = config.replication.batch_events_max;
  exchange.sender.batch_bytes_max = config.replication.batch_bytes_max;
  exchange.sender.window_batches = config.replication.window_batches;
  exchange.sender.heartbeat_ms = config.replication.heartbeat_ms;
  exchange.links.relay_after_ms = config.replication.relay_after_ms;
  exchange.links.backoff_initial_ms = config.replication.backoff_initial_ms;
  exchange.links.backoff_max_ms = config.replication.backoff_max_ms;
  exchange.links.silence_timeout_ms = config.replication.silence_timeout_ms;
  exchange.links.dial_timeout_ms = config.replication.dial_timeout_ms;
  exchange.links.hedge_after_ms = config.replication.hedge_after_ms;
  exchange.retention_hold_ms = config.replication.retention_hold_s * 1000;
  exchange.reseed_after_ms = config.replication.reseed_after_s * 1000;
  exchange.hlc_ahead_max_ms = config.replication.hlc_ahead_max_ms;
  exchange.tick_ms = std::max<uint64_t>(10, config.replication.heartbeat_ms / 2);
  out.retention.age_ms = config.replication.retention_age_s * 1000;
  out.retention.bytes = config.replication.retention_bytes;
  out.verify.interval_ms = config.verify.interval_ms;
  out.verify.align_timeout_ms = config.verify.align_timeout_ms;
  out.verify_timeout_ms = config.verify.timeout_ms;
  out.tls = config.tls;
  return out;
}

bool ReplicationHost::SubmitRemote(core::RemoteBatch events,
                                   std::function<void(Result<replication::RemoteApplied>)> done,
                                   std::shared_ptr<const std::atomic<bool>> dropped) {
  return node_->SubmitRemote(
      std::move(events),
      [this, done = std::move(done)](Result<RemoteApply> outcome) {
        if (!outcome.ok()) {
          done(outcome.status());
          return;
        }
        // Nothing is dropped silently: every parked event is said once, when it is parked.
        for (const RemoteApply::Parked& parked : outcome->parked) {
          spdlog::warn(
              "replication: parked {} ({}) as dead letter {}: {}; its origin goes on past it "
              "(POST /v1/dead-letters/{}/retry applies it again)",
              node_->region().EventId(parked.dot),
              parked.key.empty() ? std::string("key unreadable") : "key '" + parked.key + "'",
              parked.id, parked.reason, parked.id);
        }
        done(replication::RemoteApplied{outcome->applied, outcome->duplicates, outcome->gaps,
                                        std::move(outcome->applied_hlcs), outcome->parked.size(),
                                        std::move(outcome->parked_keys)});
      },
      std::move(dropped));
}

Status ReplicationHost::ClearDocuments() {
  return node_->RunOnCommitThread([this] { return node_->region().ClearDocuments(); });
}

Region::SnapshotPage SnapshotPageOf(const replication::Reseeding::Step& step) {
  return Region::SnapshotPage{step.page,   step.after, step.through, step.applied,
                              step.folded, step.hlc,   step.damaged};
}

Status ReplicationHost::MergeSnapshotPage(const replication::Reseeding::Step& step) {
  const Region::SnapshotPage page = SnapshotPageOf(step);
  return node_->RunOnCommitThread([&] {
    std::vector<Change> changes;
    Status status = node_->region().MergeSnapshotPage(page, &changes);
    // Watches see the documents the merge changed (also those of commits before a failure).
    if (!changes.empty()) node_->watches().Publish(changes);
    node_->commits().Notify();
    return status;
  });
}

Result<wire::VerifyReply> ReplicationHost::AnswerVerify(const wire::VerifyRequest& request) {
  if (Status status = CheckVerifyRequest(request); !status.ok()) return status;
  if (!AsksStates(request)) return AnswerTree(node_->region(), request);
  const std::vector<std::string> keys = KeysOf(request);
  wire::VerifyReply reply;
  Status status = node_->RunOnCommitThread([&] {
    auto states = node_->region().ReadStates(keys);
    if (!states.ok()) return states.status();
    reply = StatesReply(*states);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return reply;
}

Result<replication::RepairCounts> ReplicationHost::Repair(core::RegionId peer,
                                                          const wire::VerifyReply& states) {
  const Region::States theirs = StatesOf(states);
  replication::RepairCounts counts;
  Status status = node_->RunOnCommitThread([&] {
    std::vector<Change> changes;
    auto outcome = node_->region().Repair(peer, theirs, &changes);
    if (!changes.empty()) node_->watches().Publish(changes);
    node_->commits().Notify();
    if (!outcome.ok()) return outcome.status();
    counts = CountsOf(*outcome);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return counts;
}

replication::Host::Listener ReplicationHost::OnCommit(std::function<void()> listener) {
  std::lock_guard lock(mutex_);
  const Listener id = next_listener_++;
  listeners_.emplace(id, node_->commits().Register(std::move(listener)));
  return id;
}

void ReplicationHost::RemoveOnCommit(Listener listener) {
  std::lock_guard lock(mutex_);
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) return;
  node_->commits().Unregister(it->second);
  listeners_.erase(it);
}

}  // namespace meridian::node
