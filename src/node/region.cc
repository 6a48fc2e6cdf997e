#include "node/region.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>

#include "core/check.h"
#include "core/replica.h"
#include "core/state_merge.h"
#include "replication/exchange.h"
#include "storage/keys.h"

namespace meridian::node {

namespace {

// The configured regions' ids: those the stable frontier is over.
std::vector<core::RegionId> IdsOf(const std::map<core::RegionId, std::string>& names) {
  std::vector<core::RegionId> ids;
  for (const auto& [id, name] : names) ids.push_back(id);
  return ids;
}

// What identifies a request for its idempotency key: its document key, operation and condition,
// or the whole transaction.
uint64_t RequestFingerprint(const WriteRequest& write) {
  std::string bytes;
  const auto put = [&](std::string_view text) {
    core::PutVarint(&bytes, text.size());
    bytes += text;
  };
  const auto add_condition = [&](const Condition& condition) {
    put(condition.key);
    bytes.push_back(condition.version ? 1 : 0);
    if (condition.version) put(*condition.version);
    bytes.push_back(condition.exists ? (*condition.exists ? 2 : 1) : 0);
  };
  const auto add_op = [&](const std::string& key, const core::Operation& op) {
    core::Event event;
    event.key = key;
    event.op = op;
    put(core::EncodeEvent(event));
  };
  if (write.txn) {
    // What the client sent: a two-phase commit's own records (its lock releases and decision,
    // new in each attempt) and its guard are left out, so that a retry replays.
    const auto client = [](const std::string& key) { return !key.starts_with(kSystemKeyPrefix); };
    bytes = "txn";
    for (const Condition& condition : write.txn->conditions) {
      if (client(condition.key)) add_condition(condition);
    }
    for (const auto* ops : {&write.txn->then_ops, &write.txn->else_ops}) {
      core::PutVarint(&bytes,
                      std::count_if(ops->begin(), ops->end(),
                                    [&](const KeyedOperation& op) { return client(op.key); }));
      for (const KeyedOperation& op : *ops) {
        if (client(op.key)) add_op(op.key, op.op);
      }
    }
  } else {
    add_op(write.key, write.op);
    if (write.condition) add_condition(*write.condition);
  }
  return XXH3_64bits(bytes.data(), bytes.size());
}

// An idempotency record: fingerprint (8 bytes, big-endian), origin, seq and hlc (varints), then
// the receipt's frontier.
std::string EncodeReplay(uint64_t fingerprint, const Receipt& receipt) {
  std::string out;
  storage::PutBigEndian64(&out, fingerprint);
  core::PutVarint(&out, receipt.dot.origin);
  core::PutVarint(&out, receipt.dot.seq);
  core::PutVarint(&out, receipt.hlc);
  receipt.frontier.EncodeTo(&out);
  // A transaction's: whether it succeeded and its events (absent for a single write).
  if (!receipt.succeeded || !receipt.events.empty()) {
    out.push_back(receipt.succeeded ? 1 : 0);
    core::PutVarint(&out, receipt.events.size());
    for (const core::Dot& dot : receipt.events) {
      core::PutVarint(&out, dot.origin);
      core::PutVarint(&out, dot.seq);
    }
  }
  return out;
}

Result<Receipt> DecodeReplay(std::string_view in, uint64_t* fingerprint) {
  if (in.size() < 8) return Corruption("idempotency record is truncated");
  *fingerprint = storage::GetBigEndian64(in);
  in.remove_prefix(8);
  uint64_t origin = 0;
  Receipt receipt;
  if (!core::GetVarint(&in, &origin) || origin > 255 || !core::GetVarint(&in, &receipt.dot.seq) ||
      !core::GetVarint(&in, &receipt.hlc)) {
    return Corruption("idempotency record is malformed");
  }
  receipt.dot.origin = static_cast<core::RegionId>(origin);
  auto frontier = core::VersionVector::DecodeFrom(&in);
  if (!frontier.ok()) return frontier.status();
  receipt.frontier = std::move(frontier).value();
  receipt.replayed = true;
  if (!in.empty()) {
    receipt.succeeded = in.front() == 1;
    in.remove_prefix(1);
    uint64_t count = 0;
    if (!core::GetVarint(&in, &count) || count > in.size()) {
      return Corruption("idempotency record's transaction is malformed");
    }
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t event_origin = 0;
      core::Dot dot;
      if (!core::GetVarint(&in, &event_origin) || event_origin > core::kRegionIdMax ||
          !core::GetVarint(&in, &dot.seq)) {
        return Corruption("idempotency record's transaction is malformed");
      }
      dot.origin = static_cast<core::RegionId>(event_origin);
      receipt.events.push_back(dot);
    }
  }
  return receipt;
}

// Whether `batch` holds, after its event `event` (txn_rest > 0) and with the parked events from
// `parked` on, every later event of its transaction.
bool TransactionWhole(const RemoteEvents& batch, size_t event, size_t parked) {
  const core::Event& first = batch.events[event];
  size_t next = event + 1;
  for (uint64_t seq = first.dot.seq + 1; seq <= first.dot.seq + first.txn_rest; ++seq) {
    const core::Dot dot{first.dot.origin, seq};
    if (next < batch.events.size() && batch.events[next].dot == dot) {
      ++next;
    } else if (parked < batch.parked.size() && batch.parked[parked].dot == dot) {
      ++parked;  // applied as a dead letter: the transaction's other events still apply
    } else {
      return false;
    }
  }
  return true;
}

Status PreconditionFailed(const Condition& condition, const std::optional<std::string>& rendered) {
  std::string now =
      rendered ? "version " + core::DocumentVersion(core::RenderedDigest(condition.key, rendered))
               : std::string("no document");
  if (condition.version) {
    return Status(StatusCode::kPreconditionFailed, "'" + condition.key + "' is not at version " +
                                                       *condition.version + " (it has " + now +
                                                       ")");
  }
  return Status(StatusCode::kPreconditionFailed,
                "'" + condition.key + "' " +
                    (condition.exists.value_or(false) ? "does not exist" : "exists (" + now + ")"));
}

Status KeyReused(const std::string& key) {
  // With [auth] the key is kept as "<key> <client>" (api::ScopedIdempotencyKey): the client's
  // own key is the part before the space.
  return Status(StatusCode::kIdempotencyKeyReused,
                "idempotency key '" + key.substr(0, key.find(' ')) +
                    "' was already used for a different request (another document or operation)");
}

}  // namespace

Result<std::optional<Receipt>> Region::FindReplay(const WriteRequest& write, uint64_t fingerprint,
                                                  uint64_t now_ms) {
  auto found = store_->GetIdempotency(write.idempotency_key);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return std::optional<Receipt>();
  if (idempotency_window_ms_ > 0 && (*found)->time_ms + idempotency_window_ms_ <= now_ms) {
    return std::optional<Receipt>();  // expired: a new write
  }
  uint64_t recorded = 0;
  auto receipt = DecodeReplay((*found)->record, &recorded);
  if (!receipt.ok()) return receipt.status();
  if (recorded != fingerprint) return KeyReused(write.idempotency_key);
  return std::optional<Receipt>(std::move(receipt).value());
}

Region::Region(core::RegionId id, std::map<core::RegionId, std::string> names,
               storage::Store* store, core::PhysicalClock* clock, core::Limits limits,
               uint64_t max_skew_ms, size_t document_cache_max, ViewCache* views)
    : id_(id),
      names_(std::move(names)),
      regions_(IdsOf(names_)),
      store_(store),
      physical_clock_(clock),
      limits_(limits),
      clock_(clock, max_skew_ms),
      order_(id),
      document_cache_max_(document_cache_max),
      views_(views) {}

Status Region::Recover() {
  auto recovered = store_->Recover();
  if (!recovered.ok()) return recovered.status();
  // The home records (at most one per configured prefix) and the locks (one per key a two-phase
  // transaction holds) as committed: short scans.
  for (std::string_view prefix : {kHomeKeyPrefix, kLockKeyPrefix}) {
    if (prefix == kHomeKeyPrefix && homes_ == nullptr) continue;
    std::string after;
    for (bool more = true; more;) {
      auto page =
          store_->ScanViews(prefix, after, 256, [&](std::string_view key, std::string_view doc) {
            if (prefix == kHomeKeyPrefix) {
              homes_->Note(key, std::string(doc));
            } else {
              locks_.Note(key, std::string(doc));
            }
            after = key;
          });
      if (!page.ok()) return page.status();
      more = *page;
    }
  }
  std::lock_guard lock(mutex_);
  if (!recovered->frontier.Dominates(recovered->folded)) {
    return Status(StatusCode::kCorruption,
                  "the position record's fold bound " + recovered->folded.ToString() +
                      " exceeds its frontier " + recovered->frontier.ToString());
  }
  auto layers = DecodeLayers(recovered->reseed);
  if (!layers.ok()) return layers.status();
  order_ = core::CausalOrder(id_, recovered->frontier);
  folded_ = recovered->folded;
  layers_ = std::move(layers).value();
  clock_.Restore(recovered->hlc);
  last_lsn_ = recovered->last_lsn;
  documents_ = recovered->documents;
  digest_ = recovered->digest;
  auto marks = store_->DamageMarks(std::numeric_limits<size_t>::max());
  if (!marks.ok()) return marks.status();
  for (storage::DamageMark& mark : *marks) damaged_[mark.key] = std::move(mark.reason);
  auto saved = store_->LoadTree();
  if (!saved.ok()) return saved.status();
  // The leaves of the buckets touched since the last save are taken from the documents.
  bool lost = false;  // a document the index lists has no readable record
  for (uint32_t bucket : saved->stale) {
    auto leaf = BucketLeaf(
        bucket, [](std::string_view) { return false; }, &lost);
    if (!leaf.ok()) return leaf.status();
    saved->leaves[bucket] = *leaf;
  }
  tree_.Assign(saved->leaves);
  if (tree_.Root() != digest_) {
    // A lost record explains the difference: its digest is unknown, and the document is found
    // damaged when next read or scrubbed, its leaf already without it. Otherwise the tree does
    // not match the documents (a data directory from before the index existed): the index is
    // built once from the documents.
    if (!lost) return RebuildIndex();
    digest_ = tree_.Root();
  }
  if (!saved->stale.empty()) {
    std::vector<uint32_t> chunks;
    for (uint32_t bucket : saved->stale) chunks.push_back(bucket / storage::Store::kTreeChunk);
    chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
    return store_->SaveTree(tree_.Leaves(), chunks);
  }
  return Status::Ok();
}

Status Region::BucketEntries(uint32_t bucket,
                             const std::function<void(std::string_view, uint64_t)>& visit) const {
  std::vector<std::string> keys;
  if (Status status =
          store_->ScanBucket(bucket, [&](std::string_view key) { keys.emplace_back(key); });
      !status.ok()) {
    return status;
  }
  for (const std::string& key : keys) {
    auto record = store_->GetDocument(key);
    if (!record.ok() && record.status().code() != StatusCode::kCorruption) return record.status();
    visit(key, record.ok() && record->has_value() ? (*record)->digest : 0);
  }
  return Status::Ok();
}

Result<uint64_t> Region::BucketLeaf(uint32_t bucket,
                                    const std::function<bool(std::string_view)>& lost,
                                    bool* unreadable) {
  uint64_t leaf = 0;
  Status status = BucketEntries(bucket, [&](std::string_view key, uint64_t digest) {
    if (digest == 0 && unreadable != nullptr) *unreadable = true;
    if (!lost(key)) leaf ^= digest;
  });
  if (!status.ok()) return status;
  return leaf;
}

