// Strong transactions across homes (docs/semantics.md#transactions-across-homes): two-phase
// commit, coordinated by the region that receives the transaction, with the records of
// node/locks.h. The HTTP server and the gRPC API both run a transaction through Coordinate; every
// node runs a LockKeeper, which releases its locks once their transaction is aborted and asks the
// coordinator about a lock that outlived its deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/forward.h"
#include "api/request.h"
#include "node/locks.h"
#include "node/node.h"

namespace meridian::api {

// A prepared lock lives this long past the coordinator's deadline before its home asks the
// coordinator what became of it.
constexpr uint64_t kLockGraceMs = 5000;
// A prepare finding a key held by another transaction waits at most this long for it.
constexpr uint64_t kPrepareWaitMs = 1000;

// A transaction id: the coordinator's name, '-', 32 random hex digits.
std::string NewTransactionId(const node::Node& node);

// Whether a two-phase transaction holds `key` (or, for a transaction, any of its keys) here: a
// strong request waits (up to its timeout) for it to commit or abort, about a round trip, before
// the commit path would refuse it (423 locked). HTTP and gRPC alike.
bool HeldByTransaction(const node::Region& region, const std::string& key,
                       const core::Transaction* txn);

// This region's part of the prepare of transaction `id`, which `coordinator` coordinates
// (POST /v1/txn?prepare=ID there, called directly in the coordinator): lock records for the keys
// of `txn` homed here, expiring `lock_ms` from now, written in the commit path atomically with the
// check that this region is their home, after waiting up to kPrepareWaitMs for another
// transaction that holds one of them. 421 not_home when it is the home of none of them; the commit
// path's refusals (423 locked, 503 rebuilding, ...) otherwise. Blocking.
struct Prepared {
  std::vector<std::string> locked;
  core::Dot event;               // the locks' last event
  core::VersionVector frontier;  // this region's, just after it locked
};
std::variant<Prepared, ApiError> PrepareHere(node::Node& node, const std::string& id,
                                             const std::string& coordinator,
                                             const core::Transaction& txn, uint64_t lock_ms);

// What became of transaction `id` here, its coordinator: its decision, recording "aborted" first
// when there is none (POST /v1/txn/resolve). Blocking.
Result<node::Decision> Resolve(node::Node& node, const std::string& id);

// A strong transaction whose keys have different homes (`route.keys` by home), as a client sent
// it: its HTTP body and headers.
struct CoordinateRequest {
  std::shared_ptr<const core::Transaction> txn;
  std::string body;             // as POST /v1/txn takes it
  std::string authorization;    // the client's header, for the homes' prepares
  std::string idempotency_key;  // scoped as the commit path keeps it ("" for none)
  uint64_t timeout_ms = 5000;   // prepares, the wait for the homes' writes and the commit
};
struct Coordinated {
  std::string id;
  node::Receipt receipt;
};
// Runs the two phases (blocking): prepares in every home at once, waits until this region holds
// what each home held when it locked, commits here. Any refusal or silence aborts: the error
// then says what was refused (423 locked, 503 home_unavailable, ...) and that nothing was
// applied. 409 transaction_aborted when a home's lock expired and the home aborted it first.
std::variant<Coordinated, ApiError> Coordinate(node::Node& node, const StrongRoute& route,
                                               const CoordinateRequest& request);

// Transactions across homes this process coordinated, by outcome (metrics).
struct CoordinatedCounts {
  uint64_t committed = 0;
  uint64_t aborted = 0;  // refused, timed out or aborted by a home's question
};
CoordinatedCounts CoordinatedSoFar();
// The locks this region holds as the home of their keys (metrics).
uint64_t LocksHeldHere(node::Node& node);

// Releases this region's locks (as their home) whose transaction is aborted, and asks the
// coordinator of each lock past its deadline; a thread, every `interval`.
class LockKeeper {
 public:
  LockKeeper(node::Node* node, std::chrono::milliseconds interval);
  ~LockKeeper();
  // One round (tests): the locks it released.
  size_t RunOnce();

 private:
  node::Node* const node_;
  const std::chrono::milliseconds interval_;
  std::mutex run_mutex_;                                                // one round at a time
  std::map<std::string, std::chrono::steady_clock::time_point> asked_;  // txn -> ask again after
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace meridian::api
