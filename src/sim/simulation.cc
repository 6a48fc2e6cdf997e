#include "sim/simulation.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/document.h"
#include "node/dead_letter.h"
#include "node/id_generator.h"
#include "node/replication_host.h"
#include "replication/batch_codec.h"
#include "replication/reseed.h"
#include "sim/oracle.h"
#include "storage/memory_store.h"

namespace meridian::sim {

// The physical clock of one region over virtual time: a fixed epoch, a drift (parts per million)
// and jumps (an offset, either way). The HLC on top never goes backwards whatever this does.
class SimClock final : public core::PhysicalClock {
 public:
  explicit SimClock(const uint64_t* now) : now_(now) {}
  uint64_t NowMs() override {
    const double at = static_cast<double>(kEpochMs) +
                      static_cast<double>(*now_) * (1.0 + drift_ppm * 1e-6) +
                      static_cast<double>(offset_ms);
    return at < 1.0 ? 1 : static_cast<uint64_t>(at);
  }
  double drift_ppm = 0;
  int64_t offset_ms = 0;

 private:
  static constexpr uint64_t kEpochMs = 1'732'233'600'000;  // 2024-11-22
  const uint64_t* now_;
};

// The ids' clock of a region (node/id_generator.h counts from 2026): its SimClock, a year past
// the ids' epoch, jumps and drift included.
class IdClock final : public core::PhysicalClock {
 public:
  explicit IdClock(SimClock* base) : base_(base) {}
  uint64_t NowMs() override { return base_->NowMs() + kShiftMs; }
  static constexpr uint64_t kShiftMs =
      node::kIdEpochUnixMs + 365ull * 86'400'000 - 1'732'233'600'000;  // SimClock's epoch

 private:
  SimClock* base_;
};

namespace {

// The first and last seq of a batch (of one origin, as the exchange submits them).
std::pair<uint64_t, uint64_t> SeqRange(const core::RemoteBatch& batch) {
  uint64_t first = UINT64_MAX;
  uint64_t last = 0;
  for (const core::Event& event : batch.events) {
    first = std::min(first, event.dot.seq);
    last = std::max(last, event.dot.seq);
  }
  for (const core::ParkedEvent& parked : batch.parked) {
    first = std::min(first, parked.dot.seq);
    last = std::max(last, parked.dot.seq);
  }
  return {first, last};
}

// The node's defaults (docs/configuration.md), so that the simulated links behave like the real
// ones.
constexpr uint64_t kHeartbeatMs = 100;
// Stuck behind every peer's retention this long, a region re-seeds (the node's default is 30 s;
// shorter here, where retention trims after 2 s).
constexpr uint64_t kReseedAfterMs = 5000;
constexpr uint64_t kTickMs = std::max<uint64_t>(10, kHeartbeatMs / 2);
constexpr uint64_t kFoldSweepMs = 1000;
constexpr size_t kFoldSweepDocuments = 16;
// gRPC keepalive: a ping every 5 s, dead after 5 s more without an answer. A sender learns that
// a stream broke in the network this long after; retransmissions longer than this break it.
constexpr uint64_t kKeepaliveDeadMs = 10'000;
// Linux's minimum retransmission timeout, on top of the round trip.
constexpr uint64_t kRtoFloorMs = 200;
// A group commit (write, fsync) takes about this long.
constexpr uint64_t kCommitMs = 1;
constexpr uint64_t kMaxSkewMs = 500;
// Verification: a comparison with each peer every 2 s (virtual), a request's deadline, and the
// scrub's pace per fold sweep.
constexpr uint64_t kVerifyIntervalMs = 2000;
constexpr uint64_t kVerifyTimeoutMs = 3000;
constexpr size_t kScrubDocuments = 256;

replication::SenderOptions SenderOptionsOf() {
  replication::SenderOptions options;
  options.heartbeat_ms = kHeartbeatMs;
  return options;
}

}  // namespace

const std::vector<std::string>& RegionNames() {
  static const std::vector<std::string> kNames = {"us", "eu", "asia", "sa", "af",
                                                  "au", "me", "ca",   "in"};
  return kNames;
}

struct Simulation::Message {
  // The stream ends here (a reset, a refused dial, or the sender's refusal with its reason).
  bool close = false;
  std::string why;
  wire::ToSender to_sender;
  wire::ToReceiver to_receiver;
  // A re-seed's call (Replication.Snapshot): the request, then the chunks.
  wire::SnapshotRequest snapshot_request;
  wire::SnapshotChunk chunk;
  bool batch() const { return to_receiver.has_batch(); }
  static Message Close(std::string why = {}) {
    Message message;
    message.close = true;
    message.why = std::move(why);
    return message;
  }
};

// One stream: `receiver` dialled `sender` and subscribes to it.
struct Simulation::Conn {
  int receiver = 0;
  int sender = 0;
  bool receiver_open = true;          // the receiver still reads it
  bool sender_dead = false;           // the sender's process died (or refused the dial)
  bool broken = false;                // lost in the network: nothing more gets through
  bool handshake = true;              // the first message also pays the connection setup
  bool snapshot = false;              // a re-seed's call, not a replication stream
  uint64_t last_arrival[2] = {0, 0};  // FIFO per direction: [to the sender]
  // Batches as the transport sends them: chunks of one zstd stream per connection, which holds
  // only while nothing duplicates or reorders messages within the connection (as TCP never
  // does). Made at the first batch sent while no such fault is on; from then on every batch of
  // the connection is a chunk, and those faults spare its batches. Before, batches go alone.
  std::unique_ptr<replication::BatchStreamEncoder> encoder;
  std::unique_ptr<replication::BatchStreamDecoder> decoder;
  // Messages the receiver has not read yet: its apply queue for the stream is full (the
  // transport's reader waits for room in the same way).
  std::deque<Message> held;
};

struct Simulation::Node {
  explicit Node(const uint64_t* now) : clock(now), id_clock(&clock) {}
  std::string name;
  core::RegionId id = 0;
  std::unique_ptr<storage::Store> store;  // durable: survives crashes
  uint64_t store_generation = 0;          // grows when the store is lost or replaced by a copy
  bool confirm = false;  // the store is new (empty or a copy) and has not rebuilt yet
  std::unique_ptr<storage::Store> copy;  // SaveCopy's backup
  core::VersionVector copy_reseeded_at;  // its reseeded_at
  SimClock clock;
  IdClock id_clock;
  // The process's unique ids (POST /v1/ids), from the reservation its store holds.
  std::unique_ptr<node::IdGenerator> ids;
  uint64_t ids_generation = 0;  // the store generation `ids` started on
  bool up = true;
  bool member = true;  // configured: false once removed (RemoveRegion)
  uint64_t incarnation = 0;
  std::unique_ptr<node::HomeTable> homes;  // the process's: configured, then the records
  std::unique_ptr<node::Region> region;
  std::unique_ptr<replication::Exchange> exchange;
  std::unique_ptr<replication::Retention> retention;
  // Verification (docs/verification.md): this region's comparisons with its peers.
  std::unique_ptr<replication::Verifier> verifier;
  std::unique_ptr<node::RegionVerifyLocal> verify_local;
  // Re-seeding this region (while it runs), and the snapshots it serves others, per call.
  std::unique_ptr<replication::Reseeding> reseeding;
  uint64_t reseed_conn = 0;
  // The join of the frontiers of the snapshots merged into this store: what they brought is held
  // without a log entry (and without a change a watcher saw, but for the merged documents).
  core::VersionVector reseeded_at;
  std::unique_ptr<replication::SnapshotServer> snapshots;
  std::map<uint64_t, std::unique_ptr<replication::SnapshotServer::Call>> snapshot_calls;
  uint64_t swept_ms = 0;          // when the last fold sweep ran, as the node's commit thread does
  uint64_t escrow_ticked_ms = 0;  // when the last escrow tick ran (kEscrowTickMs)

  // Receiving side: the exchange's stream of each open connection, and back. A peer has none
  // while backing off, and two while a dial hedges a slow one.
  std::map<uint64_t, uint64_t> dials;    // connection -> stream
  std::map<uint64_t, uint64_t> conn_of;  // stream -> connection

  // Sending side: per subscriber connection (the exchange's serving id), the pending wake-up.
  struct Serving {
    std::optional<uint64_t> wake_at;
  };
  std::map<uint64_t, Serving> serving;

  // The commit thread's queue: what a crash loses.
  std::vector<node::WriteRequest> writes;
  // Client requests waiting for an answer (Request), committed after `writes`.
  struct Request {
    node::WriteRequest write;
    Answer answer;
  };
  std::vector<Request> requests;
  struct QueuedBatch {
    core::RegionId peer = 0;
    uint64_t conn = 0;
    uint64_t stream = 0;
    core::RegionId origin = 0;
    core::RemoteBatch events;  // the decoded events and those parked
  };
  std::vector<QueuedBatch> batches;
  bool commit_scheduled = false;

  // Every event of its own the region's log has held (the store's; cleared with it).
  std::vector<core::Event> archive;
  uint64_t archived_seq = 0;

  // The watch: a client outside the region, so it survives crashes and resumes from its lsn.
  uint64_t watch_lsn = 0;
  std::vector<node::Change> watched;
};

namespace {

core::RegionId IdOfName(const std::string& name) {
  const auto& all = RegionNames();
  return static_cast<core::RegionId>(std::find(all.begin(), all.end(), name) - all.begin()) + 1;
}

}  // namespace

Simulation::Simulation(std::vector<std::string> names, const Options& options, std::ostream* trace)
    : options_(options), trace_(trace), random_(options.seed), faults_(options.faults) {
  for (const std::string& name : names) {
    auto node = std::make_unique<Node>(&now_);
    node->name = name;
    node->id = IdOfName(name);
    node->store = storage::NewMemoryStore();
    nodes_.push_back(std::move(node));
  }
  for (int a = 0; a < size(); ++a) {
    for (int b = a + 1; b < size(); ++b) rtt_[{a, b}] = options.rtt_ms ? options.rtt_ms : 100;
  }
  for (int i = 0; i < size(); ++i) BootNode(i);
}

void Simulation::RestartOthers(int index) {
  for (int i = 0; i < size(); ++i) {
    if (i == index || !nodes_[i]->member || !nodes_[i]->up) continue;
    Crash(i);
    Restart(i);
  }
}

void Simulation::RemoveRegion(int index) {
  Node& n = *nodes_[index];
  Trace(n.name + ": removed from the deployment for good", true);
  Crash(index);
  n.member = false;
  RestartOthers(index);  // with the configuration without it
}

int Simulation::AddRegion(const std::string& name) {
  MERIDIAN_CHECK(IndexOf(name) < 0);
  auto node = std::make_unique<Node>(&now_);
  node->name = name;
  node->id = IdOfName(name);
  node->store = storage::NewMemoryStore();
  node->confirm = true;  // not the first start of a deployment: it re-seeds and rebuilds
  node->up = false;
  nodes_.push_back(std::move(node));
  const int index = size() - 1;
  for (int other = 0; other < index; ++other) {
    rtt_[{other, index}] = options_.rtt_ms ? options_.rtt_ms : 100;
  }
  Trace(name + ": added to the deployment", true);
  RestartOthers(index);  // with the configuration that names it; then it starts
  Restart(index);
  return index;
}

Simulation::~Simulation() = default;

int Simulation::IndexOf(const std::string& name) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i]->name == name) return i;
  }
  return -1;
}

