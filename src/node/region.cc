#include "node/region.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/replica.h"

namespace meridian::node {

Region::Region(core::RegionId id, std::map<core::RegionId, std::string> names,
               storage::Store* store, core::PhysicalClock* clock, core::Limits limits,
               uint64_t max_skew_ms, size_t document_cache_max, ViewCache* views)
    : id_(id),
      names_(std::move(names)),
      store_(store),
      limits_(limits),
      clock_(clock, max_skew_ms),
      document_cache_max_(document_cache_max),
      views_(views) {}

Status Region::Recover() {
  auto recovered = store_->Recover();
  if (!recovered.ok()) return recovered.status();
  std::lock_guard lock(mutex_);
  frontier_ = recovered->frontier;
  clock_.Restore(recovered->hlc);
  last_lsn_ = recovered->last_lsn;
  documents_ = recovered->documents;
  digest_ = recovered->digest;
  return Status::Ok();
}

Result<Region::Loaded> Region::Load(const std::string& key) {
  if (auto it = cache_.find(key); it != cache_.end()) {
    return Loaded{it->second.state, it->second.rendered, it->second.rendered};
  }
  auto bytes = store_->GetDocumentState(key);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return Loaded{};
  auto state = core::DocumentState::Decode(**bytes);
  if (!state.ok()) return state.status();
  std::optional<std::string> rendered = state->Render();
  return Loaded{std::move(state).value(), rendered, rendered};
}

void Region::Remember(const std::string& key, core::DocumentState state, std::optional<std::string> rendered) {
  if (document_cache_max_ == 0) return;
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    lru_.erase(it->second.position);
  } else {
    if (cache_.size() >= document_cache_max_) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
    it = cache_.emplace(key, Cached{}).first;
  }
  lru_.push_front(key);
  it->second = Cached{std::move(state), std::move(rendered), lru_.begin()};
}

void Region::CommitLocalWrites(std::span<const WriteRequest> writes,
                               std::vector<Result<Receipt>>* outcomes, std::vector<Change>* changes) {
  outcomes->clear();
  outcomes->reserve(writes.size());
  std::unique_lock lock(mutex_);
  const core::VersionVector frontier_before = frontier_;
  const uint64_t lsn_before = last_lsn_;
  lock.unlock();

  // Only the commit thread changes frontier_ and last_lsn_, so working on copies is safe.
  core::VersionVector frontier = frontier_before;
  uint64_t lsn = lsn_before;
  std::unordered_map<std::string, Loaded> dirty;
  storage::CommitBatch batch;
  std::vector<core::Conflict> conflicts;
  std::vector<Change> committed;
  std::vector<size_t> accepted;  // indexes into *outcomes of writes in the batch

  for (const WriteRequest& write : writes) {
    auto it = dirty.find(write.key);
    if (it == dirty.end()) {
      auto loaded = Load(write.key);
      if (!loaded.ok()) {
        outcomes->push_back(loaded.status());
        continue;
      }
      it = dirty.emplace(write.key, std::move(loaded).value()).first;
    }
    core::DocumentState& state = it->second.state;
    lock.lock();
    Result<core::Event> event =
        core::StampLocalWrite(id_, write.key, write.op, &state, frontier, &clock_, limits_);
    lock.unlock();
    if (!event.ok()) {
      outcomes->push_back(event.status());
      continue;
    }
    const size_t conflicts_before = conflicts.size();
    core::DocumentState candidate = state;
    candidate.Apply(*event, &conflicts);
    std::optional<std::string> rendered = candidate.Render();
    if (rendered && rendered->size() > limits_.document_bytes_max) {
      conflicts.resize(conflicts_before);
      outcomes->push_back(TooLarge("the document would be " + std::to_string(rendered->size()) +
                                   " bytes; the limit is " + std::to_string(limits_.document_bytes_max)));
      continue;
    }
    state = std::move(candidate);
    it->second.rendered = rendered;
    frontier.Set(id_, event->dot.seq);
    ++lsn;
    batch.events.push_back(storage::LoggedEvent{event->dot, lsn, core::EncodeEvent(*event), rendered});
    committed.push_back(Change{write.key, std::move(rendered), event->dot, event->hlc, lsn});
    outcomes->push_back(Receipt{event->dot, event->hlc, frontier});
    accepted.push_back(outcomes->size() - 1);
  }
  if (accepted.empty()) return;

  lock.lock();
  uint64_t documents = documents_;
  uint64_t digest = digest_;
  lock.unlock();
  for (const auto& [key, loaded] : dirty) {
    storage::DocumentWrite document;
    document.key = key;
    document.state = loaded.state.empty() ? std::string() : loaded.state.Encode();
    document.rendered = loaded.rendered;
    if (loaded.rendered_before) {
      --documents;
      digest ^= core::RenderedDigest(key, loaded.rendered_before);
    }
    if (document.rendered) {
      ++documents;
      digest ^= core::RenderedDigest(key, document.rendered);
    }
    batch.documents.push_back(std::move(document));
  }
  batch.document_count = documents;
  batch.digest = digest;
  for (const core::Conflict& conflict : conflicts) batch.conflicts.push_back(ConflictJson(conflict));
  batch.frontier = frontier;
  lock.lock();
  batch.hlc = clock_.last();
  lock.unlock();

  Status status = store_->Commit(batch);
  if (!status.ok()) {
    for (size_t index : accepted) {
      (*outcomes)[index] = Status(StatusCode::kUnavailable, "the write could not be made durable: " + status.message());
    }
    return;
  }
  for (auto& [key, loaded] : dirty) {
    if (views_ != nullptr) views_->Put(key, loaded.rendered);  // before the frontier covers it
    Remember(key, std::move(loaded.state), std::move(loaded.rendered));
  }
  // Each receipt's session covers everything committed with it (the batch is atomic).
  for (size_t index : accepted) (*outcomes)[index].value().frontier = frontier;
  lock.lock();
  frontier_ = frontier;
  last_lsn_ = lsn;
  documents_ = documents;
  digest_ = digest;
  stats_.commits += 1;
  stats_.events += accepted.size();
  stats_.conflicts += conflicts.size();
  lock.unlock();
  changes->insert(changes->end(), std::make_move_iterator(committed.begin()),
                  std::make_move_iterator(committed.end()));
}

