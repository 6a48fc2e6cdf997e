#include "node/locks.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace meridian::node {
namespace {

// A record of one field, replacing the document: {field: value}.
core::Operation ReplaceWith(const char* field, const nlohmann::json& value) {
  core::Operation op;
  op.kind = core::OpKind::kReplace;
  op.fields.push_back(core::FieldValue{field, value.dump()});
  return op;
}

}  // namespace

std::optional<Lock> LockTable::LockOf(std::string_view key) const {
  std::lock_guard lock(mutex_);
  auto it = locks_.find(key);
  if (it == locks_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, Lock> LockTable::All() const {
  std::lock_guard lock(mutex_);
  return {locks_.begin(), locks_.end()};
}

size_t LockTable::size() const {
  std::lock_guard lock(mutex_);
  return locks_.size();
}

void LockTable::Note(std::string_view record_key, const std::optional<std::string>& doc) {
  if (!record_key.starts_with(kLockKeyPrefix)) return;
  const std::string key(record_key.substr(kLockKeyPrefix.size()));
  std::optional<Lock> parsed;
  if (doc) {
    parsed = Parse(*doc);
    if (!parsed) spdlog::warn("ignoring lock record '{}': {} is not a lock", record_key, *doc);
  }
  std::lock_guard lock(mutex_);
  if (parsed) {
    locks_.insert_or_assign(key, std::move(*parsed));
  } else {
    locks_.erase(key);
  }
}

std::string LockTable::KeyOf(std::string_view key) {
  return std::string(kLockKeyPrefix) + std::string(key);
}

core::Operation LockTable::RecordOp(const Lock& lock) {
  return ReplaceWith(
      "lock",
      {{"txn", lock.txn}, {"coordinator", lock.coordinator}, {"expires_ms", lock.expires_ms}});
}

std::optional<Lock> LockTable::Parse(const std::string& doc) {
  const nlohmann::json json = nlohmann::json::parse(doc, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("lock") || !json["lock"].is_object()) return std::nullopt;
  const nlohmann::json& record = json["lock"];
  if (!record.contains("txn") || !record["txn"].is_string() || !record.contains("coordinator") ||
      !record["coordinator"].is_string() || !record.contains("expires_ms") ||
      !record["expires_ms"].is_number_unsigned()) {
    return std::nullopt;
  }
  return Lock{record["txn"].get<std::string>(), record["coordinator"].get<std::string>(),
              record["expires_ms"].get<uint64_t>()};
}

std::string_view DecisionName(Decision decision) {
  switch (decision) {
    case Decision::kCommitted:
      return "committed";
    case Decision::kAborted:
      return "aborted";
    case Decision::kNone:
      break;
  }
  return "undecided";
}

std::string DecisionKeyOf(std::string_view txn) {
  return std::string(kDecisionKeyPrefix) + std::string(txn);
}

core::Operation DecisionOp(Decision decision, std::string_view coordinator) {
  return ReplaceWith("txn", {{"decision", DecisionName(decision)}, {"coordinator", coordinator}});
}

Decision ParseDecision(const std::optional<std::string>& doc) {
  if (!doc) return Decision::kNone;
  const nlohmann::json json = nlohmann::json::parse(*doc, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("txn") || !json["txn"].is_object()) {
    return Decision::kNone;
  }
  const nlohmann::json& decision = json["txn"].value("decision", nlohmann::json());
  if (decision == "committed") return Decision::kCommitted;
  if (decision == "aborted") return Decision::kAborted;
  return Decision::kNone;
}

}  // namespace meridian::node