const std::string& Simulation::NameAt(int index) const {
  return nodes_.at(index)->name;
}

int Simulation::IndexOfId(core::RegionId id) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i]->id == id) return i;
  }
  return -1;
}

double Simulation::Unit() {
  return static_cast<double>(random_() >> 11) * 0x1.0p-53;
}

void Simulation::Trace(const std::string& line, bool note) {
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%" PRIu64 ".%03" PRIu64 "s ", now_ / 1000, now_ % 1000);
  const std::string full = stamp + line;
  for (unsigned char c : full) {
    trace_digest_ ^= c;
    trace_digest_ *= 1099511628211ull;
  }
  trace_digest_ ^= '\n';
  trace_digest_ *= 1099511628211ull;
  if (trace_ != nullptr) *trace_ << full << '\n';
  if (note && collect_notes_) notes_.push_back(full);
}

std::vector<std::string> Simulation::TakeNotes() {
  return std::exchange(notes_, {});
}

void Simulation::Schedule(uint64_t at, std::function<void()> action) {
  queue_.push(Timer{std::max(at, now_), next_seq_++, std::move(action)});
}

void Simulation::RunUntil(uint64_t until) {
  while (!queue_.empty() && queue_.top().at <= until) {
    // Moved out before popping: the action may schedule more.
    Timer timer = std::move(const_cast<Timer&>(queue_.top()));
    queue_.pop();
    now_ = timer.at;
    ++steps_;
    timer.action();
  }
  now_ = std::max(now_, until);
}

// --- regions --------------------------------------------------------------------------------

