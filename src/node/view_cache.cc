#include "node/view_cache.h"

#include <functional>

namespace meridian::node {

ViewCache::ViewCache(size_t entries_max) : shard_max_((entries_max + kShards - 1) / kShards) {}

ViewCache::Shard& ViewCache::ShardOf(std::string_view key) const {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

ViewCache::Lookup ViewCache::Find(std::string_view key, std::string* doc) const {
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(std::string(key));
  if (it == shard.entries.end()) return Lookup::kMiss;
  if (!it->second.doc) return Lookup::kAbsent;
  *doc = *it->second.doc;
  return Lookup::kFound;
}

void ViewCache::Clear() {
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    shard.entries.clear();
    shard.order.clear();
  }
}

void ViewCache::Put(const std::string& key, const std::optional<std::string>& doc) {
  if (shard_max_ == 0) return;
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) {
    shard.order.erase(it->second.position);
  } else {
    if (shard.entries.size() >= shard_max_) {
      shard.entries.erase(shard.order.back());
      shard.order.pop_back();
    }
    it = shard.entries.emplace(key, Shard::Entry{}).first;
  }
  shard.order.push_front(key);
  it->second.doc = doc;
  it->second.position = shard.order.begin();
}

void ViewCache::Forget(const std::string& key) {
  if (shard_max_ == 0) return;
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) return;
  shard.order.erase(it->second.position);
  shard.entries.erase(it);
}

}  // namespace meridian::node
