#include "sim/oracle.h"

#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/document.h"

namespace meridian::sim {

Oracle::Oracle(std::vector<core::Event> events) : events_(std::move(events)) {}

bool Oracle::RemovedByDocument(const std::string& key, const core::Dot& dot) const {
  for (const core::Event& e : events_) {
    if (e.key == key &&
        (e.op.kind == core::OpKind::kDelete || e.op.kind == core::OpKind::kReplace) &&
        e.context.Covers(dot)) {
      return true;
    }
  }
  return false;
}

bool Oracle::RemovedInField(const std::string& key, const std::string& field,
                            const core::Dot& dot) const {
  if (RemovedByDocument(key, dot)) return true;
  for (const core::Event& e : events_) {
    if (e.key != key || e.op.kind != core::OpKind::kSet || !e.context.Covers(dot)) continue;
    for (const core::FieldValue& value : e.op.fields) {
      if (value.name == field) return true;
    }
  }
  return false;
}

std::optional<std::string> Oracle::RenderField(const std::string& key,
                                               const std::string& field) const {
  // A bounded field (docs/semantics.md#bounded-counters): the declaration with the greatest
  // (hlc, region, seq), plus every escrowed increment, whatever else was written to the field.
  const core::Event* declaration = nullptr;
  for (const core::Event& e : events_) {
    if (e.key != key || e.op.kind != core::OpKind::kEscrow || e.op.escrow.field != field ||
        e.op.escrow.kind != core::EscrowOpKind::kDeclare) {
      continue;
    }
    if (declaration == nullptr ||
        std::tie(e.hlc, e.dot.origin, e.dot.seq) >
            std::tie(declaration->hlc, declaration->dot.origin, declaration->dot.seq)) {
      declaration = &e;
    }
  }
  if (declaration != nullptr) {
    int64_t value = declaration->op.escrow.min;
    for (const auto& [region, share] : declaration->op.escrow.shares) value += share;
    for (const core::Event& e : events_) {
      if (e.key != key) continue;
      for (const core::CounterDelta& counter : e.op.counters) {
        if (counter.escrow && counter.name == field) value += counter.delta;
      }
    }
    return std::to_string(value);
  }
  const core::Sibling* winner = nullptr;
  std::vector<core::Sibling> sets;
  for (const core::Event& e : events_) {
    if (e.key != key || RemovedInField(key, field, e.dot)) continue;
    for (const core::FieldValue& value : e.op.fields) {
      if (value.name == field) sets.push_back(core::Sibling{e.dot, e.hlc, value.value});
    }
  }
  for (const core::Sibling& s : sets) {
    if (winner == nullptr || s.hlc > winner->hlc ||
        (s.hlc == winner->hlc && s.dot.origin > winner->dot.origin)) {
      winner = &s;
    }
  }
  bool any_increment = false;
  int64_t total = 0;
  for (const core::Event& e : events_) {
    if (e.key != key || e.op.kind != core::OpKind::kIncrement ||
        RemovedInField(key, field, e.dot)) {
      continue;
    }
    for (const core::CounterDelta& counter : e.op.counters) {
      if (counter.name == field && !counter.escrow) {  // escrowed ones count only when bounded
        any_increment = true;
        total += counter.delta;
      }
    }
  }
  if (winner == nullptr) {
    if (!any_increment) return std::nullopt;
    return nlohmann::json(total).dump();
  }
  nlohmann::json value = nlohmann::json::parse(winner->value);
  if (any_increment && value.is_number_integer()) {
    return nlohmann::json(value.get<int64_t>() + total).dump();
  }
  return value.dump();
}

std::optional<std::string> Oracle::Render(const std::string& key) const {
  bool exists = false;
  std::set<std::string> fields;
  for (const core::Event& e : events_) {
    if (e.key != key) continue;
    if (e.op.kind != core::OpKind::kDelete && !RemovedByDocument(key, e.dot)) exists = true;
    for (const core::FieldValue& value : e.op.fields) fields.insert(value.name);
    for (const core::CounterDelta& counter : e.op.counters) fields.insert(counter.name);
    if (e.op.kind == core::OpKind::kEscrow) fields.insert(e.op.escrow.field);
  }
  if (!exists) return std::nullopt;
  std::string out = "{";
  for (const std::string& field : fields) {  // sorted by name, as documents render
    std::optional<std::string> value = RenderField(key, field);
    if (!value) continue;
    if (out.size() > 1) out += ",";
    core::AppendJsonString(field, &out);
    out += ":" + *value;
  }
  return out + "}";
}

}  // namespace meridian::sim