std::unique_ptr<node::Region> Simulation::NewRegion(int index) {
  Node& n = *nodes_[index];
  std::map<core::RegionId, std::string> names;
  for (const auto& other : nodes_) {
    if (other->member) names[other->id] = other->name;
  }
  auto region = std::make_unique<node::Region>(n.id, std::move(names), n.store.get(), &n.clock,
                                               core::Limits{}, kMaxSkewMs);
  region->SetEscrow(kEscrowPolicy, 10'000);
  return region;
}

void Simulation::BootNode(int index) {
  Node& n = *nodes_[index];
  n.up = true;
  n.region = NewRegion(index);
  n.homes.reset();
  if (!options_.homes.empty()) {
    // As a node does: the configured homes, then the records its store holds (Recover).
    std::map<core::RegionId, std::string> names;
    for (const auto& other : nodes_) {
      if (other->member) names[other->id] = other->name;
    }
    n.homes = std::make_unique<node::HomeTable>(options_.homes, std::move(names));
    n.region->SetHomes(n.homes.get());
  }
  if (Status status = n.region->Recover(); !status.ok()) {
    Trace(n.name + ": recovery failed: " + status.message(), true);
  }
  CheckTransactionFrontier(index, "at its start");
  StartIds(index);
  {
    // As the node does: which documents wait for a parked event (no watcher yet: the change log
    // holds anything applied now).
    std::vector<node::DeadLetter> applied;
    std::vector<node::Change> changes;
    if (Status status = n.region->RecoverDeadLetters(&applied, &changes); !status.ok()) {
      Trace(n.name + ": recovering dead letters failed: " + status.message(), true);
    }
  }
  replication::ExchangeOptions exchange;
  exchange.deployment = "sim";
  exchange.self = n.id;
  exchange.incarnation = n.store_generation + 1;
  for (const auto& other : nodes_) {
    if (other->member) exchange.names[other->id] = other->name;
  }
  if (options_.retention_hold_ms != 0) exchange.retention_hold_ms = options_.retention_hold_ms;
  exchange.sender = SenderOptionsOf();
  exchange.links = options_.links;
  exchange.tick_ms = kTickMs;
  exchange.reseed_after_ms = kReseedAfterMs;
  n.exchange = std::make_unique<replication::Exchange>(std::move(exchange), now_);
  replication::RetentionOptions retention;
  retention.age_ms = options_.retention_age_ms != 0 ? options_.retention_age_ms : UINT64_MAX;
  n.retention = std::make_unique<replication::Retention>(retention);
  replication::VerifyOptions verify;
  verify.interval_ms = kVerifyIntervalMs;
  verify.align_timeout_ms = kVerifyTimeoutMs;
  n.verifier = std::make_unique<replication::Verifier>(verify, n.exchange->peers(), now_);
  n.verify_local = std::make_unique<node::RegionVerifyLocal>(n.region.get());
  n.dials.clear();
  n.conn_of.clear();
  const uint64_t incarnation = n.incarnation;
  n.snapshots = std::make_unique<replication::SnapshotServer>(
      replication::SnapshotServer::Options{.page_bytes = 4096, .page_documents = 4},
      ((n.incarnation + 1) << 32) | 1);
  n.snapshot_calls.clear();
  if (n.region->ReseedsAtStart(n.confirm)) {
    // Empty and not the first start: re-seed from a peer's snapshot first, as a node does
    // (docs/replication.md#re-seeding); the live streams start once it is in.
    Carry(index, n.exchange->Follow(n.region->frontier(), n.confirm));
    n.reseeding = std::make_unique<replication::Reseeding>(n.exchange->peers(), now_, Unit());
    Schedule(now_, [this, index, incarnation] { AskSnapshot(index, incarnation); });
  } else {
    Carry(index, n.exchange->Start(n.region->frontier(), n.confirm));
  }
  Schedule(now_ + kTickMs, [this, index, incarnation] { Tick(index, incarnation); });
  // A watcher that was following this region resumes from the last change it saw.
  std::vector<node::Change> missed;
  const Status status =
      n.store->ReadChanges(n.watch_lsn, SIZE_MAX, [&](const storage::LoggedEvent& event) {
        missed.push_back(node::Change{event.key, event.rendered, event.dot, event.hlc, event.lsn});
      });
  if (status.ok()) Watch(index, missed);
}

bool Simulation::up(int index) const {
  return nodes_.at(index)->up;
}

void Simulation::Crash(int index) {
  Node& n = *nodes_[index];
  if (!n.up) return;
  ++faults_injected_;
  Trace(n.name + ": crash (" + std::to_string(n.writes.size()) + " writes and " +
            std::to_string(n.batches.size()) + " batches not yet committed are lost)",
        true);
  n.up = false;
  ++n.incarnation;
  n.region.reset();
  n.exchange.reset();
  n.retention.reset();
  n.reseeding.reset();
  n.reseed_conn = 0;
  n.snapshots.reset();
  n.snapshot_calls.clear();
  n.dials.clear();
  n.conn_of.clear();
  n.serving.clear();
  n.writes.clear();
  n.batches.clear();
  n.commit_scheduled = false;
  // Requests queued for the commit are lost with the process: their clients' connections reset.
  std::vector<Node::Request> lost = std::exchange(n.requests, {});
  for (Node::Request& request : lost) {
    request.answer(Status(StatusCode::kUnavailable, n.name + " crashed"), {});
  }
  // The process is gone: its sockets are reset, which the other end hears if the path is up.
  for (auto& [id, conn] : conns_) {
    if (conn->broken) continue;
    if (conn->receiver == index && conn->receiver_open) {
      conn->receiver_open = false;
      if (!conn->sender_dead) Send(id, /*to_sender=*/true, Message::Close());
    }
    if (conn->sender == index && !conn->sender_dead) {
      conn->sender_dead = true;
      if (conn->receiver_open) Send(id, /*to_sender=*/false, Message::Close());
    }
    conn->held.clear();
  }
}

void Simulation::ReplaceStore(int index, std::unique_ptr<storage::Store> store,
                              const std::string& why) {
  Node& n = *nodes_[index];
  if (!n.member) return;  // removed for good: its data directory is gone with it
  Crash(index);
  Trace(n.name + ": " + why, true);
  n.store = std::move(store);
  n.archive.clear();
  n.archived_seq = 0;
  n.reseeded_at = core::VersionVector();
  ++n.store_generation;
  n.confirm = true;
  // The watcher's position belonged to the old store: it starts over.
  n.watch_lsn = 0;
  n.watched.clear();
}

void Simulation::LoseDisk(int index) {
  ReplaceStore(index, storage::NewMemoryStore(), "its data directory is lost");
}

void Simulation::SaveCopy(int index) {
  Node& n = *nodes_[index];
  n.copy = storage::CopyMemoryStore(*n.store);
  n.copy_reseeded_at = n.reseeded_at;
  Trace(n.name + ": a copy of its store is taken", true);
}

bool Simulation::RestoreCopy(int index) {
  Node& n = *nodes_[index];
  if (n.copy == nullptr || !n.member) return false;
  ReplaceStore(index, storage::CopyMemoryStore(*n.copy), "restored from an older copy");
  n.reseeded_at = n.copy_reseeded_at;  // the copy's change log starts after that snapshot too
  return true;
}

void Simulation::Restart(int index) {
  Node& n = *nodes_[index];
  if (n.up || !n.member) return;
  Trace(n.name + ": restart", true);
  BootNode(index);
}

void Simulation::JumpClock(int index, int64_t delta_ms) {
  ++faults_injected_;
  nodes_[index]->clock.offset_ms += delta_ms;
  Trace(nodes_[index]->name + ": clock jumps " + std::to_string(delta_ms) + " ms", true);
}

void Simulation::SetDrift(int index, double ppm) {
  nodes_[index]->clock.drift_ppm = ppm;
}

// --- the network ----------------------------------------------------------------------------

void Simulation::SetRtt(int a, int b, uint64_t rtt_ms) {
  rtt_[{std::min(a, b), std::max(a, b)}] = rtt_ms;
}

uint64_t Simulation::max_rtt_ms() const {
  uint64_t most = 0;
  for (const auto& [pair, rtt] : rtt_) most = std::max(most, rtt);
  return most;
}

void Simulation::Cut(int a, int b, bool symmetric) {
  ++faults_injected_;
  cut_.insert({a, b});
  if (symmetric) cut_.insert({b, a});
  Trace("partition " + NameAt(a) + (symmetric ? "|" : ">") + NameAt(b), true);
}

void Simulation::Mend(int a, int b, bool symmetric) {
  cut_.erase({a, b});
  if (symmetric) cut_.erase({b, a});
  Trace("mend " + NameAt(a) + (symmetric ? "|" : ">") + NameAt(b), true);
}

void Simulation::HealAll() {
  cut_.clear();
  Trace("heal", true);
}

bool Simulation::Blocked(int from, int to) const {
  return cut_.contains({from, to});
}

uint64_t Simulation::LatencyMs(int from, int to) {
  const uint64_t rtt = rtt_.at({std::min(from, to), std::max(from, to)});
  const double base = static_cast<double>(rtt) / 2.0;
  return static_cast<uint64_t>(base * (1.0 + options_.jitter * Unit()));
}

std::optional<std::pair<int, int>> Simulation::Ends(uint64_t conn_id, bool to_sender) {
  Conn& conn = *conns_.at(conn_id);
  if (conn.broken) return std::nullopt;
  const int from = to_sender ? conn.receiver : conn.sender;
  const int to = to_sender ? conn.sender : conn.receiver;
  if (Blocked(from, to)) {
    Break(conn_id, "partition");
    return std::nullopt;
  }
  return std::make_pair(from, to);
}

void Simulation::Send(uint64_t conn_id, bool to_sender, Message message) {
  const auto ends = Ends(conn_id, to_sender);
  if (!ends) return;
  const auto [from, to] = *ends;
  Conn& conn = *conns_.at(conn_id);
  const uint64_t rtt = rtt_.at({std::min(from, to), std::max(from, to)});
  uint64_t delay = LatencyMs(from, to);
  if (conn.handshake && to_sender) {
    delay += rtt;  // TCP and HTTP/2 setup before the Subscribe goes
    conn.handshake = false;
  }
  // A lost segment is retransmitted. With RACK (Linux's default loss detection) the stream's later
  // segments, heartbeats at least, get it detected about a round trip and a quarter after it was
  // sent, each time. Without it, the first loss is found by fast retransmit after a round trip,
  // and a lost retransmission only by the retransmission timeout, which doubles each time.
  uint64_t rto = rtt + kRtoFloorMs;
  if (faults_.loss > 0) {
    for (int attempt = 0; attempt < 64 && Unit() < faults_.loss; ++attempt) {
      if (options_.rack) {
        delay += rtt + rtt / 4;
      } else if (attempt == 0) {
        delay += rtt;
      } else {
        delay += rto;
        rto = std::min<uint64_t>(rto * 2, 120'000);
      }
      if (delay > kKeepaliveDeadMs) {
        Break(conn_id, "retransmissions timed out");
        return;
      }
    }
  }
  bool reorder = faults_.reorder > 0 && Unit() < faults_.reorder;
  bool duplicate = faults_.duplicate > 0 && Unit() < faults_.duplicate;
  if ((message.batch() && conn.encoder != nullptr) || conn.snapshot) {
    // A stream's chunks decode only in order, once; a re-seed's call is never damaged either
    // (its pages are installed as they come: the order is the transport's, as TCP keeps it).
    reorder = duplicate = false;
  }
  uint64_t at = now_ + delay;
  const int direction = to_sender ? 1 : 0;
  if (reorder) {
    // Held back by up to a round trip, out of the stream's order: later messages overtake it.
    at += 1 + static_cast<uint64_t>(Unit() * static_cast<double>(rtt));
  } else {
    // In order, behind whatever the stream holds up.
    at = std::max(at, conn.last_arrival[direction]);
    conn.last_arrival[direction] = at;
  }
  const bool batch = message.batch();
  if (duplicate) {
    if (batch) ++batches_on_wire_;
    Message copy = message;
    const uint64_t later = at + 1 + LatencyMs(from, to) / 2;
    Schedule(later, [this, conn_id, to_sender, copy = std::move(copy)] {
      Deliver(conn_id, to_sender, copy);
    });
  }
  if (batch) ++batches_on_wire_;
  Schedule(at, [this, conn_id, to_sender, message = std::move(message)] {
    Deliver(conn_id, to_sender, message);
  });
}

void Simulation::Deliver(uint64_t conn_id, bool to_sender, const Message& message) {
  if (message.batch()) --batches_on_wire_;
  const auto ends = Ends(conn_id, to_sender);
  if (!ends) return;
  const int to = ends->second;
  Conn& conn = *conns_.at(conn_id);
  if (to_sender) {
    if (conn.sender_dead) return;
    if (!nodes_[to]->up) {
      // Nothing listens there: the dial is refused.
      conn.sender_dead = true;
      if (conn.receiver_open) Send(conn_id, /*to_sender=*/false, Message::Close());
      return;
    }
    SenderGot(to, conn_id, message);
  } else {
    if (!conn.receiver_open || !nodes_[to]->up) return;
    if (!conn.held.empty()) {
      conn.held.push_back(message);  // behind what waits for room in the apply queue
      return;
    }
    ReceiverGot(to, conn_id, message);
  }
}

void Simulation::Break(uint64_t conn_id, const std::string& why) {
  Conn& conn = *conns_.at(conn_id);
  if (conn.broken) return;
  conn.broken = true;
  Trace("stream " + NameAt(conn.receiver) + "<-" + NameAt(conn.sender) + " #" +
        std::to_string(conn_id) + " broken: " + why);
  // The receiver finds out by silence (its ticker; a re-seed's call when keepalive gives up);
  // the sender when keepalive gives up.
  if (conn.snapshot) {
    const int receiver = conn.receiver;
    const uint64_t receiver_incarnation = nodes_[receiver]->incarnation;
    Schedule(now_ + kKeepaliveDeadMs, [this, receiver, receiver_incarnation, conn_id] {
      if (nodes_[receiver]->incarnation != receiver_incarnation || !nodes_[receiver]->up) return;
      SnapshotGot(receiver, conn_id, Message::Close("keepalive: the call is gone"));
    });
  }
  const int sender = conn.sender;
  const uint64_t incarnation = nodes_[sender]->incarnation;
  Schedule(now_ + kKeepaliveDeadMs, [this, sender, incarnation, conn_id] {
    Node& n = *nodes_[sender];
    if (n.incarnation != incarnation || !n.up) return;
    n.snapshot_calls.erase(conn_id);  // kept for a resume (unless it was finished)
    if (n.serving.contains(conn_id)) {
      EndServing(sender, conn_id);
      Trace(n.name + ": keepalive ended the stream of #" + std::to_string(conn_id));
    }
  });
}

// --- the exchange's driver -------------------------------------------------------------------

void Simulation::Carry(int index, replication::Ready ready) {
  Node& n = *nodes_[index];
  using Level = replication::Ready::Note::Level;
  for (const replication::Ready::Note& note : ready.notes) {
    Trace(n.name + ": " + note.text, note.level >= Level::kInfo);
  }
  // 1. Fence: what streams of a peer's earlier incarnation queued is dropped (the simulator's
  // commit thread never runs concurrently, so nothing of it can be committing now).
  for (uint64_t stream : ready.fence) {
    auto conn = n.conn_of.find(stream);
    if (conn == n.conn_of.end()) continue;
    const size_t before = n.batches.size();
    std::erase_if(n.batches,
                  [&](const Node::QueuedBatch& batch) { return batch.conn == conn->second; });
    Trace(n.name + ": dropped " + std::to_string(before - n.batches.size()) +
          " queued batches of #" + std::to_string(conn->second));
  }
  // 2. Submits come with the decoded events (ReceiverGot). 3. Observe.
  if (ready.observe) n.region->ObserveFrontier(ready.observe->peer, ready.observe->frontier);
  // 4. The write gate.
  if (ready.rebuild) n.region->SetRebuilding(ready.rebuild->rebuilding);
  if (ready.rebuilt) n.confirm = false;  // as the node records it in its data directory
  // 5. Sends, then cancels.
  for (replication::Ready::ToSender& send : ready.sends) {
    auto conn = n.conn_of.find(send.stream);
    if (conn == n.conn_of.end()) continue;
    Message message;
    message.to_sender = std::move(send.message);
    Send(conn->second, /*to_sender=*/true, std::move(message));
  }
  for (const replication::Ready::Cancel& cancel : ready.cancel) {
    auto conn = n.conn_of.find(cancel.stream);
    if (conn != n.conn_of.end()) EndLink(index, conn->second, cancel.why);
  }
  const uint64_t incarnation = n.incarnation;
  // Re-seed, as the transport's RunReseed does (the exchange dials no peer until Reseeded).
  if (ready.reseed && !n.reseeding) {
    n.reseeding = std::make_unique<replication::Reseeding>(ready.reseed_from, now_, 0.0);
    Schedule(now_, [this, index, incarnation] { AskSnapshot(index, incarnation); });
  }
  // 6. Dials.
  for (const replication::Ready::Dial& dial : ready.dials) {
    Schedule(now_ + dial.delay_ms, [this, index, peer = dial.peer, incarnation,
                                    hedge = dial.hedge] { Dial(index, peer, incarnation, hedge); });
  }
}

// --- receiving side -------------------------------------------------------------------------

void Simulation::Dial(int index, core::RegionId peer, uint64_t incarnation, bool hedge) {
  Node& n = *nodes_[index];
  if (!n.up || n.incarnation != incarnation) return;
  const uint64_t id = next_conn_++;
  auto conn = std::make_unique<Conn>();
  conn->receiver = index;
  conn->sender = IndexOfId(peer);
  conns_[id] = std::move(conn);
  replication::Exchange::Dialed dialed = n.exchange->Dialing(peer, n.region->frontier(), now_);
  n.dials[id] = dialed.stream;
  n.conn_of[dialed.stream] = id;
  Trace(n.name + ": " + (hedge ? "hedge" : "dial") + " " + nodes_[IndexOfId(peer)]->name + " #" +
        std::to_string(id));
  Message message;
  message.to_sender = std::move(dialed.subscribe);
  Send(id, /*to_sender=*/true, std::move(message));
}

void Simulation::EndLink(int index, uint64_t conn_id, const std::string& why) {
  Node& n = *nodes_[index];
  auto it = n.dials.find(conn_id);
  if (it == n.dials.end()) return;
  const uint64_t stream = it->second;
  n.dials.erase(it);
  n.conn_of.erase(stream);
  Conn& conn = *conns_.at(conn_id);
  conn.receiver_open = false;
  conn.held.clear();
  // Cancelling the call tells the sender (an HTTP/2 reset) if the path is up.
  if (!conn.broken && !conn.sender_dead) Send(conn_id, /*to_sender=*/true, Message::Close());
  Carry(index, n.exchange->Ended(stream, why, now_, Unit()));
}

void Simulation::ReceiverGot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  if (conns_.at(conn_id)->snapshot) {
    SnapshotGot(index, conn_id, message);
    return;
  }
  auto it = n.dials.find(conn_id);
  if (it == n.dials.end()) return;  // a stream this region already gave up
  const uint64_t stream = it->second;
  if (message.close) {
    // A refused dial or a reset: no message reached the reader (the transport's Read fails).
    EndLink(index, conn_id, message.why.empty() ? "the stream closed" : message.why);
    return;
  }
  if (message.batch() && !n.exchange->Room(stream)) {
    conns_.at(conn_id)->held.push_back(message);  // read once the commit path has room
    return;
  }
  bool decode = false;
  replication::Ready ready =
      n.exchange->Received(stream, message.to_receiver, n.region->frontier(), now_, &decode);
  Carry(index, std::move(ready));
  if (!decode || !n.dials.contains(conn_id)) return;
  const wire::Batch& batch = message.to_receiver.batch();
  Conn& conn = *conns_.at(conn_id);
  if (!conn.decoder) conn.decoder = std::make_unique<replication::BatchStreamDecoder>();
  auto events = conn.decoder->DecodeRemote(batch.events(), replication::BatchLimits{},
                                           replication::kRemoteLimits);
  if (events.ok() && faults_.poison > 0) {
    // Poison events: this region cannot apply them (a dead letter); the regions that can restore
    // their documents here (docs/verification.md).
    const size_t before = events->parked.size();
    events->Park([this](const core::Event&) { return Unit() < faults_.poison; },
                 "poisoned by the simulator");
    const size_t parked = events->parked.size() - before;
    if (parked > 0) {
      poisoned_ += parked;
      faults_injected_ += parked;
      Trace(n.name + ": " + std::to_string(parked) + " events poisoned", true);
    }
  }
  const core::RegionId origin = static_cast<core::RegionId>(batch.origin());
  replication::Ready decoded = n.exchange->Decoded(stream, origin, &events, n.clock.NowMs());
  if (decoded.submit) {
    n.batches.push_back(
        {n.exchange->inbound().PeerOf(stream), conn_id, stream, origin, std::move(events).value()});
    ScheduleCommit(index);
  }
  Carry(index, std::move(decoded));
}

void Simulation::DrainHeld(int index) {
  Node& n = *nodes_[index];
  std::vector<uint64_t> held;
  for (const auto& [conn_id, stream] : n.dials) {
    if (!conns_.at(conn_id)->held.empty()) held.push_back(conn_id);
  }
  for (uint64_t conn_id : held) {
    for (;;) {
      auto it = n.dials.find(conn_id);
      if (it == n.dials.end() || !n.up) break;
      Conn& conn = *conns_.at(conn_id);
      if (conn.held.empty()) break;
      if (conn.held.front().batch() && !n.exchange->Room(it->second)) break;
      Message message = std::move(conn.held.front());
      conn.held.pop_front();
      ReceiverGot(index, conn_id, message);
    }
  }
}

void Simulation::Tick(int index, uint64_t incarnation) {
  Node& n = *nodes_[index];
  if (!n.up || n.incarnation != incarnation) return;
  Carry(index, n.exchange->Tick(n.region->frontier(), now_));
  replication::Ready retention;
  const core::VersionVector before = n.retention->trimmed_through();
  if (n.retention->Due(now_)) {
    const core::VersionVector applied = n.region->frontier();
    const core::VersionVector floor = n.exchange->RetentionFloor(applied, now_, &retention);
    n.retention->Run(*n.store, *n.exchange, floor, applied, n.clock.NowMs(), &retention);
    for (const auto& entry : n.retention->trimmed_through().entries()) {
      if (before.Get(entry.origin) != 0) log_trimmed_ += entry.seq - before.Get(entry.origin);
    }
    Carry(index, std::move(retention));
  }
  if (now_ >= n.swept_ms + kFoldSweepMs) {
    // As the node's commit thread does: a few documents at a time, folded with what is stable,
    // and the scrub at its pace.
    size_t folded = 0;
    (void)n.region->FoldSweep(kFoldSweepDocuments, &folded);
    std::vector<node::Change> erased;
    auto scrubbed = n.region->Scrub(kScrubDocuments, &erased);
    if (scrubbed.ok() && scrubbed->damaged > 0) {
      Trace(n.name + ": scrub found " + std::to_string(scrubbed->damaged) + " damaged documents",
            true);
    }
    if (!erased.empty()) Watch(index, erased);
    std::vector<node::Change> rebuilt;
    auto rebuilt_count = n.region->RebuildFromLog(node::Region::kRebuildDocuments, &rebuilt);
    if (rebuilt_count.ok() && *rebuilt_count > 0) {
      Trace(n.name + ": rebuilt " + std::to_string(*rebuilt_count) +
                " damaged documents from its event log",
            true);
    }
    if (!rebuilt.empty()) Watch(index, rebuilt);
    n.swept_ms = now_;
  }
  if (now_ >= n.escrow_ticked_ms + kEscrowTickMs) {
    // As the node's commit thread does on its [escrow] tick.
    n.region->EscrowTick();
    n.escrow_ticked_ms = now_;
    RebalanceEscrow(index);
    TakeIds(index);
  }
  CarryVerify(index, n.verifier->Tick(now_, n.region->frontier()));
  Schedule(now_ + kTickMs, [this, index, incarnation] { Tick(index, incarnation); });
}

// --- verification (the transport's RunVerifier and Verify handler) -------------------------

void Simulation::CarryVerify(int index, replication::Verifier::Ready ready) {
  Node& n = *nodes_[index];
  while (true) {
    if (!ready.watch.empty()) n.region->Watch(ready.watch);
    for (replication::Verifier::Ready::Request& request : ready.requests) {
      SendVerify(index, std::move(request));
    }
    for (const replication::VerifyResult& result : ready.finished) {
      Trace(n.name + ": verify with " + n.exchange->NameOf(result.peer) + ": " +
                std::string(replication::VerifyStateName(result.state)) + " (" +
                std::to_string(result.candidates) + " candidates, " +
                std::to_string(result.repaired) + " repaired here, " +
                std::to_string(result.theirs) + " there)" +
                (result.error.empty() ? "" : ": " + result.error),
            result.repaired + result.theirs > 0);
    }
    replication::Verifier::Ready next;
    for (replication::Verifier::Ready::Repair& repair : ready.repairs) {
      std::vector<node::Change> changes;
      auto outcome = n.region->Repair(repair.peer, node::StatesOf(repair.states), &changes);
      if (!changes.empty()) Watch(index, changes);
      Result<replication::RepairCounts> counts =
          outcome.ok() ? Result<replication::RepairCounts>(node::CountsOf(*outcome))
                       : Result<replication::RepairCounts>(outcome.status());
      next.Join(n.verifier->Repaired(repair.peer, counts, n.region->frontier(), now_));
    }
    if (!ready.unwatch.empty()) n.region->Unwatch(ready.unwatch);
    if (next.watch.empty() && next.requests.empty() && next.repairs.empty() &&
        next.unwatch.empty() && next.finished.empty()) {
      return;
    }
    ready = std::move(next);
  }
}

// A unary call: the request crosses the network, the peer answers at once (states as its
// commit thread reads them), the answer crosses back; a cut link or a peer down ends the call
// at its deadline, as gRPC's does.
void Simulation::SendVerify(int index, replication::Verifier::Ready::Request request) {
  Node& n = *nodes_[index];
  const int peer = IndexOfId(request.peer);
  n.exchange->Identify(&request.message);
  const uint64_t incarnation = n.incarnation;
  const uint64_t deadline = now_ + kVerifyTimeoutMs;
  const core::RegionId peer_id = request.peer;
  const auto fail = [this, index, incarnation, peer_id, deadline](std::string why) {
    Schedule(deadline, [this, index, incarnation, peer_id, why] {
      Node& n = *nodes_[index];
      if (!n.up || n.incarnation != incarnation) return;
      CarryVerify(index, n.verifier->Failed(peer_id, why, now_));
    });
  };
  if (peer < 0 || Blocked(index, peer)) {
    fail("deadline exceeded");
    return;
  }
  const uint64_t arrives = now_ + LatencyMs(index, peer);
  Schedule(arrives, [this, index, peer, incarnation, peer_id, deadline, fail,
                     message = std::move(request.message)] {
    Node& p = *nodes_[peer];
    if (!p.up || Blocked(peer, index)) {
      fail("deadline exceeded");
      return;
    }
    Result<wire::VerifyReply> answer = Status(StatusCode::kUnavailable, "refused");
    if (auto refusal = p.exchange->VerifyRequested(message, nodes_[index]->id)) {
      answer = Status(StatusCode::kInvalidArgument, refusal->message);
    } else if (node::AsksStates(message)) {
      auto states = p.region->ReadStates(node::KeysOf(message));
      answer = states.ok() ? Result<wire::VerifyReply>(node::StatesReply(*states))
                           : Result<wire::VerifyReply>(states.status());
      if (Status checked = node::CheckVerifyRequest(message); !checked.ok()) answer = checked;
    } else {
      answer = node::AnswerTree(*p.region, message);
    }
    const uint64_t back = now_ + LatencyMs(peer, index);
    if (back > deadline) {
      fail("deadline exceeded");
      return;
    }
    const size_t bytes = message.ByteSizeLong() + (answer.ok() ? answer->ByteSizeLong() : 0);
    Schedule(back, [this, index, incarnation, peer_id, bytes, answer = std::move(answer)] {
      Node& n = *nodes_[index];
      if (!n.up || n.incarnation != incarnation) return;
      if (!answer.ok()) {
        CarryVerify(index, n.verifier->Failed(peer_id, answer.status().message(), now_));
        return;
      }
      CarryVerify(index, n.verifier->Answered(peer_id, *answer, bytes, *n.verify_local,
                                              n.region->frontier(), now_));
    });
  });
}

void Simulation::DamageDocument(int index, bool lose) {
  Node& n = *nodes_[index];
  // One of the first documents the region stores, at random.
  std::vector<std::string> keys;
  // Not the strong operations' documents nor the home records: their loss is not something a
  // home can notice before it answers from its copy (docs/testing.md, "Strong operations").
  const auto strong = [this](std::string_view key) {
    if (key.starts_with(node::kSystemKeyPrefix)) return true;
    return std::any_of(options_.homes.begin(), options_.homes.end(),
                       [&](const node::Home& home) { return key.starts_with(home.prefix); });
  };
  (void)n.store->ScanDocumentStates("", 16, [&](std::string_view found, std::string_view) {
    if (!strong(found)) keys.emplace_back(found);
  });
  if (keys.empty()) return;
  const std::string key = keys[random_() % keys.size()];
  storage::DamageMemoryStore(*n.store, key, lose);
  ++faults_injected_;
  ++damaged_;
  Trace(n.name + ": " + (lose ? "lost" : "corrupted") + " the stored document " + key, true);
}

void Simulation::RetryDeadLetters() {
  for (int index = 0; index < size(); ++index) {
    Node& n = *nodes_[index];
    if (!n.up || !n.member) continue;
    std::vector<uint64_t> parked;
    uint64_t after = 0;
    for (bool more = true; more;) {
      auto scanned =
          n.store->ScanDeadLetters(after, 256, [&](uint64_t id, std::string_view record) {
            after = id;
            auto letter = node::DeadLetter::Decode(id, record);
            if (!letter.ok() || letter->state != node::DeadLetter::State::kParked) return;
            // Verification must restore the document from a region holding it whole; only
            // when every region has it marked is there no source, and the operator retries.
            for (const auto& other : nodes_) {
              if (other.get() != &n && other->member && other->up &&
                  !other->region->IsDamaged(letter->key)) {
                return;
              }
            }
            parked.push_back(id);
          });
      more = scanned.ok() && *scanned;
    }
    for (uint64_t id : parked) {
      std::vector<node::Change> changes;
      auto retry = n.region->RetryDeadLetter(id, &changes);
      if (!changes.empty()) Watch(index, changes);
      Trace(n.name + ": dead letter " + std::to_string(id) + " retried: " +
                (retry.ok() ? std::to_string(static_cast<int>(retry->outcome))
                            : retry.status().message()),
            true);
    }
  }
}

// --- sending side ---------------------------------------------------------------------------

void Simulation::SenderGot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  Conn& conn = *conns_.at(conn_id);
  if (conn.snapshot) {
    ServeSnapshot(index, conn_id, message);
    return;
  }
  if (message.close) {
    EndServing(index, conn_id);
    return;
  }
  if (!n.serving.contains(conn_id)) {
    // A new stream: its first message must be a Subscribe that the exchange accepts.
    std::string refused = "a stream starts with a Subscribe";
    if (message.to_sender.has_subscribe()) {
      // The subscriber as mutual TLS would authenticate it: the region that dialled.
      replication::Exchange::Served served = n.exchange->Subscribed(
          conn_id, message.to_sender.subscribe(), nodes_[conn.receiver]->id, now_);
      if (!served.refusal) {
        n.serving[conn_id] = Node::Serving{};
        Carry(index, std::move(served.ready));
        Pump(index, conn_id);
        return;
      }
      refused = (served.refusal->identity ? "refused: " : "") + served.refusal->message;
      Carry(index, std::move(served.ready));
    }
    // The handler returns its status: the stream ends.
    conn.sender_dead = true;
    if (conn.receiver_open) Send(conn_id, /*to_sender=*/false, Message::Close(refused));
    return;
  }
  replication::Ready ready;
  const bool ok = n.exchange->FromSubscriber(conn_id, message.to_sender, now_, &ready);
  Carry(index, std::move(ready));
  if (!ok) {
    EndServing(index, conn_id);
    conn.sender_dead = true;
    if (conn.receiver_open) Send(conn_id, /*to_sender=*/false, Message::Close("bad message"));
    return;
  }
  Pump(index, conn_id);
}

