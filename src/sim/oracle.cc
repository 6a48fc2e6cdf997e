#include "sim/oracle.h"

#include <nlohmann/json.hpp>
#include <set>

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
      if (counter.name == field) {
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
