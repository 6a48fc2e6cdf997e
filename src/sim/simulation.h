// The deterministic multi-region simulator (docs/testing.md, "Simulation").
//
// N regions, each a real node::Region over an in-memory store, replicate with the real
// replication::Exchange (the protocol's state machine, around Outbound, Inbound and Links),
// the real wire messages and batch encoding, and the real log retention, over a
// simulated network in virtual time. One event queue drives everything: no threads, no wall clock,
// and every random choice comes from one seeded generator, so a seed replays a run exactly (same
// trace, same digest).
//
// Every rule of the protocol (identity checks, fencing an earlier incarnation, acknowledgement
// after the durable apply, resubscription on a gap or a changed origin set, silence, hedges,
// backoff, rebuilding, the apply-queue bound, log retention) is replication::Exchange's, the
// state machine the gRPC transport (src/replication/transport.cc) drives too; simulation.cc
// plays the transport's part around it — dial, send, decode, apply through the commit path,
// cancel, redial after the backoff — over the simulated network.
//
// Network model: a stream is a TCP connection. Within a live stream messages arrive in order
// after the pair's latency plus jitter; a lost transmission is retransmitted (found by RACK about
// a round trip later, or by the doubling RTO), which delays that message and every later one
// (head-of-line blocking); retransmissions beyond the keepalive timeout, or any message sent into
// a partition, break the stream, which each end notices the way a node would (silence on the
// receiver, keepalive on the sender, a reset when the peer process dies and the path is up). On top
// of that the duplicate and reorder faults damage streams beyond what TCP allows, to exercise the
// apply path's duplicate and gap guards.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/escrow.h"
#include "core/event.h"
#include "core/hlc.h"
#include "core/version_vector.h"
#include "node/region.h"
#include "replication/event_log.h"
#include "replication/exchange.h"
#include "replication/links.h"
#include "replication/verify.h"
#include "storage/store.h"