void Simulation::EndServing(int index, uint64_t conn_id) {
  Node& n = *nodes_[index];
  // The handler has returned: nothing more of the stream reaches it (a late duplicate included).
  conns_.at(conn_id)->sender_dead = true;
  if (n.serving.erase(conn_id) > 0) n.exchange->ServingEnded(conn_id);
}

void Simulation::Pump(int index, uint64_t conn_id) {
  Node& n = *nodes_[index];
  core::VersionVector heads;
  replication::LogRead log;
  for (int guard = 0; guard < 1000; ++guard) {
    if (!n.serving.contains(conn_id)) return;
    heads = n.region->frontier();
    const replication::Exchange::Outgoing out = n.exchange->Next(conn_id, heads, now_);
    if (!out.read && !out.heartbeat) break;
    if (out.heartbeat) {
      // Before any batch: the receiver applies nothing until the sender has said who it is.
      Message beat;
      beat.to_receiver = n.exchange->HeartbeatMessage(heads, n.region->hlc(), {});
      Send(conn_id, /*to_sender=*/false, std::move(beat));
      n.exchange->HeartbeatSent(conn_id, now_);
    }
    if (!out.read) continue;
    if (!replication::ReadForSend(*n.store, *out.read, &log).ok()) return;
    Message message;
    if (!log.complete(*out.read)) {
      replication::Ready ready;
      message.to_receiver =
          n.exchange->Missing(conn_id, *out.read, log.events.empty() ? 0 : log.first_seq, &ready);
      Carry(index, std::move(ready));
    } else {
      Conn& conn = *conns_.at(conn_id);
      if (!conn.encoder && faults_.duplicate == 0 && faults_.reorder == 0) {
        conn.encoder = std::make_unique<replication::BatchStreamEncoder>();
      }
      const replication::EncodedBatch batch = conn.encoder
                                                  ? conn.encoder->Encode(log.events)
                                                  : replication::EncodeBatchOfEncoded(log.events);
      n.exchange->Sent(conn_id, out.read->origin, log.last_seq, batch.raw_bytes);
      wire::Batch* out_batch = message.to_receiver.mutable_batch();
      out_batch->set_origin(out.read->origin);
      out_batch->set_first_seq(log.first_seq);
      out_batch->set_last_seq(log.last_seq);
      out_batch->set_events(batch.bytes);
      out_batch->set_raw_bytes(batch.raw_bytes);
      Trace(n.name + ": send " + nodes_[IndexOfId(out.read->origin)]->name + ":" +
            std::to_string(log.first_seq) + ".." + std::to_string(log.last_seq) + " to " +
            nodes_[conns_.at(conn_id)->receiver]->name + " #" + std::to_string(conn_id));
    }
    Send(conn_id, /*to_sender=*/false, std::move(message));
  }
  if (!n.serving.contains(conn_id)) return;
  ScheduleWake(index, conn_id, std::max(now_ + 1, n.exchange->WakeAtMs(conn_id, heads, now_)));
}

