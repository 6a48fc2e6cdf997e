// ViewCache: the rendered documents most recently written, in memory, so that most reads never
// reach the store. Only the commit path fills it, after a batch is durable and before the
// region's frontier covers the batch (so before any answer or session token can); readers only
// look up. A key not in the cache is read from the store, which
// holds the same committed value, so the cache never serves anything older than the store.
//
// Bounded: at most `entries_max` keys; a full shard forgets its least recently written key.
// Thread-safe (sharded mutexes).
#pragma once

#include <array>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace meridian::node {

class ViewCache {
 public:
  explicit ViewCache(size_t entries_max);

  enum class Lookup { kMiss, kAbsent, kFound };
  // kFound fills *doc; kAbsent: the document is known not to exist.
  Lookup Find(std::string_view key, std::string* doc) const;
  // Records the committed view of `key` (nullopt: it does not exist).
  void Put(const std::string& key, const std::optional<std::string>& doc);
  // Forgets `key`: it is read from the store until the next Put.
  void Forget(const std::string& key);
  // Forgets everything (the store's documents were removed).
  void Clear();

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::list<std::string> order;  // most recently written first
    struct Entry {
      std::optional<std::string> doc;
      std::list<std::string>::iterator position;
    };
    std::unordered_map<std::string, Entry> entries;
  };
  Shard& ShardOf(std::string_view key) const;

  const size_t shard_max_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace meridian::node