void Region::NoteTreeSaved(std::span<const uint32_t> touched) {
  if (touched.empty()) return;
  ++unsaved_commits_;
  for (uint32_t bucket : touched) {
    if (!unsaved_[bucket]) {
      unsaved_[bucket] = true;
      ++unsaved_buckets_;
    }
  }
  if (unsaved_buckets_ < kSaveTreeBuckets && unsaved_commits_ < kSaveTreeCommits) return;
  std::vector<uint32_t> chunks;
  for (uint32_t first = 0; first < core::DigestTree::kBuckets;
       first += storage::Store::kTreeChunk) {
    const auto begin = unsaved_.begin() + first;
    if (std::find(begin, begin + storage::Store::kTreeChunk, true) !=
        begin + storage::Store::kTreeChunk) {
      chunks.push_back(first / storage::Store::kTreeChunk);
    }
  }
  // Only this thread changes the tree. A save that fails leaves the journal as it was: the next
  // Recover recomputes those leaves instead, and the next commit tries to save again.
  if (!store_->SaveTree(tree_.Leaves(), chunks).ok()) return;
  std::fill(unsaved_.begin(), unsaved_.end(), false);
  unsaved_buckets_ = 0;
  unsaved_commits_ = 0;
}

Status Region::RebuildIndex() {
  if (Status status = store_->ClearDigests(); !status.ok()) return status;
  std::vector<uint64_t> leaves(core::DigestTree::kBuckets, 0);
  std::vector<std::string> page;
  std::string after;
  uint64_t documents = 0;
  uint64_t digest = 0;
  for (bool more = true; more;) {
    page.clear();
    auto scanned =
        store_->ScanViews("", after, 4096, [&](std::string_view key, std::string_view view) {
          const uint64_t entry = core::RenderedDigest(key, std::string(view));
          page.emplace_back(key);
          leaves[core::DigestTree::BucketOf(key)] ^= entry;
          digest ^= entry;
          ++documents;
        });
    if (!scanned.ok()) return scanned.status();
    more = *scanned;
    if (page.empty()) break;
    after = page.back();
    if (Status status = store_->PutMembers(page); !status.ok()) return status;
  }
  tree_.Assign(leaves);
  std::vector<uint32_t> chunks(core::DigestTree::kBuckets / storage::Store::kTreeChunk);
  std::iota(chunks.begin(), chunks.end(), 0u);
  if (Status status = store_->SaveTree(tree_.Leaves(), chunks); !status.ok()) return status;
  documents_ = documents;
  digest_ = digest;
  index_rebuilt_ = true;
  return Status::Ok();
}

Status Region::TrimLogs() {
  auto kept = store_->Kept();
  if (!kept.ok()) return kept.status();
  // Only this thread commits, so the last lsn and the conflict count stay put until the trims.
  const uint64_t last_lsn = this->last_lsn();
  if (changes_kept_ > 0 && last_lsn + 1 > kept->oldest_lsn + changes_kept_) {
    if (Status status = store_->TrimChanges(last_lsn + 1 - changes_kept_); !status.ok()) {
      return status;
    }
  }
  auto conflicts = store_->ConflictCount();
  if (!conflicts.ok()) return conflicts.status();
  if (conflicts_kept_ > 0 && *conflicts + 1 > kept->oldest_conflict + conflicts_kept_) {
    return store_->TrimConflicts(*conflicts + 1 - conflicts_kept_);
  }
  return Status::Ok();
}

Result<Region::Loaded> Region::Load(const std::string& key) {
  if (auto it = cache_.find(key); it != cache_.end() && it->second.valid) {
    // Checked out, not copied: the group's commit puts it back (Remember); until then, or if the
    // commit never happens, the entry is a miss.
    it->second.valid = false;
    std::optional<std::string> rendered = std::move(it->second.rendered);
    return Loaded{std::move(it->second.state), rendered, std::move(rendered)};
  }
  auto bytes = store_->GetDocumentState(key);
  if (!bytes.ok() && bytes.status().code() != StatusCode::kCorruption) return bytes.status();
  std::string damage;
  if (bytes.ok() && bytes->has_value()) {
    auto state = core::DocumentState::Decode(**bytes);
    if (state.ok()) {
      std::optional<std::string> rendered = state->Render();
      return Loaded{std::move(state).value(), rendered, rendered};
    }
    damage = "its stored state does not decode: " + state.status().message();
  } else if (!bytes.ok()) {
    damage = "its record does not read: " + bytes.status().message();
  }
  // No record, or a damaged one: the index says whether the document existed.
  auto indexed = store_->Indexed(key);
  if (!indexed.ok()) return indexed.status();
  if (damage.empty() && !*indexed) return Loaded{};  // a new document
  if (damage.empty()) damage = "its record is missing";
  Loaded loaded;
  loaded.lost = true;
  loaded.indexed = *indexed;
  loaded.damage = std::move(damage);
  return loaded;
}

void Region::Remember(const std::string& key, core::DocumentState state,
                      std::optional<std::string> rendered) {
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
  it->second = Cached{std::move(state), std::move(rendered), lru_.begin(), true};
}

Region::Group Region::BeginGroup() {
  std::lock_guard lock(mutex_);
  // Only the commit thread advances the frontier and last_lsn_, so working on copies is safe.
  Group group(core::CausalOrder(id_, order_.frontier()));
  group.lsn = last_lsn_;
  group.stable = order_.StableFrontier(regions_);
  group.folded = folded_;
  group.folded.Merge(group.stable);
  return group;
}

Result<Region::Loaded*> Region::Stage(Group& group, const std::string& key) {
  auto it = group.dirty.find(key);
  if (it == group.dirty.end()) {
    auto loaded = Load(key);
    if (!loaded.ok()) return loaded.status();
    // Stable before the group began, so also for the group's events: fold before merging them.
    // Not a document with a pending dead letter: its parked event may need what Fold drops.
    if (!group.stable.empty() && !Pending(group, key)) loaded->state.Fold(group.stable);
    it = group.dirty.emplace(key, std::move(loaded).value()).first;
  }
  return &it->second;
}

void Region::ObserveFrontier(core::RegionId origin, const core::VersionVector& frontier) {
  if (!names_.contains(origin)) return;
  std::lock_guard lock(mutex_);
  order_.ObserveFrontier(origin, frontier);
}

core::VersionVector Region::StableFrontier() const {
  std::lock_guard lock(mutex_);
  return order_.StableFrontier(regions_);
}

Status Region::FoldSweep(size_t limit, size_t* folded) {
  *folded = 0;
  Group group = BeginGroup();
  if (group.stable.empty()) return Status::Ok();
  if (fold_cursor_.empty()) {
    // A new pass only once more has become stable than the last complete pass folded with:
    // documents written since were folded as they were written. An idle region reads nothing.
    if (group.stable == swept_stable_) return Status::Ok();
    pass_stable_ = group.stable;
  }
  std::string last;
  auto more = store_->ScanDocumentStates(
      fold_cursor_, limit, [&](std::string_view key, std::string_view bytes) {
        last = key;
        if (pending_keys_.contains(std::string(key))) return;  // a pending dead letter needs it
        auto state = core::DocumentState::Decode(bytes);
        if (!state.ok()) return;  // left for a read or write to report
        const size_t before = state->MetadataEntries();
        state->Fold(group.stable);
        if (state->MetadataEntries() == before && !state->empty()) return;
        // Folding changes no render: the document renders before as after.
        std::optional<std::string> rendered = state->Render();
        group.dirty.emplace(std::string(key), Loaded{std::move(state).value(), rendered, rendered});
      });
  if (!more.ok()) return more.status();
  if (*more) {
    fold_cursor_ = last;
  } else {
    fold_cursor_.clear();
    swept_stable_ = pass_stable_;
  }
  if (group.dirty.empty()) return Status::Ok();
  std::vector<Change> no_changes;
  if (Status status = Finish(group, 0, 0, &no_changes); !status.ok()) return status;
  *folded = group.dirty.size();
  return Status::Ok();
}

std::string Region::EncodeLayers(const std::vector<Layer>& layers) {
  std::string out;
  if (layers.empty()) return out;
  core::PutVarint(&out, layers.size());
  for (const Layer& layer : layers) {
    core::PutVarint(&out, layer.through.size());
    out += layer.through;
    layer.applied.EncodeTo(&out);
    layer.folded.EncodeTo(&out);
  }
  return out;
}

Result<std::vector<Region::Layer>> Region::DecodeLayers(std::string_view in) {
  std::vector<Layer> layers;
  if (in.empty()) return layers;
  const Status bad(StatusCode::kCorruption, "the re-seed progress record does not decode");
  uint64_t count = 0;
  if (!core::GetVarint(&in, &count) || count == 0 || count > in.size()) return bad;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t size = 0;
    if (!core::GetVarint(&in, &size) || size > in.size()) return bad;
    Layer layer;
    layer.through = std::string(in.substr(0, size));
    in.remove_prefix(size);
    auto applied = core::VersionVector::DecodeFrom(&in);
    if (!applied.ok()) return bad;
    auto folded = core::VersionVector::DecodeFrom(&in);
    if (!folded.ok()) return bad;
    layer.applied = std::move(applied).value();
    layer.folded = std::move(folded).value();
    if (!layers.empty() && layers.back().through >= layer.through) return bad;
    layers.push_back(std::move(layer));
  }
  if (!in.empty()) return bad;
  return layers;
}

bool Region::merging() const {
  std::lock_guard lock(mutex_);
  return !layers_.empty();
}

