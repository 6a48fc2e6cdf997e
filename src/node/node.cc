#include "node/node.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <future>

#include "storage/rocksdb_store.h"

namespace meridian::node {

CommitSignal::Handle CommitSignal::Register(std::function<void()> listener) {
  std::lock_guard lock(mutex_);
  return listeners_.insert(listeners_.end(), std::move(listener));
}

void CommitSignal::Unregister(Handle handle) {
  std::lock_guard lock(mutex_);
  listeners_.erase(handle);
}

void CommitSignal::Notify() {
  std::lock_guard lock(mutex_);
  for (const auto& listener : listeners_) listener();
}

uint64_t SystemClock::NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

std::map<core::RegionId, std::string> RegionNames(const NodeConfig& config) {
  std::map<core::RegionId, std::string> names;
  for (const RegionAddress& address : config.regions) names[address.id] = address.name;
  return names;
}

}  // namespace

Node::Node(NodeConfig config, std::unique_ptr<storage::Store> store)
    : config_(std::move(config)),
      store_(std::move(store)),
      watches_(config_.watchers_max, config_.watch_buffer_bytes_max),
      views_(config_.document_cache_max),
      replication_(config_.self().id, RegionNames(config_), &metrics_) {
  std::map<core::RegionId, std::string> names = RegionNames(config_);
  std::vector<Home> homes;
  for (const NodeConfig::HomeConfig& home : config_.homes) {
    for (const RegionAddress& address : config_.regions) {
      if (address.name == home.region) homes.push_back(Home{home.prefix, address.id, 0, false});
    }
  }
  homes_ = std::make_unique<HomeTable>(std::move(homes), names);
  region_ = std::make_unique<Region>(config_.self().id, std::move(names), store_.get(), &clock_,
                                     config_.limits, config_.max_skew_ms,
                                     config_.document_cache_max, &views_);
  region_->SetHomes(homes_.get());
}

