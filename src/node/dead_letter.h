// A dead letter: an event of another region that this region could not apply as it came (it did
// not decode or validate, or its schema version is newer than this build reads), kept durably in
// the store's dead-letter log (docs/replication.md#dead-letters) with its raw bytes, so that it can
// be applied later (Region::RetryDeadLetter; automatically at start once the build reads its
// schema version). The record is JSON (docs/storage.md#dead-letters); the raw bytes travel in it
// as base64.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/event.h"
#include "meridian/status.h"

namespace meridian::node {

struct DeadLetter {
  enum class State { kParked, kApplied, kResolved };

  uint64_t id = 0;              // its number in the dead-letter log (the store's), from 1
  std::string event;            // "eu:17" (Region::EventId)
  core::Dot dot;                //
  std::string origin;           // the origin's name
  std::string key;              // empty: unreadable
  uint32_t schema_version = 0;  // as the event says; 0: absent
  bool newer_schema = false;    // parked for its schema version only
  std::string reason;           // why it is parked (the last attempt's, after a retry)
  uint64_t parked_ms = 0;       // wall clock (ms since the epoch) when it was parked
  State state = State::kParked;
  uint64_t applied_ms = 0;  // when it was applied (kApplied) or resolved (kResolved); 0: not yet
  uint64_t retries = 0;     // attempts to apply it again that failed
  std::string bytes;        // the event's Protobuf encoding as it came

  // "parked", "applied", "resolved".
  static std::string_view StateName(State state);
  // The stored record (JSON, the bytes in base64; the id is the record's key, not in it).
  std::string Encode() const;
  static Result<DeadLetter> Decode(uint64_t id, std::string_view record);
  // As GET /v1/dead-letters serves it: the record with its id, without the bytes (their size
  // instead).
  nlohmann::json ToJson() const;
};

// Base64 (RFC 4648, with padding), for the raw bytes in the record.
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace meridian::node
