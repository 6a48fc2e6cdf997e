#include "node/homes.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace meridian::node {

HomeTable::HomeTable(std::vector<Home> configured, std::map<core::RegionId, std::string> names)
    : names_(std::move(names)) {
  for (Home& home : configured) {
    std::string prefix = home.prefix;
    homes_.emplace(std::move(prefix), std::move(home));
  }
}

std::optional<Home> HomeTable::HomeOf(std::string_view key) const {
  std::lock_guard lock(mutex_);
  // The longest prefix of `key`: at most one entry per length, checked from the longest.
  const Home* best = nullptr;
  for (const auto& [prefix, home] : homes_) {
    if (key.starts_with(prefix) && (best == nullptr || prefix.size() > best->prefix.size())) {
      best = &home;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::optional<Home> HomeTable::Find(std::string_view prefix) const {
  std::lock_guard lock(mutex_);
  auto it = homes_.find(prefix);
  if (it == homes_.end()) return std::nullopt;
  return it->second;
}

std::vector<Home> HomeTable::All() const {
  std::lock_guard lock(mutex_);
  std::vector<Home> all;
  for (const auto& [prefix, home] : homes_) all.push_back(home);
  return all;
}

std::string HomeTable::KeyOf(std::string_view prefix) {
  return std::string(kHomeKeyPrefix) + std::string(prefix);
}

std::string HomeTable::NameOf(core::RegionId id) const {
  auto it = names_.find(id);
  return it == names_.end() ? std::to_string(id) : it->second;
}

std::optional<core::RegionId> HomeTable::IdOf(std::string_view name) const {
  for (const auto& [id, region] : names_) {
    if (region == name) return id;
  }
  return std::nullopt;
}

core::Operation HomeTable::RecordOp(const Home& home) const {
  const nlohmann::json record = {
      {"region", NameOf(home.region)}, {"epoch", home.epoch}, {"forced", home.forced}};
  core::Operation op;
  op.kind = core::OpKind::kReplace;
  op.fields.push_back(core::FieldValue{"home", record.dump()});
  return op;
}

std::optional<Home> HomeTable::Parse(std::string_view key, const std::string& doc) const {
  if (!key.starts_with(kHomeKeyPrefix)) return std::nullopt;
  const nlohmann::json json = nlohmann::json::parse(doc, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("home") || !json["home"].is_object()) return std::nullopt;
  const nlohmann::json& record = json["home"];
  if (!record.contains("region") || !record["region"].is_string() || !record.contains("epoch") ||
      !record["epoch"].is_number_unsigned()) {
    return std::nullopt;
  }
  auto region = IdOf(record["region"].get<std::string>());
  if (!region) return std::nullopt;
  Home home;
  home.prefix = std::string(key.substr(kHomeKeyPrefix.size()));
  home.region = *region;
  home.epoch = record["epoch"].get<uint64_t>();
  home.forced =
      record.contains("forced") && record["forced"].is_boolean() && record["forced"].get<bool>();
  return home;
}

bool HomeTable::Note(std::string_view key, const std::optional<std::string>& doc) {
  if (!doc) return false;  // a record is never deleted by the node; a deletion changes nothing
  std::optional<Home> home = Parse(key, *doc);
  if (!home) {
    spdlog::warn("ignoring home record '{}': {} is not a record naming a configured region", key,
                 *doc);
    return false;
  }
  std::lock_guard lock(mutex_);
  auto it = homes_.find(home->prefix);
  // The table follows the rendered record, so every region that shows the same record has the
  // same home. Planned moves are written by the current home, which has applied the record
  // before: each overwrites the last causally. Concurrent forced moves merge as any concurrent
  // sets do (the later HLC wins), the same everywhere.
  if (it != homes_.end() && it->second == *home) return false;
  spdlog::info("home of '{}' is now region {} (epoch {}{})", home->prefix, NameOf(home->region),
               home->epoch, home->forced ? ", forced" : "");
  std::string prefix = home->prefix;
  homes_.insert_or_assign(std::move(prefix), std::move(*home));
  return true;
}

}  // namespace meridian::node