Status Region::MergeSnapshotPage(const SnapshotPage& page, std::vector<Change>* changes) {
  MERIDIAN_CHECK(!page.through || *page.through > page.after);
  // How many of this region's documents one commit merges at most (beside the page's own).
  constexpr size_t kLocalPage = 4096;
  core::VersionVector frontier;
  core::VersionVector folded;
  std::vector<Layer> layers;
  {
    std::lock_guard lock(mutex_);
    frontier = order_.frontier();
    folded = folded_;
    layers = layers_;
  }
  // Documents merged with an earlier snapshot hold what it covered: this one must cover that
  // too, or the frontier at the end would not say what every document holds.
  core::VersionVector reach = frontier;
  reach.Merge(page.applied);
  for (const Layer& layer : layers) {
    if (!reach.Dominates(layer.applied)) {
      return Status(StatusCode::kUnavailable, "the snapshot at " + page.applied.ToString() +
                                                  " is older than one already merged here (" +
                                                  layer.applied.ToString() +
                                                  "); ask a region that has applied more");
    }
  }
  // What a merged document holds and was folded within: every snapshot merged so far covers
  // what the earlier ones did, so the fold bounds of all of them hold.
  core::VersionVector merged_folded = folded;
  merged_folded.Merge(page.folded);
  for (const Layer& layer : layers) merged_folded.Merge(layer.folded);
  // This region's side of a document, by key.
  const auto side = [&](std::string_view key)
      -> std::pair<const core::VersionVector*, const core::VersionVector*> {
    for (const Layer& layer : layers) {
      if (key <= layer.through) return {&layer.applied, &layer.folded};
    }
    return {&frontier, &folded};
  };

  const core::DocumentState none;
  size_t next = 0;  // into page.states
  std::string cursor = page.after;
  for (;;) {
    // This region's documents after the cursor, up to the page's end.
    std::vector<std::pair<std::string, std::string>> local;
    bool more_local = false;
    auto scanned = store_->ScanDocumentStates(
        cursor, kLocalPage, [&](std::string_view key, std::string_view bytes) {
          if (page.through && key > *page.through) return;
          local.emplace_back(std::string(key), std::string(bytes));
        });
    if (!scanned.ok()) return scanned.status();
    more_local = *scanned && local.size() == kLocalPage;
    // This commit covers (cursor, upto]: up to the page's end, or to the last local document read
    // when more may follow.
    const std::optional<std::string> upto =
        more_local ? std::optional<std::string>(local.back().first) : page.through;

    Group group = BeginGroup();
    group.cache = false;
    group.dirty.reserve(local.size() + page.states.size() - next);
    size_t mine = 0;
    while (true) {
      const bool have_theirs =
          next < page.states.size() && (!upto || page.states[next].first <= *upto);
      const bool have_mine = mine < local.size();
      if (!have_theirs && !have_mine) break;
      const bool take_mine =
          have_mine && (!have_theirs || local[mine].first <= page.states[next].first);
      const bool take_theirs =
          have_theirs && (!have_mine || page.states[next].first <= local[mine].first);
      const std::string& key = take_mine ? local[mine].first : page.states[next].first;
      core::DocumentState held;
      std::optional<std::string> rendered_before;
      // This region's copy is damaged (unreadable, or its record lost while the index lists it):
      // it takes the peer's state as it is (merged with nothing), and stays marked until a
      // comparison finds it whole (docs/verification.md).
      std::string damage;
      if (take_mine && IsDamaged(key)) {
        // Marked here: it holds less than this region applied, so it merges as nothing and
        // stays marked.
        damage = "marked damaged before the re-seed";
      } else if (take_mine) {
        auto decoded = core::DocumentState::Decode(local[mine].second);
        if (decoded.ok()) {
          held = std::move(decoded).value();
          rendered_before = held.Render();
        } else {
          damage = "its stored state does not decode: " + decoded.status().message();
        }
      }
      bool indexed = false;
      if (!damage.empty() || !take_mine) {
        auto entry = store_->Indexed(key);
        if (!entry.ok()) return entry.status();
        if (*entry && damage.empty()) damage = "its record is missing";
        indexed = *entry;
      }
      core::DocumentState theirs;
      if (take_theirs) {
        auto decoded = core::DocumentState::Decode(page.states[next].second);
        if (!decoded.ok()) {
          return Status(
              StatusCode::kCorruption,
              "re-seed: the state of " + key + " does not decode: " + decoded.status().message());
        }
        theirs = std::move(decoded).value();
      }
      const auto [mine_applied, mine_folded] = side(key);
      const core::VersionVector nothing;
      const core::VersionVector* applied = damage.empty() ? mine_applied : &nothing;
      const core::VersionVector* held_folded = damage.empty() ? mine_folded : &nothing;
      Loaded loaded;
      loaded.lost = !damage.empty();
      loaded.indexed = indexed;
      loaded.damage = damage;
      if (take_theirs &&
          std::find(page.damaged.begin(), page.damaged.end(), key) != page.damaged.end()) {
        // Damaged at the source: what it sent may hold less than its frontier says.
        if (loaded.damage.empty()) loaded.damage = "damaged at the re-seed's source";
      }
      if (!take_mine && applied->empty() && take_theirs) {
        // Nothing here to merge with (the region held nothing when the merge began): the
        // merge would only fold the state within the peer's bound, which it already is. It is
        // stored as it came.
        loaded.encoded = page.states[next].second;
        loaded.state = std::move(theirs);
      } else {
        auto merged = core::MergeStates({take_mine ? held : none, *applied, *held_folded},
                                        {take_theirs ? theirs : none, page.applied, page.folded});
        if (!merged.ok()) {
          return Status(merged.status().code(),
                        "re-seed: document '" + key + "': " + merged.status().message());
        }
        loaded.state = std::move(merged).value();
      }
      NoteEscrowGap(loaded, key);
      std::optional<std::string> rendered = loaded.state.Render();
      if (rendered != rendered_before) {
        // A change watches see; no one event made it.
        ++group.lsn;
        group.batch.changes.push_back(
            storage::LoggedEvent{core::Dot{0, 0}, group.lsn, {}, rendered, key, page.hlc});
      }
      loaded.rendered_before = std::move(rendered_before);
      loaded.rendered = std::move(rendered);
      group.dirty.insert_or_assign(key, std::move(loaded));
      if (take_mine) ++mine;
      if (take_theirs) ++next;
    }

    const bool finished = !upto;
    {
      std::lock_guard lock(mutex_);
      if (page.hlc != 0) clock_.Observe(page.hlc);
      if (finished) {
        layers_.clear();
      } else {
        // Every document up to `upto` now holds what this snapshot covers; the layers beyond
        // keep what they said.
        std::erase_if(layers_, [&](const Layer& layer) { return layer.through <= *upto; });
        layers_.insert(layers_.begin(), Layer{*upto, reach, merged_folded});
      }
    }
    if (finished) {
      // The group's frontier and fold bound become the joins (Finish records them).
      group.order.MergeFrontier(page.applied);
      group.folded.Merge(merged_folded);
    }
    if (Status status = Finish(group, 0, 0, changes); !status.ok()) {
      std::lock_guard lock(mutex_);
      layers_ = std::move(layers);  // as committed before
      return status;
    }
    layers = [&] {
      std::lock_guard lock(mutex_);
      return layers_;
    }();
    if (finished || upto == page.through) break;
    cursor = *upto;
  }
  return Status::Ok();
}

Status Region::ClearDocuments() {
  if (Status status = store_->ClearDocuments(); !status.ok()) return status;
  {
    std::lock_guard lock(mutex_);
    documents_ = 0;
    digest_ = 0;
    tree_.Clear();
    layers_.clear();
  }
  if (views_ != nullptr) views_->Clear();
  cache_.clear();
  lru_.clear();
  Group group = BeginGroup();
  std::vector<Change> none;
  return Finish(group, 0, 0, &none);  // records the count and digest
}

Result<std::optional<std::string>> Region::Merge(Group& group, Loaded& loaded,
                                                 const core::Event& event, bool enforce_size,
                                                 bool advance) {
  std::optional<std::string> rendered;
  if (enforce_size) {
    // Merge into a copy: a refused write must leave the document as it was.
    const size_t conflicts_before = group.conflicts.size();
    core::DocumentState candidate = loaded.state;
    candidate.Apply(event, &group.conflicts);
    rendered = candidate.Render();
    if (rendered && rendered->size() > limits_.document_bytes_max) {
      group.conflicts.resize(conflicts_before);
      return TooLarge("the document would be " + std::to_string(rendered->size()) +
                      " bytes; the limit is " + std::to_string(limits_.document_bytes_max));
    }
    loaded.state = std::move(candidate);
  } else {
    loaded.state.Apply(event, &group.conflicts);
    rendered = loaded.state.Render();
  }
  loaded.rendered = rendered;
  NoteEscrowGap(loaded, event.key);
  if (advance) group.order.Advance(event.dot, event.context);
  ++group.lsn;
  group.batch.events.push_back(storage::LoggedEvent{event.dot, group.lsn, core::EncodeEvent(event),
                                                    rendered, event.key, event.hlc, event.trace});
  return rendered;
}

Status Region::Finish(Group& group, size_t local_events, size_t remote_events,
                      std::vector<Change>* changes) {
  std::unique_lock lock(mutex_);
  uint64_t documents = documents_;
  uint64_t digest = digest_;
  group.batch.hlc = clock_.last();
  lock.unlock();
  // The tree's leaves change with the documents' digests (0: absent), applied once durable.
  std::vector<std::pair<uint32_t, uint64_t>> toggles;
  std::vector<uint32_t> lost_buckets;
  std::vector<std::pair<std::string, std::string>> marked;  // key, reason
  for (const auto& [key, loaded] : group.dirty) {
    storage::DocumentWrite document;
    document.key = key;
    document.state = loaded.state.empty()      ? std::string()
                     : !loaded.encoded.empty() ? std::move(loaded.encoded)
                                               : loaded.state.Encode();
    document.rendered = loaded.rendered;
    // A lost record's digest is unknown: its bucket's leaf is recomputed below.
    const bool existed = loaded.lost ? loaded.indexed : loaded.rendered_before.has_value();
    const uint64_t before = !loaded.lost && loaded.rendered_before
                                ? core::RenderedDigest(key, loaded.rendered_before)
                                : 0;
    const uint64_t after = document.rendered ? core::RenderedDigest(key, document.rendered) : 0;
    if (existed) --documents;
    if (document.rendered) ++documents;
    document.digest = after;
    document.reindex = existed != document.rendered.has_value();
    const uint32_t bucket = core::DigestTree::BucketOf(key);
    if (before != after) {
      digest ^= before ^ after;
      if (tree_on_) toggles.emplace_back(bucket, before ^ after);
    }
    if (loaded.lost && loaded.indexed && tree_on_) lost_buckets.push_back(bucket);
    // Found damaged now. A copy marked only for its parked events takes the new reason: it may
    // lack more than they bring back now, so applying them must not unmark it (RetryDeadLetter).
    if (!loaded.damage.empty() && (!IsDamaged(key) || MarkedOnlyForParked(key))) {
      group.batch.marks.push_back(storage::DamageMark{key, loaded.damage});
      group.batch.repairs.push_back(
          RepairJson(key, 0, loaded.damage, "marked for repair", std::nullopt, document.rendered));
      marked.emplace_back(key, loaded.damage);
    }
    group.batch.documents.push_back(std::move(document));
  }
  for (const auto& [key, count] : group.parked_keys) {
    // A remote event of it was parked: this copy lacks what the regions that applied it hold,
    // and is repaired from one of them (docs/verification.md).
    if (count == 0 || IsDamaged(key)) continue;
    // Marked by this commit for damage found now: that reason stands (the copy lacks more).
    if (auto it = group.dirty.find(key); it != group.dirty.end() && !it->second.damage.empty()) {
      continue;
    }
    const std::string reason(kParkedReason);
    group.batch.marks.push_back(storage::DamageMark{key, reason});
    group.batch.repairs.push_back(
        RepairJson(key, 0, reason, "marked for repair", std::nullopt, std::nullopt));
    marked.emplace_back(key, reason);
  }
  for (const std::string& key : group.repaired) {
    group.batch.marks.push_back(storage::DamageMark{key, {}});
  }
  std::sort(lost_buckets.begin(), lost_buckets.end());
  lost_buckets.erase(std::unique(lost_buckets.begin(), lost_buckets.end()), lost_buckets.end());
  for (uint32_t bucket : lost_buckets) {
    // What the bucket's leaf holds beyond its other documents' recorded digests (read before
    // this commit) is what the lost ones held: it leaves the tree and the digest.
    auto leaf = BucketLeaf(bucket, [&group](std::string_view key) {
      auto it = group.dirty.find(std::string(key));
      return it != group.dirty.end() && it->second.lost;
    });
    if (!leaf.ok()) return leaf.status();
    const uint64_t delta = tree_.Leaves()[bucket] ^ *leaf;
    digest ^= delta;
    toggles.emplace_back(bucket, delta);
  }
  for (const auto& [bucket, delta] : toggles) group.batch.touched.push_back(bucket);
  std::sort(group.batch.touched.begin(), group.batch.touched.end());
  group.batch.touched.erase(std::unique(group.batch.touched.begin(), group.batch.touched.end()),
                            group.batch.touched.end());
  group.batch.document_count = documents;
  group.batch.digest = digest;
  for (const core::Conflict& conflict : group.conflicts)
    group.batch.conflicts.push_back(ConflictJson(conflict));
  group.batch.frontier = group.order.frontier();
  group.batch.folded = group.folded;
  MERIDIAN_CHECK(group.batch.frontier.Dominates(group.batch.folded));
  lock.lock();
  group.batch.reseed = EncodeLayers(layers_);
  lock.unlock();

  if (group.atomic && views_ != nullptr) {
    // A transaction's documents are read from the store until the commit is durable (one atomic
    // batch) and their new views are in: a reader never finds some of them new, others old.
    for (const auto& [key, loaded] : group.dirty) views_->Forget(key);
  }
  if (Status status = store_->Commit(group.batch); !status.ok()) return status;
  // The tables follow every home and lock record the group changed, however it changed: a
  // write, a remote event, a re-seed's merge, a repair, a rebuild from the log, a dead letter.
  for (const auto& [key, loaded] : group.dirty) {
    if (!key.starts_with(kSystemKeyPrefix) || loaded.rendered == loaded.rendered_before) continue;
    if (key.starts_with(kHomeKeyPrefix) && homes_ != nullptr) homes_->Note(key, loaded.rendered);
    if (key.starts_with(kLockKeyPrefix)) locks_.Note(key, loaded.rendered);
  }
  for (auto& [key, loaded] : group.dirty) {
    if (views_ != nullptr) views_->Put(key, loaded.rendered);  // before the frontier covers it
    if (group.cache) {
      Remember(key, std::move(loaded.state), std::move(loaded.rendered));
    } else if (auto cached = cache_.find(key); cached != cache_.end()) {
      cached->second.valid = false;  // stale now
    }
  }
  lock.lock();
  // The group's order began at the committed frontier and only this thread advances it: the
  // join takes the group's frontier and what its events taught, and keeps the frontier reports
  // observed meanwhile.
  order_.Join(group.order);
  // Watched documents note the group's events together with the frontier that covers them: a
  // comparison that began watching between an event's merge and this join read a frontier
  // without it, so the event must be among its watched dots (replication::Verifier: the frontier
  // it asked at and the watched dots together cover every event of this region's copy).
  if (!watched_.empty()) {
    for (const storage::LoggedEvent& logged : group.batch.events)
      NoteWatched(logged.key, logged.dot);
    for (const storage::LoggedEvent& logged : group.batch.parked) {
      if (!logged.key.empty()) NoteWatched(logged.key, logged.dot);
    }
    // A change without an event (a re-seed's merge, a repair, a rebuild) may bring events the
    // peer being compared lacks, which no dot names: nothing can be told of that copy any more.
    for (const storage::LoggedEvent& change : group.batch.changes) {
      if (change.dot.seq != 0) continue;
      if (auto it = watched_.find(change.key); it != watched_.end()) it->second.overflow = true;
    }
  }
  folded_ = group.folded;
  last_lsn_ = group.lsn;
  documents_ = documents;
  digest_ = digest;
  for (const auto& [bucket, delta] : toggles) tree_.Toggle(bucket, delta);
  MERIDIAN_CHECK(!tree_on_ || tree_.Root() == digest_);
  if (!marked.empty()) ++marks_made_;
  for (auto& [key, reason] : marked) damaged_.insert_or_assign(std::move(key), std::move(reason));
  for (const std::string& key : group.repaired) damaged_.erase(key);
  stats_.commits += 1;
  stats_.events += local_events;
  stats_.remote_events += remote_events;
  stats_.conflicts += group.conflicts.size();
  lock.unlock();
  NoteTreeSaved(group.batch.touched);
  // The store has the batch: its records become the changes watchers see, without copies.
  changes->reserve(changes->size() + group.batch.events.size() + group.batch.changes.size());
  for (storage::LoggedEvent& event : group.batch.events) {
    changes->push_back(Change{std::move(event.key), std::move(event.rendered), event.dot, event.hlc,
                              event.lsn, std::move(event.trace)});
  }
  for (storage::LoggedEvent& change : group.batch.changes) {
    changes->push_back(Change{std::move(change.key), std::move(change.rendered), change.dot,
                              change.hlc, change.lsn});
  }
  return Status::Ok();
}

