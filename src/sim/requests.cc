// The simulation's part of client requests with answers (strong operations and transactions:
// src/sim/strong.h drives them) and the transactions' atomicity checker (docs/testing.md,
// "Simulation").
#include <algorithm>
#include <set>

#include "sim/simulation.h"

namespace meridian::sim {

uint64_t Simulation::MessageLatencyMs(int from, int to) {
  return from == to ? 1 : LatencyMs(from, to);
}

std::string Simulation::EventIdOf(core::Dot dot) {
  const auto& names = RegionNames();
  const std::string origin =
      dot.origin >= 1 && dot.origin <= names.size() ? names[dot.origin - 1] : "?";
  return origin + ":" + std::to_string(dot.seq);
}

// --- transactions ---------------------------------------------------------------------------

void Simulation::AcknowledgeTransaction(int index, const node::WriteRequest& write,
                                        const Result<node::Receipt>& outcome) {
  const std::string& name = NameAt(index);
  if (!outcome.ok()) {
    Trace(name + ": refused a transaction: " + outcome.status().message());
    return;
  }
  const core::Transaction& txn = *write.txn;
  const std::vector<core::KeyedOperation>& ops = outcome->succeeded ? txn.then_ops : txn.else_ops;
  std::string ids;
  if (ops.size() != outcome->events.size()) {
    txn_failures_.push_back(name + ": a transaction's " + (outcome->succeeded ? "then" : "else") +
                            " branch has " + std::to_string(ops.size()) +
                            " operations, its receipt " + std::to_string(outcome->events.size()) +
                            " events");
    return;
  }
  Txn committed;
  for (size_t i = 0; i < ops.size(); ++i) {
    const core::Dot dot = outcome->events[i];
    if (i > 0 &&
        (dot.origin != committed.dots.back().origin || dot.seq != committed.dots.back().seq + 1)) {
      txn_failures_.push_back(name + ": a transaction's events are not consecutive");
    }
    committed.dots.push_back(dot);
    committed.keys.push_back(ops[i].key);
    Acknowledge(index, dot, ops[i].key, ops[i].op);
    ids += (ids.empty() ? "" : " ") + ops[i].key;
  }
  Trace(name + ": ack transaction (" + (outcome->succeeded ? "then" : "else") + ") " +
        (committed.dots.empty() ? std::string("with no events")
                                : EventIdOf(committed.dots.front()) + ".." +
                                      EventIdOf(committed.dots.back()) + " " + ids));
  if (committed.dots.size() < 2) return;  // nothing to apply in part
  for (const core::Dot& dot : committed.dots) txn_of_[dot] = txns_.size();
  txns_.push_back(std::move(committed));
}

std::string Simulation::DescribeTransaction(size_t txn) const {
  const Txn& t = txns_.at(txn);
  std::string keys;
  for (const std::string& key : t.keys) keys += (keys.empty() ? "" : ", ") + key;
  return "transaction " + EventIdOf(t.dots.front()) + ".." + EventIdOf(t.dots.back()) + " (" +
         keys + ")";
}

void Simulation::TransactionFailure(std::string what) {
  if (txn_failures_.size() < 10) txn_failures_.push_back(std::move(what));
}

void Simulation::CheckTransactions(int index, const std::vector<node::Change>& changes,
                                   const std::vector<Result<node::RemoteApply>>& remote) {
  if (txns_.empty()) return;
  CheckTransactionFrontier(index, "after a commit");
  // The commit's events, those parked as dead letters included (a parked event of a transaction
  // leaves its document to repair; the others still apply, docs/replication.md#dead-letters).
  std::set<core::Dot> committed;
  for (const node::Change& change : changes) {
    if (!change.merged()) committed.insert(change.dot);
  }
  for (const Result<node::RemoteApply>& outcome : remote) {
    if (!outcome.ok()) continue;
    for (const node::RemoteApply::Parked& parked : outcome->parked) committed.insert(parked.dot);
  }
  std::set<size_t> seen;
  for (const core::Dot& dot : committed) {
    auto it = txn_of_.find(dot);
    if (it == txn_of_.end() || !seen.insert(it->second).second) continue;
    for (const core::Dot& other : txns_[it->second].dots) {
      if (!committed.contains(other)) {
        TransactionFailure(NameAt(index) + " committed " + EventIdOf(dot) + " of " +
                           DescribeTransaction(it->second) + " without " + EventIdOf(other));
        break;
      }
    }
  }
}

void Simulation::CheckTransactionFrontier(int index, const std::string& when) {
  if (txns_.empty() || !up(index)) return;
  // Each origin's events apply in seq order, so the frontier names the last one applied: all of
  // a transaction or none is applied exactly when that one is no transaction's but the last.
  const core::VersionVector frontier = Frontier(index);
  for (const auto& entry : frontier.entries()) {
    const core::Dot last{entry.origin, entry.seq};
    auto it = txn_of_.find(last);
    if (it == txn_of_.end() || txns_[it->second].dots.back() == last) continue;
    TransactionFailure(NameAt(index) + " " + when + " has applied " + EventIdOf(last) + " of " +
                       DescribeTransaction(it->second) + " but not the rest");
  }
}

void Simulation::CheckTransactionsConverged(const core::VersionVector& heads,
                                            const std::function<void(std::string)>& fail) {
  for (size_t i = 0; i < txns_.size(); ++i) {
    const Txn& txn = txns_[i];
    // A transaction whose ids were issued again was lost with its store (whole: a commit is
    // atomic), and the existing checkers count it.
    const bool current = std::all_of(txn.dots.begin(), txn.dots.end(), [&](const core::Dot& dot) {
      auto it = txn_of_.find(dot);
      return it != txn_of_.end() && it->second == i;
    });
    if (!current) continue;
    const size_t held = static_cast<size_t>(std::count_if(
        txn.dots.begin(), txn.dots.end(), [&](const core::Dot& dot) { return heads.Covers(dot); }));
    if (held != 0 && held != txn.dots.size()) {
      fail(DescribeTransaction(i) + " is held in part: " + std::to_string(held) + " of its " +
           std::to_string(txn.dots.size()) + " events");
      continue;
    }
    if (held == 0) continue;  // lost whole with its origin's store
    for (int index = 0; index < size(); ++index) {
      if (!member(index)) continue;
      const core::VersionVector frontier = Frontier(index);
      if (!frontier.Covers(txn.dots.front()) || !frontier.Covers(txn.dots.back())) {
        fail(NameAt(index) + " lacks " + DescribeTransaction(i));
      }
    }
  }
}

}  // namespace meridian::sim