void Simulation::ScheduleWake(int index, uint64_t conn_id, uint64_t at) {
  Node& n = *nodes_[index];
  Node::Serving& serving = n.serving.at(conn_id);
  if (serving.wake_at && *serving.wake_at <= at && *serving.wake_at >= now_) return;
  serving.wake_at = at;
  const uint64_t incarnation = n.incarnation;
  Schedule(at, [this, index, conn_id, at, incarnation] {
    Node& node = *nodes_[index];
    if (!node.up || node.incarnation != incarnation) return;
    auto it = node.serving.find(conn_id);
    if (it == node.serving.end() || it->second.wake_at != at) return;
    it->second.wake_at.reset();
    Pump(index, conn_id);
  });
}

void Simulation::PumpAll(int index) {
  std::vector<uint64_t> ids;
  for (const auto& [id, serving] : nodes_[index]->serving) ids.push_back(id);
  for (uint64_t id : ids) Pump(index, id);
}

// --- re-seeding ------------------------------------------------------------------------------

void Simulation::AskSnapshot(int index, uint64_t incarnation) {
  Node& n = *nodes_[index];
  if (!n.up || n.incarnation != incarnation || !n.reseeding) return;
  core::RegionId peer = 0;
  Message message;
  message.snapshot_request = n.reseeding->Ask(n.exchange->SnapshotRequestMessage(), &peer);
  const uint64_t id = next_conn_++;
  auto conn = std::make_unique<Conn>();
  conn->receiver = index;
  conn->sender = IndexOfId(peer);
  conn->snapshot = true;
  conns_[id] = std::move(conn);
  n.reseed_conn = id;
  Trace(n.name + ": asks " + nodes_[IndexOfId(peer)]->name + " for a snapshot #" +
            std::to_string(id) + (message.snapshot_request.snapshot_id() != 0 ? " (resuming)" : ""),
        true);
  Send(id, /*to_sender=*/true, std::move(message));
}

void Simulation::SnapshotGot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  if (!n.reseeding || n.reseed_conn != conn_id) return;  // an earlier call
  Conn& conn = *conns_.at(conn_id);
  std::string failed;
  if (message.close) {
    failed = message.why.empty() ? "the call ended" : message.why;
  } else {
    const replication::Reseeding::Step step = n.reseeding->Chunk(message.chunk);
    failed = step.error;
    if (failed.empty()) {
      // As the node's commit thread does (nothing else commits while the region re-seeds).
      std::vector<node::Change> changes;
      const Status status = n.region->MergeSnapshotPage(node::SnapshotPageOf(step), &changes);
      Watch(index, changes);
      if (!status.ok()) failed = status.message();
    }
    if (failed.empty()) {
      n.reseeding->Installed(step);
      if (!n.reseeding->done()) return;
      Trace(n.name + ": re-seeded " + std::to_string(n.reseeding->installed()) +
                " documents from " + nodes_[IndexOfId(n.reseeding->source())]->name + " at " +
                n.reseeding->frontier().ToString(),
            true);
      n.reseeded_at.Merge(n.reseeding->frontier());
      n.reseeding.reset();
      n.reseed_conn = 0;
      conn.receiver_open = false;
      CheckTransactionFrontier(index, "after its re-seed");
      Carry(index, n.exchange->Reseeded(n.region->frontier(), n.confirm));
      return;
    }
  }
  conn.receiver_open = false;
  if (!message.close && !conn.broken && !conn.sender_dead) {
    Send(conn_id, /*to_sender=*/true, Message::Close());
  }
  n.reseed_conn = 0;
  const uint64_t delay =
      n.reseeding->Failed(failed, failed.find(replication::kReseedingItself) != std::string::npos);
  Trace(n.name + ": re-seed call #" + std::to_string(conn_id) + " failed: " + failed, true);
  if (n.reseeding->Hopeless() && n.region->frontier().empty() && n.region->ClearDocuments().ok()) {
    Trace(n.name + ": every peer is being re-seeded itself; it starts from nothing", true);
    n.reseeding.reset();
    Carry(index, n.exchange->Reseeded(n.region->frontier(), n.confirm));
    return;
  }
  const uint64_t incarnation = n.incarnation;
  Schedule(now_ + delay, [this, index, incarnation] { AskSnapshot(index, incarnation); });
}

void Simulation::ServeSnapshot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  Conn& conn = *conns_.at(conn_id);
  if (message.close) {
    n.snapshot_calls.erase(conn_id);
    conn.sender_dead = true;
    return;
  }
  const auto refuse = [&](const std::string& why) {
    conn.sender_dead = true;
    if (conn.receiver_open) Send(conn_id, /*to_sender=*/false, Message::Close(why));
  };
  if (replication::RefusesSnapshots(n.reseeding != nullptr, n.region->merging(),
                                    n.region->frontier())) {
    refuse(replication::kReseedingItself);
    return;
  }
  replication::Ready ready;
  const std::optional<replication::Refusal> refusal =
      n.exchange->SnapshotRequested(message.snapshot_request, nodes_[conn.receiver]->id, &ready);
  Carry(index, std::move(ready));
  if (refusal) {
    refuse(refusal->message);
    return;
  }
  auto call = n.snapshots->Open(message.snapshot_request, *n.store, now_);
  if (!call.ok()) {
    refuse(call.status().message());
    return;
  }
  n.snapshot_calls[conn_id] = std::move(call).value();
  SendChunk(index, conn_id, n.incarnation);
}

void Simulation::SendChunk(int index, uint64_t conn_id, uint64_t incarnation) {
  Node& n = *nodes_[index];
  if (!n.up || n.incarnation != incarnation) return;
  auto it = n.snapshot_calls.find(conn_id);
  if (it == n.snapshot_calls.end()) return;
  Conn& conn = *conns_.at(conn_id);
  if (conn.broken || conn.sender_dead) {
    n.snapshot_calls.erase(it);
    return;
  }
  auto chunk = it->second->Next(now_);
  if (!chunk.ok()) {
    n.snapshot_calls.erase(it);
    conn.sender_dead = true;
    if (conn.receiver_open) Send(conn_id, false, Message::Close(chunk.status().message()));
    return;
  }
  const bool done = chunk->done();
  Message message;
  message.chunk = std::move(chunk).value();
  Send(conn_id, /*to_sender=*/false, std::move(message));
  if (done) {
    n.snapshot_calls.erase(conn_id);  // finished: the snapshot is let go
    return;
  }
  // The next page as the stream's flow control lets it go: a millisecond later.
  Schedule(now_ + 1,
           [this, index, conn_id, incarnation] { SendChunk(index, conn_id, incarnation); });
}

// --- the commit path ------------------------------------------------------------------------

void Simulation::ScheduleCommit(int index) {
  Node& n = *nodes_[index];
  if (n.commit_scheduled) return;
  n.commit_scheduled = true;
  const uint64_t incarnation = n.incarnation;
  Schedule(now_ + kCommitMs, [this, index, incarnation] {
    if (nodes_[index]->incarnation == incarnation) CommitPending(index);
  });
}

void Simulation::SubmitWrite(int index, const std::string& key, core::Operation op) {
  Node& n = *nodes_[index];
  if (!n.up) return;
  n.writes.push_back(node::WriteRequest{key, std::move(op)});
  ScheduleCommit(index);
}

Result<node::Receipt> Simulation::Write(int index, const std::string& key, core::Operation op) {
  Node& n = *nodes_[index];
  if (!n.up) return Status(StatusCode::kUnavailable, n.name + " is down");
  n.writes.push_back(node::WriteRequest{key, std::move(op)});
  const size_t position = n.writes.size() - 1;
  // Commits now, with whatever else is queued.
  std::vector<Result<node::Receipt>> outcomes = CommitPending(index);
  return std::move(outcomes.at(position));
}

