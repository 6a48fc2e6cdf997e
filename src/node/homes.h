// Home regions (docs/semantics.md#home-regions): keys under a `[[homes]]` prefix have a home
// region where `consistency=strong` operations run, one region at a time, so that they are
// linearizable per key.
//
// The configured homes are epoch 0. A move is a record in the deployment's own document
// "_meridian/homes/<prefix>", {"home": {"region": NAME, "epoch": E, "forced": BOOL}}, replicated
// like any document, written only through Region (clients cannot write under "_meridian/"):
//   - a planned move is written by the current home itself, in its commit path, after which it
//     refuses strong operations on the prefix; the new home acts only once it has applied that
//     record, and with it every earlier event of the old home (one origin's events apply in
//     order), so it has every strong write the old home made and the two never act at once;
//   - a forced move is written by any region, for a home that is lost; it can lose what the old
//     home had not replicated, and an old home that is alive acts until the record reaches it.
// The table follows the record as the document renders it; the epoch counts the moves.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::node {

// Keys under this prefix belong to the deployment (home records): clients may read them, but only
// the node writes them.
constexpr std::string_view kSystemKeyPrefix = "_meridian/";
constexpr std::string_view kHomeKeyPrefix = "_meridian/homes/";

struct Home {
  std::string prefix;
  core::RegionId region = 0;
  uint64_t epoch = 0;
  bool forced = false;
  bool operator==(const Home&) const = default;
};

class HomeTable {
 public:
  // `configured`: the [[homes]] of the config (epoch 0); `names`: region id -> name.
  HomeTable(std::vector<Home> configured, std::map<core::RegionId, std::string> names);

  // The home of `key`: the entry of the longest prefix of it; nullopt when it has none.
  std::optional<Home> HomeOf(std::string_view key) const;
  // The entry of exactly `prefix`, nullopt when none.
  std::optional<Home> Find(std::string_view prefix) const;
  std::vector<Home> All() const;

  // A home record committed (from the commit path, or read at start): `doc` is the rendered
  // document of `key` (kHomeKeyPrefix + prefix), nullopt when deleted. A record that names no
  // configured region, or does not parse, is ignored (and logged). Returns whether it changed
  // the table.
  bool Note(std::string_view key, const std::optional<std::string>& doc);

  // The record's document key for a move of `prefix`.
  static std::string KeyOf(std::string_view prefix);
  // The operation that writes `home` as its record (what Parse reads).
  core::Operation RecordOp(const Home& home) const;
  // What Note would make of a record: nullopt when it is not a valid record.
  std::optional<Home> Parse(std::string_view key, const std::string& doc) const;
  std::string NameOf(core::RegionId id) const;
  std::optional<core::RegionId> IdOf(std::string_view name) const;

 private:
  const std::map<core::RegionId, std::string> names_;
  mutable std::mutex mutex_;
  std::map<std::string, Home, std::less<>> homes_;  // by prefix
};

}  // namespace meridian::node
