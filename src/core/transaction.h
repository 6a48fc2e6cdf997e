// Conditions and transactions (docs/semantics.md#conditional-writes,
// docs/semantics.md#transactions): what a conditional write or POST /v1/txn asks of the commit
// path, which evaluates them against the documents as the writes before them left them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/event.h"

namespace meridian::core {

// A condition on one document (docs/semantics.md#conditional-writes), evaluated in the commit
// path against the document as the writes before it left it: atomic with what it guards.
struct Condition {
  std::string key = {};
  // Holds when the document exists with this version (DocumentVersion).
  std::optional<std::string> version = {};
  std::optional<bool> exists = {};  // holds when the document exists (true) or not (false)
  bool operator==(const Condition&) const = default;
};
// Whether `condition` holds for a document rendering `rendered` (nullopt: it does not exist).
bool ConditionHolds(const Condition& condition, const std::optional<std::string>& rendered);

struct KeyedOperation {
  std::string key;
  Operation op;  // canonical JSON values, as for a write
  bool operator==(const KeyedOperation&) const = default;
};

// POST /v1/txn: when every condition holds, the `then` operations, else the `else` ones, applied
// as one: in this region and in every region the events reach, all of them or none.
struct Transaction {
  std::vector<Condition> conditions;
  std::vector<KeyedOperation> then_ops;
  std::vector<KeyedOperation> else_ops;

  // Calls visit(key, writes) for every key the transaction names: its conditions' (writes:
  // false), then both branches' operations' (true: either may run), repeats included, until
  // visit returns false. Returns whether it visited them all.
  template <typename Visit>
  bool VisitKeys(Visit&& visit) const {
    for (const Condition& condition : conditions) {
      if (!visit(condition.key, false)) return false;
    }
    for (const auto* ops : {&then_ops, &else_ops}) {
      for (const KeyedOperation& op : *ops) {
        if (!visit(op.key, true)) return false;
      }
    }
    return true;
  }
  // Every key the transaction names, once each, in the order VisitKeys meets them.
  std::vector<std::string> Keys() const;
};

}  // namespace meridian::core