void Region::CommitLocalWrites(std::span<const WriteRequest> writes,
                               std::vector<Result<Receipt>>* outcomes,
                               std::vector<Change>* changes) {
  std::vector<Result<RemoteApply>> no_remote;
  Commit(writes, outcomes, {}, &no_remote, changes);
}

Result<RemoteApply> Region::ApplyRemoteEvents(const RemoteEvents& events,
                                              std::vector<Change>* changes) {
  std::vector<Result<Receipt>> no_local;
  std::vector<Result<RemoteApply>> outcome;
  const RemoteEvents batches[] = {events};
  Commit({}, &no_local, batches, &outcome, changes);
  return std::move(outcome.front());
}

void Region::Commit(std::span<const WriteRequest> writes, std::vector<Result<Receipt>>* outcomes,
                    std::span<const RemoteEvents> remote,
                    std::vector<Result<RemoteApply>>* remote_outcomes,
                    std::vector<Change>* changes) {
  outcomes->clear();
  outcomes->reserve(writes.size());
  remote_outcomes->assign(remote.size(), RemoteApply{});
  const auto fail_all = [&](const Status& status) {
    const Status remote_failure(StatusCode::kUnavailable,
                                "remote events could not be made durable: " + status.message());
    for (Result<RemoteApply>& outcome : *remote_outcomes) outcome = remote_failure;
    for (Result<Receipt>& outcome : *outcomes) {
      if (outcome.ok()) {
        outcome = Status(StatusCode::kUnavailable,
                         "the write could not be made durable: " + status.message());
      }
    }
  };
  if (merging()) {
    // Documents hold events the frontier does not cover until the merge ends: nothing is
    // applied beside it.
    const Status busy(StatusCode::kRebuilding, "this region is being re-seeded");
    for (Result<RemoteApply>& outcome : *remote_outcomes) outcome = busy;
    for (size_t w = 0; w < writes.size(); ++w) outcomes->push_back(busy);
    return;
  }
  Group group = BeginGroup();
  size_t events_max = writes.size();
  for (const RemoteEvents& batch : remote) events_max += batch.events.size();
  group.batch.events.reserve(events_max);
  size_t local_events = 0;
  size_t remote_events = 0;
  size_t parked_events = 0;
  // Bounded counters: keys another region's escrow operations reached, keys a local decrement
  // left below low_water, and the escrow events written, noted once the group is durable.
  std::vector<std::string> escrow_keys;
  EscrowStats escrow_written;

  // Other regions' events first: the local writes of this group then see them.
  bool remote_failed = false;
  // The group holds part of a batch: drop every remote batch (their streams resend them) and go
  // on with the local writes alone, in a fresh group.
  const auto drop_remote = [&](const Status& why) {
    const Status failure(StatusCode::kUnavailable,
                         "remote events could not be applied: " + why.message());
    for (Result<RemoteApply>& failed : *remote_outcomes) failed = failure;
    group = BeginGroup();
    group.batch.events.reserve(writes.size());
    remote_events = 0;
    parked_events = 0;
    remote_failed = true;
  };
  for (size_t i = 0; i < remote.size() && !remote_failed; ++i) {
    RemoteApply& outcome = (*remote_outcomes)[i].value();
    const RemoteEvents& batch = remote[i];
    // The events and the parked events in one order, by seq: each origin's stays in seq order.
    size_t next_event = 0;
    size_t next_parked = 0;
    while (next_event < batch.events.size() || next_parked < batch.parked.size()) {
      const bool parked = next_parked < batch.parked.size() &&
                          (next_event == batch.events.size() ||
                           batch.parked[next_parked].dot.seq < batch.events[next_event].dot.seq);
      const core::Dot dot = parked ? batch.parked[next_parked].dot : batch.events[next_event].dot;
      // This region's own events come back only while it rebuilds (its peers send them when
      // asked): the same rule as any origin's applies.
      const core::CausalOrder::Arrival arrival = group.order.Classify(dot);
      if (arrival != core::CausalOrder::Arrival::kNext) {
        if (arrival == core::CausalOrder::Arrival::kDuplicate) {
          ++outcome.duplicates;
        } else {
          ++outcome.gaps;  // its predecessors have not arrived: not applied (no buffering here)
        }
        ++(parked ? next_parked : next_event);
        continue;
      }
      if (parked) {
        if (Status status = Park(group, batch.parked[next_parked++], &outcome); !status.ok()) {
          drop_remote(status);
          break;
        }
        ++parked_events;
        continue;
      }
      if (batch.events[next_event].txn_rest > 0) {
        // A transaction is applied whole, in one commit: when the batch does not hold the rest of
        // it (a sender keeps transactions whole, replication::ReadForSend), nothing from here on is
        // applied, and the stream resends it.
        if (!TransactionWhole(batch, next_event, next_parked)) {
          outcome.gaps += batch.events.size() - next_event + batch.parked.size() - next_parked;
          break;
        }
        group.atomic = true;
      }
      const core::Event& event = batch.events[next_event++];
      Result<Loaded*> loaded = Stage(group, event.key);
      if (!loaded.ok()) {
        drop_remote(loaded.status());
        break;
      }
      {
        std::lock_guard lock(mutex_);
        clock_.Observe(event.hlc);
      }
      // A remote event is merged whatever its size: refusing it would stop convergence.
      auto merged = Merge(group, **loaded, event, /*enforce_size=*/false);
      if (!merged.ok()) {
        for (size_t w = 0; w < writes.size(); ++w) outcomes->push_back(merged.status());
        fail_all(merged.status());
        return;
      }
      if (event.key.starts_with(kSystemKeyPrefix)) NoteSystemRecord(group, event.key, *merged);
      ++outcome.applied;
      ++remote_events;
      outcome.applied_hlcs.push_back(event.hlc);
      if (event.op.kind == core::OpKind::kEscrow && event.dot.origin != id_) {
        escrow_keys.push_back(event.key);
      }
    }
  }

  std::vector<size_t> accepted;  // indexes into *outcomes of writes in the group
  // Retries of writes earlier in this group: (outcome index, index of the original).
  std::vector<std::pair<size_t, size_t>> repeats;
  const uint64_t now_ms = physical_clock_->NowMs();
  const bool rebuilding = rebuilding_.load();
  for (const WriteRequest& write : writes) {
    if (rebuilding) {
      outcomes->push_back(Status(StatusCode::kRebuilding,
                                 "region " + NameOf(id_) +
                                     " is rebuilding: it is getting its own events back from the "
                                     "other regions and takes writes again once it has them "
                                     "(GET /readyz); reads answer from what it holds"));
      continue;
    }
    uint64_t fingerprint = 0;
    if (!write.idempotency_key.empty()) {
      fingerprint = RequestFingerprint(write);
      if (auto it = group.idempotent.find(write.idempotency_key); it != group.idempotent.end()) {
        if (it->second.first != fingerprint) {
          outcomes->push_back(KeyReused(write.idempotency_key));
        } else {
          outcomes->push_back(Receipt{});
          repeats.emplace_back(outcomes->size() - 1, it->second.second);
        }
        continue;
      }
      auto replay = FindReplay(write, fingerprint, now_ms);
      if (!replay.ok() || replay->has_value()) {
        if (replay.ok()) {
          outcomes->push_back(std::move(**replay));
        } else {
          outcomes->push_back(replay.status());
        }
        continue;
      }
    }
    if (Status refused = CheckWriteKeys(group, write); !refused.ok()) {
      outcomes->push_back(std::move(refused));
      continue;
    }
    if (write.txn && write.condition) {
      // The transaction's guard.
      Result<Loaded*> loaded = Stage(group, write.condition->key);
      if (!loaded.ok()) {
        outcomes->push_back(loaded.status());
        continue;
      }
      if (!ConditionHolds(*write.condition, (*loaded)->rendered)) {
        outcomes->push_back(PreconditionFailed(*write.condition, (*loaded)->rendered));
        continue;
      }
    }
    if (write.txn) {
      Result<Receipt> receipt = StageTransaction(group, *write.txn, write.trace);
      if (!receipt.ok()) {
        if (receipt.status().code() == StatusCode::kBoundExceeded) {
          for (const auto* ops : {&write.txn->then_ops, &write.txn->else_ops}) {
            for (const KeyedOperation& op : *ops) NoteEscrowRefusal(op.key, op.op);
          }
        }
        outcomes->push_back(receipt.status());
        continue;
      }
      local_events += receipt->events.size();
      outcomes->push_back(std::move(receipt));
      accepted.push_back(outcomes->size() - 1);
      if (!write.idempotency_key.empty()) {
        group.idempotent.emplace(write.idempotency_key,
                                 std::make_pair(fingerprint, outcomes->size() - 1));
      }
      continue;
    }
    Result<Loaded*> loaded = Stage(group, write.key);
    if (!loaded.ok()) {
      outcomes->push_back(loaded.status());
      continue;
    }
    if (write.condition && !ConditionHolds(*write.condition, (*loaded)->rendered)) {
      outcomes->push_back(PreconditionFailed(*write.condition, (*loaded)->rendered));
      continue;
    }
    if (core::RepeatedDeclaration(write.op, &(*loaded)->state)) {
      // The bound is declared as asked already: nothing to write (a retry, or a second client).
      Receipt receipt;
      receipt.frontier = group.order.frontier();
      if ((*loaded)->rendered) {
        receipt.version =
            core::DocumentVersion(core::RenderedDigest(write.key, (*loaded)->rendered));
      }
      outcomes->push_back(std::move(receipt));
      accepted.push_back(outcomes->size() - 1);
      continue;
    }
    if (Status status = EscrowWritable(**loaded, write.key, write.op); !status.ok()) {
      outcomes->push_back(status);
      continue;
    }
    std::unique_lock lock(mutex_);
    Result<core::Event> event =
        core::StampLocalWrite(id_, write.key, write.op, &(*loaded)->state, group.order.frontier(),
                              &clock_, limits_, regions_);
    lock.unlock();
    if (!event.ok()) {
      if (event.status().code() == StatusCode::kBoundExceeded) {
        NoteEscrowRefusal(write.key, write.op);
      }
      outcomes->push_back(event.status());
      continue;
    }
    event->trace = write.trace;
    std::optional<std::string> before;
    if (write.want_document) before = (*loaded)->rendered;
    auto merged = Merge(group, **loaded, *event, /*enforce_size=*/true);
    if (!merged.ok()) {
      outcomes->push_back(merged.status());
      continue;
    }
    if (write.key.starts_with(kSystemKeyPrefix)) NoteSystemRecord(group, write.key, *merged);
    if (event->op.kind == core::OpKind::kEscrow) {
      switch (event->op.escrow.kind) {
        case core::EscrowOpKind::kDeclare:
          ++escrow_written.declarations;
          break;
        case core::EscrowOpKind::kTransfer:
          ++escrow_written.transfers;
          break;
        case core::EscrowOpKind::kAccept:
          ++escrow_written.accepts;
          break;
        case core::EscrowOpKind::kWant:
          ++escrow_written.wants;
          break;
      }
    }
    for (const core::CounterDelta& counter : event->op.counters) {
      if (!counter.escrow || counter.delta >= 0) continue;
      const core::EscrowLedger* ledger = (*loaded)->state.Ledger(counter.name);
      if (ledger != nullptr && ledger->declared() &&
          ledger->Rights(id_) < escrow_policy_.low_water) {
        escrow_keys.push_back(write.key);
        break;
      }
    }
    outcomes->push_back(Receipt{event->dot, event->hlc, {}});
    if (*merged) {
      outcomes->back()->version = core::DocumentVersion(core::RenderedDigest(write.key, *merged));
    }
    if (write.want_document) {
      outcomes->back()->document = *merged;
      outcomes->back()->document_before = std::move(before);
    }
    accepted.push_back(outcomes->size() - 1);
    if (!write.idempotency_key.empty()) {
      group.idempotent.emplace(write.idempotency_key,
                               std::make_pair(fingerprint, outcomes->size() - 1));
    }
    ++local_events;
  }
  if (local_events == 0 && remote_events == 0 && parked_events == 0) return;
  if (idempotency_window_ms_ > 0 && now_ms >= idempotency_purged_ms_ + 1000 &&
      now_ms > idempotency_window_ms_) {
    // Expiry rides on commits: at most once a second, a bounded number of records.
    auto expired = store_->ExpiredIdempotency(now_ms - idempotency_window_ms_, 1000);
    if (expired.ok()) group.batch.idempotency_expired = std::move(expired).value();
    idempotency_purged_ms_ = now_ms;
  }
  if (!group.idempotent.empty()) {
    // The records are written with the commit, so they are durable exactly when the writes are.
    for (const auto& [key, entry] : group.idempotent) {
      Receipt receipt = (*outcomes)[entry.second].value();
      receipt.frontier = group.order.frontier();
      group.batch.idempotency.push_back(
          storage::IdempotencyRecord{key, now_ms, EncodeReplay(entry.first, receipt)});
    }
  }
  if (Status status = Finish(group, local_events, remote_events, changes); !status.ok()) {
    fail_all(status);
    for (const auto& [index, original] : repeats) (*outcomes)[index] = (*outcomes)[original];
    return;
  }
  NotePending(group);
  for (const std::string& key : escrow_keys) NoteEscrowDue(key);
  escrow_counters_.declarations += escrow_written.declarations;
  escrow_counters_.transfers += escrow_written.transfers;
  escrow_counters_.accepts += escrow_written.accepts;
  escrow_counters_.wants += escrow_written.wants;
  // Each receipt's session covers everything committed with it (the batch is atomic).
  for (size_t index : accepted) (*outcomes)[index].value().frontier = group.order.frontier();
  for (const auto& [index, original] : repeats) {
    (*outcomes)[index] = (*outcomes)[original];
    (*outcomes)[index].value().replayed = true;
  }
}