std::vector<Result<node::Receipt>> Simulation::CommitPending(int index) {
  Node& n = *nodes_[index];
  n.commit_scheduled = false;
  if (!n.up || (n.writes.empty() && n.batches.empty() && n.requests.empty())) return {};
  std::vector<node::WriteRequest> writes = std::move(n.writes);
  std::vector<Node::QueuedBatch> batches = std::move(n.batches);
  std::vector<Node::Request> requests = std::move(n.requests);
  n.writes.clear();
  n.batches.clear();
  n.requests.clear();
  const size_t first_request = writes.size();
  for (Node::Request& request : requests) writes.push_back(std::move(request.write));
  std::vector<node::RemoteEvents> remote;
  for (const Node::QueuedBatch& batch : batches) remote.emplace_back(batch.events);
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<Result<node::RemoteApply>> remote_outcomes;
  std::vector<node::Change> changes;
  n.region->Commit(writes, &outcomes, remote, &remote_outcomes, &changes);

  for (size_t i = 0; i < writes.size(); ++i) {
    if (writes[i].txn) {
      AcknowledgeTransaction(index, writes[i], outcomes[i]);  // one Acknowledged per event
      continue;
    }
    const bool bounded = writes[i].key.starts_with(kBoundedPrefix) &&
                         writes[i].op.kind == core::OpKind::kIncrement &&
                         writes[i].op.counters[0].delta < 0;
    if (outcomes[i].ok()) {
      if (outcomes[i]->dot.seq == 0 && writes[i].op.kind == core::OpKind::kEscrow) {
        continue;  // a repeated declaration: no event
      }
      Acknowledge(index, outcomes[i]->dot, writes[i].key, writes[i].op);
      Trace(n.name + ": ack " + writes[i].key + " " + n.region->EventId(outcomes[i]->dot));
      if (bounded) ++bounded_decrements_;
    } else {
      Trace(n.name + ": refused " + writes[i].key + ": " + outcomes[i].status().message());
      if (bounded && outcomes[i].status().code() == StatusCode::kBoundExceeded) {
        ++bounded_refused_;
      }
    }
  }
  CheckBounds(index, changes);
  Watch(index, changes);
  PumpAll(index);  // a commit wakes every subscriber stream

  // The acknowledging side of each stream, in order (the transport's Inbound::Acknowledge).
  for (size_t i = 0; i < batches.size(); ++i) {
    const Node::QueuedBatch& batch = batches[i];
    const std::string& peer_name = nodes_[IndexOfId(batch.peer)]->name;
    const Result<node::RemoteApply>& outcome = remote_outcomes[i];
    const auto [first_seq, last_seq] = SeqRange(batch.events);
    std::string what = n.name + ": " + nodes_[IndexOfId(batch.origin)]->name + ":" +
                       std::to_string(first_seq) + ".." + std::to_string(last_seq) + " from " +
                       peer_name + ": ";
    if (outcome.ok()) {
      what += std::to_string(outcome->applied) + " applied";
      for (const node::RemoteApply::Parked& parked : outcome->parked) {
        what += ", parked " + n.region->EventId(parked.dot) + " (" + parked.reason + ")";
      }
      if (outcome->duplicates > 0) what += ", " + std::to_string(outcome->duplicates) + " dup";
      if (outcome->gaps > 0) what += ", " + std::to_string(outcome->gaps) + " past a gap";
    } else {
      what += "failed: " + outcome.status().message();
    }
    Trace(what, true);
    replication::Inbound::Applied applied;
    applied.ok = outcome.ok();
    if (outcome.ok()) {
      applied.gaps = outcome->gaps;
      applied.duplicates = outcome->duplicates;
    }
    for (size_t j = i + 1; j < batches.size(); ++j) {
      if (batches[j].conn == batch.conn) applied.last = false;
    }
    if (!n.up) break;
    Carry(index, n.exchange->BatchApplied(batch.stream, batch.origin, applied,
                                          outcome.ok() ? "" : outcome.status().message(),
                                          n.region->frontier(), now_));
  }
  Archive(index);
  CheckTransactions(index, changes, remote_outcomes);
  // The clients' answers, each with the changes of its own events.
  for (size_t i = 0; i < requests.size(); ++i) {
    const Result<node::Receipt>& outcome = outcomes[first_request + i];
    std::vector<node::Change> mine;
    if (outcome.ok()) {
      for (const node::Change& change : changes) {
        if (change.dot == outcome->dot || std::find(outcome->events.begin(), outcome->events.end(),
                                                    change.dot) != outcome->events.end()) {
          mine.push_back(change);
        }
      }
    }
    requests[i].answer(outcome, std::move(mine));
  }
  DrainHeld(index);
  // Rights to accept, wants to serve, refusals to ask for: decided on what just committed.
  if (n.up) RebalanceEscrow(index);
  outcomes.erase(outcomes.begin() + static_cast<std::ptrdiff_t>(first_request), outcomes.end());
  return outcomes;
}

void Simulation::Acknowledge(int index, core::Dot dot, const std::string& key,
                             const core::Operation& op) {
  txn_of_.erase(dot);  // an id issued again after a store lost the transaction that had it
  acknowledged_.push_back(Acknowledged{dot, key, op, StoreGeneration(index)});
}

void Simulation::StartIds(int index) {
  Node& n = *nodes_[index];
  Result<uint64_t> recorded = n.store->IdReservation();
  MERIDIAN_CHECK(recorded.ok());
  n.ids = std::make_unique<node::IdGenerator>(node::IdGeneratorOptions{
      .region = n.id, .clock = &n.id_clock, .recorded = *recorded, .save = [&n](uint64_t reserved) {
        return n.store->SaveIdReservation(reserved);
      }});
  if (n.store_generation != n.ids_generation) {
    // A store lost or replaced by an older copy: its reservation may be older than the last one
    // saved. The ids start reserve_ms past the clock, above the predecessor's unless this clock
    // is behind what it issued (docs/semantics.md#a-lost-or-restored-data-directory): repeats of
    // those are the documented limit, counted apart.
    const uint64_t start_ms = n.id_clock.NowMs() - node::kIdEpochUnixMs + 1 + node::kIdReserveMs;
    auto last = ids_last_.find(index);
    if (last != ids_last_.end() && node::IdMilliseconds(last->second) >= start_ms) {
      ids_excused_below_[index] = std::max(ids_excused_below_[index], last->second);
    }
    n.ids_generation = n.store_generation;
    ids_last_.erase(index);
  }
}

void Simulation::TakeIds(int index) {
  Node& n = *nodes_[index];
  if (!n.up || n.ids == nullptr) return;
  // A few ids every escrow tick, without a draw from the seed's random stream.
  const uint32_t count = 1 + static_cast<uint32_t>((now_ / kEscrowTickMs + index) % 3);
  std::vector<uint64_t> ids;
  if (Status status = n.ids->Next(count, &ids); !status.ok()) {
    if (id_failures_.size() < 10) id_failures_.push_back(n.name + ": " + status.message());
    return;
  }
  for (const uint64_t id : ids) {
    ++ids_issued_;
    const auto fail = [&](const std::string& what) {
      if (id_failures_.size() < 10) {
        id_failures_.push_back(n.name + " at " + std::to_string(now_) + " ms: id " +
                               std::to_string(id) + " " + what);
      }
    };
    if (node::IdRegion(id) != n.id) fail("does not carry the region's id");
    if (auto last = ids_last_.find(index); last != ids_last_.end() && id <= last->second) {
      fail("is not above the last one this store's ids reached, " + std::to_string(last->second));
    }
    ids_last_[index] = std::max(ids_last_[index], id);
    if (!ids_seen_.insert(id).second) {
      if (id <= ids_excused_below_[index]) {
        ++ids_repeated_excused_;
      } else {
        fail("was issued before");
      }
    }
  }
}

void Simulation::RebalanceEscrow(int index) {
  Node& n = *nodes_[index];
  if (!n.up || !n.region->escrow_due()) return;
  std::vector<node::WriteRequest> writes = n.region->EscrowRound(256);
  if (writes.empty()) return;
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<Result<node::RemoteApply>> no_remote;
  std::vector<node::Change> changes;
  n.region->Commit(writes, &outcomes, {}, &no_remote, &changes);
  for (size_t i = 0; i < writes.size(); ++i) {
    const core::EscrowOp& escrow = writes[i].op.escrow;
    const std::string what = std::string(core::EscrowOpKindName(escrow.kind)) + " " +
                             writes[i].key + "." + escrow.field + " " +
                             std::to_string(escrow.amount);
    if (!outcomes[i].ok()) {
      Trace(n.name + ": escrow " + what + " refused: " + outcomes[i].status().message());
      continue;
    }
    Acknowledge(index, outcomes[i]->dot, writes[i].key, writes[i].op);
    ++escrow_events_;
    Trace(n.name + ": escrow " + what + " " + n.region->EventId(outcomes[i]->dot));
  }
  CheckBounds(index, changes);
  Watch(index, changes);
  PumpAll(index);
  Archive(index);
}

void Simulation::CheckBounds(int index, const std::vector<node::Change>& changes) {
  Node& n = *nodes_[index];
  std::set<std::string> keys;
  for (const node::Change& change : changes) {
    if (change.key.starts_with(kBoundedPrefix)) keys.insert(change.key);
  }
  const auto fail = [&](const std::string& key, const std::string& what) {
    Trace(n.name + ": BOUND BROKEN " + key + ": " + what, true);
    if (bound_failures_.size() < 10) {
      bound_failures_.push_back(n.name + " at " + std::to_string(now_) + " ms: " + key + ": " +
                                what);
    }
  };
  for (const std::string& key : keys) {
    // A copy marked damaged lacks events (one of them parked as a dead letter, say): it is not
    // a prefix of each origin's events, which the bound rests on, until it is repaired.
    if (n.region->IsDamaged(key)) continue;
    auto bytes = n.store->GetDocumentState(key);
    auto view = n.store->GetView(key);
    if (!bytes.ok() || !bytes->has_value() || !view.ok()) continue;
    auto state = core::DocumentState::Decode(**bytes);
    if (!state.ok()) continue;
    for (const auto& [field, ledger] : state->escrows()) {
      if (!ledger.declared()) continue;
      const int64_t min = ledger.declaration()->min;
      const int64_t value = *ledger.Value();
      if (value < min) fail(key, field + " is " + std::to_string(value) + ", below its bound");
      for (core::RegionId region : n.region->regions()) {
        if (ledger.Rights(region) < 0) {
          fail(key, field + ": " + n.region->NameOf(region) + " holds " +
                        std::to_string(ledger.Rights(region)) + " rights");
        }
      }
      std::optional<std::string> shown;
      if (view->has_value()) {
        const nlohmann::json doc = nlohmann::json::parse(**view, nullptr, false);
        if (doc.is_object() && doc.contains(field)) shown = doc[field].dump();
      }
      if (shown != std::to_string(value)) {
        fail(key, field + " renders " + shown.value_or("(absent)") + ", its ledger's value is " +
                      std::to_string(value));
      }
    }
  }
}

void Simulation::Archive(int index) {
  Node& n = *nodes_[index];
  (void)n.store->ReadLog(
      n.id, n.archived_seq + 1, SIZE_MAX, [&](const storage::LoggedEvent& entry) {
        auto event = core::DecodeEvent(entry.bytes, replication::kRemoteLimits);
        if (!event.ok()) {
          Trace(n.name + ": logged event " + entry.dot.ToString() + " does not decode", true);
          return;
        }
        n.archived_seq = entry.dot.seq;
        all_events_[entry.dot] = *event;  // an id issued again replaces the one lost before
        n.archive.push_back(std::move(event).value());
      });
}

void Simulation::Watch(int index, const std::vector<node::Change>& changes) {
  Node& n = *nodes_[index];
  for (const node::Change& change : changes) {
    n.watch_lsn = std::max(n.watch_lsn, change.lsn);
    if (change.key.starts_with(kWatchPrefix)) n.watched.push_back(change);
  }
}

// --- reads ----------------------------------------------------------------------------------

