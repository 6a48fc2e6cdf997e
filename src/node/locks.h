// Two-phase commit's records (docs/semantics.md#transactions-across-homes): a strong transaction
// whose keys have different homes is coordinated by the region that receives it.
//
//   - Prepare: each home writes, in its commit path and atomically with its check that it is the
//     home, a lock record "_meridian/locks/<key>" for each of the transaction's keys it is home of,
//     {"lock": {"txn": ID, "coordinator": NAME, "expires_ms": MS}}. While it holds a lock, the
//     home refuses (423 locked) strong reads and writes of the key and other prepares of it.
//   - Commit: the coordinator, once it holds everything each home held when it locked, evaluates
//     the conditions and commits as one local transaction the branch that runs, the deletion of
//     every lock record and the decision record "_meridian/txns/<ID>" = {"txn": {"decision":
//     "committed", ...}}, guarded by the decision record's absence. The homes apply it whole,
//     so the locks go with the writes they guarded.
//   - Abort: the decision record "aborted" (guarded the same way); a home that sees it, or whose
//     lock expired and whose coordinator answers "aborted", deletes its lock itself. A coordinator
//     asked about a transaction it has not decided records "aborted" first: the two decisions
//     exclude each other in its commit path.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/event.h"

namespace meridian::node {

constexpr std::string_view kLockKeyPrefix = "_meridian/locks/";
constexpr std::string_view kDecisionKeyPrefix = "_meridian/txns/";

struct Lock {
  std::string txn;          // the transaction's id
  std::string coordinator;  // the coordinating region's name
  uint64_t expires_ms = 0;  // the home's wall clock: past it, the home asks the coordinator
  bool operator==(const Lock&) const = default;
};

class LockTable {
 public:
  // The lock on `key` (a document's key), nullopt when none.
  std::optional<Lock> LockOf(std::string_view key) const;
  // Every lock, by the key it holds.
  std::map<std::string, Lock> All() const;
  size_t size() const;

  // A lock record committed (or read at start): `record_key` is KeyOf(key), `doc` its rendered
  // document (nullopt: deleted). A record that does not parse is ignored (and logged).
  void Note(std::string_view record_key, const std::optional<std::string>& doc);

  static std::string KeyOf(std::string_view key);
  // The operation that writes `lock` as its record: {"lock": {"txn", "coordinator",
  // "expires_ms"}}, what Parse reads.
  static core::Operation RecordOp(const Lock& lock);
  static std::optional<Lock> Parse(const std::string& doc);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Lock, std::less<>> locks_;
};

// A transaction's decision as its record renders (kNone: no record).
enum class Decision { kNone, kCommitted, kAborted };
std::string_view DecisionName(Decision decision);
std::string DecisionKeyOf(std::string_view txn);
// The operation that writes a decision record: {"txn": {"decision", "coordinator"}}.
core::Operation DecisionOp(Decision decision, std::string_view coordinator);
Decision ParseDecision(const std::optional<std::string>& doc);

}  // namespace meridian::node