Result<std::unique_ptr<Node>> Node::Open(const NodeConfig& config,
                                         std::unique_ptr<storage::Store> store) {
  if (Status status = ValidateConfig(config); !status.ok()) return status;
  // [auth]: a missing or unusable secret stops the start before anything is opened, rather than
  // leaving a node up that refuses every client.
  std::unique_ptr<auth::SecretFile> secrets;
  if (config.auth.enabled()) {
    auto opened = auth::SecretFile::Open(config.auth.jwt_secret_file);
    if (!opened.ok()) return opened.status();
    secrets = std::move(opened).value();
  }
  std::unique_ptr<DataDirectory> directory;
  if (store == nullptr) {
    // The directory first: a second process on it, or a directory of another deployment or
    // region, is refused before the store is touched.
    auto held = DataDirectory::Open(config.data_dir, config.deployment, config.region,
                                    config.self().id, SystemClock().NowMs(), config.bootstrap);
    if (!held.ok()) return held.status();
    directory = std::move(held).value();
    auto opened = storage::OpenRocksDbStore(
        storage::RocksDbOptions{config.data_dir, config.sync, config.block_cache_bytes});
    if (!opened.ok()) return opened.status();
    store = std::move(opened).value();
  }
  std::unique_ptr<Node> node(new Node(config, std::move(store)));
  if (directory != nullptr) {
    node->identity_ = directory->identity();
    node->data_start_ = directory->start();
  } else {
    node->identity_ = DataIdentity{config.deployment, config.region, config.self().id,
                                   SystemClock().NowMs() | 1, SystemClock().NowMs()};
  }
  node->directory_ = std::move(directory);
  node->secrets_ = std::move(secrets);
  if (Status status = node->region_->Recover(); !status.ok()) return status;
  {
    // Dead letters: which documents wait for a parked event, and the events parked for a schema
    // version this build reads (an upgrade), applied now (docs/replication.md#dead-letters).
    std::vector<DeadLetter> applied;
    std::vector<Change> changes;  // no watcher yet: the change log holds them
    if (Status status = node->region_->RecoverDeadLetters(&applied, &changes); !status.ok()) {
      return status;
    }
    for (const DeadLetter& letter : applied) {
      spdlog::info("dead letter {} ({}, key '{}') applied: this build reads schema version {}",
                   letter.id, letter.event, letter.key, letter.schema_version);
    }
    const size_t pending = node->region_->documents_with_dead_letters();
    if (pending > 0) {
      spdlog::warn("{} documents wait for parked dead letters (GET /v1/dead-letters)", pending);
    }
  }
  // An empty directory (unless bootstrapping a new deployment), a copy, or one whose rebuild was
  // cut short may be behind what the other regions hold of this region's events: no writes until
  // they have told.
  const bool has_peers = config.regions.size() > 1;
  node->confirm_own_events_ = has_peers && node->directory_ && node->directory_->needs_rebuild();
  if (!has_peers && node->directory_) {
    if (Status status = node->directory_->MarkRebuilt(); !status.ok()) return status;
  }
  // A region that holds nothing takes a peer's snapshot first; one restarted while merging a
  // snapshot goes on with it (docs/replication.md#re-seeding).
  node->needs_reseed_ = has_peers && node->region_->ReseedsAtStart(node->confirm_own_events_);
  node->region_->SetRebuilding(node->confirm_own_events_);
  node->region_->SetIdempotencyWindow(config.idempotency_window_s * 1000);
  node->region_->SetLogBounds(config.changes_kept, config.conflicts_kept);
  node->region_->SetEscrow(EscrowPolicyOf(config), config.escrow.keys_max);
  auto recovered = node->store_->Recover();
  if (!recovered.ok()) return recovered.status();
  node->watches_.SetPublishedLsn(recovered->last_lsn);
  // Unique ids start above every id this region issued before (node/id_generator.h).
  auto reservation = node->store_->IdReservation();
  if (!reservation.ok()) return reservation.status();
  node->ids_ = std::make_unique<IdGenerator>(
      IdGeneratorOptions{.region = config.self().id,
                         .clock = &node->clock_,
                         .recorded = *reservation,
                         .save = [self = node.get()](uint64_t reserved) {
                           Status status = self->store_->SaveIdReservation(reserved);
                           if (!status.ok()) self->ReportStorageFailure(status);
                           return status;
                         }});
  Node* self = node.get();
  node->queue_ = std::make_unique<WriteQueue>(
      node->region_.get(), config.write_batch_max, config.write_queue_max,
      [self](std::vector<Change>&& changes, size_t batch_size) {
        if (batch_size > 0) self->metrics_.ObserveCommit(batch_size);
        self->replication_.NoteCommitted(changes);
        self->watches_.Publish(changes);
        self->commits_.Notify();
      });
  node->queue_->SetScrubRate(config.verify.scrub_documents_per_s);
  node->queue_->SetEscrowRebalance(config.escrow.rebalance_ms, config.escrow.keys_per_round);
  node->region_->SetRebuildLogBytesMax(config.verify.rebuild_log_bytes_max);
  if (config.insecure) {
    spdlog::warn(
        "INSECURE: [node] insecure = true: this node may listen beyond loopback, and nothing "
        "authenticates its peers or clients; anyone who reaches its ports can read and write "
        "everything (docs/security.md)");
  }
  if (node->region_->index_rebuilt()) {
    spdlog::warn("the digest index did not match the documents: rebuilt from them");
  }
  if (size_t damaged = node->region_->damaged_count(); damaged > 0) {
    spdlog::warn(
        "{} documents are marked damaged and wait for a repair from a peer "
        "(GET /v1/repairs)",
        damaged);
  }
  spdlog::info(
      "region {} (id {}) of deployment {} open at {} ({}, incarnation {:016x}): "
      "frontier {}, {} documents{}",
      config.region, config.self().id, config.deployment, config.data_dir,
      DataStartName(node->data_start_), node->identity_.incarnation,
      node->region_->frontier().ToString(), recovered->documents,
      node->confirm_own_events_ ? "; rebuilding until every peer has told what it holds" : "");
  return node;
}