namespace meridian::sim {

// Rates of the random faults (per region or per pair, per virtual minute) and of message damage.
struct FaultOptions {
  double loss = 0;                 // per transmission attempt: retransmitted after an RTO
  double duplicate = 0;            // per message: delivered a second time, later
  double reorder = 0;              // per message: overtakes the messages queued before it
  double partitions_per_min = 0;   // cluster-wide: symmetric, asymmetric or flapping cuts
  double crashes_per_min = 0;      // cluster-wide
  double disk_losses_per_min = 0;  // cluster-wide: a region restarts with an empty store
  double restores_per_min = 0;     // cluster-wide: a region restarts from an older copy
  double clock_jumps_per_min = 0;  // cluster-wide
  double damages_per_min = 0;      // cluster-wide: a stored document lost or corrupted
  double poison = 0;               // per event received: parked as if it did not decode
  double max_drift_ppm = 0;        // each region's clock runs off by up to this much
  uint64_t max_jump_ms = 0;        // a jump moves a clock by up to this, either way
};

struct Options {
  uint64_t seed = 1;
  int regions = 0;                // 3..9; 0: chosen by the seed
  uint64_t duration_ms = 10'000;  // workload and faults; then heal and converge
  uint64_t converge_max_ms = 300'000;
  uint64_t rtt_ms = 0;       // every pair; 0: per pair from the seed (20..300 ms)
  double jitter = 0.2;       // latency varies up to this fraction above the base
  double writes_per_s = 20;  // per region, during the workload
  FaultOptions faults;
  double heal_loss = 0;      // loss that stays after the heal (the network's own)
  bool rack = true;          // lost segments found by RACK, else by RTO backoff
  bool require_fold = true;  // fail when stable metadata was not folded away
  // Log retention's age bound: logged events every peer acknowledged are trimmed once older
  // (0: the log is kept; retention still computes what it could trim). The "retention" profile
  // trims: a region restored from an older copy is then behind every peer's log and re-seeds,
  // merging a peer's snapshot with what it holds.
  uint64_t retention_age_ms = 0;
  // A peer that has not acknowledged for this long no longer holds the log (0: the node's
  // default, 14 days): a region down longer is released, and re-seeds when it returns.
  uint64_t retention_hold_ms = 0;
  // After the heal: a region is removed for good and a new one is added (docs/operations.md,
  // "Adding and removing regions"), with writes meanwhile; then the regions converge again.
  bool lifecycle = false;
  replication::LinkOptions links;  // the receiving side's relay, backoff and silence settings
  // Strong operations and transactions (src/sim/strong.h, docs/testing.md): per region, a client
  // sends this many strong reads and writes per second at most (each waits for its answer) and
  // another this many multi-key transactions; planned home moves per virtual minute
  // (cluster-wide). 0 turns each off.
  double strong_per_s = 4;
  double txns_per_s = 2;
  double home_moves_per_min = 12;
  // Strong writes ask durability=regions:N: answered once N other regions hold them, so that the
  // loss of the home's store does not lose them (docs/testing.md, "What the simulator found").
  int strong_durability = 1;
  // The deployment's [[homes]]: every start of a region gives it a HomeTable of these, as a
  // node's configuration does (Run picks them from the seed when strong operations are on).
  std::vector<node::Home> homes;
};

// A preset of fault rates, by name: "none", "default", "lossy" (35% loss, 800 ms RTT),
// "retention" (the default's faults, with log retention trimming what every region acknowledged
// after 2 s, regions released after 4 s down, and the lifecycle phase).
bool ApplyProfile(const std::string& name, Options* options);

// The outcome of one run.
struct Report {
  bool ok = true;
  std::vector<std::string> failures;  // what differed, one line each
  uint64_t trace_digest = 0;          // FNV-1a over every trace line: equal runs, equal digests
  uint64_t steps = 0;                 // queue events processed
  uint64_t virtual_ms = 0;
  uint64_t convergence_ms = 0;  // from the heal until every frontier was equal
  uint64_t max_rtt_ms = 0;      // the slowest pair's base round trip
  int regions = 0;
  uint64_t acknowledged = 0;      // acknowledged writes
  uint64_t faults = 0;            // faults injected
  uint64_t lost_with_store = 0;   // acknowledged writes lost with a lost or restored store
  uint64_t metadata_entries = 0;  // merge metadata held after convergence (all regions)
  uint64_t metadata_folded = 0;   // what a fold with the converged frontier would leave
  uint64_t log_trimmed = 0;       // logged events log retention trimmed (all regions)
  // Bounded counters (the "b/*" keys): client decrements acknowledged and refused for lack of
  // rights (bound_exceeded), and escrow events the regions' rebalancing rounds wrote.
  uint64_t bounded_decrements = 0;
  uint64_t bounded_refused = 0;
  uint64_t escrow_events = 0;
  uint64_t ids_issued = 0;            // unique ids taken (never repeated: checked)
  uint64_t ids_repeated_excused = 0;  // repeats after a store loss with the clock behind
  uint64_t strong_answered = 0;   // strong operations answered (their histories are checked)
  uint64_t strong_pending = 0;    // strong writes whose outcome their client never learnt
  uint64_t transactions = 0;      // transactions acknowledged
  uint64_t home_moves = 0;        // planned home moves committed
  uint64_t strong_undecided = 0;  // keys whose history the checker's budget did not decide
  std::string Summary() const;
};

// Runs one random simulation of `options` and the checkers. Writes the trace to `trace` when
// it is not null.
Report Run(const Options& options, std::ostream* trace = nullptr);

// The command line that replays `options` exactly.
std::string ReplayCommand(const Options& options);

// An acknowledged local write, as the client saw it.
struct Acknowledged {
  core::Dot dot;
  std::string key;
  core::Operation op;
  // Its region's store generation when it was acknowledged: a write that no other region held
  // when that store was lost or replaced by an older copy is lost with it (the checkers allow
  // exactly that, and never an event id acknowledged twice).
  uint64_t store_generation = 0;
};

// A region name and id: us = 1, eu = 2, asia = 3, sa = 4, af = 5, au = 6, me = 7, ca = 8, in = 9.
const std::vector<std::string>& RegionNames();

class Simulation {
 public:
  // `names`: the regions (3..9 of RegionNames()). Every random choice is drawn from `seed`.
  Simulation(std::vector<std::string> names, const Options& options, std::ostream* trace);
  ~Simulation();
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  int IndexOf(const std::string& name) const;  // -1 when unknown
  const std::string& NameAt(int index) const;
  uint64_t now() const { return now_; }