core::VersionVector Region::frontier() const {
  std::lock_guard lock(mutex_);
  return frontier_;
}

uint64_t Region::skew_count() const {
  std::lock_guard lock(mutex_);
  return clock_.skew_count();
}

uint64_t Region::documents() const {
  std::lock_guard lock(mutex_);
  return documents_;
}

uint64_t Region::digest() const {
  std::lock_guard lock(mutex_);
  return digest_;
}

core::HlcTimestamp Region::hlc() const {
  std::lock_guard lock(mutex_);
  return clock_.last();
}

CommitStats Region::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

const std::string& Region::NameOf(core::RegionId id) const {
  static const std::string kUnknown = "?";
  auto it = names_.find(id);
  return it == names_.end() ? kUnknown : it->second;
}

std::string Region::EventId(core::Dot dot) const {
  return NameOf(dot.origin) + ":" + std::to_string(dot.seq);
}

bool Region::ParseEventId(std::string_view text, core::Dot* dot) const {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view name = text.substr(0, colon);
  const std::string_view seq = text.substr(colon + 1);
  for (const auto& [id, region_name] : names_) {
    if (region_name != name) continue;
    uint64_t value = 0;
    auto [ptr, error] = std::from_chars(seq.data(), seq.data() + seq.size(), value);
    if (error != std::errc() || ptr != seq.data() + seq.size() || value == 0) return false;
    *dot = core::Dot{id, value};
    return true;
  }
  return false;
}

std::string Region::ConflictJson(const core::Conflict& conflict) const {
  auto sibling_json = [this](const core::Sibling& sibling) {
    return nlohmann::json{{"event", EventId(sibling.dot)},
                          {"region", NameOf(sibling.dot.origin)},
                          {"hlc", core::FormatHlc(sibling.hlc)},
                          {"value", nlohmann::json::parse(sibling.value, nullptr, false)}};
  };
  nlohmann::json record = {{"key", conflict.key},
                           {"field", conflict.field},
                           {"kind", core::ConflictKindName(conflict.kind)},
                           {"winner", sibling_json(conflict.winner)},
                           {"found_by", EventId(conflict.cause)}};
  nlohmann::json losers = nlohmann::json::array();
  for (const core::Sibling& loser : conflict.losers) losers.push_back(sibling_json(loser));
  record["losers"] = std::move(losers);
  if (!conflict.increments.empty()) {
    nlohmann::json increments = nlohmann::json::array();
    for (const core::Increment& increment : conflict.increments) {
      increments.push_back({{"event", EventId(increment.dot)}, {"delta", increment.delta}});
    }
    record["increments"] = std::move(increments);
  }
  return record.dump();
}

}  // namespace meridian::node