WriteRequest HomeMoveWrite(const HomeTable& homes, const Home& next) {
  WriteRequest write{HomeTable::KeyOf(next.prefix), homes.RecordOp(next)};
  write.system = true;
  write.strong = !next.forced;
  return write;
}

Status Region::CheckHome(const Group& group, std::string_view key) const {
  std::optional<Home> home = homes_ != nullptr ? homes_->HomeOf(key) : std::nullopt;
  for (const auto& [prefix, moved] : group.homes) {
    if (key.starts_with(prefix) && (!home || prefix.size() >= home->prefix.size())) home = moved;
  }
  return IsHome(home, key);
}

Status Region::CheckStrongRead(std::string_view key) const {
  MERIDIAN_RETURN_IF_ERROR(IsHome(homes_ != nullptr ? homes_->HomeOf(key) : std::nullopt, key));
  // A prepared transaction may have committed in its coordinator: what it wrote shows here only
  // once its events, which release the lock, are applied.
  MERIDIAN_RETURN_IF_ERROR(CheckUnlocked(nullptr, key, {}));
  if (rebuilding() || merging()) {
    return Status(StatusCode::kRebuilding,
                  "region " + NameOf(id_) + " is the home of '" + std::string(key) +
                      "' but is rebuilding: it may lack strong writes it acknowledged until the "
                      "other regions have sent them back; strong reads wait until then (GET "
                      "/readyz)");
  }
  return CheckWhole(key, false);
}

Status Region::CheckWhole(std::string_view key, bool parked_now) const {
  if (!parked_now && !IsDamaged(std::string(key))) return Status::Ok();
  return Status(StatusCode::kUnavailable,
                "the home's copy of '" + std::string(key) +
                    "' is marked damaged (it lacks an event, or its record was damaged): strong "
                    "operations on it wait until a comparison with another region restores it");
}

Status Region::IsHome(const std::optional<Home>& home, std::string_view key) const {
  if (!home) {
    return Status(StatusCode::kNotHome,
                  "'" + std::string(key) + "' is under no home prefix ([[homes]])");
  }
  if (home->region != id_) {
    return Status(StatusCode::kNotHome, "region " + NameOf(id_) + " is not the home of '" +
                                            std::string(key) + "': region " + NameOf(home->region) +
                                            " is (epoch " + std::to_string(home->epoch) + ")");
  }
  return Status::Ok();
}

void Region::NoteSystemRecord(Group& group, const std::string& key,
                              const std::optional<std::string>& doc) {
  if (key.starts_with(kLockKeyPrefix)) {
    group.locks.insert_or_assign(key.substr(kLockKeyPrefix.size()),
                                 doc ? LockTable::Parse(*doc) : std::nullopt);
    return;
  }
  if (homes_ == nullptr || !doc || !key.starts_with(kHomeKeyPrefix)) return;
  if (std::optional<Home> home = homes_->Parse(key, *doc)) {
    std::string prefix = home->prefix;
    group.homes.insert_or_assign(std::move(prefix), std::move(*home));
  }
}

Status Region::CheckUnlocked(const Group* group, std::string_view key, std::string_view txn) const {
  std::optional<Lock> lock;
  bool seen = false;
  if (group != nullptr) {
    if (auto it = group->locks.find(key); it != group->locks.end()) {
      lock = it->second;
      seen = true;
    }
  }
  if (!seen) lock = locks_.LockOf(key);
  if (!lock || lock->txn == txn) return Status::Ok();
  return Status(StatusCode::kLocked, "'" + std::string(key) + "' is held by transaction " +
                                         lock->txn + " (coordinated by region " +
                                         lock->coordinator +
                                         ") until it commits or aborts; retry then");
}

Status Region::CheckWriteKeys(const Group& group, const WriteRequest& write) const {
  if (write.strong && write.system && write.lock_txn.empty()) {
    // A planned move: written by the prefix's home.
    MERIDIAN_CHECK(write.key.starts_with(kHomeKeyPrefix));
    return CheckHome(group, std::string_view(write.key).substr(kHomeKeyPrefix.size()));
  }
  // Each key the write names (every one of a transaction): only the node writes under
  // kSystemKeyPrefix; a strong write's keys need this region to be their home, with a whole copy.
  Status refused;
  const auto check = [&](const std::string& key, bool writes) {
    if (writes && key.starts_with(kSystemKeyPrefix) && !write.system) {
      refused = Status(StatusCode::kInvalidArgument,
                       "keys under '" + std::string(kSystemKeyPrefix) +
                           "' are the deployment's own (home records): only the node writes them");
      return false;
    }
    if (!write.strong) return true;
    // A prepare's lock record is checked as the key it locks.
    std::string_view subject = key;
    if (!write.lock_txn.empty()) {
      MERIDIAN_CHECK(write.system && key.starts_with(kLockKeyPrefix));
      subject.remove_prefix(kLockKeyPrefix.size());
    }
    refused = CheckHome(group, subject);
    if (refused.ok()) {
      // A copy lacking an event (parked as a dead letter, now or before) or damaged: a condition
      // would compare against, and a write overwrite, less than the home acknowledged.
      auto parked = group.parked_keys.find(std::string(subject));
      refused = CheckWhole(subject, parked != group.parked_keys.end() && parked->second > 0);
    }
    if (refused.ok()) refused = CheckUnlocked(&group, subject, write.lock_txn);
    return refused.ok();
  };
  if (write.txn) {
    write.txn->VisitKeys(check);
  } else {
    check(write.key, true);
  }
  return refused;
}