  // --- the network ------------------------------------------------------------------------
  void SetRtt(int a, int b, uint64_t rtt_ms);
  // Cuts a -> b (and b -> a when symmetric).
  void Cut(int a, int b, bool symmetric);
  void Mend(int a, int b, bool symmetric);
  void HealAll();
  FaultOptions& faults() { return faults_; }

  // --- regions ----------------------------------------------------------------------------
  void Crash(int index);
  void Restart(int index);
  // The region's data directory is lost: it crashes and its store is replaced by an empty one
  // (restarted by Restart). It then rebuilds as a node does (docs/replication.md#rebuilding).
  void LoseDisk(int index);
  // Takes a copy of the region's store as it is now (a backup); RestoreCopy crashes the region
  // and replaces its store by that copy. False when there is no copy.
  void SaveCopy(int index);
  bool RestoreCopy(int index);
  bool up(int index) const;
  // Region lifecycle, as the operator's procedures do it (docs/operations.md): RemoveRegion stops
  // the region for good and restarts every other with a configuration without it; AddRegion
  // starts a new region (one of RegionNames(), never used before) with an empty data directory,
  // after restarting every other with a configuration that names it. It re-seeds from a peer.
  void RemoveRegion(int index);
  int AddRegion(const std::string& name);
  void JumpClock(int index, int64_t delta_ms);
  // A document of the region's store is lost (lose) or its state overwritten with bytes that do
  // not decode, as a disk fault or an operator's mistake would: the scrub and verification must
  // find and repair it (docs/verification.md).
  void DamageDocument(int index, bool lose);
  // The operator's part once what poisoned events is fixed (the heal: poison stops): a dead
  // letter still parked in an up region whose document every other region has marked damaged
  // too (no region to restore it from, e.g. all re-seeded from this one) is applied again
  // (POST /v1/dead-letters/{id}/retry). The others are left to verification.
  void RetryDeadLetters();
  uint64_t damaged() const { return damaged_; }
  uint64_t poisoned() const { return poisoned_; }
  void SetDrift(int index, double ppm);

  // A client write, committed at once with whatever the region has queued. The receipt, or why
  // the write was refused.
  Result<node::Receipt> Write(int index, const std::string& key, core::Operation op);
  // A client write queued for the region's next group commit (about a millisecond later).
  void SubmitWrite(int index, const std::string& key, core::Operation op);
  std::optional<std::string> Get(int index, const std::string& key);
  // The region's conflict log, newest first.
  std::vector<std::string> Conflicts(int index, size_t limit);
  core::VersionVector Frontier(int index) const;
  // Every origin's head: each region's own entry of its frontier (a removed region's too, whose
  // events the others keep).
  core::VersionVector Heads() const;
  uint64_t Digest(int index) const;
  std::vector<replication::Links::View> LinkViews(int index) const;

