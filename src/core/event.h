// The event: one write, as it is logged, replicated and merged.
//
// An event is named by its dot {origin, seq}, stamped with the HLC of the region that accepted
// it, and carries its context: the version vector the origin had applied when it wrote, which is
// what the write "has seen" and may therefore overwrite (see document.h). Its wire form is the
// Protobuf message meridian.wire.Event (proto/meridian/event.proto), specified in
// docs/formats.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hlc.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::core {

// The newest event schema version this build writes and reads
// (docs/formats.md#schema-version-rules). An event of a newer version (a newer node's, during a
// rolling upgrade) is not misread: the receive path parks it as a dead letter (ParkedEvent) until
// a build that reads it applies it. Version 2 added bounded counters (escrow operations and
// escrowed increments); an event without them is still written as version 1, which every build
// reads (EventSchemaVersion).
constexpr uint32_t kEventSchemaVersion = 2;

// Size limits, enforced on every write and on every decoded event. Each is a hard bound the
// node promises its users; the defaults are documented in docs/semantics.md.
struct Limits {
  size_t key_bytes_max = 1024;
  size_t field_name_bytes_max = 256;
  size_t value_bytes_max = 64 * 1024;       // one field's canonical JSON
  size_t document_bytes_max = 1024 * 1024;  // one operation; the node also refuses a write
                                            // that would render a larger document
  size_t fields_max = 1024;                 // fields in one operation
};

enum class OpKind : uint8_t { kSet = 1, kReplace = 2, kIncrement = 3, kDelete = 4, kEscrow = 5 };
std::string_view OpKindName(OpKind kind);

struct FieldValue {
  std::string name;
  std::string value;  // canonical JSON text (CanonicalJson)
  bool operator==(const FieldValue&) const = default;
};

struct CounterDelta {
  std::string name;
  int64_t delta = 0;
  // An increment of a bounded counter (docs/semantics.md#bounded-counters), set by the command
  // path (StampLocalWrite) when its region knows the field's bound: every region feeds it to the
  // field's escrow ledger, even one that has not applied the declaration yet. An unflagged
  // increment of a bounded field was written by a region that did not know the bound: no ledger
  // counts it.
  bool escrow = false;
  // Escrowed: the seq of its writer's previous escrow event of this field (0: none). A region
  // applies each origin's escrow events of a field in this chain (DocumentState), so that its
  // ledger holds a prefix of them whatever was parked or lost on the way.
  uint64_t prev = 0;
  bool operator==(const CounterDelta&) const = default;
};

// One escrow event of a bounded counter (core/escrow.h): what its region writes about itself.
enum class EscrowOpKind : uint8_t { kDeclare = 1, kTransfer = 2, kAccept = 3, kWant = 4 };
std::string_view EscrowOpKindName(EscrowOpKind kind);
struct EscrowOp {
  EscrowOpKind kind = EscrowOpKind::kDeclare;
  std::string field;
  int64_t min = 0;  // kDeclare: the bound
  // kDeclare: the initial rights per region (no zero entries). In a local write it is computed by
  // StampLocalWrite from the field's value (SplitRoom); what the request holds is ignored.
  std::map<RegionId, int64_t> shares;
  RegionId region = 0;  // kTransfer: the receiver; kAccept: the giver
  int64_t amount = 0;   // kTransfer, kAccept: rights moved (> 0); kWant: the level asked for (>= 0)
  uint64_t prev = 0;    // not kDeclare: as CounterDelta::prev
  bool operator==(const EscrowOp&) const = default;
};

// Exactly one of: set fields (kSet), replace the document (kReplace), increment counters
// (kIncrement), delete (kDelete), an escrow event of a bounded counter (kEscrow: `escrow`).
// `fields` and `counters` are sorted by name, names unique.
struct Operation {
  OpKind kind = OpKind::kSet;
  std::vector<FieldValue> fields;
  std::vector<CounterDelta> counters;
  EscrowOp escrow = {};  // kEscrow only
  bool operator==(const Operation&) const = default;
};

// How many operations a transaction may hold (POST /v1/txn).
constexpr uint32_t kTransactionOpsMax = 1000;

struct Event {
  Dot dot;
  HlcTimestamp hlc = 0;
  VersionVector context;
  std::string key;
  Operation op;
  // A transaction's events are consecutive events of their origin; each says how many of the
  // transaction follow it (0 for the last one and for a write of its own). Every region applies
  // a transaction's events in one commit, so no reader sees some of them without the others.
  uint32_t txn_rest = 0;
  // The write's trace context (core/trace.h): 25 bytes, or empty when not traced.
  std::string trace;
  bool operator==(const Event&) const = default;
};