std::optional<std::string> Simulation::Get(int index, const std::string& key) {
  auto view = nodes_[index]->store->GetView(key);
  return view.ok() ? *view : std::nullopt;
}

std::vector<std::string> Simulation::Conflicts(int index, size_t limit) {
  auto records = nodes_[index]->store->RecentConflicts(limit);
  return records.ok() ? *records : std::vector<std::string>{};
}

core::VersionVector Simulation::Frontier(int index) const {
  const Node& n = *nodes_[index];
  if (n.region) return n.region->frontier();
  auto recovered = n.store->Recover();
  return recovered.ok() ? recovered->frontier : core::VersionVector{};
}

uint64_t Simulation::Digest(int index) const {
  const Node& n = *nodes_[index];
  if (n.region) return n.region->digest();
  auto recovered = n.store->Recover();
  return recovered.ok() ? recovered->digest : 0;
}

std::vector<replication::Links::View> Simulation::LinkViews(int index) const {
  const Node& n = *nodes_[index];
  return n.exchange ? n.exchange->inbound().links().Views()
                    : std::vector<replication::Links::View>{};
}

// --- client requests (src/sim/requests.cc, src/sim/strong.cc) -------------------------------

void Simulation::Request(int index, node::WriteRequest write, Answer answer) {
  Node& n = *nodes_[index];
  if (!n.up) {
    answer(Status(StatusCode::kUnavailable, n.name + " is down"), {});
    return;
  }
  n.requests.push_back(Node::Request{std::move(write), std::move(answer)});
  ScheduleCommit(index);
}

node::Region* Simulation::region(int index) {
  return nodes_.at(index)->up ? nodes_[index]->region.get() : nullptr;
}

node::HomeTable* Simulation::homes(int index) {
  return nodes_.at(index)->up ? nodes_[index]->homes.get() : nullptr;
}

uint64_t Simulation::incarnation(int index) const {
  return nodes_.at(index)->incarnation;
}

size_t Simulation::RegionsHolding(int index, core::Dot dot) const {
  const Node& n = *nodes_.at(index);
  return n.up && n.exchange ? n.exchange->RegionsHolding(dot) : 0;
}

uint64_t Simulation::StoreGeneration(int index) const {
  return nodes_.at(index)->store_generation;
}

bool Simulation::member(int index) const {
  return nodes_.at(index)->member;
}

// --- running to a condition -----------------------------------------------------------------

bool Simulation::RunUntilQuiet(uint64_t max_ms) {
  const uint64_t deadline = now_ + max_ms;
  for (;;) {
    bool quiet = batches_on_wire_ == 0;
    for (const auto& node : nodes_) {
      if (!quiet) break;
      if (!node->writes.empty() || !node->batches.empty() || !node->requests.empty()) {
        quiet = false;
      }
      if (!node->up) continue;
      const core::VersionVector heads = node->region->frontier();
      for (const auto& [id, serving] : node->serving) {
        if (!conns_.at(id)->broken && node->exchange->Backlog(id, heads) > 0) quiet = false;
      }
    }
    if (quiet) return true;
    if (now_ >= deadline) return false;
    RunUntil(std::min(deadline, now_ + 1));
  }
}

core::VersionVector Simulation::Heads() const {
  core::VersionVector heads;
  for (int i = 0; i < size(); ++i) heads.Set(nodes_[i]->id, Frontier(i).Get(nodes_[i]->id));
  return heads;
}

std::optional<uint64_t> Simulation::RunUntilConverged(uint64_t max_ms) {
  const uint64_t start = now_;
  const uint64_t deadline = now_ + max_ms;
  for (;;) {
    bool converged = true;
    const core::VersionVector heads = Heads();
    for (const auto& node : nodes_) {
      if (!node->member) continue;
      // A rebuilding region takes no writes yet: not converged until it has its own back and
      // every peer has told it so (a peer may refuse it for a while: a stream of its earlier
      // process is still open there until keepalive ends it).
      if (!node->up || !node->writes.empty() || !node->requests.empty() ||
          node->region->rebuilding() || node->reseeding) {
        converged = false;
      }
    }
    for (int i = 0; i < size() && converged; ++i) {
      if (nodes_[i]->member) converged = Frontier(i) == heads;
    }
    // Documents damaged in a store are repaired by verification: the same data everywhere.
    std::optional<uint64_t> digest;
    for (int i = 0; i < size() && converged; ++i) {
      if (!nodes_[i]->member) continue;
      if (nodes_[i]->region->damaged_count() > 0) converged = false;
      if (digest && *digest != Digest(i)) converged = false;
      digest = Digest(i);
    }
    if (converged) return now_ - start;
    if (now_ >= deadline) return std::nullopt;
    RunUntil(std::min(deadline, now_ + 10));
  }
}

}  // namespace meridian::sim

// --- the checkers ---------------------------------------------------------------------------

