#include "core/event.h"

#include "core/trace.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/escrow.h"
#include "core/trace.h"
#include "meridian/event.pb.h"

namespace meridian::core {

std::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kSet:
      return "set";
    case OpKind::kReplace:
      return "replace";
    case OpKind::kIncrement:
      return "increment";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kEscrow:
      return "escrow";
  }
  return "unknown";
}

std::string_view EscrowOpKindName(EscrowOpKind kind) {
  switch (kind) {
    case EscrowOpKind::kDeclare:
      return "declare";
    case EscrowOpKind::kTransfer:
      return "transfer";
    case EscrowOpKind::kAccept:
      return "accept";
    case EscrowOpKind::kWant:
      return "want";
  }
  return "unknown";
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code_point = c & 0x07;
    } else {
      return false;
    }
    if (i + length > n) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<uint8_t>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values beyond Unicode are invalid.
    if ((length == 2 && code_point < 0x80) || (length == 3 && code_point < 0x800) ||
        (length == 4 && code_point < 0x10000) || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

Status ValidateKey(std::string_view key, const Limits& limits) {
  if (key.empty()) return InvalidArgument("key is empty");
  if (key.size() > limits.key_bytes_max) {
    return TooLarge("key is " + std::to_string(key.size()) + " bytes; the limit is " +
                    std::to_string(limits.key_bytes_max));
  }
  if (!IsValidUtf8(key)) return InvalidArgument("key is not valid UTF-8");
  return Status::Ok();
}

Result<std::string> CanonicalJson(std::string_view json_text) {
  nlohmann::json value = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return InvalidArgument("value is not valid JSON");
  try {
    return value.dump();
  } catch (const nlohmann::json::exception& error) {
    return InvalidArgument(std::string("value is not valid JSON: ") + error.what());
  }
}

namespace {

Status ValidateFieldName(std::string_view name, const Limits& limits) {
  if (name.empty()) return InvalidArgument("field name is empty");
  if (name.size() > limits.field_name_bytes_max) {
    return TooLarge("field name is " + std::to_string(name.size()) + " bytes; the limit is " +
                    std::to_string(limits.field_name_bytes_max));
  }
  if (!IsValidUtf8(name)) return InvalidArgument("field name is not valid UTF-8");
  return Status::Ok();
}

template <typename Item>
Status SortAndCheckNames(std::vector<Item>* items, const Limits& limits) {
  if (items->size() > limits.fields_max) {
    return TooLarge("operation names " + std::to_string(items->size()) + " fields; the limit is " +
                    std::to_string(limits.fields_max));
  }
  std::sort(items->begin(), items->end(),
            [](const Item& a, const Item& b) { return a.name < b.name; });
  for (size_t i = 0; i < items->size(); ++i) {
    if (Status status = ValidateFieldName((*items)[i].name, limits); !status.ok()) return status;
    if (i > 0 && (*items)[i - 1].name == (*items)[i].name) {
      return InvalidArgument("field '" + (*items)[i].name + "' appears twice");
    }
  }
  return Status::Ok();
}

// What an escrow operation must hold whoever wrote it; what depends on the writer (a transfer to
// itself, a declaration's dot) is ValidateEvent's and the ledger's.
Status CheckEscrowOperation(const Operation& op, const Limits& limits) {
  if (!op.fields.empty() || !op.counters.empty()) {
    return InvalidArgument("an escrow operation carries no fields or counters");
  }
  const EscrowOp& escrow = op.escrow;
  if (Status status = ValidateFieldName(escrow.field, limits); !status.ok()) return status;
  switch (escrow.kind) {
    case EscrowOpKind::kDeclare:
      for (const auto& [region, share] : escrow.shares) {
        if (region > kRegionIdMax || share <= 0) {
          return InvalidArgument("a declaration's shares are positive, of regions 0 to 31");
        }
      }
      return Status::Ok();
    case EscrowOpKind::kTransfer:
    case EscrowOpKind::kAccept:
      if (escrow.region > kRegionIdMax) return InvalidArgument("escrow region is above 31");
      if (escrow.amount <= 0) return InvalidArgument("escrow amount is not positive");
      return Status::Ok();
    case EscrowOpKind::kWant:
      if (escrow.amount < 0) return InvalidArgument("a want's level is negative");
      return Status::Ok();
  }
  return InvalidArgument("unknown escrow operation");
}

}  // namespace

Status NormalizeOperation(Operation* op, const Limits& limits) {
  for (FieldValue& field : op->fields) {
    Result<std::string> canonical = CanonicalJson(field.value);
    if (!canonical.ok()) {
      return InvalidArgument("field '" + field.name + "': " + canonical.status().message());
    }
    field.value = std::move(canonical).value();
  }
  return CheckCanonicalOperation(op, limits);
}

Status CheckCanonicalOperation(Operation* op, const Limits& limits) {
  switch (op->kind) {
    case OpKind::kSet:
    case OpKind::kReplace:
      if (!op->counters.empty()) return InvalidArgument("a set or replace carries no counters");
      break;
    case OpKind::kIncrement:
      if (!op->fields.empty()) return InvalidArgument("an increment carries no field values");
      if (op->counters.empty()) return InvalidArgument("an increment names no counter");
      break;
    case OpKind::kDelete:
      if (!op->fields.empty() || !op->counters.empty()) {
        return InvalidArgument("a delete carries no fields");
      }
      return Status::Ok();
    case OpKind::kEscrow:
      return CheckEscrowOperation(*op, limits);
    default:
      return InvalidArgument("unknown operation kind");
  }
  if (Status status = SortAndCheckNames(&op->fields, limits); !status.ok()) return status;
  if (Status status = SortAndCheckNames(&op->counters, limits); !status.ok()) return status;
  size_t total_bytes = 0;
  for (const FieldValue& field : op->fields) {
    if (field.value.size() > limits.value_bytes_max) {
      return TooLarge("field '" + field.name + "' is " + std::to_string(field.value.size()) +
                      " bytes; the limit is " + std::to_string(limits.value_bytes_max));
    }
    total_bytes += field.name.size() + field.value.size();
  }
  for (const CounterDelta& counter : op->counters) total_bytes += counter.name.size() + 20;
  if (total_bytes > limits.document_bytes_max) {
    return TooLarge("operation is " + std::to_string(total_bytes) + " bytes; the limit is " +
                    std::to_string(limits.document_bytes_max));
  }
  return Status::Ok();
}

Status ValidateEvent(const Event& event, const Limits& limits) {
  if (event.dot.origin > kRegionIdMax) return InvalidArgument("event origin is above 31");
  if (event.dot.seq == 0) return InvalidArgument("event seq is 0");
  if (event.context.Get(event.dot.origin) != event.dot.seq - 1) {
    return InvalidArgument("event context does not end just before the event itself");
  }
  if (HlcPhysicalMs(event.hlc) == 0) return InvalidArgument("event has no timestamp");
  if (event.txn_rest >= kTransactionOpsMax) {
    return InvalidArgument("event names more transaction events after it than a transaction holds");
  }
  if (!ValidTrace(event.trace)) {
    return InvalidArgument("event trace is not 25 bytes with a trace id and a span id");
  }
  for (const CounterDelta& counter : event.op.counters) {
    if (counter.prev >= event.dot.seq) {
      return InvalidArgument("an escrowed increment chains to a later event of its origin");
    }
  }
  if (event.op.kind == OpKind::kEscrow) {
    const EscrowOp& escrow = event.op.escrow;
    if (escrow.prev >= event.dot.seq) {
      return InvalidArgument("an escrow event chains to a later event of its origin");
    }
    if ((escrow.kind == EscrowOpKind::kTransfer || escrow.kind == EscrowOpKind::kAccept) &&
        escrow.region == event.dot.origin) {
      return InvalidArgument("an escrow transfer or accept names its own region");
    }
    if (escrow.kind == EscrowOpKind::kDeclare) {
      MERIDIAN_RETURN_IF_ERROR(ValidateEscrowDeclaration(
          EscrowDeclaration{event.dot, event.hlc, escrow.min, escrow.shares}));
    }
  }
  return ValidateKey(event.key, limits);
}

uint32_t EventSchemaVersion(const Event& event) {
  if (event.op.kind == OpKind::kEscrow) return 2;
  for (const CounterDelta& counter : event.op.counters) {
    if (counter.escrow) return 2;
  }
  return 1;
}

std::string EncodeEvent(const Event& event) {
  wire::Event message;
  message.set_schema_version(EventSchemaVersion(event));
  message.set_origin(event.dot.origin);
  message.set_seq(event.dot.seq);
  message.set_hlc(event.hlc);
  message.set_context(event.context.Encode());
  message.set_key(event.key);
  if (event.txn_rest > 0) message.set_txn_rest(event.txn_rest);
  if (!event.trace.empty()) message.set_trace(event.trace);
  wire::Operation* op = message.mutable_operation();
  op->set_kind(static_cast<wire::Operation::Kind>(event.op.kind));
  for (const FieldValue& field : event.op.fields) {
    wire::FieldValue* out = op->add_fields();
    out->set_name(field.name);
    out->set_value(field.value);
  }
  for (const CounterDelta& counter : event.op.counters) {
    wire::CounterDelta* out = op->add_counters();
    out->set_name(counter.name);
    out->set_delta(counter.delta);
    if (counter.escrow) out->set_escrow(true);
    if (counter.prev != 0) out->set_prev(counter.prev);
  }
  if (event.op.kind == OpKind::kEscrow) {
    const EscrowOp& escrow = event.op.escrow;
    wire::Escrow* out = op->mutable_escrow();
    out->set_kind(static_cast<wire::Escrow::Kind>(escrow.kind));
    out->set_field(escrow.field);
    if (escrow.kind == EscrowOpKind::kDeclare) {
      out->set_min(escrow.min);
      for (const auto& [region, share] : escrow.shares) {
        wire::Escrow::Share* entry = out->add_shares();
        entry->set_region(region);
        entry->set_amount(share);
      }
    } else {
      if (escrow.kind != EscrowOpKind::kWant) out->set_region(escrow.region);
      out->set_amount(escrow.amount);
      out->set_prev(escrow.prev);
    }
  }
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

namespace {

Result<Event> DecodeMessage(const wire::Event& message, const Limits& limits,
                            uint32_t schema_version_max) {
  if (message.schema_version() < 1 || message.schema_version() > schema_version_max) {
    return Status(StatusCode::kUnsupported, "event: schema version " +
                                                std::to_string(message.schema_version()) +
                                                " is not supported (this build reads version " +
                                                std::to_string(schema_version_max) + ")");
  }
  Event event;
  event.dot = Dot{message.origin(), message.seq()};
  event.hlc = message.hlc();
  auto context = VersionVector::Decode(message.context());
  if (!context.ok()) return context.status();
  event.context = std::move(context).value();
  event.key = message.key();
  event.txn_rest = message.txn_rest();
  event.trace = message.trace();
  const wire::Operation& op = message.operation();
  if (op.kind() < wire::Operation::SET || op.kind() > wire::Operation::ESCROW) {
    return Corruption("event: unknown operation kind " + std::to_string(op.kind()));
  }
  event.op.kind = static_cast<OpKind>(op.kind());
  for (const wire::FieldValue& field : op.fields()) {
    auto canonical = CanonicalJson(field.value());
    if (!canonical.ok()) return Corruption("event: field '" + field.name() + "': not JSON");
    if (*canonical != field.value()) {
      return Corruption("event: field '" + field.name() + "' is not in canonical JSON form");
    }
    event.op.fields.push_back(FieldValue{field.name(), field.value()});
  }
  for (const wire::CounterDelta& counter : op.counters()) {
    if (counter.prev() != 0 && !counter.escrow()) {
      return Corruption("event: a chained increment that is not escrowed");
    }
    event.op.counters.push_back(
        CounterDelta{counter.name(), counter.delta(), counter.escrow(), counter.prev()});
  }
  if (op.has_escrow() != (event.op.kind == OpKind::kEscrow)) {
    return Corruption("event: an escrow part without an escrow operation, or the reverse");
  }
  if (op.has_escrow()) {
    const wire::Escrow& escrow = op.escrow();
    if (escrow.kind() < wire::Escrow::DECLARE || escrow.kind() > wire::Escrow::WANT) {
      return Corruption("event: unknown escrow operation " + std::to_string(escrow.kind()));
    }
    EscrowOp& out = event.op.escrow;
    out.kind = static_cast<EscrowOpKind>(escrow.kind());
    out.field = escrow.field();
    const bool declare = out.kind == EscrowOpKind::kDeclare;
    const bool want = out.kind == EscrowOpKind::kWant;
    // Only what the writer's kind uses may be present: one encoding per operation.
    if ((declare && (escrow.region() != 0 || escrow.amount() != 0)) ||
        (declare && escrow.prev() != 0) ||
        (!declare && (escrow.min() != 0 || escrow.shares_size() != 0)) ||
        (want && escrow.region() != 0)) {
      return Corruption("event: an escrow operation carries what its kind does not use");
    }
    out.min = escrow.min();
    for (const wire::Escrow::Share& share : escrow.shares()) {
      if (share.region() > kRegionIdMax ||
          (!out.shares.empty() && out.shares.rbegin()->first >= share.region())) {
        return Corruption("event: a declaration's shares are not of ascending regions 0 to 31");
      }
      out.shares.emplace_hint(out.shares.end(), static_cast<RegionId>(share.region()),
                              share.amount());
    }
    if (escrow.region() > kRegionIdMax) return Corruption("event: escrow region above 31");
    out.region = static_cast<RegionId>(escrow.region());
    out.amount = escrow.amount();
    out.prev = escrow.prev();
  }
  if (EventSchemaVersion(event) > message.schema_version()) {
    return Corruption("event: escrow content in an event of schema version 1");
  }
  if (Status status = ValidateEvent(event, limits); !status.ok()) {
    return Status(StatusCode::kCorruption, "event: " + status.message());
  }
  if (Status status = NormalizeOperation(&event.op, limits); !status.ok()) {
    return Status(StatusCode::kCorruption, "event: " + status.message());
  }
  return event;
}

}  // namespace

uint32_t PeekTxnRest(std::string_view bytes) {
  wire::Event message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
  return message.txn_rest();
}

Result<Event> DecodeEvent(std::string_view bytes, const Limits& limits,
                          uint32_t schema_version_max) {
  wire::Event message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Corruption("event: not a valid protobuf message");
  }
  return DecodeMessage(message, limits, schema_version_max);
}

Result<ReceivedEvent> DecodeOrPark(std::string_view bytes, const Limits& limits,
                                   uint32_t schema_version_max) {
  wire::Event message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Corruption("event: not a valid protobuf message");
  }
  if (message.origin() > kRegionIdMax || message.seq() == 0) {
    return Corruption("event: no readable dot (origin " + std::to_string(message.origin()) +
                      ", seq " + std::to_string(message.seq()) + ")");
  }
  Result<Event> event = DecodeMessage(message, limits, schema_version_max);
  ReceivedEvent decoded;
  if (event.ok()) {
    decoded.event = std::move(event).value();
    return decoded;
  }
  ParkedEvent parked;
  parked.dot = Dot{static_cast<RegionId>(message.origin()), message.seq()};
  parked.bytes = std::string(bytes);
  if (ValidateKey(message.key(), limits).ok()) parked.key = message.key();
  parked.schema_version = message.schema_version();
  parked.hlc = message.hlc();
  parked.newer_schema = message.schema_version() > schema_version_max;
  parked.reason = parked.newer_schema
                      ? "schema version " + std::to_string(message.schema_version()) +
                            " is newer than this node reads (" +
                            std::to_string(schema_version_max) + ")"
                      : event.status().message();
  decoded.parked = std::move(parked);
  return decoded;
}

void RemoteBatch::Park(const std::function<bool(const Event&)>& park, const std::string& reason) {
  std::vector<Event> kept;
  kept.reserve(events.size());
  for (Event& event : events) {
    if (!park(event)) {
      kept.push_back(std::move(event));
      continue;
    }
    parked.push_back(ParkedEvent{event.dot, EncodeEvent(event), event.key, kEventSchemaVersion,
                                 event.hlc, false, reason});
  }
  events = std::move(kept);
  std::sort(parked.begin(), parked.end(),
            [](const ParkedEvent& a, const ParkedEvent& b) { return a.dot < b.dot; });
}

}  // namespace meridian::core
