#include "replication/reseed.h"

#include <algorithm>

namespace meridian::replication {
// --- the receiving region ---------------------------------------------------------------------

Reseeding::Reseeding(std::vector<core::RegionId> peers, uint64_t now_ms, double unit)
    : peers_(std::move(peers)), started_ms_(now_ms) {
  if (!peers_.empty()) {
    next_ = std::min(peers_.size() - 1, static_cast<size_t>(unit * peers_.size()));
  }
}

wire::SnapshotRequest Reseeding::Ask(wire::SnapshotRequest base, core::RegionId* peer) {
  // Another peer (and so a new snapshot) only after failures that made no progress.
  asked_ = source_ != 0 && failures_ % 3 != 2 ? source_ : peers_[next_++ % peers_.size()];
  *peer = asked_;
  resuming_ = source_ == asked_;
  if (resuming_) {
    base.set_snapshot_id(snapshot_id_);
    base.set_after_key(after_);
  }
  installed_at_ask_ = installed_;
  resumes_at_ask_ = resumes_;
  return base;
}

Reseeding::Step Reseeding::Chunk(const wire::SnapshotChunk& chunk) {
  Step step;
  if (chunk.snapshot_id() != snapshot_id_ || source_ != asked_) {
    // A new snapshot: merged from the first key again (the region keeps what an earlier one
    // merged, and refuses a snapshot that does not cover it).
    auto frontier = core::VersionVector::Decode(chunk.frontier());
    auto folded = core::VersionVector::Decode(chunk.folded());
    if (!frontier.ok() || !folded.ok() || !frontier->Dominates(*folded)) {
      step.error = "bad snapshot frontier or fold bound";
      return step;
    }
    if (!frontier->empty() && chunk.hlc() == 0) {
      // Without the peer's clock (and fold bound) a merge could order a later write before
      // what it merged, or bring back what the peer folded away.
      step.error = "the peer's snapshot lacks its clock: it runs an older version; ask another";
      return step;
    }
    step.fresh = true;
    snapshot_id_ = chunk.snapshot_id();
    source_ = asked_;
    after_.clear();
    installed_ = 0;
    frontier_ = std::move(frontier).value();
    folded_ = std::move(folded).value();
    hlc_ = chunk.hlc();
  } else if (resuming_) {
    resuming_ = false;
    ++resumes_;
  }
  documents_ = chunk.documents();
  bytes_ += chunk.states().size();
  if (!chunk.states().empty()) {
    auto decoded = DecodeStatePage(chunk.states(), after_);
    if (!decoded.ok()) {
      step.error = decoded.status().message();
      return step;
    }
    step.page = std::move(decoded).value();
  } else if (!chunk.done()) {
    step.error = "an empty page before the last";
    return step;
  }
  step.after = after_;
  if (!chunk.done()) step.through = step.page.back().first;
  step.applied = frontier_;
  step.folded = folded_;
  step.hlc = hlc_;
  step.damaged.assign(chunk.damaged().begin(), chunk.damaged().end());
  return step;
}

void Reseeding::Installed(const Step& step) {
  if (!step.page.empty()) after_ = step.page.back().first;
  installed_ += step.page.size();
  if (!step.through) done_ = true;
}

uint64_t Reseeding::Failed(const std::string& why, bool peer_reseeding) {
  const bool progressed = installed_ > installed_at_ask_ || resumes_ > resumes_at_ask_;
  if (peer_reseeding && !progressed) {
    if (std::find(reseeding_peers_.begin(), reseeding_peers_.end(), asked_) ==
        reseeding_peers_.end()) {
      reseeding_peers_.push_back(asked_);
    }
  } else {
    reseeding_peers_.clear();
  }
  failures_ = progressed ? 1 : failures_ + 1;
  last_error_peer_ = asked_;
  last_error_ = why;
  return std::min<uint64_t>(2000, uint64_t{100} << std::min(failures_, 5));
}

bool Reseeding::Hopeless() const {
  return source_ == 0 && !peers_.empty() && reseeding_peers_.size() == peers_.size();
}

nlohmann::json Reseeding::Status(const std::map<core::RegionId, std::string>& names,
                                 uint64_t now_ms) const {
  nlohmann::json status = {
      {"state", done_ ? "done" : "running"},
      {"source", source_ ? nlohmann::json(core::RegionName(names, source_)) : nlohmann::json()},
      {"documents", documents_},
      {"installed", installed_},
      {"wire_bytes", bytes_},
      {"elapsed_ms", now_ms - std::min(now_ms, started_ms_)},
      {"frontier", frontier_.ToString()},
      {"resumes", resumes_}};
  if (!last_error_.empty())
    status["last_error"] = core::RegionName(names, last_error_peer_) + ": " + last_error_;
  return status;
}

std::string Reseeding::Problem(const std::map<core::RegionId, std::string>& names) const {
  if (done_) return {};
  return "rebuilding: re-seeding from " + (source_ ? core::RegionName(names, source_) : "a peer") +
         " (" + std::to_string(installed_) + " of " + std::to_string(documents_) + " documents)";
}

// --- the serving region -----------------------------------------------------------------------

struct SnapshotServer::Call::Lease {
  std::unique_ptr<storage::StoreSnapshot> snapshot;
  core::RegionId peer = 0;
  uint64_t id = 0;
  uint64_t used_ms = 0;
  bool in_use = false;
};

SnapshotServer::Call::Call(SnapshotServer* server, std::shared_ptr<Lease> lease, std::string after,
                           bool fresh)
    : server_(server),
      lease_(std::move(lease)),
      after_(std::move(after)),
      frontier_(lease_->snapshot->position().frontier.Encode()),
      folded_(lease_->snapshot->position().folded.Encode()),
      fresh_(fresh) {}

const storage::StoreSnapshot& SnapshotServer::Call::snapshot() const {
  return *lease_->snapshot;
}

SnapshotServer::Call::~Call() {
  std::lock_guard lock(server_->mutex_);
  lease_->in_use = false;
  if (finished_) server_->leases_.erase(lease_->id);  // installed: no resume will come
}

Result<std::unique_ptr<SnapshotServer::Call>> SnapshotServer::Open(
    const wire::SnapshotRequest& request, storage::Store& store, uint64_t now_ms) {
  std::lock_guard lock(mutex_);
  std::erase_if(leases_, [&](const auto& entry) {
    return !entry.second->in_use && now_ms > entry.second->used_ms + options_.keep_ms;
  });
  const core::RegionId peer = request.region_id();
  if (auto it = leases_.find(request.snapshot_id());
      request.snapshot_id() != 0 && it != leases_.end() && it->second->peer == peer &&
      !it->second->in_use) {
    it->second->in_use = true;
    it->second->used_ms = now_ms;
    return std::unique_ptr<Call>(new Call(this, it->second, request.after_key(), false));
  }
  if (leases_.size() >= options_.snapshots_max) {
    return Status(StatusCode::kOverloaded, "too many re-seeds at once; retry later");
  }
  auto taken = store.TakeSnapshot();
  if (!taken.ok()) {
    return Status(StatusCode::kUnavailable, "snapshot: " + taken.status().message());
  }
  auto lease = std::make_shared<Call::Lease>();
  lease->snapshot = std::move(taken).value();
  lease->peer = peer;
  lease->id = next_id_++;
  lease->used_ms = now_ms;
  lease->in_use = true;
  leases_[lease->id] = lease;
  return std::unique_ptr<Call>(new Call(this, std::move(lease), std::string(), true));
}

Result<wire::SnapshotChunk> SnapshotServer::Call::Next(uint64_t now_ms) {
  const Options& options = server_->options_;
  StatePage page;
  size_t bytes = 0;
  bool more = true;
  while (more && bytes < options.page_bytes && page.size() < options.page_documents) {
    // As many as should fit, by the page's average so far (one to start: documents may be
    // large), so that a page stays near its byte bound.
    size_t limit = 1;
    if (!page.empty()) {
      const size_t average = std::max<size_t>(1, bytes / page.size());
      limit = std::clamp<size_t>((options.page_bytes - bytes) / average + 1, 1,
                                 options.page_documents - page.size());
      limit = std::min<size_t>(limit, 1024);
    }
    auto scanned = lease_->snapshot->ScanDocumentStates(
        page.empty() ? after_ : page.back().first, limit,
        [&](std::string_view key, std::string_view state) {
          bytes += key.size() + state.size();
          page.emplace_back(std::string(key), std::string(state));
        });
    if (!scanned.ok()) {
      return Status(StatusCode::kUnavailable, "snapshot: " + scanned.status().message());
    }
    more = *scanned;
  }
  wire::SnapshotChunk chunk;
  chunk.set_snapshot_id(lease_->id);
  chunk.set_frontier(frontier_);
  chunk.set_folded(folded_);
  chunk.set_hlc(lease_->snapshot->position().hlc);
  chunk.set_documents(lease_->snapshot->position().documents);
  if (!page.empty()) {
    EncodedPage encoded = EncodeStatePage(page);
    chunk.set_states(std::move(encoded.bytes));
    chunk.set_raw_bytes(encoded.raw_bytes);
    chunk.set_count(static_cast<uint32_t>(page.size()));
    chunk.set_last_key(page.back().first);
    after_ = page.back().first;
    for (const auto& [key, state] : page) {
      auto damaged = lease_->snapshot->Damaged(key);
      if (!damaged.ok()) {
        return Status(StatusCode::kUnavailable, "snapshot: " + damaged.status().message());
      }
      if (*damaged) chunk.add_damaged(key);
    }
  }
  chunk.set_done(!more);
  finished_ = !more;
  std::lock_guard lock(server_->mutex_);
  lease_->used_ms = now_ms;
  return chunk;
}

}  // namespace meridian::replication