Node::~Node() {
  Stop();
}

Result<Receipt> Node::Write(WriteRequest request) {
  auto promise = std::make_shared<std::promise<Result<Receipt>>>();
  std::future<Result<Receipt>> future = promise->get_future();
  if (!SubmitWrite(std::move(request), [promise](Result<Receipt> outcome) {
        promise->set_value(std::move(outcome));
      })) {
    return Status(StatusCode::kOverloaded, "the write queue is full; retry later");
  }
  return future.get();
}

bool Node::SubmitWrite(WriteRequest request, WriteQueue::Callback callback,
                       const WriteQueue::Defer& defer) {
  return queue_->Submit(
      std::move(request),
      [this, callback = std::move(callback)](Result<Receipt> outcome) {
        if (!outcome.ok() && outcome.status().code() == StatusCode::kUnavailable) {
          ReportStorageFailure(outcome.status());
        }
        callback(std::move(outcome));
      },
      defer);
}

bool Node::SubmitRemote(core::RemoteBatch events, WriteQueue::RemoteCallback callback,
                        std::shared_ptr<const std::atomic<bool>> dropped) {
  return queue_->SubmitRemote(
      std::move(events),
      [this, callback = std::move(callback)](Result<RemoteApply> outcome) {
        if (!outcome.ok() && outcome.status().code() == StatusCode::kUnavailable) {
          ReportStorageFailure(outcome.status());
        }
        callback(std::move(outcome));
      },
      std::move(dropped));
}

bool Node::SubmitDeadLetterRetry(uint64_t id, std::function<void(Result<DeadLetterRetry>)> done) {
  return queue_->SubmitTask([this, id, done = std::move(done)] {
    std::vector<Change> changes;
    Result<DeadLetterRetry> retry = region_->RetryDeadLetter(id, &changes);
    if (!retry.ok() && retry.status().code() == StatusCode::kUnavailable) {
      ReportStorageFailure(retry.status());
    }
    if (retry.ok() && retry->outcome == DeadLetterRetry::Outcome::kApplied) {
      spdlog::info("dead letter {} ({}, key '{}') applied by a retry", id, retry->letter.event,
                   retry->letter.key);
    }
    if (!changes.empty()) {
      replication_.NoteCommitted(changes);
      watches_.Publish(changes);
      commits_.Notify();
    }
    done(std::move(retry));
  });
}

Status Node::RunOnCommitThread(const std::function<Status()>& task) {
  std::promise<Status> done;
  if (!queue_->SubmitTask([&] { done.set_value(task()); })) {
    return Status(StatusCode::kUnavailable, "the node is stopping");
  }
  return done.get_future().get();
}

void Node::MarkRebuilt() {
  std::lock_guard lock(failure_mutex_);
  if (directory_ == nullptr || !directory_->needs_rebuild()) return;
  if (Status status = directory_->MarkRebuilt(); !status.ok()) {
    spdlog::error("cannot record the finished rebuild in {}: {}; the next start rebuilds again",
                  config_.data_dir, status.message());
  }
}

void Node::ReportStorageFailure(const Status& status) {
  std::lock_guard lock(failure_mutex_);
  if (!storage_failed_) spdlog::error("storage failed: {}", status.message());
  storage_failed_ = true;
}

Result<std::optional<std::string>> Node::ReadView(std::string_view key) {
  std::string doc;
  switch (views_.Find(key, &doc)) {
    case ViewCache::Lookup::kFound:
      return std::optional<std::string>(std::move(doc));
    case ViewCache::Lookup::kAbsent:
      return std::optional<std::string>();
    case ViewCache::Lookup::kMiss:
      break;
  }
  return store_->GetView(key);
}

void Node::Stop() {
  if (queue_) queue_->Stop();
}

bool Node::storage_failed() const {
  std::lock_guard lock(failure_mutex_);
  return storage_failed_;
}

double Node::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace meridian::node