namespace meridian::sim {

std::vector<std::string> Simulation::Check(bool require_fold) {
  std::vector<std::string> failures;
  const auto fail = [&failures](std::string what) {
    if (failures.size() < 20) failures.push_back(std::move(what));
  };
  // The deployment's regions (a removed one is not checked; its events are, in the others).
  std::vector<Node*> members;
  for (const auto& node : nodes_) {
    if (node->member) members.push_back(node.get());
  }
  for (const Node* node : members) {
    if (!node->up) fail(node->name + " is down");
  }
  if (!failures.empty()) return failures;

  // Parked events were settled: their documents restored from a region that applied them
  // (the dead letter resolved), or applied again.
  for (Node* node : members) {
    uint64_t after = 0;
    for (bool more = true; more;) {
      auto scanned =
          node->store->ScanDeadLetters(after, 256, [&](uint64_t id, std::string_view record) {
            after = id;
            auto letter = node::DeadLetter::Decode(id, record);
            if (!letter.ok()) {
              fail(node->name + ": dead letter " + std::to_string(id) + " does not decode");
            } else if (letter->state == node::DeadLetter::State::kParked) {
              fail(node->name + ": dead letter " + std::to_string(id) + " (" + letter->event +
                   ", " + letter->key + ") is still parked");
            }
          });
      more = scanned.ok() && *scanned;
    }
  }
  // Damaged documents were found and repaired (verification).
  for (const Node* node : members) {
    if (size_t damaged = node->region->damaged_count(); damaged > 0) {
      fail(node->name + " still has " + std::to_string(damaged) + " documents marked damaged");
    }
  }
  // 1. Converged: every region applied every origin's events, and shows the same data.
  const core::VersionVector heads = Heads();
  for (const Node* node : members) {
    if (node->region->frontier() != heads) {
      fail(node->name + " has applied " + node->region->frontier().ToString() +
           "; every origin's head is " + heads.ToString());
    }
  }
  std::vector<std::map<std::string, std::string>> views(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    Node& n = *members[i];
    const auto visit = [&](std::string_view key, std::string_view rendered) {
      views[i].emplace(key, rendered);
    };
    const Status status = n.store->ScanViews("", "", SIZE_MAX, visit).status();
    if (!status.ok()) fail(n.name + ": scan failed: " + status.message());
    uint64_t digest = 0;
    for (const auto& [key, rendered] : views[i]) {
      digest ^= core::RenderedDigest(key, std::optional<std::string>(rendered));
    }
    if (digest != n.region->digest()) {
      fail(n.name + ": its digest " + std::to_string(n.region->digest()) +
           " is not the digest of its documents " + std::to_string(digest));
    }
    if (i == 0) continue;
    if (n.region->digest() != members[0]->region->digest()) {
      fail(n.name + "'s digest differs from " + members[0]->name + "'s");
    }
    std::set<std::string> keys;
    for (const auto& [key, rendered] : views[0]) keys.insert(key);
    for (const auto& [key, rendered] : views[i]) keys.insert(key);
    for (const std::string& key : keys) {
      auto a = views[0].find(key);
      auto b = views[i].find(key);
      const std::string left = a == views[0].end() ? "(absent)" : a->second;
      const std::string right = b == views[i].end() ? "(absent)" : b->second;
      if (left != right) {
        fail(key + ": " + members[0]->name + " shows " + left + ", " + n.name + " shows " + right);
      }
    }
  }

  // 2. No acknowledged write lost, none committed unacknowledged, and every region holds each.
  // An event id is acknowledged twice only when the first write was lost with its region's store
  // (no region held it when the store was lost or replaced by an older copy, so the rebuilt
  // region could issue the id again); a write no region held then is gone with that store; every
  // other acknowledged write is kept, and is the one every region holds under its id.
  std::map<core::Dot, std::vector<const Acknowledged*>> by_dot;
  for (const Acknowledged& write : acknowledged_) by_dot[write.dot].push_back(&write);
  std::map<core::Dot, const Acknowledged*> acked;
  std::vector<Acknowledged> kept;
  lost_with_store_ = 0;
  // The newest event id per origin lost with a store: metadata elsewhere may still name it (the
  // context of an event that a region applied before the store was lost), and no region can fold
  // that away until the id is issued again.
  core::VersionVector lost_through;
  for (const auto& [dot, writes] : by_dot) {
    const Node& origin = *nodes_[IndexOfId(dot.origin)];
    const bool held = heads.Covers(dot);
    const Acknowledged* last = writes.back();
    for (const Acknowledged* write : writes) {
      const bool survivor = held && write == last;
      if (survivor) continue;
      const uint64_t replaced_by = held ? last->store_generation : origin.store_generation;
      if (write->store_generation < replaced_by) {
        ++lost_with_store_;
        lost_through.Set(dot.origin, std::max(lost_through.Get(dot.origin), dot.seq));
      } else if (write != last) {
        fail("event id " + members[0]->region->EventId(dot) + " was acknowledged twice (" +
             write->key + ", then " + last->key + ")");
      }
    }
    if (held) {
      acked[dot] = last;
      kept.push_back(*last);
    } else if (last->store_generation >= origin.store_generation) {
      acked[dot] = last;  // reported below as lost
      kept.push_back(*last);
    }
  }
  // Log retention may have trimmed the oldest events of an origin from a region's log: those are
  // held there (below its frontier) without a log entry to show. Per region and origin: the first
  // seq still logged; a re-seeded region holds what its snapshot covered without a log entry
  // either. Each region's own events are read from its archive (what its store's log held), and
  // the events the documents must show from every origin's archive (the events of every store
  // it had; an id issued again after a store lost it replaces the lost one).
  const auto kept_from = [](const Node& node, core::RegionId origin) {
    uint64_t first = node.region->frontier().Get(origin) + 1;
    (void)node.store->ReadLog(origin, 1, 1,
                              [&](const storage::LoggedEvent& entry) { first = entry.dot.seq; });
    return first;
  };
  std::vector<core::Event> events;
  for (size_t i = 0; i < nodes_.size(); ++i) Archive(static_cast<int>(i));
  for (const Node* node : members) {
    std::set<core::Dot> logged;
    for (const core::Event& event : node->archive) {
      logged.insert(event.dot);
      if (auto it = acked.find(event.dot); it != acked.end() && it->second->key != event.key) {
        fail(node->region->EventId(event.dot) + " holds a write of " + event.key +
             ", not the acknowledged write of " + it->second->key);
      }
    }
    for (const core::Dot& dot : logged) {
      if (!acked.contains(dot)) {
        fail(node->region->EventId(dot) + " is committed but was never acknowledged");
      }
    }
    const uint64_t own_kept_from = kept_from(*node, node->id);
    for (const auto& [dot, write] : acked) {
      if (dot.origin == node->id && !logged.contains(dot) && dot.seq >= own_kept_from &&
          !node->reseeded_at.Covers(dot)) {
        fail("acknowledged write " + node->region->EventId(dot) + " (" + write->key +
             ") is lost at its origin");
      }
    }
  }
  for (const auto& [dot, event] : all_events_) {
    if (heads.Covers(dot)) events.push_back(event);
  }
  for (const Node* node : members) {
    for (const auto& [dot, write] : acked) {
      auto lsn = node->store->LsnOf(dot);
      const bool trimmed = dot.seq < kept_from(*node, dot.origin);
      const bool merged = node->reseeded_at.Covers(dot) && node->region->frontier().Covers(dot);
      if (!trimmed && !merged && (!lsn.ok() || !lsn->has_value())) {
        fail(node->name + " lacks acknowledged write " + node->region->EventId(dot));
      }
    }
  }
  // Causality: a write that has seen another has the greater HLC, whatever the clocks did
  // (docs/semantics.md); per origin, its latest event the context covers is enough to compare.
  std::map<core::Dot, core::HlcTimestamp> hlcs;
  for (const core::Event& event : events) hlcs[event.dot] = event.hlc;
  for (const core::Event& event : events) {
    for (const auto& entry : event.context.entries()) {
      // An id lost with a store and issued again names another write now (the known limit in
      // docs/replication.md, "Two stores lost at once can leave an id named but gone").
      if (entry.seq <= lost_through.Get(entry.origin)) continue;
      auto seen = hlcs.find(core::Dot{entry.origin, entry.seq});
      if (seen != hlcs.end() && seen->second >= event.hlc) {
        fail(members[0]->region->EventId(event.dot) + " (HLC " + core::FormatHlc(event.hlc) +
             ") had seen " + members[0]->region->EventId(seen->first) + " (HLC " +
             core::FormatHlc(seen->second) + ")");
      }
    }
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i]->region->documents() != views[i].size()) {
      fail(members[i]->name + " counts " + std::to_string(members[i]->region->documents()) +
           " documents and holds " + std::to_string(views[i].size()));
    }
  }

  // Every document is what the specification says of exactly the acknowledged events.
  const Oracle oracle(events);
  std::set<std::string> keys;
  for (const Acknowledged& write : kept) keys.insert(write.key);
  for (const std::string& key : keys) {
    const std::optional<std::string> expected = oracle.Render(key);
    auto it = views[0].find(key);
    const std::optional<std::string> shown =
        it == views[0].end() ? std::nullopt : std::optional<std::string>(it->second);
    if (expected != shown) {
      fail(key + ": regions show " + shown.value_or("(absent)") + ", the events say " +
           expected.value_or("(absent)"));
    }
  }

  // Bounded counters: no view was ever below its bound (CheckBounds after every commit), and
  // each converged value is the declared start plus every acknowledged escrowed increment (an
  // increment a region took before it knew the bound is outside the escrow: not counted).
  for (const std::string& failure : bound_failures_) fail("bounded counter: " + failure);
  for (const std::string& failure : id_failures_) fail("unique ids: " + failure);
  std::map<std::string, int64_t> escrowed;  // "key.field" -> sum
  for (const Acknowledged& write : kept) {
    if (!write.key.starts_with(kBoundedPrefix) || write.op.kind != core::OpKind::kIncrement) {
      continue;
    }
    auto event = all_events_.find(write.dot);
    if (event == all_events_.end()) continue;  // reported above
    for (const core::CounterDelta& counter : event->second.op.counters) {
      if (counter.escrow) escrowed[write.key + "." + counter.name] += counter.delta;
    }
  }
  for (const auto& [key, rendered] : views[0]) {
    if (!key.starts_with(kBoundedPrefix)) continue;
    auto bytes = members[0]->store->GetDocumentState(key);
    if (!bytes.ok() || !bytes->has_value()) continue;
    auto state = core::DocumentState::Decode(**bytes);
    if (!state.ok()) continue;
    for (const auto& [field, ledger] : state->escrows()) {
      if (!ledger.declared()) continue;
      int64_t start = ledger.declaration()->min;
      for (const auto& [region, share] : ledger.declaration()->shares) start += share;
      const int64_t expected = start + escrowed[key + "." + field];
      if (*ledger.Value() != expected) {
        fail(key + "." + field + " is " + std::to_string(*ledger.Value()) + "; declared at " +
             std::to_string(start) + " plus acknowledged escrowed increments " +
             std::to_string(escrowed[key + "." + field]));
      }
    }
  }

  // 3. Counters (keys only ever incremented): the sum of their acknowledged increments.
  std::map<std::string, int64_t> sums;
  std::set<std::string> not_counters;
  for (const Acknowledged& write : kept) {
    if (write.op.kind != core::OpKind::kIncrement) {
      not_counters.insert(write.key);
      continue;
    }
    for (const core::CounterDelta& counter : write.op.counters) {
      sums[write.key + "." + counter.name] += counter.delta;
    }
  }
  for (const auto& [name, sum] : sums) {
    const std::string key = name.substr(0, name.rfind('.'));
    const std::string field = name.substr(name.rfind('.') + 1);
    if (not_counters.contains(key)) continue;
    for (const Node* node : members) {
      auto state = node->store->GetDocumentState(key);
      std::optional<std::string> value;
      if (state.ok() && state->has_value()) {
        auto decoded = core::DocumentState::Decode(**state);
        if (decoded.ok()) value = decoded->RenderField(field);
      }
      if (value != std::to_string(sum)) {
        fail(node->name + ": counter " + name + " is " + value.value_or("(absent)") +
             "; its acknowledged increments sum to " + std::to_string(sum));
      }
    }
  }

  // 4. Watches: every change of the prefix exactly once, in per-origin order, lsns increasing.
  std::set<core::Dot> expected_watch;
  for (const Acknowledged& write : kept) {
    if (write.key.starts_with(kWatchPrefix)) expected_watch.insert(write.dot);
  }
  for (const Node* node : members) {
    // Events parked here as dead letters make no change of their own: their documents' repair
    // (a merged change) shows their effect.
    std::set<core::Dot> parked;
    uint64_t after = 0;
    for (bool more = true; more;) {
      auto scanned =
          node->store->ScanDeadLetters(after, 256, [&](uint64_t id, std::string_view record) {
            after = id;
            if (auto letter = node::DeadLetter::Decode(id, record); letter.ok()) {
              parked.insert(letter->dot);
            }
          });
      more = scanned.ok() && *scanned;
    }
    std::set<core::Dot> seen;
    std::map<core::RegionId, uint64_t> last_seq;
    uint64_t last_lsn = 0;
    std::map<std::string, std::optional<std::string>> last_doc;
    for (const node::Change& change : node->watched) {
      if (change.merged()) {  // a re-seed's merged document: no event to check
        if (change.lsn <= last_lsn) fail(node->name + "'s watch saw a merged change out of order");
        last_lsn = change.lsn;
        last_doc[change.key] = change.doc;
        continue;
      }
      const std::string id = node->region->EventId(change.dot);
      if (!seen.insert(change.dot).second) fail(node->name + "'s watch saw " + id + " twice");
      if (change.lsn <= last_lsn) {
        fail(node->name + "'s watch saw lsn " + std::to_string(change.lsn) + " after " +
             std::to_string(last_lsn));
      }
      // A dead letter applied again comes after the later events of its origin (its dot was
      // passed when it was parked).
      if (change.dot.seq <= last_seq[change.dot.origin] && !parked.contains(change.dot)) {
        fail(node->name + "'s watch saw " + id + " after seq " +
             std::to_string(last_seq[change.dot.origin]) + " of its origin");
      }
      last_lsn = std::max(last_lsn, change.lsn);
      last_seq[change.dot.origin] = std::max(last_seq[change.dot.origin], change.dot.seq);
      last_doc[change.key] = change.doc;
    }
    for (const core::Dot& dot : expected_watch) {
      if (!seen.contains(dot) && !node->reseeded_at.Covers(dot) && !parked.contains(dot)) {
        fail(node->name + "'s watch never saw " + node->region->EventId(dot));
      }
    }
    for (const core::Dot& dot : seen) {
      if (!expected_watch.contains(dot)) {
        fail(node->name + "'s watch saw " + node->region->EventId(dot) +
             ", which is no acknowledged write of the prefix");
      }
    }
    for (const auto& [key, doc] : last_doc) {
      auto it = views[0].find(key);
      const std::optional<std::string> now =
          it == views[0].end() ? std::nullopt : std::optional<std::string>(it->second);
      if (doc != now) {
        fail(node->name + "'s watch last saw " + key + " as " + doc.value_or("(absent)") +
             ", which now shows " + now.value_or("(absent)"));
      }
    }
  }

  // 5. Stable metadata. Everything is applied everywhere and nothing is in flight, so the
  // converged frontier is causally stable: folding with it must change no render and leave each
  // field one value and one increment per origin, with no removal vectors. The regions fold it
  // themselves once a heartbeat round has told each what the others hold, and their sweeps have
  // passed every document. Ids lost with a store may still be named by contexts (see
  // lost_through): the check folds them too.
  core::VersionVector fold_with = heads;
  fold_with.Merge(lost_through);
  for (Node* node : members) {
    for (const Node* peer : members)
      node->region->ObserveFrontier(peer->id, peer->region->frontier());
    for (int sweep = 0; sweep < 2; ++sweep) {
      size_t folded = 0;
      if (Status status = node->region->FoldSweep(SIZE_MAX, &folded); !status.ok()) {
        fail(node->name + ": a fold sweep failed: " + status.message());
      }
    }
  }
  metadata_entries_ = 0;
  metadata_folded_ = 0;
  for (const Node* node : members) {
    for (const std::string& key : keys) {
      auto bytes = node->store->GetDocumentState(key);
      if (!bytes.ok() || !bytes->has_value()) continue;
      auto state = core::DocumentState::Decode(**bytes);
      if (!state.ok()) {
        fail(node->name + ": the state of " + key + " does not decode");
        continue;
      }
      metadata_entries_ += state->MetadataEntries();
      core::DocumentState folded = *state;
      folded.Fold(heads);  // what the regions can fold (stable never covers a lost id)
      metadata_folded_ += folded.MetadataEntries();
      folded.Fold(fold_with);
      if (folded.Render() != state->Render()) {
        fail(node->name + ": folding " + key + " changed its render");
      }
      if (!folded.removed().empty()) fail(node->name + ": " + key + " keeps a removed vector");
      for (const auto& [name, field] : folded.fields()) {
        std::set<core::RegionId> origins;
        for (const core::Increment& increment : field.increments) {
          origins.insert(increment.dot.origin);
        }
        if (field.siblings.size() > 1 || origins.size() != field.increments.size() ||
            !field.removed.empty()) {
          fail(node->name + ": " + key + "." + name + " keeps more than one stable value");
        }
      }
    }
  }
  if (require_fold && metadata_entries_ > metadata_folded_) {
    fail("stable metadata is not folded away: the regions hold " +
         std::to_string(metadata_entries_) + " merge entries, " + std::to_string(metadata_folded_) +
         " after a fold with the converged frontier");
  }

  // 6. Transactions: applied whole after every commit everywhere, and held whole at the end.
  for (const std::string& failure : txn_failures_) fail(failure);
  CheckTransactionsConverged(heads, fail);
  return failures;
}

}  // namespace meridian::sim
