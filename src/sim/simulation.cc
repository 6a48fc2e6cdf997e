#include "sim/simulation.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "core/document.h"
#include "replication/batch_codec.h"
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

namespace {

// The transport's constants (src/replication/transport.cc), and the node's defaults
// (docs/configuration.md), so that the simulated links behave like the real ones.
constexpr core::Limits kRemoteLimits{.key_bytes_max = 64 * 1024,
                                     .field_name_bytes_max = 64 * 1024,
                                     .value_bytes_max = 256 << 20,
                                     .document_bytes_max = 256 << 20,
                                     .fields_max = 1'000'000};
constexpr uint64_t kHeartbeatMs = 100;
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

replication::SenderOptions SenderOptions() {
  replication::SenderOptions options;
  options.heartbeat_ms = kHeartbeatMs;
  return options;
}

std::string Origins(const std::vector<std::string>& names, const std::vector<core::RegionId>& ids) {
  std::string out;
  for (core::RegionId id : ids) {
    if (!out.empty()) out += ",";
    out += id >= 1 && id <= names.size() ? names[id - 1] : std::to_string(id);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& RegionNames() {
  static const std::vector<std::string> kNames = {"us", "eu", "asia", "sa", "af",
                                                  "au", "me", "ca",   "in"};
  return kNames;
}

struct Simulation::Message {
  enum class Kind { kSubscribe, kBatch, kHeartbeat, kAck, kBehindRetention, kClose };
  Kind kind = Kind::kClose;
  core::VersionVector frontier;         // Subscribe, Heartbeat, Ack
  std::vector<core::RegionId> origins;  // Subscribe
  core::RegionId origin = 0;            // Batch, BehindRetention
  uint64_t first_seq = 0;               // Batch; BehindRetention: wanted
  uint64_t last_seq = 0;                // Batch; BehindRetention: oldest
  std::string events;                   // Batch: the zstd frame
  uint64_t incarnation = 0;             // Subscribe, Heartbeat: the store generation + 1
};

// One stream: `receiver` dialled `sender` and subscribes to it.
struct Simulation::Conn {
  int receiver = 0;
  int sender = 0;
  bool receiver_open = true;          // the receiver still reads it
  bool sender_dead = false;           // the sender's process died (or refused the dial)
  bool broken = false;                // lost in the network: nothing more gets through
  bool handshake = true;              // the first message also pays the connection setup
  uint64_t last_arrival[2] = {0, 0};  // FIFO per direction: [to the sender]
  // Batches as the transport sends them: chunks of one zstd stream per connection, which holds
  // only while nothing duplicates or reorders messages within the connection (as TCP never
  // does). Made at the first batch sent while no such fault is on; from then on every batch of
  // the connection is a chunk, and those faults spare its batches. Before, batches go alone.
  std::unique_ptr<replication::BatchStreamEncoder> encoder;
  std::unique_ptr<replication::BatchStreamDecoder> decoder;
};

struct Simulation::Node {
  explicit Node(const uint64_t* now) : clock(now) {}
  std::string name;
  core::RegionId id = 0;
  std::unique_ptr<storage::Store> store;  // durable: survives crashes
  uint64_t store_generation = 0;          // grows when the store is lost or replaced by a copy
  bool confirm = false;  // the store is new (empty or a copy) and has not rebuilt yet
  std::unique_ptr<storage::Store> copy;  // SaveCopy's backup
  SimClock clock;
  bool up = true;
  uint64_t incarnation = 0;
  std::unique_ptr<node::Region> region;
  std::unique_ptr<replication::Inbound> inbound;
  uint64_t swept_ms = 0;  // when the last fold sweep ran, as the node's commit thread does

  // Receiving side, per open stream (by connection): Inbound's stream id. A peer has none while
  // backing off, and two while a dial hedges a slow one.
  struct Link {
    core::RegionId peer = 0;
    uint64_t stream = 0;
    bool connected = false;    // for the trace; Inbound decides
    uint64_t incarnation = 0;  // the peer's store generation + 1, from its first heartbeat
  };
  std::map<uint64_t, Link> dials;

  // Sending side, per subscriber stream.
  struct Serving {
    core::RegionId peer = 0;
    replication::Outbound outbound{SenderOptions()};
    std::optional<uint64_t> wake_at;
  };
  std::map<uint64_t, Serving> serving;

  // The commit thread's queue: what a crash loses.
  std::vector<node::WriteRequest> writes;
  struct QueuedBatch {
    core::RegionId peer = 0;
    uint64_t conn = 0;
    core::RegionId origin = 0;
    std::vector<core::Event> events;
  };
  std::vector<QueuedBatch> batches;
  bool commit_scheduled = false;

  // The watch: a client outside the region, so it survives crashes and resumes from its lsn.
  uint64_t watch_lsn = 0;
  std::vector<node::Change> watched;
};

Simulation::Simulation(std::vector<std::string> names, const Options& options, std::ostream* trace)
    : options_(options), trace_(trace), random_(options.seed), faults_(options.faults) {
  for (const std::string& name : names) {
    auto node = std::make_unique<Node>(&now_);
    node->name = name;
    const auto& all = RegionNames();
    node->id =
        static_cast<core::RegionId>(std::find(all.begin(), all.end(), name) - all.begin()) + 1;
    node->store = storage::NewMemoryStore();
    nodes_.push_back(std::move(node));
  }
  for (int a = 0; a < size(); ++a) {
    for (int b = a + 1; b < size(); ++b) rtt_[{a, b}] = options.rtt_ms ? options.rtt_ms : 100;
  }
  for (int i = 0; i < size(); ++i) BootNode(i);
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
  for (const auto& other : nodes_) names[other->id] = other->name;
  return std::make_unique<node::Region>(n.id, std::move(names), n.store.get(), &n.clock,
                                        core::Limits{}, kMaxSkewMs);
}

void Simulation::BootNode(int index) {
  Node& n = *nodes_[index];
  n.up = true;
  n.region = NewRegion(index);
  if (Status status = n.region->Recover(); !status.ok()) {
    Trace(n.name + ": recovery failed: " + status.message(), true);
  }
  std::vector<core::RegionId> peers;
  for (const auto& other : nodes_) {
    if (other->id != n.id) peers.push_back(other->id);
  }
  n.inbound = std::make_unique<replication::Inbound>(peers, options_.links, now_);
  n.inbound->FollowOwnOrigin(n.id, n.confirm, n.region->frontier().Get(n.id));
  n.region->SetRebuilding(n.inbound->rebuilding());
  if (n.confirm) Trace(n.name + ": rebuilding", true);
  n.dials.clear();
  const uint64_t incarnation = n.incarnation;
  for (core::RegionId peer : peers) {
    Schedule(now_, [this, index, peer, incarnation] { Dial(index, peer, incarnation); });
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
  n.inbound.reset();
  n.dials.clear();
  n.serving.clear();
  n.writes.clear();
  n.batches.clear();
  n.commit_scheduled = false;
  // The process is gone: its sockets are reset, which the other end hears if the path is up.
  for (auto& [id, conn] : conns_) {
    if (conn->broken) continue;
    if (conn->receiver == index && conn->receiver_open) {
      conn->receiver_open = false;
      if (!conn->sender_dead) Send(id, /*to_sender=*/true, Message{});
    }
    if (conn->sender == index && !conn->sender_dead) {
      conn->sender_dead = true;
      if (conn->receiver_open) Send(id, /*to_sender=*/false, Message{});
    }
  }
}

void Simulation::ReplaceStore(int index, std::unique_ptr<storage::Store> store,
                              const std::string& why) {
  Node& n = *nodes_[index];
  Crash(index);
  Trace(n.name + ": " + why, true);
  n.store = std::move(store);
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
  Trace(n.name + ": a copy of its store is taken", true);
}

bool Simulation::RestoreCopy(int index) {
  Node& n = *nodes_[index];
  if (n.copy == nullptr) return false;
  ReplaceStore(index, storage::CopyMemoryStore(*n.copy), "restored from an older copy");
  return true;
}

void Simulation::FenceEarlierIncarnations(int index, core::RegionId peer, uint64_t incarnation) {
  Node& n = *nodes_[index];
  std::vector<uint64_t> fenced;
  for (const auto& [conn_id, link] : n.dials) {
    if (link.peer == peer && link.incarnation != 0 && link.incarnation != incarnation) {
      fenced.push_back(conn_id);
    }
  }
  for (uint64_t conn_id : fenced) {
    // What the stream queued for the commit thread is dropped, not applied (the transport's
    // FenceEarlierIncarnations; the simulator's commit thread never runs concurrently).
    const size_t before = n.batches.size();
    std::erase_if(n.batches,
                  [conn_id](const Node::QueuedBatch& batch) { return batch.conn == conn_id; });
    EndLink(index, conn_id,
            "its peer has a new incarnation (" + std::to_string(before - n.batches.size()) +
                " queued batches dropped)");
  }
}

void Simulation::SyncRebuild(int index) {
  Node& n = *nodes_[index];
  const bool rebuilding = n.inbound->rebuilding();
  if (rebuilding == n.region->rebuilding()) return;
  n.region->SetRebuilding(rebuilding);
  if (!rebuilding) n.confirm = false;  // as the node records it in its data directory
  Trace(n.name + (rebuilding ? ": rebuilding (a peer holds more of its events)" : ": rebuilt"),
        true);
}

void Simulation::Restart(int index) {
  Node& n = *nodes_[index];
  if (n.up) return;
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
  if (message.kind == Message::Kind::kBatch && conn.encoder != nullptr) {
    reorder = duplicate = false;  // a stream's chunks decode only in order, once
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
  const bool batch = message.kind == Message::Kind::kBatch;
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
  if (message.kind == Message::Kind::kBatch) --batches_on_wire_;
  const auto ends = Ends(conn_id, to_sender);
  if (!ends) return;
  const int to = ends->second;
  Conn& conn = *conns_.at(conn_id);
  if (to_sender) {
    if (conn.sender_dead) return;
    if (!nodes_[to]->up) {
      // Nothing listens there: the dial is refused.
      conn.sender_dead = true;
      if (conn.receiver_open) Send(conn_id, /*to_sender=*/false, Message{});
      return;
    }
    SenderGot(to, conn_id, message);
  } else {
    if (!conn.receiver_open || !nodes_[to]->up) return;
    ReceiverGot(to, conn_id, message);
  }
}

void Simulation::Break(uint64_t conn_id, const std::string& why) {
  Conn& conn = *conns_.at(conn_id);
  if (conn.broken) return;
  conn.broken = true;
  Trace("stream " + NameAt(conn.receiver) + "<-" + NameAt(conn.sender) + " #" +
        std::to_string(conn_id) + " broken: " + why);
  // The receiver finds out by silence (its ticker); the sender when keepalive gives up.
  const int sender = conn.sender;
  const uint64_t incarnation = nodes_[sender]->incarnation;
  Schedule(now_ + kKeepaliveDeadMs, [this, sender, incarnation, conn_id] {
    Node& n = *nodes_[sender];
    if (n.incarnation != incarnation || !n.up) return;
    if (n.serving.erase(conn_id) > 0) {
      Trace(n.name + ": keepalive ended the stream of #" + std::to_string(conn_id));
    }
  });
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
  replication::Inbound::Dial dial = n.inbound->Dialing(peer, now_);
  n.dials[id] = Node::Link{peer, dial.stream, false};
  Trace(n.name + ": " + (hedge ? "hedge" : "dial") + " " + nodes_[IndexOfId(peer)]->name + " #" +
        std::to_string(id));
  SendSubscribe(index, id, std::move(dial.origins));
}

void Simulation::SendSubscribe(int index, uint64_t conn_id, std::vector<core::RegionId> origins) {
  Node& n = *nodes_[index];
  Message message;
  message.kind = Message::Kind::kSubscribe;
  message.frontier = n.region->frontier();
  message.origins = std::move(origins);
  message.incarnation = n.store_generation + 1;
  Send(conn_id, /*to_sender=*/true, std::move(message));
}

void Simulation::EndLink(int index, uint64_t conn_id, const std::string& why) {
  Node& n = *nodes_[index];
  auto it = n.dials.find(conn_id);
  if (it == n.dials.end()) return;
  const Node::Link link = it->second;
  n.dials.erase(it);
  const core::RegionId peer = link.peer;
  const bool was_connected = link.connected;
  Conn& conn = *conns_.at(conn_id);
  conn.receiver_open = false;
  // Cancelling the call tells the sender (an HTTP/2 reset) if the path is up.
  if (!conn.broken && !conn.sender_dead) Send(conn_id, /*to_sender=*/true, Message{});
  const std::string& peer_name = nodes_[IndexOfId(peer)]->name;
  if (n.inbound->GaveWay(link.stream)) {
    Trace(n.name + ": #" + std::to_string(conn_id) + " to " + peer_name + " gave way: " + why,
          true);
  } else {
    Trace(n.name + ": link to " + peer_name + (was_connected ? " lost: " : " not up: ") + why,
          was_connected);
  }
  const std::optional<uint64_t> delay = n.inbound->Ended(link.stream, now_, Unit());
  if (!delay) return;  // another stream of the peer is open: its end redials
  const uint64_t incarnation = n.incarnation;
  Schedule(now_ + *delay, [this, index, peer, incarnation] { Dial(index, peer, incarnation); });
}

void Simulation::ReceiverGot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  auto it = n.dials.find(conn_id);
  if (it == n.dials.end()) return;  // a stream this region already gave up
  Node::Link& link = it->second;
  const core::RegionId peer = link.peer;
  const uint64_t stream = link.stream;
  const std::string& peer_name = nodes_[IndexOfId(peer)]->name;
  if (message.kind == Message::Kind::kClose) {
    // A refused dial or a reset: no message reached the reader (the transport's Read fails).
    EndLink(index, conn_id, "the stream closed");
    return;
  }
  const replication::Inbound::Arrival arrival = n.inbound->Received(stream, now_);
  if (arrival.stale) return;
  for (uint64_t lost : arrival.cancel) {
    for (const auto& [other, other_link] : n.dials) {
      if (other_link.stream != lost) continue;
      EndLink(index, other, "#" + std::to_string(conn_id) + " answered first");
      break;
    }
  }
  if (arrival.first) {
    link.connected = true;
    Trace(n.name + ": subscribed to " + peer_name + " for " +
              Origins(RegionNames(), n.inbound->links().OriginsFor(peer)),
          true);
  }
  switch (message.kind) {
    case Message::Kind::kBatch: {
      n.inbound->BatchReceived(stream, now_);
      Conn& conn = *conns_.at(conn_id);
      if (!conn.decoder) conn.decoder = std::make_unique<replication::BatchStreamDecoder>();
      auto events = conn.decoder->Decode(message.events, replication::BatchLimits{}, kRemoteLimits);
      if (!events.ok()) {
        EndLink(index, conn_id, "bad batch: " + events.status().message());
        return;
      }
      for (const core::Event& event : *events) {
        if (event.dot.origin != message.origin) {
          EndLink(index, conn_id, "batch holds an event of another origin");
          return;
        }
      }
      n.batches.push_back({peer, conn_id, message.origin, std::move(events).value()});
      ScheduleCommit(index);
      break;
    }
    case Message::Kind::kHeartbeat:
      if (link.incarnation == 0) link.incarnation = message.incarnation;
      n.region->ObserveFrontier(peer, message.frontier);
      if (auto ack =
              n.inbound->HeartbeatReceived(stream, message.frontier, n.region->frontier(), now_)) {
        SendAck(conn_id, *ack);
      }
      SyncRebuild(index);
      break;
    case Message::Kind::kBehindRetention:
      Trace(n.name + ": behind " + peer_name + "'s retention for origin " +
                std::to_string(message.origin),
            true);
      break;
    case Message::Kind::kClose:  // handled above
    case Message::Kind::kSubscribe:
    case Message::Kind::kAck:
      break;
  }
  if (n.dials.contains(conn_id) && n.inbound->ResubscribeDue(stream)) {
    SendSubscribe(index, conn_id, n.inbound->Subscription(stream));
  }
}

void Simulation::SendAck(uint64_t conn_id, const core::VersionVector& frontier) {
  Message ack;
  ack.kind = Message::Kind::kAck;
  ack.frontier = frontier;
  Send(conn_id, /*to_sender=*/true, std::move(ack));
}

void Simulation::Tick(int index, uint64_t incarnation) {
  Node& n = *nodes_[index];
  if (!n.up || n.incarnation != incarnation) return;
  const replication::Inbound::Tick tick = n.inbound->OnTick(n.region->frontier(), now_);
  SyncRebuild(index);
  for (core::RegionId peer : tick.changed) {
    Trace(n.name + ": " + nodes_[IndexOfId(peer)]->name + " now carries " +
              Origins(RegionNames(), n.inbound->links().OriginsFor(peer)),
          true);
  }
  for (uint64_t stream : tick.quiet) {
    Trace(n.name + ": link to " + nodes_[IndexOfId(n.inbound->PeerOf(stream))]->name +
              " quiet for " + std::to_string(n.inbound->links().silence_timeout_ms()) + " ms",
          true);
  }
  for (uint64_t stream : tick.silent) {
    for (const auto& [conn_id, link] : n.dials) {
      if (link.stream != stream) continue;
      EndLink(index, conn_id, "silent for " + std::to_string(n.inbound->TimeoutMs(stream)) + " ms");
      break;
    }
  }
  for (core::RegionId peer : tick.hedge) Dial(index, peer, incarnation, /*hedge=*/true);
  if (now_ >= n.swept_ms + kFoldSweepMs) {
    // As the node's commit thread does: a few documents at a time, folded with what is stable.
    size_t folded = 0;
    (void)n.region->FoldSweep(kFoldSweepDocuments, &folded);
    n.swept_ms = now_;
  }
  Schedule(now_ + kTickMs, [this, index, incarnation] { Tick(index, incarnation); });
}

// --- sending side ---------------------------------------------------------------------------

void Simulation::SenderGot(int index, uint64_t conn_id, const Message& message) {
  Node& n = *nodes_[index];
  Conn& conn = *conns_.at(conn_id);
  const core::RegionId peer = nodes_[conn.receiver]->id;
  switch (message.kind) {
    case Message::Kind::kSubscribe: {
      std::vector<core::RegionId> origins = message.origins;
      // The subscriber's own origin only while it rebuilds (docs/replication.md#rebuilding).
      FenceEarlierIncarnations(index, peer, message.incarnation);
      auto it = n.serving.find(conn_id);
      if (it == n.serving.end()) {
        it = n.serving.emplace(conn_id, Node::Serving{}).first;
        it->second.peer = peer;
      }
      it->second.outbound.Subscribe(message.frontier, origins);
      Trace(n.name + ": " + nodes_[conn.receiver]->name + " subscribed to " +
            Origins(RegionNames(), origins) + " from " + message.frontier.ToString());
      Pump(index, conn_id);
      break;
    }
    case Message::Kind::kAck: {
      auto it = n.serving.find(conn_id);
      if (it == n.serving.end()) return;
      it->second.outbound.Ack(message.frontier);
      Pump(index, conn_id);
      break;
    }
    case Message::Kind::kClose:
      n.serving.erase(conn_id);
      break;
    default:
      break;
  }
}

void Simulation::Pump(int index, uint64_t conn_id) {
  Node& n = *nodes_[index];
  core::VersionVector heads;
  for (int guard = 0; guard < 1000; ++guard) {
    auto it = n.serving.find(conn_id);
    if (it == n.serving.end()) return;
    replication::Outbound& outbound = it->second.outbound;
    heads = n.region->frontier();
    const std::optional<replication::Outbound::Read> read = outbound.Next(heads, now_);
    const bool heartbeat = outbound.HeartbeatDue(now_);
    if (!read && !heartbeat) break;
    if (read) {
      // As the transport's SendBatch: read the log in seq order, never skipping a seq.
      std::vector<std::string> encoded;
      uint64_t first_seq = 0;
      uint64_t last_seq = 0;
      size_t bytes = 0;
      const Status status = n.store->ReadLogWhile(
          read->origin, read->from_seq, read->limit, [&](const storage::LoggedEvent& event) {
            if (!encoded.empty() && event.dot.seq != last_seq + 1) return false;
            if (encoded.empty()) first_seq = event.dot.seq;
            last_seq = event.dot.seq;
            bytes += event.bytes.size();
            encoded.push_back(event.bytes);
            return bytes < read->bytes_max;
          });
      if (!status.ok()) return;
      if (encoded.empty() || first_seq != read->from_seq) {
        outbound.Abandon(read->origin);
        Message behind;
        behind.kind = Message::Kind::kBehindRetention;
        behind.origin = read->origin;
        behind.first_seq = read->from_seq;
        behind.last_seq = encoded.empty() ? 0 : first_seq;
        Send(conn_id, /*to_sender=*/false, std::move(behind));
      } else {
        Conn& conn = *conns_.at(conn_id);
        if (!conn.encoder && faults_.duplicate == 0 && faults_.reorder == 0) {
          conn.encoder = std::make_unique<replication::BatchStreamEncoder>();
        }
        const replication::EncodedBatch batch = conn.encoder
                                                    ? conn.encoder->Encode(encoded)
                                                    : replication::EncodeBatchOfEncoded(encoded);
        outbound.Sent(read->origin, last_seq, batch.raw_bytes);
        Message out;
        out.kind = Message::Kind::kBatch;
        out.origin = read->origin;
        out.first_seq = first_seq;
        out.last_seq = last_seq;
        out.events = batch.bytes;
        Trace(n.name + ": send " + nodes_[IndexOfId(read->origin)]->name + ":" +
              std::to_string(first_seq) + ".." + std::to_string(last_seq) + " to " +
              nodes_[conns_.at(conn_id)->receiver]->name + " #" + std::to_string(conn_id));
        Send(conn_id, /*to_sender=*/false, std::move(out));
      }
    }
    if (heartbeat) {
      Message beat;
      beat.kind = Message::Kind::kHeartbeat;
      beat.frontier = heads;
      beat.incarnation = n.store_generation + 1;
      Send(conn_id, /*to_sender=*/false, std::move(beat));
      outbound.HeartbeatSent(now_);
    }
  }
  auto it = n.serving.find(conn_id);
  if (it == n.serving.end()) return;
  ScheduleWake(index, conn_id, std::max(now_ + 1, it->second.outbound.WakeAtMs(heads, now_)));
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
  if (!n.up || (n.writes.empty() && n.batches.empty())) return {};
  std::vector<node::WriteRequest> writes = std::move(n.writes);
  std::vector<Node::QueuedBatch> batches = std::move(n.batches);
  n.writes.clear();
  n.batches.clear();
  std::vector<std::span<const core::Event>> remote;
  for (const Node::QueuedBatch& batch : batches) remote.emplace_back(batch.events);
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<Result<node::RemoteApply>> remote_outcomes;
  std::vector<node::Change> changes;
  n.region->Commit(writes, &outcomes, remote, &remote_outcomes, &changes);

  for (size_t i = 0; i < writes.size(); ++i) {
    if (outcomes[i].ok()) {
      acknowledged_.push_back(
          Acknowledged{outcomes[i]->dot, writes[i].key, writes[i].op, n.store_generation});
      Trace(n.name + ": ack " + writes[i].key + " " + n.region->EventId(outcomes[i]->dot));
    } else {
      Trace(n.name + ": refused " + writes[i].key + ": " + outcomes[i].status().message());
    }
  }
  Watch(index, changes);
  PumpAll(index);  // a commit wakes every subscriber stream

  // The acknowledging side of each stream, in order (the transport's Inbound::Acknowledge).
  for (size_t i = 0; i < batches.size(); ++i) {
    const Node::QueuedBatch& batch = batches[i];
    const std::string& peer_name = nodes_[IndexOfId(batch.peer)]->name;
    const Result<node::RemoteApply>& outcome = remote_outcomes[i];
    std::string what = n.name + ": " + nodes_[IndexOfId(batch.origin)]->name + ":" +
                       std::to_string(batch.events.front().dot.seq) + ".." +
                       std::to_string(batch.events.back().dot.seq) + " from " + peer_name + ": ";
    if (outcome.ok()) {
      what += std::to_string(outcome->applied) + " applied";
      if (outcome->duplicates > 0) what += ", " + std::to_string(outcome->duplicates) + " dup";
      if (outcome->gaps > 0) what += ", " + std::to_string(outcome->gaps) + " past a gap";
    } else {
      what += "failed: " + outcome.status().message();
    }
    Trace(what, true);
    auto link = n.dials.find(batch.conn);
    if (link == n.dials.end()) continue;  // the stream is gone
    replication::Inbound::Applied applied;
    applied.ok = outcome.ok();
    if (outcome.ok()) {
      applied.gaps = outcome->gaps;
      applied.duplicates = outcome->duplicates;
    }
    for (size_t j = i + 1; j < batches.size(); ++j) {
      if (batches[j].conn == batch.conn) applied.last = false;
    }
    const replication::Inbound::AfterApply after =
        n.inbound->BatchApplied(link->second.stream, applied, n.region->frontier(), now_);
    SyncRebuild(index);
    if (after.end) {
      EndLink(index, batch.conn,
              outcome.ok()
                  ? "a gap in " + nodes_[IndexOfId(batch.origin)]->name + "'s events; resubscribing"
                  : "applying a batch failed: " + outcome.status().message());
    } else if (after.ack) {
      SendAck(batch.conn, *after.ack);
    }
  }
  return outcomes;
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
  return n.inbound ? n.inbound->links().Views() : std::vector<replication::Links::View>{};
}

// --- running to a condition -----------------------------------------------------------------

bool Simulation::RunUntilQuiet(uint64_t max_ms) {
  const uint64_t deadline = now_ + max_ms;
  for (;;) {
    bool quiet = batches_on_wire_ == 0;
    for (const auto& node : nodes_) {
      if (!quiet) break;
      if (!node->writes.empty() || !node->batches.empty()) quiet = false;
      if (!node->up) continue;
      const core::VersionVector heads = node->region->frontier();
      for (const auto& [id, serving] : node->serving) {
        if (!conns_.at(id)->broken && serving.outbound.Backlog(heads) > 0) quiet = false;
      }
    }
    if (quiet) return true;
    if (now_ >= deadline) return false;
    RunUntil(std::min(deadline, now_ + 1));
  }
}

std::optional<uint64_t> Simulation::RunUntilConverged(uint64_t max_ms) {
  const uint64_t start = now_;
  const uint64_t deadline = now_ + max_ms;
  for (;;) {
    bool converged = true;
    core::VersionVector heads;
    for (const auto& node : nodes_) {
      if (!node->up || !node->writes.empty()) converged = false;
      heads.Set(node->id, Frontier(IndexOfId(node->id)).Get(node->id));
    }
    for (int i = 0; i < size() && converged; ++i) converged = Frontier(i) == heads;
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
  for (const auto& node : nodes_) {
    if (!node->up) fail(node->name + " is down");
  }
  if (!failures.empty()) return failures;

  // 1. Converged: every region applied every origin's events, and shows the same data.
  core::VersionVector heads;
  for (const auto& node : nodes_) heads.Set(node->id, node->region->frontier().Get(node->id));
  for (const auto& node : nodes_) {
    if (node->region->frontier() != heads) {
      fail(node->name + " has applied " + node->region->frontier().ToString() +
           "; every origin's head is " + heads.ToString());
    }
  }
  std::vector<std::map<std::string, std::string>> views(nodes_.size());
  for (int i = 0; i < size(); ++i) {
    Node& n = *nodes_[i];
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
    if (n.region->digest() != nodes_[0]->region->digest()) {
      fail(n.name + "'s digest differs from " + nodes_[0]->name + "'s");
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
        fail(key + ": " + nodes_[0]->name + " shows " + left + ", " + n.name + " shows " + right);
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
      } else if (write != last) {
        fail("event id " + nodes_[0]->region->EventId(dot) + " was acknowledged twice (" +
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
  std::vector<core::Event> events;
  for (const auto& node : nodes_) {
    std::set<core::Dot> logged;
    const Status status =
        node->store->ReadLog(node->id, 1, SIZE_MAX, [&](const storage::LoggedEvent& entry) {
          auto event = core::DecodeEvent(entry.bytes, kRemoteLimits);
          if (!event.ok()) {
            fail(node->name + ": logged event " + entry.dot.ToString() + " does not decode");
            return;
          }
          logged.insert(entry.dot);
          if (auto it = acked.find(entry.dot); it != acked.end() && it->second->key != event->key) {
            fail(node->region->EventId(entry.dot) + " holds a write of " + event->key +
                 ", not the acknowledged write of " + it->second->key);
          }
          events.push_back(std::move(event).value());
        });
    if (!status.ok()) fail(node->name + ": reading its log failed");
    for (const core::Dot& dot : logged) {
      if (!acked.contains(dot)) {
        fail(node->region->EventId(dot) + " is committed but was never acknowledged");
      }
    }
    for (const auto& [dot, write] : acked) {
      if (dot.origin == node->id && !logged.contains(dot)) {
        fail("acknowledged write " + node->region->EventId(dot) + " (" + write->key +
             ") is lost at its origin");
      }
    }
  }
  for (const auto& node : nodes_) {
    for (const auto& [dot, write] : acked) {
      auto lsn = node->store->LsnOf(dot);
      if (!lsn.ok() || !lsn->has_value()) {
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
      auto seen = hlcs.find(core::Dot{entry.origin, entry.seq});
      if (seen != hlcs.end() && seen->second >= event.hlc) {
        fail(nodes_[0]->region->EventId(event.dot) + " (HLC " + core::FormatHlc(event.hlc) +
             ") had seen " + nodes_[0]->region->EventId(seen->first) + " (HLC " +
             core::FormatHlc(seen->second) + ")");
      }
    }
  }
  for (const auto& node : nodes_) {
    if (node->region->documents() != views[IndexOfId(node->id)].size()) {
      fail(node->name + " counts " + std::to_string(node->region->documents()) +
           " documents and holds " + std::to_string(views[IndexOfId(node->id)].size()));
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
    for (int i = 0; i < size(); ++i) {
      auto state = nodes_[i]->store->GetDocumentState(key);
      std::optional<std::string> value;
      if (state.ok() && state->has_value()) {
        auto decoded = core::DocumentState::Decode(**state);
        if (decoded.ok()) value = decoded->RenderField(field);
      }
      if (value != std::to_string(sum)) {
        fail(nodes_[i]->name + ": counter " + name + " is " + value.value_or("(absent)") +
             "; its acknowledged increments sum to " + std::to_string(sum));
      }
    }
  }

  // 4. Watches: every change of the prefix exactly once, in per-origin order, lsns increasing.
  std::set<core::Dot> expected_watch;
  for (const Acknowledged& write : kept) {
    if (write.key.starts_with(kWatchPrefix)) expected_watch.insert(write.dot);
  }
  for (const auto& node : nodes_) {
    std::set<core::Dot> seen;
    std::map<core::RegionId, uint64_t> last_seq;
    uint64_t last_lsn = 0;
    std::map<std::string, std::optional<std::string>> last_doc;
    for (const node::Change& change : node->watched) {
      const std::string id = node->region->EventId(change.dot);
      if (!seen.insert(change.dot).second) fail(node->name + "'s watch saw " + id + " twice");
      if (change.lsn <= last_lsn) {
        fail(node->name + "'s watch saw lsn " + std::to_string(change.lsn) + " after " +
             std::to_string(last_lsn));
      }
      if (change.dot.seq <= last_seq[change.dot.origin]) {
        fail(node->name + "'s watch saw " + id + " after seq " +
             std::to_string(last_seq[change.dot.origin]) + " of its origin");
      }
      last_lsn = std::max(last_lsn, change.lsn);
      last_seq[change.dot.origin] = std::max(last_seq[change.dot.origin], change.dot.seq);
      last_doc[change.key] = change.doc;
    }
    for (const core::Dot& dot : expected_watch) {
      if (!seen.contains(dot)) {
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
  // passed every document.
  for (const auto& node : nodes_) {
    for (const auto& peer : nodes_)
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
  for (const auto& node : nodes_) {
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
      folded.Fold(heads);
      metadata_folded_ += folded.MetadataEntries();
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
  return failures;
}

}  // namespace meridian::sim
