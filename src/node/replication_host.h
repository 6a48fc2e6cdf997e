// ReplicationHost: the region node as the replication transport sees it (replication::Host).
#pragma once

#include "node/node.h"
#include "node/verification.h"
#include "replication/host.h"

namespace meridian::node {

// A re-seed's step as the region merges it (written once for the transport's host and the
// simulator).
Region::SnapshotPage SnapshotPageOf(const replication::Reseeding::Step& step);

class ReplicationHost final : public replication::Host {
 public:
  explicit ReplicationHost(Node* node) : node_(node), verify_local_(&node->region()) {}

  replication::TransportConfig Config() const override;
  replication::StatusBoard& status() override { return node_->replication(); }

  core::VersionVector Applied() const override { return node_->region().frontier(); }
  core::HlcTimestamp Clock() const override { return node_->region().hlc(); }
  void ObserveFrontier(core::RegionId peer, const core::VersionVector& frontier) override {
    node_->region().ObserveFrontier(peer, frontier);
  }
  void SetRebuilding(bool rebuilding) override { node_->region().SetRebuilding(rebuilding); }
  void Rebuilt() override { node_->MarkRebuilt(); }
  storage::Store& store() override { return node_->store(); }

  std::string DataStart() const override { return std::string(DataStartName(node_->data_start())); }
  bool ConfirmOwnEvents() const override { return node_->confirm_own_events(); }
  bool NeedsReseed() const override { return node_->needs_reseed(); }
  bool Reseeding() const override { return node_->reseeding(); }
  void SetReseeding(bool on) override { node_->set_reseeding(on); }
  bool Merging() const override { return node_->region().merging(); }

  bool SubmitRemote(core::RemoteBatch events,
                    std::function<void(Result<replication::RemoteApplied>)> done,
                    std::shared_ptr<const std::atomic<bool>> dropped) override;
  Status MergeSnapshotPage(const replication::Reseeding::Step& step) override;
  Status ClearDocuments() override;
  Listener OnCommit(std::function<void()> listener) override;
  void RemoveOnCommit(Listener listener) override;
  void Notify() override { node_->commits().Notify(); }

  Result<wire::VerifyReply> AnswerVerify(const wire::VerifyRequest& request) override;
  void RecordSpans(std::vector<core::Span> spans) override {
    node_->traces().Record(std::move(spans));
  }
  replication::VerifyLocal& verify_local() override { return verify_local_; }
  void Watch(const std::vector<std::string>& keys) override { node_->region().Watch(keys); }
  void Unwatch(const std::vector<std::string>& keys) override { node_->region().Unwatch(keys); }
  Result<replication::RepairCounts> Repair(core::RegionId peer,
                                           const wire::VerifyReply& states) override;

 private:
  Node* const node_;
  RegionVerifyLocal verify_local_;
  std::mutex mutex_;
  std::map<Listener, CommitSignal::Handle> listeners_;
  Listener next_listener_ = 1;
};

}  // namespace meridian::node