  // --- time -------------------------------------------------------------------------------
  // Runs `action` at virtual time `at`, in order with everything else on the queue.
  void At(uint64_t at, std::function<void()> action) { Schedule(at, std::move(action)); }
  // Runs the queue until `until` (virtual ms).
  void RunUntil(uint64_t until);
  void RunFor(uint64_t ms) { RunUntil(now_ + ms); }
  // Runs until no batch is on the wire or waiting to be sent and nothing is queued for a commit,
  // at most `max_ms`; false when that bound ran out.
  bool RunUntilQuiet(uint64_t max_ms);
  // Runs until every region is up and not rebuilding and every frontier equals every origin's
  // head, at most
  // `max_ms`; the time it took, or nullopt.
  std::optional<uint64_t> RunUntilConverged(uint64_t max_ms);

  // --- checks -----------------------------------------------------------------------------
  // Every checker (docs/testing.md); call once converged. Each failure says what differed.
  std::vector<std::string> Check(bool require_fold);
  uint64_t metadata_entries() const { return metadata_entries_; }
  uint64_t lost_with_store() const { return lost_with_store_; }
  uint64_t metadata_folded() const { return metadata_folded_; }
  uint64_t log_trimmed() const { return log_trimmed_; }
  uint64_t bounded_decrements() const { return bounded_decrements_; }
  uint64_t bounded_refused() const { return bounded_refused_; }
  uint64_t escrow_events() const { return escrow_events_; }
  // Unique ids taken in every region (a few per escrow tick) and repeats the documented limit
  // excuses (a store lost or restored while its clock is behind what it issued).
  uint64_t ids_issued() const { return ids_issued_; }
  uint64_t ids_repeated_excused() const { return ids_repeated_excused_; }

  const std::vector<Acknowledged>& acknowledged() const { return acknowledged_; }
  uint64_t trace_digest() const { return trace_digest_; }
  uint64_t steps() const { return steps_; }
  uint64_t faults_injected() const { return faults_injected_; }
  uint64_t max_rtt_ms() const;
  // Keeps the notable trace lines (links, applies) for TakeNotes: the scenario runner prints them.
  void CollectNotes(bool on) { collect_notes_ = on; }
  std::vector<std::string> TakeNotes();
  std::mt19937_64& random() { return random_; }
  double Unit();

  // Trace: hashed always, written when a trace stream is set; notes are kept for scripts.
  void Trace(const std::string& line, bool note = false);

  // --- client requests with answers (strong operations and transactions: src/sim/strong.h) ---
  // What a request's client hears: its receipt or why it was refused, and the changes its commit
  // made to the documents it wrote (the transaction's, or the write's).
  using Answer =
      std::function<void(const Result<node::Receipt>& receipt, std::vector<node::Change> changes)>;
  // Queues a client request for the region's next group commit, like SubmitWrite, and answers it
  // once that commit is done; kUnavailable at once when the region is down, and when it crashes
  // with the request still queued (the request is lost with the process).
  void Request(int index, node::WriteRequest write, Answer answer);
  node::Region* region(int index);        // nullptr while down
  node::HomeTable* homes(int index);      // nullptr while down, or without Options::homes
  uint64_t incarnation(int index) const;  // grows with every crash
  bool member(int index) const;           // false once removed (RemoveRegion)
  bool Partitioned(int from, int to) const { return Blocked(from, to); }
  // One way, as a message of the pair takes it (with jitter); 1 ms within a region (a client).
  uint64_t MessageLatencyMs(int from, int to);
  // How many other regions acknowledged `dot` to the region (what a write's durability waits
  // for); 0 while it is down.
  size_t RegionsHolding(int index, core::Dot dot) const;
  // Transactions acknowledged (src/sim/requests.cc checks that each is applied whole).
  uint64_t transactions() const { return txns_.size(); }

 private:
  struct Node;
  struct Conn;
  struct Message;

  void Schedule(uint64_t at, std::function<void()> action);
  void BootNode(int index);
  std::unique_ptr<node::Region> NewRegion(int index);

  // The driver's part of the exchange (replication::Exchange), as the transport plays it: carry
  // out a Ready in the order its header gives.
  void Carry(int index, replication::Ready ready);