// Validates a key: 1..key_bytes_max bytes of valid UTF-8.
Status ValidateKey(std::string_view key, const Limits& limits);
// True when text is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// Parses JSON text and returns its canonical form (object members sorted by name, no spaces,
// shortest round-trip numbers). Errors on malformed JSON or invalid UTF-8.
Result<std::string> CanonicalJson(std::string_view json_text);

// Sorts fields and counters by name, puts every value in canonical JSON form, and checks every
// limit: names 1..field_name_bytes_max bytes of UTF-8 and unique, values JSON within
// value_bytes_max (after canonicalization), the whole operation within
// document_bytes_max, at most fields_max fields, an increment with at least one counter, a delete
// with neither.
Status NormalizeOperation(Operation* op, const Limits& limits);
// NormalizeOperation for an operation whose values are already canonical JSON (as
// nlohmann::json::dump writes them): sorts and checks the limits without re-parsing values.
Status CheckCanonicalOperation(Operation* op, const Limits& limits);

// Validates an event as a receiver must before merging it: a real dot (origin <= 31, seq >= 1),
// a context whose entry for the origin is exactly seq - 1 (an origin has applied all its own
// earlier events), a timestamp, a valid key, txn_rest below kTransactionOpsMax, and an escrow
// operation its origin could have written (a declaration ValidateEscrowDeclaration accepts, a
// transfer or accept naming another region).
Status ValidateEvent(const Event& event, const Limits& limits);

// The schema version an event is written with: 2 when it carries an escrow operation or an
// escrowed increment, else 1 (readable by builds that predate bounded counters).
uint32_t EventSchemaVersion(const Event& event);

std::string EncodeEvent(const Event& event);
// The txn_rest of an encoded event, read without decoding the rest (0 when it does not parse):
// how a sender keeps a transaction whole in one batch.
uint32_t PeekTxnRest(std::string_view bytes);
// Decodes and validates; never crashes on arbitrary bytes. `schema_version_max` is the newest
// schema version read (versions 1 to it are read as this build's layout): always
// kEventSchemaVersion in a node; tests raise it to model a build that reads a newer version.
Result<Event> DecodeEvent(std::string_view bytes, const Limits& limits,
                          uint32_t schema_version_max = kEventSchemaVersion);

// An event of another region that cannot be applied as it came (docs/replication.md#dead-letters):
// it does not decode or validate, or its schema version is newer than this build reads. Its dot
// is known; the rest is what could be read of it.
struct ParkedEvent {
  Dot dot;
  std::string bytes;            // its Protobuf encoding as it came: logged and relayed as is
  std::string key;              // empty when absent or not a valid key
  uint32_t schema_version = 0;  // as the event says (0: absent)
  HlcTimestamp hlc = 0;         // as the event says (0: absent)
  bool newer_schema = false;    // refused for its schema version only
  std::string reason;           // why it was refused, in clear text
  bool operator==(const ParkedEvent&) const = default;
};

// What the receive path makes of one event's bytes: the event, or the event parked (ParkedEvent)
// when it does not decode, validate, or is of a newer schema version than `schema_version_max`.
// kCorruption when not even its dot can be read: the bytes are not a meridian.wire.Event, or the
// origin is above 31 or the seq 0.
struct ReceivedEvent {
  std::optional<Event> event;
  std::optional<ParkedEvent> parked;  // exactly one of the two is set
};
Result<ReceivedEvent> DecodeOrPark(std::string_view bytes, const Limits& limits,
                                   uint32_t schema_version_max = kEventSchemaVersion);

// A batch of another region's events as the receive path decoded it: the events that decoded and
// those parked, each in seq order per origin.
struct RemoteBatch {
  RemoteBatch() = default;
  RemoteBatch(std::vector<Event> events, std::vector<ParkedEvent> parked = {})  // NOLINT
      : events(std::move(events)), parked(std::move(parked)) {}
  std::vector<Event> events;
  std::vector<ParkedEvent> parked;
  size_t size() const { return events.size() + parked.size(); }
  bool empty() const { return events.empty() && parked.empty(); }
  // Parks the events `park` picks, as if they had not decoded, for `reason`: fault injection
  // (the simulator's poison events, MERIDIAN_FAULT_POISON_KEY in tests). Keeps both lists in
  // seq order.
  void Park(const std::function<bool(const Event&)>& park, const std::string& reason);
};

}  // namespace meridian::core