Result<Receipt> Region::StageTransaction(Group& group, const Transaction& txn,
                                         const std::string& trace) {
  bool holds = true;
  for (const Condition& condition : txn.conditions) {
    Result<Loaded*> loaded = Stage(group, condition.key);
    if (!loaded.ok()) return loaded.status();
    holds = holds && ConditionHolds(condition, (*loaded)->rendered);
  }
  const std::vector<KeyedOperation>& ops = holds ? txn.then_ops : txn.else_ops;
  MERIDIAN_CHECK(ops.size() <= core::kTransactionOpsMax);
  // A trial on copies first: an operation refused leaves the group as it was.
  std::unordered_map<std::string, core::DocumentState> trial;
  core::CausalOrder order = group.order;
  for (size_t i = 0; i < ops.size(); ++i) {
    const KeyedOperation& op = ops[i];
    Result<Loaded*> loaded = Stage(group, op.key);
    if (!loaded.ok()) return loaded.status();
    auto [it, fresh] = trial.try_emplace(op.key);
    if (fresh) it->second = (*loaded)->state;
    if (Status status = EscrowWritable(**loaded, op.key, op.op); !status.ok()) {
      return Status(status.code(), "operation " + std::to_string(i + 1) + " of the transaction ('" +
                                       op.key + "'): " + status.message());
    }
    std::unique_lock lock(mutex_);
    Result<core::Event> event = core::StampLocalWrite(id_, op.key, op.op, &it->second,
                                                      order.frontier(), &clock_, limits_, regions_);
    lock.unlock();
    Status refused = event.status();
    if (event.ok()) {
      it->second.Apply(*event, nullptr);
      order.Advance(event->dot, event->context);
      const std::optional<std::string> rendered = it->second.Render();
      if (rendered && rendered->size() > limits_.document_bytes_max) {
        refused = TooLarge("the document would be " + std::to_string(rendered->size()) +
                           " bytes; the limit is " + std::to_string(limits_.document_bytes_max));
      }
    }
    if (!refused.ok()) {
      return Status(refused.code(), "operation " + std::to_string(i + 1) +
                                        " of the transaction ('" + op.key +
                                        "'): " + refused.message());
    }
  }
  Receipt receipt;
  receipt.succeeded = holds;
  receipt.frontier = group.order.frontier();
  for (size_t i = 0; i < ops.size(); ++i) {
    const KeyedOperation& op = ops[i];
    Result<Loaded*> loaded = Stage(group, op.key);
    MERIDIAN_CHECK(loaded.ok());  // staged by the trial
    std::unique_lock lock(mutex_);
    Result<core::Event> event = core::StampLocalWrite(
        id_, op.key, op.op, &(*loaded)->state, group.order.frontier(), &clock_, limits_, regions_);
    lock.unlock();
    MERIDIAN_CHECK(event.ok());  // as in the trial
    event->txn_rest = static_cast<uint32_t>(ops.size() - 1 - i);
    event->trace = trace;
    auto merged = Merge(group, **loaded, *event, /*enforce_size=*/true);
    MERIDIAN_CHECK(merged.ok());
    if (op.key.starts_with(kSystemKeyPrefix)) NoteSystemRecord(group, op.key, *merged);
    receipt.dot = event->dot;
    receipt.hlc = event->hlc;
    receipt.events.push_back(event->dot);
  }
  if (ops.size() > 1) group.atomic = true;
  return receipt;
}

bool Region::Pending(const Group& group, const std::string& key) const {
  return group.parked_keys.contains(key) || pending_keys_.contains(key);
}

void Region::NotePending(const Group& group) {
  if (!group.batch.dead_letters.empty()) {
    // The group numbered its records from the store's count, as the store appends them.
    auto count = store_->DeadLetterCount();
    MERIDIAN_CHECK(count.ok() && *count == group.dead_letters + group.batch.dead_letters.size());
  }
  for (const auto& [key, count] : group.parked_keys) {
    if (count > 0) pending_keys_[key] += count;
  }
  pending_documents_.store(pending_keys_.size());
}

void Region::NoteNoLongerPending(const std::string& key) {
  auto it = pending_keys_.find(key);
  if (it == pending_keys_.end()) return;
  if (--it->second == 0) {
    pending_keys_.erase(it);
    // The sweeps passed over it: the next one folds it, stable vector moved or not.
    swept_stable_ = core::VersionVector();
  }
  pending_documents_.store(pending_keys_.size());
}

Status Region::Park(Group& group, const core::ParkedEvent& parked, RemoteApply* outcome) {
  if (group.batch.dead_letters.empty()) {
    auto count = store_->DeadLetterCount();
    if (!count.ok()) return count.status();
    group.dead_letters = *count;
  }
  if (parked.hlc != 0) {
    // Writes here from now on have seen it (the frontier covers it): they come after it.
    std::lock_guard lock(mutex_);
    clock_.Observe(parked.hlc);
  }
  // Its origin goes on past it; what the event had seen is not known. A comparison watching its
  // document learns of it when the frontier covers it (Finish), as for any event merged into it:
  // its copy now lacks an event the frontier covers.
  group.order.Advance(parked.dot, core::VersionVector());
  // Logged as it came, so that this region relays it to regions that may read it (a newer
  // build's event must not stop at an older node). It changed nothing: it takes the position of
  // the last change before it, and a watch resuming from its id resumes after that change.
  group.batch.parked.push_back(storage::LoggedEvent{parked.dot, group.lsn, parked.bytes,
                                                    std::nullopt, parked.key, parked.hlc});
  DeadLetter letter;
  letter.dot = parked.dot;
  letter.event = EventId(parked.dot);
  letter.origin = NameOf(parked.dot.origin);
  letter.key = parked.key;
  letter.schema_version = parked.schema_version;
  letter.newer_schema = parked.newer_schema;
  letter.reason = parked.reason;
  letter.parked_ms = physical_clock_->NowMs();
  letter.bytes = parked.bytes;
  group.batch.dead_letters.push_back(letter.Encode());
  const uint64_t id = group.dead_letters + group.batch.dead_letters.size();
  if (!parked.key.empty() && group.parked_keys[parked.key]++ == 0) {
    outcome->parked_keys.push_back(parked.key);
  }
  outcome->parked.push_back(RemoteApply::Parked{id, parked.dot, parked.key, parked.reason});
  return Status::Ok();
}

Status Region::RecoverDeadLetters(std::vector<DeadLetter>* applied, std::vector<Change>* changes) {
  pending_keys_.clear();
  std::vector<uint64_t> upgraded;
  Status failure;
  uint64_t after = 0;
  for (bool more = true; more && failure.ok();) {
    auto scanned = store_->ScanDeadLetters(after, 1024, [&](uint64_t id, std::string_view record) {
      after = id;
      if (!failure.ok()) return;
      auto letter = DeadLetter::Decode(id, record);
      if (!letter.ok()) {
        failure = letter.status();
        return;
      }
      if (letter->state != DeadLetter::State::kParked) return;
      if (!letter->key.empty()) ++pending_keys_[letter->key];
      // Parked for a schema version this build now reads: the upgrade case.
      if (letter->newer_schema && letter->schema_version <= schema_version_max_) {
        upgraded.push_back(id);
      }
    });
    if (!scanned.ok()) return scanned.status();
    more = *scanned;
  }
  pending_documents_.store(pending_keys_.size());
  if (!failure.ok()) return failure;
  for (uint64_t id : upgraded) {
    auto retry = RetryDeadLetter(id, changes);
    if (!retry.ok()) return retry.status();
    if (retry->outcome == DeadLetterRetry::Outcome::kApplied) applied->push_back(retry->letter);
  }
  return Status::Ok();
}

Result<DeadLetterRetry> Region::ParkedDeadLetter(uint64_t id) {
  auto record = store_->GetDeadLetter(id);
  if (!record.ok()) return record.status();
  DeadLetterRetry retry;
  if (!record->has_value()) return retry;  // kUnknown
  auto letter = DeadLetter::Decode(id, **record);
  if (!letter.ok()) return letter.status();
  retry.letter = std::move(letter).value();
  // kNotParked unless it is parked; the caller decides what a parked one becomes.
  retry.outcome = DeadLetterRetry::Outcome::kNotParked;
  return retry;
}

bool Region::IsParked(const Result<DeadLetterRetry>& found) {
  return found.ok() && found->outcome != DeadLetterRetry::Outcome::kUnknown &&
         found->letter.state == DeadLetter::State::kParked;
}

Result<DeadLetterRetry> Region::RetryDeadLetter(uint64_t id, std::vector<Change>* changes) {
  auto found = ParkedDeadLetter(id);
  if (!IsParked(found)) return found;
  DeadLetterRetry retry = std::move(found).value();
  DeadLetter& dead = retry.letter;
  if (merging()) return Status(StatusCode::kRebuilding, "this region is being re-seeded");
  if (!frontier().Covers(dead.dot)) {
    return Corruption("dead letter " + std::to_string(id) + " (" + dead.event +
                      ") is beyond the frontier " + frontier().ToString());
  }
  auto received = core::DecodeOrPark(dead.bytes, replication::kRemoteLimits, schema_version_max_);
  Group group = BeginGroup();
  if (!received.ok() || received->parked) {
    // Still not readable: the record stays parked, with why it failed this time.
    dead.reason = received.ok() ? received->parked->reason : received.status().message();
    dead.newer_schema = received.ok() && received->parked->newer_schema;
    ++dead.retries;
    group.batch.dead_letter_updates.emplace_back(id, dead.Encode());
    if (Status status = Finish(group, 0, 0, changes); !status.ok()) return status;
    retry.outcome = DeadLetterRetry::Outcome::kStillParked;
    return retry;
  }
  const core::Event& event = *received->event;
  if (event.dot != dead.dot) {
    return Corruption("dead letter " + std::to_string(id) + " holds event " + EventId(event.dot) +
                      ", not " + dead.event);
  }
  group.parked_keys.emplace(event.key, 0);  // not folded: it is being applied
  Result<Loaded*> loaded = Stage(group, event.key);
  if (!loaded.ok()) return loaded.status();
  if (event.hlc != 0) {
    std::lock_guard lock(mutex_);
    clock_.Observe(event.hlc);
  }
  // Its dot is covered already: merged like a remote event, out of seq order and without
  // advancing anything; the log keeps the event as it came.
  auto merged = Merge(group, **loaded, event, /*enforce_size=*/false, /*advance=*/false);
  if (!merged.ok()) return merged.status();
  group.batch.events.back().bytes = dead.bytes;
  auto in_log = store_->LsnOf(event.dot);
  if (!in_log.ok()) return in_log.status();
  if (!in_log->has_value()) {
    // Trimmed from the event log since (retention): a change only; the log is not written again.
    group.batch.changes.push_back(std::move(group.batch.events.back()));
    group.batch.events.pop_back();
  }
  dead.state = DeadLetter::State::kApplied;
  dead.applied_ms = physical_clock_->NowMs();
  group.batch.dead_letter_updates.emplace_back(id, dead.Encode());
  {
    // Its document was marked only for lacking its parked events: with the last of them applied
    // it holds what the frontier says again.
    std::lock_guard lock(mutex_);
    auto marked = damaged_.find(event.key);
    auto pending = pending_keys_.find(event.key);
    if (marked != damaged_.end() && marked->second == kParkedReason &&
        (pending == pending_keys_.end() || pending->second <= 1)) {
      group.repaired.push_back(event.key);
      group.batch.repairs.push_back(RepairJson(event.key, 0, kParkedReason,
                                               "whole again: its dead letter was applied",
                                               (*loaded)->rendered_before, (*loaded)->rendered));
    }
  }
  if (Status status = Finish(group, 0, 1, changes); !status.ok()) return status;
  if (!dead.key.empty()) NoteNoLongerPending(dead.key);
  retry.outcome = DeadLetterRetry::Outcome::kApplied;
  return retry;
}