  // Receiving side (the transport's RunLink / Serve / PeerStream / RunTicker).
  void Dial(int index, core::RegionId peer, uint64_t incarnation, bool hedge = false);
  // Ends the receiving side of a stream.
  void EndLink(int index, uint64_t conn_id, const std::string& why);
  void ReceiverGot(int index, uint64_t conn_id, const Message& message);
  // Hands the stream's held messages to the receiver while the apply queue has room.
  void DrainHeld(int index);
  void Tick(int index, uint64_t incarnation);
  // Verification (the transport's RunVerifier and Verify handler).
  void CarryVerify(int index, replication::Verifier::Ready ready);
  void SendVerify(int index, replication::Verifier::Ready::Request request);
  // A new store (empty or a copy) replaces the region's: crash, a new generation, and a watcher
  // that starts over.
  void ReplaceStore(int index, std::unique_ptr<storage::Store> store, const std::string& why);

  // Re-seeding (the transport's RunReseed and Snapshot handler): a region that starts empty asks
  // a peer for a snapshot, installs its pages, resumes a broken call, then starts its links.
  void AskSnapshot(int index, uint64_t incarnation);
  void SnapshotGot(int index, uint64_t conn_id, const Message& message);
  void ServeSnapshot(int index, uint64_t conn_id, const Message& message);
  void SendChunk(int index, uint64_t conn_id, uint64_t incarnation);

  // Sending side (the transport's Stream handler).
  void SenderGot(int index, uint64_t conn_id, const Message& message);
  void EndServing(int index, uint64_t conn_id);
  void Pump(int index, uint64_t conn_id);
  void PumpAll(int index);
  void ScheduleWake(int index, uint64_t conn_id, uint64_t at);

  // The network.
  void Send(uint64_t conn_id, bool to_sender, Message message);
  void Deliver(uint64_t conn_id, bool to_sender, const Message& message);
  void Break(uint64_t conn_id, const std::string& why);
  // A message's (from, to) on the stream; nullopt when the stream is broken, or breaks now
  // because a partition lies between them.
  std::optional<std::pair<int, int>> Ends(uint64_t conn_id, bool to_sender);
  void CloseFromReceiver(uint64_t conn_id);
  bool Blocked(int from, int to) const;
  uint64_t LatencyMs(int from, int to);

  // The commit path (the node's commit thread: a group of local writes and remote batches).
  void ScheduleCommit(int index);
  std::vector<Result<node::Receipt>> CommitPending(int index);
  // Bounded counters, as the node's commit thread does after each commit and on its tick: one
  // rebalancing round (Region::EscrowRound), committed at once. Its writes are the region's own,
  // acknowledged like a client's.
  void RebalanceEscrow(int index);
  // The region's id generator as its node starts one; a few ids taken and checked: never issued
  // before, increasing, of this region.
  void StartIds(int index);
  void TakeIds(int index);
  // After a commit of the region: every bounded field of the documents it changed under
  // kBoundedPrefix renders its ledger's value, never below its bound, with no region's rights
  // below 0 in this view (else a failure for Check).
  void CheckBounds(int index, const std::vector<node::Change>& changes);

  // Reads what the region's own log gained since the last call into its archive (the checkers
  // see every event, those log retention trimmed since included).
  void Archive(int index);

  // The watches: per region, the changes of the watched prefix, as a resuming watcher sees them.
  void Watch(int index, const std::vector<node::Change>& changes);

