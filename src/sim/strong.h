// Strong operations and transactions in the simulator (docs/testing.md, "Simulation").
//
// Strong operations: keys under two homed prefixes ("h/", "g/") get consistency=strong reads and
// writes (PUTs and deletes, plain, If-Match on the version the client last saw, If-None-Match)
// from one client per region, each waiting for its answer. A client talks to its own region,
// which routes the request as api::RouteStrong does, by its own HomeTable: to itself, or forwarded
// over the simulated network to the home, whose answer comes back the same way. The home checks
// its own table (a forwarded request it is not the home of is refused: 421, nothing applied, the
// client retries), reads the document, or commits the write through the real commit path with
// WriteRequest::strong (refused with kNotHome when a move committed first). Now and then an
// operator moves a prefix's home (a planned move: the record written by the current home, as
// node::HomeMoveWrite builds it). Forced moves are not made (see docs/testing.md).
//
// Every operation is recorded per key: invoked when the client sends it, completed when its answer
// arrives. A write whose answer never arrives (its region crashed, the home crashed with it queued,
// a partition ate it) is pending, with a deadline: the instant the home committed it, refused it
// or lost it, after which it cannot take effect. Reads without an answer, and operations refused
// with nothing applied after their retries, are left out. At the end each key's history must be
// linearizable (src/sim/linearizability.h, DocumentModel).
//
// Transactions: one more client per region sends transactions of 2-4 operations over the "k/"
// documents, with conditions (exists, absent, the version the region shows, a stale one) and
// both branches; the simulation checks that each is applied whole (src/sim/requests.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "node/homes.h"
#include "sim/linearizability.h"
#include "sim/simulation.h"

namespace meridian::sim {

// The [[homes]] of a run: "h/" and "g/", each homed in a region the seed picks (two different
// regions).
std::vector<node::Home> PickHomes(const std::vector<std::string>& names, uint64_t seed);

class StrongClients {
 public:
  StrongClients(Simulation& sim, const Options& options);
  // Clients in every region (and the home moves) until `end`, virtual ms.
  void Start(uint64_t end);
  // Each key's history, checked; what failed (with the checker's explanation).
  std::vector<std::string> Check();
  // Before region `index` is removed: each prefix it is the home of moves to another region (a
  // planned move it writes). Whether it moved any.
  bool MoveHomesFrom(int index);

  uint64_t answered() const;  // operations with an answer
  uint64_t pending() const;   // writes whose outcome their client never learnt
  uint64_t moves() const { return moves_; }
  uint64_t unknown() const { return unknown_; }  // keys the checker's budget did not decide

 private:
  enum class State { kInFlight, kAnswered, kPending, kFailed };
  // What the client hears back: an answer for the history, a refusal that applied nothing (it
  // retries), no answer (unknown), or another error (nothing applied, no retry).
  struct Reply {
    enum class Kind { kAnswer, kRetry, kUnknown, kFailed } kind = Kind::kFailed;
    DocumentModel::Output output;
    std::string why;
  };
  struct Op {
    int client = 0;  // the client's region
    std::string key;
    bool read = false;
    DocumentModel::Input input;
    node::WriteRequest write;
    std::string expected;  // a PUT: the document as it renders it
    int64_t invoked = 0;
    int64_t completed = 0;
    State state = State::kInFlight;
    DocumentModel::Output output;
    // The instant the home committed it, refused it or lost it (it takes no effect after).
    std::optional<int64_t> resolved;
    // The attempt in flight: routed by the client's region `x` to the home `h`; `replied` once
    // `x` answered the client (or gave up waiting for the home).
    int attempts = 0;
    int h = -1;
    uint64_t x_incarnation = 0;
    uint64_t h_incarnation = 0;
    bool replied = false;
  };

  void Next(int client);
  void Invoke(int client);
  void Attempt(size_t id);
  void Route(size_t id);
  void Serve(size_t id);
  void Committed(size_t id, const Result<node::Receipt>& receipt,
                 const std::vector<node::Change>& changes);
  // The durability wait (durability=regions:N): the answer once N other regions hold the write.
  void WaitDurable(size_t id, core::Dot dot, Reply reply, uint64_t until);
  // The home's reply on its way back to the client's region, then to the client.
  void Back(size_t id, Reply reply);
  void AtRegion(size_t id, Reply reply);
  void Finish(size_t id, const Reply& reply);
  bool HomeUp(const Op& op) const;
  void Moves();
  void Move();
  // A planned move of `prefix` to `target`, written by region `h` if it is the home.
  void MoveAt(int h, const std::string& prefix, const std::string& target);
  std::string Describe(const Op& op) const;

  Simulation& sim_;
  const Options& options_;
  uint64_t end_ = 0;
  std::vector<std::string> keys_;
  std::vector<Op> ops_;
  // Per client (region): the version of each key it last saw (a read or its own write).
  std::vector<std::map<std::string, std::string>> seen_;
  uint64_t next_value_ = 0;
  uint64_t moves_ = 0;
  uint64_t unknown_ = 0;
};

class TransactionClients {
 public:
  TransactionClients(Simulation& sim, const Options& options);
  void Start(uint64_t end);

 private:
  void Next(int client);
  core::Transaction Random(int client);

  Simulation& sim_;
  const Options& options_;
  uint64_t end_ = 0;
  uint64_t next_value_ = 0;
};

}  // namespace meridian::sim