Result<DeadLetterRetry> Region::ResolveDeadLetter(uint64_t id, std::vector<Change>* changes) {
  auto found = ParkedDeadLetter(id);
  if (!IsParked(found)) return found;
  DeadLetterRetry retry = std::move(found).value();
  DeadLetter& dead = retry.letter;
  Group group = BeginGroup();
  dead.state = DeadLetter::State::kResolved;
  dead.applied_ms = physical_clock_->NowMs();
  group.batch.dead_letter_updates.emplace_back(id, dead.Encode());
  if (Status status = Finish(group, 0, 0, changes); !status.ok()) return status;
  if (!dead.key.empty()) NoteNoLongerPending(dead.key);
  retry.outcome = DeadLetterRetry::Outcome::kResolved;
  return retry;
}

core::VersionVector Region::frontier() const {
  std::lock_guard lock(mutex_);
  return order_.frontier();
}

uint64_t Region::last_lsn() const {
  std::lock_guard lock(mutex_);
  return last_lsn_;
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

std::string Region::NameOf(core::RegionId id) const {
  return core::RegionName(names_, id);
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

std::vector<uint64_t> Region::TreeChildren(uint32_t level, std::span<const uint32_t> nodes) const {
  std::vector<uint64_t> hashes;
  hashes.reserve(nodes.size() * core::DigestTree::kFanout);
  std::lock_guard lock(mutex_);
  for (uint32_t node : nodes) tree_.Children(level, node, &hashes);
  return hashes;
}

size_t Region::damaged_count() const {
  std::lock_guard lock(mutex_);
  return damaged_.size();
}

std::vector<std::string> Region::DamagedKeys(size_t limit) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> keys;
  for (auto it = damaged_.begin(); it != damaged_.end() && keys.size() < limit; ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

bool Region::IsDamaged(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return damaged_.contains(key);
}

bool Region::MarkedOnlyForParked(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = damaged_.find(key);
  return it != damaged_.end() && it->second == kParkedReason;
}

Result<Region::ScrubStep> Region::Scrub(size_t limit, std::vector<Change>* changes) {
  ScrubStep step;
  Group group = BeginGroup();
  group.cache = false;
  const size_t bucket_limit = std::max<size_t>(kScrubBucketsPerStep, limit);
  for (size_t buckets = 0; step.checked < limit && !step.pass_done && buckets < bucket_limit;
       ++buckets) {
    std::vector<std::string> keys;
    if (Status status = store_->ScanBucket(scrub_bucket_,
                                           [&](std::string_view key) { keys.emplace_back(key); });
        !status.ok()) {
      return status;
    }
    for (const std::string& key : keys) {
      ++step.checked;
      std::string damage;
      auto record = store_->GetDocument(key);
      if (!record.ok()) {
        if (record.status().code() != StatusCode::kCorruption) return record.status();
        damage = "its record does not read";
      } else if (!record->has_value()) {
        damage = "its record is missing";
      } else if (!(*record)->view) {
        damage = "its record holds no view while the index lists it";
      } else if (auto decoded = core::DocumentState::Decode((*record)->state); !decoded.ok()) {
        damage = "its stored state does not decode: " + decoded.status().message();
      } else if (decoded->Render() != (*record)->view) {
        damage = "its stored state and view disagree";
      } else if (core::RenderedDigest(key, (*record)->view) != (*record)->digest) {
        damage = "its view does not match its digest";
      }
      if (damage.empty()) continue;
      // Nothing of the record is trusted: it is erased, and what the tree held of it leaves.
      Loaded loaded;
      loaded.lost = true;
      loaded.indexed = true;
      loaded.damage = std::move(damage);
      group.dirty.insert_or_assign(key, std::move(loaded));
      if (auto cached = cache_.find(key); cached != cache_.end()) cached->second.valid = false;
      ++step.damaged;
    }
    if (++scrub_bucket_ == core::DigestTree::kBuckets) {
      scrub_bucket_ = 0;
      step.pass_done = true;
    }
  }
  if (group.dirty.empty()) return step;
  if (Status status = Finish(group, 0, 0, changes); !status.ok()) return status;
  return step;
}

Result<size_t> Region::RebuildFromLog(size_t limit, std::vector<Change>* changes) {
  if (log_incomplete_) return size_t{0};
  core::VersionVector frontier;
  core::HlcTimestamp hlc = 0;
  std::set<std::string, std::less<>> keys;
  {
    std::lock_guard lock(mutex_);
    // Once per new damage: what could not be rebuilt then cannot be now.
    if (!layers_.empty() || marks_made_ == marks_tried_) return size_t{0};
    marks_tried_ = marks_made_;
    frontier = order_.frontier();
    hlc = clock_.last();
    for (const auto& [key, reason] : damaged_) {
      if (keys.size() == limit) break;
      if (!pending_keys_.contains(key)) keys.insert(key);
    }
  }
  if (keys.empty()) return size_t{0};
  auto log_bytes = store_->LogBytes();
  if (!log_bytes.ok()) return log_bytes.status();
  if (*log_bytes > rebuild_log_bytes_max_) return size_t{0};
  // The keys of the dead letters: a logged event that does not decode is one of them.
  std::map<core::Dot, std::string> parked;
  uint64_t after = 0;
  for (bool more = true; more;) {
    auto scanned = store_->ScanDeadLetters(after, 1024, [&](uint64_t id, std::string_view record) {
      after = id;
      auto letter = DeadLetter::Decode(id, record);
      if (letter.ok()) parked[letter->dot] = letter->key;
    });
    if (!scanned.ok()) return scanned.status();
    more = *scanned;
  }
  // Every logged event of the keys, with its local position: one pass over the whole log.
  std::map<std::string, std::vector<std::pair<uint64_t, core::Event>>, std::less<>> events;
  std::set<std::string, std::less<>> unreadable;  // a logged event of it does not decode
  for (const core::VersionVector::Entry& entry : frontier.entries()) {
    uint64_t expected = 1;
    Status visited =
        store_->ReadLogWhile(entry.origin, 1, entry.seq, [&](const storage::LoggedEvent& logged) {
          if (logged.dot.seq != expected) return false;  // trimmed, or taken from a snapshot
          ++expected;
          auto event = core::DecodeEvent(logged.bytes, limits_);
          if (!event.ok()) {
            auto it = parked.find(logged.dot);
            if (it == parked.end()) {
              expected = 0;  // an event of unknown key: nothing can be rebuilt
              return false;
            }
            unreadable.insert(it->second);
            return true;
          }
          if (keys.contains(event->key)) {
            events[event->key].emplace_back(logged.lsn, std::move(event).value());
          }
          return true;
        });
    if (!visited.ok()) return visited;
    if (expected == 0) return size_t{0};
    if (expected != entry.seq + 1) {
      log_incomplete_ = true;
      return size_t{0};
    }
  }
  Group group = BeginGroup();
  group.cache = false;
  std::vector<core::Conflict> conflicts;  // reported when the events were first applied
  size_t restored = 0;
  for (const std::string& key : keys) {
    if (unreadable.contains(key)) continue;
    Result<Loaded*> staged = Stage(group, key);
    if (!staged.ok()) return staged.status();
    Loaded& mine = **staged;
    auto& logged = events[key];
    std::sort(logged.begin(), logged.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    core::DocumentState state;
    for (const auto& [lsn, event] : logged) state.Apply(event, &conflicts);
    if (!group.stable.empty()) state.Fold(group.stable);
    const std::optional<std::string> before = mine.rendered;
    mine.state = std::move(state);
    mine.rendered = mine.state.Render();
    ++group.lsn;
    group.batch.changes.push_back(
        storage::LoggedEvent{core::Dot{0, 0}, group.lsn, {}, mine.rendered, key, hlc});
    group.repaired.push_back(key);
    group.batch.repairs.push_back(RepairJson(
        key, 0, "damaged here",
        "rebuilt from this region's event log (" + std::to_string(logged.size()) + " events)",
        before, mine.rendered));
    ++restored;
  }
  if (restored == 0) return size_t{0};
  if (Status status = Finish(group, 0, 0, changes); !status.ok()) return status;
  return restored;
}

void Region::Watch(std::span<const std::string> keys) {
  std::lock_guard lock(mutex_);
  for (const std::string& key : keys) {
    ++watched_[key].watchers;
  }
}

void Region::Unwatch(std::span<const std::string> keys) {
  std::lock_guard lock(mutex_);
  for (const std::string& key : keys) {
    auto it = watched_.find(key);
    if (it == watched_.end()) continue;
    if (--it->second.watchers == 0) watched_.erase(it);
  }
}

void Region::NoteWatched(const std::string& key, core::Dot dot) {
  auto it = watched_.find(key);
  if (it == watched_.end()) return;
  if (it->second.dots.size() == kWatchDots) {
    it->second.overflow = true;
  } else {
    it->second.dots.push_back(dot);
  }
}

Result<Region::States> Region::ReadStates(std::span<const std::string> keys) {
  States states;
  {
    std::lock_guard lock(mutex_);
    states.applied = order_.frontier();
    states.folded = folded_;
    states.hlc = clock_.last();
  }
  states.entries.reserve(keys.size());
  for (const std::string& key : keys) {
    States::Entry entry;
    entry.key = key;
    entry.damaged = IsDamaged(key);
    auto indexed = store_->Indexed(key);
    if (!indexed.ok()) return indexed.status();
    entry.indexed = *indexed;
    if (auto cached = cache_.find(key); cached != cache_.end() && cached->second.valid) {
      if (!cached->second.state.empty()) entry.state = cached->second.state.Encode();
    } else {
      auto bytes = store_->GetDocumentState(key);
      if (bytes.ok()) {
        entry.state = std::move(bytes).value();
      } else if (bytes.status().code() == StatusCode::kCorruption) {
        entry.damaged = true;  // the scrub or a write marks it
      } else {
        return bytes.status();
      }
    }
    states.entries.push_back(std::move(entry));
  }
  return states;
}

Result<Region::RepairOutcome> Region::Repair(core::RegionId peer, const States& states,
                                             std::vector<Change>* changes) {
  RepairOutcome outcome;
  core::VersionVector frontier;
  bool comparable = false;
  std::vector<bool> changed(states.entries.size(), false);
  {
    std::lock_guard lock(mutex_);
    frontier = order_.frontier();
    // Both copies reflect the same events only when this region has applied all the peer had
    // (and nothing is half merged by a re-seed).
    comparable = frontier.Dominates(states.applied) && layers_.empty();
    for (size_t i = 0; i < states.entries.size(); ++i) {
      auto it = watched_.find(states.entries[i].key);
      if (it == watched_.end() || it->second.overflow) {
        changed[i] = true;  // not watched from before the peer read it: nothing can be told
        continue;
      }
      for (core::Dot dot : it->second.dots) {
        if (!states.applied.Covers(dot)) changed[i] = true;
      }
    }
  }
  if (!states.applied.Dominates(states.folded)) {
    return Status(StatusCode::kInvalidArgument,
                  NameOf(peer) + "'s fold bound " + states.folded.ToString() +
                      " exceeds its frontier " + states.applied.ToString());
  }
  if (!comparable) {
    outcome.deferred = states.entries.size();
    return outcome;
  }
  Group group = BeginGroup();
  group.cache = false;
  const core::DocumentState none;
  const core::VersionVector nothing;
  for (size_t i = 0; i < states.entries.size(); ++i) {
    const States::Entry& entry = states.entries[i];
    if (changed[i]) {
      ++outcome.deferred;
      continue;
    }
    Result<Loaded*> staged = Stage(group, entry.key);
    if (!staged.ok()) return staged.status();
    Loaded& mine = **staged;
    const bool damaged_here = !mine.damage.empty() || IsDamaged(entry.key);
    core::DocumentState theirs;
    if (entry.state) {
      auto decoded = core::DocumentState::Decode(*entry.state);
      if (!decoded.ok()) {
        return Status(StatusCode::kCorruption,
                      "repair: " + NameOf(peer) + "'s state of '" + entry.key +
                          "' does not decode: " + decoded.status().message());
      }
      theirs = std::move(decoded).value();
    }
    const std::optional<std::string> their_render = theirs.Render();
    // The peer's copy is a source unless marked there, or lost there unnoticed (no record, but
    // its index lists the document). A peer that holds nothing and lists nothing holds the
    // document deleted and folded away.
    const bool theirs_usable = !entry.damaged && (entry.state.has_value() || !entry.indexed);
    // Bounded counters' ledgers are not all in the rendering (a transfer changes no value): a
    // copy is whole only with the same escrow state too.
    const bool same_escrow = mine.state.escrows() == theirs.escrows() &&
                             mine.state.escrow_waiting() == theirs.escrow_waiting();
    if (mine.rendered == their_render && (same_escrow || !damaged_here || !theirs_usable)) {
      ++outcome.equal;
      // A marked copy that renders as the peer's own copy of the same events is whole again.
      if (damaged_here && theirs_usable && mine.damage.empty()) {
        group.repaired.push_back(entry.key);
        group.batch.repairs.push_back(RepairJson(entry.key, peer, "marked damaged",
                                                 "found whole: the same as " + NameOf(peer),
                                                 mine.rendered, mine.rendered));
      }
      continue;
    }
    if (theirs_usable && (damaged_here || (!mine.rendered_before && their_render))) {
      // This copy lost what the peer's holds: it takes the peer's state (merged with nothing;
      // nothing at all when the peer holds the document deleted and folded away).
      auto merged =
          core::MergeStates({none, nothing, nothing}, {theirs, states.applied, states.folded});
      if (!merged.ok()) {
        return Status(merged.status().code(),
                      "repair of '" + entry.key + "': " + merged.status().message());
      }
      const std::optional<std::string> before = mine.rendered;
      mine.state = std::move(merged).value();
      if (!group.stable.empty()) mine.state.Fold(group.stable);
      mine.rendered = mine.state.Render();
      ++group.lsn;
      group.batch.changes.push_back(storage::LoggedEvent{
          core::Dot{0, 0}, group.lsn, {}, mine.rendered, entry.key, states.hlc});
      group.folded.Merge(states.folded);
      if (!mine.damage.empty() || IsDamaged(entry.key)) group.repaired.push_back(entry.key);
      group.batch.repairs.push_back(
          RepairJson(entry.key, peer, damaged_here ? "damaged here" : "missing here",
                     "restored from " + NameOf(peer), before, mine.rendered));
      ++outcome.repaired;
      outcome.repaired_keys.push_back(entry.key);
      continue;
    }
    ++outcome.theirs;
    group.batch.repairs.push_back(
        RepairJson(entry.key, peer, entry.damaged ? "damaged in " + NameOf(peer) : "differs",
                   damaged_here ? "none: both copies damaged; waiting for another region"
                                : "kept here; " + NameOf(peer) + " repairs its copy from this one",
                   mine.rendered, their_render));
  }
  if (group.batch.repairs.empty() && group.repaired.empty()) return outcome;
  {
    std::lock_guard lock(mutex_);
    if (states.hlc != 0) clock_.Observe(states.hlc);
  }
  if (Status status = Finish(group, 0, 0, changes); !status.ok()) return status;
  // A document restored from a peer that applied its parked events no longer waits for them.
  std::set<std::string, std::less<>> settled;
  for (const std::string& key : group.repaired) {
    if (pending_keys_.contains(key)) settled.insert(key);
  }
  if (!settled.empty()) {
    std::vector<uint64_t> ids;
    uint64_t after = 0;
    for (bool more = true; more;) {
      auto scanned =
          store_->ScanDeadLetters(after, 1024, [&](uint64_t id, std::string_view record) {
            after = id;
            auto letter = DeadLetter::Decode(id, record);
            if (letter.ok() && letter->state == DeadLetter::State::kParked &&
                settled.contains(letter->key)) {
              ids.push_back(id);
            }
          });
      if (!scanned.ok()) return scanned.status();
      more = *scanned;
    }
    for (uint64_t id : ids) {
      auto resolved = ResolveDeadLetter(id, changes);
      if (!resolved.ok()) return resolved.status();
    }
  }
  return outcome;
}

std::string Region::RepairJson(std::string_view key, core::RegionId peer, std::string_view problem,
                               std::string_view action, const std::optional<std::string>& before,
                               const std::optional<std::string>& after) const {
  const auto doc = [](const std::optional<std::string>& rendered) {
    return rendered ? nlohmann::json::parse(*rendered, nullptr, false) : nlohmann::json(nullptr);
  };
  nlohmann::json record = {
      {"key", key},
      {"peer", peer == 0 ? nlohmann::json(nullptr) : nlohmann::json(NameOf(peer))},
      {"time_ms", physical_clock_->NowMs()},
      {"problem", problem},
      {"action", action},
      {"before", doc(before)},
      {"after", doc(after)}};
  return record.dump();
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

// --- bounded counters ------------------------------------------------------------------------

Status Region::EscrowWritable(const Loaded& loaded, const std::string& key,
                              const core::Operation& op) {
  bool escrow = op.kind == core::OpKind::kEscrow;
  for (const core::CounterDelta& counter : op.counters) {
    escrow = escrow || loaded.state.IsBounded(counter.name);
  }
  if (!escrow || (loaded.damage.empty() && !IsDamaged(key))) return Status::Ok();
  return Status(StatusCode::kUnavailable,
                "'" + key +
                    "' is marked damaged here (docs/verification.md): its bounded counters take "
                    "writes again once it is repaired from a peer, since this copy may lack some "
                    "of this region's own escrow events");
}

void Region::NoteEscrowGap(Loaded& loaded, const std::string& key) {
  if (loaded.state.escrow_waiting().empty() || !loaded.damage.empty()) return;
  if (IsDamaged(key) && !MarkedOnlyForParked(key)) return;
  loaded.damage = std::string(kEscrowGapReason);
}

void Region::SetEscrow(const core::EscrowPolicy& policy, size_t keys_max) {
  MERIDIAN_CHECK(core::ValidateEscrowPolicy(policy).ok() && keys_max > 0);
  escrow_policy_ = policy;
  escrow_keys_max_ = keys_max;
}

void Region::NoteEscrowDue(const std::string& key, const std::map<std::string, int64_t>& needs) {
  auto it = escrow_due_.find(key);
  if (it == escrow_due_.end()) {
    if (escrow_due_.size() >= escrow_keys_max_) {
      ++escrow_counters_.dropped;
      return;
    }
    it = escrow_due_.emplace(key, std::map<std::string, int64_t>{}).first;
    escrow_due_order_.push_back(key);
  }
  for (const auto& [field, need] : needs) {
    int64_t& noted = it->second[field];
    noted = std::max(noted, need);
  }
}

void Region::NoteEscrowRefusal(const std::string& key, const core::Operation& op) {
  if (op.kind != core::OpKind::kIncrement) return;
  std::map<std::string, int64_t> needs;
  for (const core::CounterDelta& counter : op.counters) {
    // -delta: a delta of INT64_MIN needs more than any rights hold; asking for INT64_MAX is the
    // same request.
    if (counter.delta < 0) {
      needs[counter.name] = counter.delta == std::numeric_limits<int64_t>::min()
                                ? std::numeric_limits<int64_t>::max()
                                : -counter.delta;
    }
  }
  if (needs.empty()) return;
  ++escrow_counters_.refusals;
  NoteEscrowDue(key, needs);
}

void Region::EscrowTick() {
  for (const std::string& key : escrow_unsettled_) NoteEscrowDue(key);
  escrow_unsettled_.clear();
}

std::optional<core::DocumentState> Region::CommittedState(const std::string& key) {
  if (auto it = cache_.find(key); it != cache_.end() && it->second.valid) return it->second.state;
  auto bytes = store_->GetDocumentState(key);
  if (!bytes.ok() || !bytes->has_value()) return std::nullopt;
  auto state = core::DocumentState::Decode(**bytes);
  if (!state.ok()) return std::nullopt;
  return std::move(state).value();
}

std::vector<WriteRequest> Region::EscrowRound(size_t keys_max) {
  std::vector<WriteRequest> writes;
  // Writes are refused meanwhile: the keys stay due.
  if (rebuilding_.load() || merging()) return writes;
  for (size_t done = 0; done < keys_max && !escrow_due_order_.empty(); ++done) {
    const std::string key = std::move(escrow_due_order_.front());
    escrow_due_order_.pop_front();
    auto due = escrow_due_.find(key);
    MERIDIAN_CHECK(due != escrow_due_.end());
    const std::map<std::string, int64_t> needs = std::move(due->second);
    escrow_due_.erase(due);
    ++escrow_counters_.rounds;
    const std::optional<core::DocumentState> state = CommittedState(key);
    bool gave = false;
    if (state) {
      for (const auto& [field, ledger] : state->escrows()) {
        if (!ledger.declared()) continue;
        auto need = needs.find(field);
        for (const core::EscrowAction& action :
             core::Rebalance(ledger, id_, escrow_policy_, need == needs.end() ? 0 : need->second)) {
          core::Operation op;
          op.kind = core::OpKind::kEscrow;
          op.escrow.field = field;
          op.escrow.region = action.region;
          op.escrow.amount = action.amount;
          switch (action.kind) {
            case core::EscrowActionKind::kAccept:
              op.escrow.kind = core::EscrowOpKind::kAccept;
              break;
            case core::EscrowActionKind::kWant:
              op.escrow.kind = core::EscrowOpKind::kWant;
              op.escrow.region = 0;
              break;
            case core::EscrowActionKind::kTransfer:
              op.escrow.kind = core::EscrowOpKind::kTransfer;
              gave = true;
              break;
          }
          writes.emplace_back(key, std::move(op));
        }
      }
    }
    // A round that gave may have stopped at its budget: the next tick looks again. One that gave
    // nothing had nothing more to give.
    if (gave && escrow_unsettled_.size() < escrow_keys_max_) {
      escrow_unsettled_.insert(key);
    } else if (!gave) {
      escrow_unsettled_.erase(key);
    }
  }
  return writes;
}

Region::EscrowStats Region::escrow_stats() const {
  EscrowStats stats;
  stats.refusals = escrow_counters_.refusals.load();
  stats.declarations = escrow_counters_.declarations.load();
  stats.transfers = escrow_counters_.transfers.load();
  stats.accepts = escrow_counters_.accepts.load();
  stats.wants = escrow_counters_.wants.load();
  stats.rounds = escrow_counters_.rounds.load();
  stats.dropped = escrow_counters_.dropped.load();
  return stats;
}

}  // namespace meridian::node