  // Transactions (src/sim/requests.cc). A committed transaction: its events, one
  // Acknowledged each. After every commit of a region, and whenever its frontier jumps (a start,
  // a re-seed), each transaction must be applied there whole or not at all; at the check, held
  // by every region or (lost with a store) by none.
  // Every acknowledged event goes through here (checked to converge; not of a transaction any
  // more, should a store lost with one have issued its id again).
  void Acknowledge(int index, core::Dot dot, const std::string& key, const core::Operation& op);
  void AcknowledgeTransaction(int index, const node::WriteRequest& write,
                              const Result<node::Receipt>& outcome);
  void CheckTransactions(int index, const std::vector<node::Change>& changes,
                         const std::vector<Result<node::RemoteApply>>& remote);
  void CheckTransactionFrontier(int index, const std::string& when);
  void CheckTransactionsConverged(const core::VersionVector& heads,
                                  const std::function<void(std::string)>& fail);
  std::string DescribeTransaction(size_t txn) const;
  void TransactionFailure(std::string what);
  static std::string EventIdOf(core::Dot dot);  // "us:42", without a region at hand
  uint64_t StoreGeneration(int index) const;

  int IndexOfId(core::RegionId id) const;
  // Restarts every up region of the deployment but `index`, one after another: a new
  // configuration (RemoveRegion, AddRegion).
  void RestartOthers(int index);

  const Options options_;
  std::ostream* const trace_;
  std::mt19937_64 random_;
  FaultOptions faults_;
  uint64_t now_ = 0;
  uint64_t next_seq_ = 0;
  struct Timer {
    uint64_t at;
    uint64_t seq;
    std::function<void()> action;
    bool operator>(const Timer& other) const {
      return at != other.at ? at > other.at : seq > other.seq;
    }
  };
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> queue_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  uint64_t next_conn_ = 1;
  std::map<std::pair<int, int>, uint64_t> rtt_;  // (a, b), a < b
  std::set<std::pair<int, int>> cut_;            // directed: (from, to)
  std::vector<Acknowledged> acknowledged_;
  uint64_t trace_digest_ = 1469598103934665603ull;
  uint64_t steps_ = 0;
  uint64_t faults_injected_ = 0;
  uint64_t damaged_ = 0;   // documents damaged in a store (DamageDocument)
  uint64_t poisoned_ = 0;  // events parked by the poison fault
  uint64_t batches_on_wire_ = 0;
  uint64_t lost_with_store_ = 0;  // acknowledged writes a lost or restored store took along
  uint64_t metadata_entries_ = 0;
  uint64_t metadata_folded_ = 0;
  uint64_t log_trimmed_ = 0;
  uint64_t bounded_decrements_ = 0;
  uint64_t bounded_refused_ = 0;
  uint64_t escrow_events_ = 0;
  // Unique ids (StartIds, TakeIds): every id issued, each region's highest in its current store,
  // and below which a repeat of its own earlier ids is excused.
  std::set<uint64_t> ids_seen_;
  std::map<int, uint64_t> ids_last_;
  std::map<int, uint64_t> ids_excused_below_;
  uint64_t ids_issued_ = 0;
  uint64_t ids_repeated_excused_ = 0;
  std::vector<std::string> id_failures_;
  std::vector<std::string> bound_failures_;      // CheckBounds's, reported by Check
  std::map<core::Dot, core::Event> all_events_;  // every origin's archive (see Archive)
  std::vector<std::string> notes_;
  bool collect_notes_ = false;
  struct Txn {
    std::vector<core::Dot> dots;  // one origin's, consecutive
    std::vector<std::string> keys;
  };
  std::vector<Txn> txns_;
  std::map<core::Dot, size_t> txn_of_;     // a transaction's event -> its index in txns_
  std::vector<std::string> txn_failures_;  // what the checks after commits found
};

// The prefix every region watches, and the key spaces of the workload.
constexpr const char* kWatchPrefix = "k/";
// Bounded counters: each "b/*" document's field "n" is declared with min 0 early in the run.
constexpr const char* kBoundedPrefix = "b/";
// The simulated nodes' [escrow] settings.
constexpr uint64_t kEscrowTickMs = 200;
inline constexpr core::EscrowPolicy kEscrowPolicy{2, 8, 50};

}  // namespace meridian::sim
