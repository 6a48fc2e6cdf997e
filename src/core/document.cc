#include "core/document.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace meridian::core {

std::string_view ConflictKindName(ConflictKind kind) {
  switch (kind) {
    case ConflictKind::kConcurrentSet:
      return "concurrent_set";
    case ConflictKind::kNonNumericIncrement:
      return "non_numeric_increment";
  }
  return "unknown";
}

namespace {

template <typename Entry>
void EraseCovered(std::vector<Entry>* entries, const VersionVector& vv) {
  std::erase_if(*entries, [&vv](const Entry& entry) { return vv.Covers(entry.dot); });
}

template <typename Entry>
bool InsertByDot(std::vector<Entry>* entries, Entry entry) {
  auto it = std::lower_bound(entries->begin(), entries->end(), entry.dot,
                             [](const Entry& e, const Dot& dot) { return e.dot < dot; });
  if (it != entries->end() && it->dot == entry.dot) return false;  // duplicate delivery
  entries->insert(it, std::move(entry));
  return true;
}

const Sibling* Winner(const FieldState& field) {
  const Sibling* best = nullptr;
  for (const Sibling& sibling : field.siblings) {
    if (best == nullptr || WinsOver(sibling, *best)) best = &sibling;
  }
  return best;
}

bool LooksNumeric(std::string_view json) {
  return !json.empty() && (json[0] == '-' || (json[0] >= '0' && json[0] <= '9'));
}

// An exact integer when the sum fits in int64 or uint64 (what canonical JSON integers are), a
// double beyond that, as canonical JSON would render it.
std::string Int128ToString(__int128 value) {
  if (value < std::numeric_limits<int64_t>::min() ||
      value > static_cast<__int128>(std::numeric_limits<uint64_t>::max())) {
    return nlohmann::json(static_cast<double>(value)).dump();
  }
  if (value == 0) return "0";
  const bool negative = value < 0;
  unsigned __int128 magnitude = negative ? static_cast<unsigned __int128>(-(value + 1)) + 1
                                         : static_cast<unsigned __int128>(value);
  std::string digits;
  while (magnitude != 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  }
  if (negative) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (byte < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[byte >> 4]);
          out->push_back(kHex[byte & 0xf]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

namespace {

// The rendered JSON of a field: its winner plus its increments (see the header).
std::optional<std::string> RenderFieldState(const FieldState& field) {
  const Sibling* winner = Winner(field);
  if (field.increments.empty()) {
    if (winner == nullptr) return std::nullopt;
    return winner->value;
  }
  __int128 total = 0;
  for (const Increment& increment : field.increments) total += increment.delta;
  if (winner == nullptr) return Int128ToString(total);
  const std::string& base = winner->value;
  if (!LooksNumeric(base)) return base;  // a conflict was recorded when this met increments
  const char* first = base.data();
  const char* last = base.data() + base.size();
  // Canonical JSON integers fit in int64 or uint64, so the 128-bit sum cannot overflow.
  int64_t signed_value = 0;
  if (auto [end, error] = std::from_chars(first, last, signed_value);
      error == std::errc() && end == last) {
    return Int128ToString(signed_value + total);
  }
  uint64_t unsigned_value = 0;
  if (auto [end, error] = std::from_chars(first, last, unsigned_value);
      error == std::errc() && end == last) {
    return Int128ToString(static_cast<__int128>(unsigned_value) + total);
  }
  double value = 0;
  if (auto [end, error] = std::from_chars(first, last, value);
      error != std::errc() || end != last) {
    return base;  // not a number after all: render it as it is
  }
  return nlohmann::json(value + static_cast<double>(total)).dump();
}

}  // namespace

namespace {

bool LedgerEmpty(const EscrowLedger& ledger) {
  return !ledger.declared() && ledger.accounts().empty();
}

template <typename Entries>
auto FindByName(Entries& entries, std::string_view name) {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  return it != entries.end() && it->first == name ? it : entries.end();
}

}  // namespace

EscrowLedger& DocumentState::LedgerFor(const std::string& name) {
  auto it =
      std::lower_bound(escrows_.begin(), escrows_.end(), name,
                       [](const auto& entry, const std::string& n) { return entry.first < n; });
  if (it == escrows_.end() || it->first != name) it = escrows_.emplace(it, name, EscrowLedger{});
  return it->second;
}

namespace {

// What the ledger refuses (an event no origin could have written) changes nothing, the same in
// every region: the status is not needed.
void ApplyToLedger(EscrowLedger& ledger, const EscrowWaiting& event) {
  if (event.increment) {
    (void)ledger.ApplyIncrement(event.dot, event.amount);
    return;
  }
  switch (event.kind) {
    case EscrowOpKind::kTransfer:
      (void)ledger.ApplyTransfer(event.dot, event.region, event.amount);
      break;
    case EscrowOpKind::kAccept:
      (void)ledger.ApplyAccept(event.dot, event.region, event.amount);
      break;
    case EscrowOpKind::kWant:
      (void)ledger.ApplyWant(event.dot, event.amount);
      break;
    case EscrowOpKind::kDeclare:
      break;  // declarations are not chained
  }
}

}  // namespace

void DocumentState::ApplyChained(const std::string& field, const EscrowWaiting& event) {
  EscrowLedger& ledger = LedgerFor(field);
  const uint64_t at = ledger.Account(event.dot.origin).seq;
  if (event.dot.seq > at) {
    if (event.prev == at) {
      ApplyToLedger(ledger, event);
      DrainWaiting(field);
    } else {
      auto list =
          std::lower_bound(waiting_.begin(), waiting_.end(), field,
                           [](const auto& entry, const std::string& n) { return entry.first < n; });
      if (list == waiting_.end() || list->first != field) {
        list = waiting_.emplace(list, field, std::vector<EscrowWaiting>{});
      }
      InsertByDot(&list->second, event);  // a duplicate is not kept twice
    }
  }
  DropEmptyEscrows();
}

void DocumentState::DrainWaiting(const std::string& field) {
  auto list = FindByName(waiting_, field);
  if (list == waiting_.end()) return;
  EscrowLedger& ledger = LedgerFor(field);
  for (bool progress = true; progress;) {
    progress = false;
    std::erase_if(list->second, [&](const EscrowWaiting& event) {
      const uint64_t at = ledger.Account(event.dot.origin).seq;
      if (event.dot.seq <= at) return true;  // the ledger is past it
      if (event.prev != at) return false;
      ApplyToLedger(ledger, event);
      progress = true;
      return true;
    });
  }
}

void DocumentState::DropEmptyEscrows() {
  std::erase_if(escrows_, [](const auto& entry) { return LedgerEmpty(entry.second); });
  std::erase_if(waiting_, [](const auto& entry) { return entry.second.empty(); });
}

const EscrowLedger* DocumentState::Ledger(std::string_view field) const {
  auto it = FindByName(escrows_, field);
  return it == escrows_.end() ? nullptr : &it->second;
}

bool DocumentState::IsBounded(std::string_view field) const {
  const EscrowLedger* ledger = Ledger(field);
  return ledger != nullptr && ledger->declared();
}

std::optional<std::string> DocumentState::RenderWith(const FieldState* field,
                                                     const EscrowLedger* ledger) {
  if (ledger != nullptr && ledger->declared()) return std::to_string(*ledger->Value());
  if (field == nullptr) return std::nullopt;
  return RenderFieldState(*field);
}

FieldState& DocumentState::FieldFor(const std::string& name) {
  auto it =
      std::lower_bound(fields_.begin(), fields_.end(), name,
                       [](const auto& entry, const std::string& n) { return entry.first < n; });
  if (it == fields_.end() || it->first != name) it = fields_.emplace(it, name, FieldState{});
  return it->second;
}

const FieldState* DocumentState::FindField(std::string_view name) const {
  auto it = std::lower_bound(fields_.begin(), fields_.end(), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  if (it == fields_.end() || it->first != name) return nullptr;
  return &it->second;
}

void DocumentState::RemoveEverywhere(const VersionVector& context) {
  removed_.Merge(context);
  for (auto& [name, field] : fields_) {
    EraseCovered(&field.siblings, context);
    EraseCovered(&field.increments, context);
  }
  presence_.EraseCoveredBy(removed_);
}

void DocumentState::DropEmptyFields() {
  std::erase_if(fields_, [](const auto& entry) {
    const FieldState& field = entry.second;
    return field.siblings.empty() && field.increments.empty() && field.removed.empty();
  });
}

void DocumentState::Apply(const Event& event, std::vector<Conflict>* conflicts) {
  const Dot dot = event.dot;
  const VersionVector& context = event.context;
  const Operation& op = event.op;
  if (op.kind == OpKind::kDelete || op.kind == OpKind::kReplace) RemoveEverywhere(context);

  // Fields this event added a value (true) or an increment (false) to: where a conflict may
  // have just appeared.
  std::vector<std::pair<const std::string*, bool>> touched;
  for (const FieldValue& value : op.fields) {
    FieldState& field = FieldFor(value.name);
    if (op.kind == OpKind::kSet) {
      EraseCovered(&field.siblings, context);
      EraseCovered(&field.increments, context);
      field.removed.Merge(context);
    }
    if (IsRemoved(field, dot)) continue;  // a write that saw this one arrived first
    if (InsertByDot(&field.siblings, Sibling{dot, event.hlc, value.value})) {
      touched.emplace_back(&value.name, true);
    }
  }
  if (op.kind == OpKind::kEscrow) {
    const EscrowOp& escrow = op.escrow;
    // What the ledger refuses (an event no origin could have written) changes nothing, the same
    // in every region: the status is not needed.
    if (escrow.kind == EscrowOpKind::kDeclare) {
      // A declaration is no account's event: it counts whenever it comes.
      (void)LedgerFor(escrow.field)
          .Declare(EscrowDeclaration{dot, event.hlc, escrow.min, escrow.shares});
      DropEmptyEscrows();
    } else {
      ApplyChained(escrow.field, EscrowWaiting{dot, escrow.prev, false, escrow.kind, escrow.region,
                                               escrow.amount});
    }
  }
  for (const CounterDelta& counter : op.counters) {
    if (counter.escrow) {
      ApplyChained(counter.name,
                   EscrowWaiting{dot, counter.prev, true, EscrowOpKind::kWant, 0, counter.delta});
      continue;
    }
    FieldState& field = FieldFor(counter.name);
    if (IsRemoved(field, dot)) continue;
    if (InsertByDot(&field.increments, Increment{dot, counter.delta})) {
      touched.emplace_back(&counter.name, false);
    }
  }
  if (op.kind != OpKind::kDelete && !removed_.Covers(dot)) {
    presence_.Set(dot.origin, std::max(presence_.Get(dot.origin), dot.seq));
  }
  DropEmptyFields();

  if (conflicts == nullptr) return;
  for (const auto& [name, added_value] : touched) {
    const FieldState* field = FindField(*name);
    MERIDIAN_CHECK(field != nullptr);
    const Sibling* winner = Winner(*field);
    if (winner == nullptr) continue;
    // A conflict is recorded when it appears: a value meeting concurrent values, a value that is
    // not a number meeting increments, or an increment meeting such a value.
    if (added_value && field->siblings.size() > 1) {
      Conflict conflict{ConflictKind::kConcurrentSet, event.key, *name, *winner, {}, {}, dot};
      for (const Sibling& sibling : field->siblings) {
        if (&sibling != winner) conflict.losers.push_back(sibling);
      }
      conflicts->push_back(std::move(conflict));
    }
    if (!field->increments.empty() && !LooksNumeric(winner->value)) {
      conflicts->push_back(Conflict{ConflictKind::kNonNumericIncrement,
                                    event.key,
                                    *name,
                                    *winner,
                                    {},
                                    field->increments,
                                    dot});
    }
  }
}

std::optional<std::string> DocumentState::Render() const {
  if (!exists()) return std::nullopt;
  std::string out = "{";
  // Fields and ledgers by name, merged: a bounded field may have no field state at all.
  auto field = fields_.begin();
  auto ledger = escrows_.begin();
  while (field != fields_.end() || ledger != escrows_.end()) {
    const bool take_field =
        ledger == escrows_.end() || (field != fields_.end() && field->first <= ledger->first);
    const bool take_ledger =
        field == fields_.end() || (ledger != escrows_.end() && ledger->first <= field->first);
    const std::string& name = take_field ? field->first : ledger->first;
    std::optional<std::string> value =
        RenderWith(take_field ? &field->second : nullptr, take_ledger ? &ledger->second : nullptr);
    if (take_field) ++field;
    if (take_ledger) ++ledger;
    if (!value) continue;
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(name, &out);
    out.push_back(':');
    out += *value;
  }
  out.push_back('}');
  return out;
}

std::optional<std::string> DocumentState::RenderField(std::string_view name) const {
  if (!exists()) return std::nullopt;
  return RenderWith(FindField(name), Ledger(name));
}

bool DocumentState::FieldIsNonNumeric(std::string_view name) const {
  std::optional<std::string> value = RenderField(name);
  return value.has_value() && !LooksNumeric(*value);
}

void DocumentState::Fold(const VersionVector& stable) {
  for (auto& [name, field] : fields_) {
    // Among stable siblings only the winner can ever render: every future write to this field
    // removes them all, and an unstable sibling competes with the winner alone.
    const Sibling* stable_winner = nullptr;
    for (const Sibling& sibling : field.siblings) {
      if (stable.Covers(sibling.dot) &&
          (stable_winner == nullptr || WinsOver(sibling, *stable_winner))) {
        stable_winner = &sibling;
      }
    }
    if (stable_winner != nullptr) {
      const Dot keep = stable_winner->dot;
      std::erase_if(field.siblings, [&](const Sibling& sibling) {
        return stable.Covers(sibling.dot) && sibling.dot != keep;
      });
    }
    // Stable increments of one origin are removed together or not at all: fold them into one.
    std::vector<Increment> folded;
    folded.reserve(field.increments.size());
    for (const Increment& increment : field.increments) {
      if (!folded.empty() && stable.Covers(increment.dot) && stable.Covers(folded.back().dot) &&
          folded.back().dot.origin == increment.dot.origin) {
        int64_t sum = 0;
        if (!__builtin_add_overflow(folded.back().delta, increment.delta, &sum)) {
          folded.back() = Increment{increment.dot, sum};
          continue;
        }
      }
      folded.push_back(increment);
    }
    field.increments = std::move(folded);
    // No event covered by `stable` arrives again, so those removed entries have nothing to stop.
    field.removed.EraseCoveredBy(stable);
  }
  removed_.EraseCoveredBy(stable);
  DropEmptyFields();
}

size_t DocumentState::MetadataEntries() const {
  size_t total = presence_.size() + removed_.size();
  for (const auto& [name, ledger] : escrows_) {
    total += ledger.accounts().size() + (ledger.declared() ? 1 : 0);
  }
  for (const auto& [name, waiting] : waiting_) total += waiting.size();
  for (const auto& [name, field] : fields_) {
    total += field.siblings.size() + field.increments.size() + field.removed.size();
  }
  return total;
}

namespace {

// Version 2 appends the escrow ledgers; a state without any is still written as version 1.
constexpr uint8_t kStateFormatVersion = 1;
constexpr uint8_t kStateFormatVersionEscrow = 2;

void PutBytes(std::string* out, std::string_view bytes) {
  PutVarint(out, bytes.size());
  out->append(bytes);
}

bool GetBytes(std::string_view* in, std::string* out) {
  uint64_t size = 0;
  if (!GetVarint(in, &size) || size > in->size()) return false;
  out->assign(in->substr(0, size));
  in->remove_prefix(size);
  return true;
}

void PutDot(std::string* out, const Dot& dot) {
  out->push_back(static_cast<char>(dot.origin));
  PutVarint(out, dot.seq);
}

bool GetDot(std::string_view* in, Dot* dot) {
  if (in->empty()) return false;
  dot->origin = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  return GetVarint(in, &dot->seq) && dot->origin <= kRegionIdMax && dot->seq != 0;
}

}  // namespace

std::string DocumentState::Encode() const {
  std::string out;
  const bool escrow = !escrows_.empty() || !waiting_.empty();
  out.push_back(static_cast<char>(escrow ? kStateFormatVersionEscrow : kStateFormatVersion));
  presence_.EncodeTo(&out);
  removed_.EncodeTo(&out);
  PutVarint(&out, fields_.size());
  for (const auto& [name, field] : fields_) {
    PutBytes(&out, name);
    field.removed.EncodeTo(&out);
    PutVarint(&out, field.siblings.size());
    for (const Sibling& sibling : field.siblings) {
      PutDot(&out, sibling.dot);
      PutVarint(&out, sibling.hlc);
      PutBytes(&out, sibling.value);
    }
    PutVarint(&out, field.increments.size());
    for (const Increment& increment : field.increments) {
      PutDot(&out, increment.dot);
      PutVarint(&out, ZigZag(increment.delta));
    }
  }
  if (escrow) {
    PutVarint(&out, escrows_.size());
    for (const auto& [name, ledger] : escrows_) {
      PutBytes(&out, name);
      ledger.EncodeTo(&out);
    }
    PutVarint(&out, waiting_.size());
    for (const auto& [name, waiting] : waiting_) {
      PutBytes(&out, name);
      PutVarint(&out, waiting.size());
      for (const EscrowWaiting& event : waiting) {
        PutDot(&out, event.dot);
        PutVarint(&out, event.prev);
        out.push_back(static_cast<char>(event.increment ? 0 : static_cast<uint8_t>(event.kind)));
        out.push_back(static_cast<char>(event.region));
        PutVarint(&out, ZigZag(event.amount));
      }
    }
  }
  return out;
}

Result<DocumentState> DocumentState::Decode(std::string_view in) {
  auto corrupt = [](const char* what) {
    return Corruption(std::string("document state: ") + what);
  };
  const uint8_t version = in.empty() ? 0 : static_cast<uint8_t>(in.front());
  if (version != kStateFormatVersion && version != kStateFormatVersionEscrow) {
    return corrupt("unknown format version");
  }
  in.remove_prefix(1);
  DocumentState state;
  auto presence = VersionVector::DecodeFrom(&in);
  if (!presence.ok()) return presence.status();
  auto removed = VersionVector::DecodeFrom(&in);
  if (!removed.ok()) return removed.status();
  state.presence_ = std::move(presence).value();
  state.removed_ = std::move(removed).value();
  uint64_t field_count = 0;
  if (!GetVarint(&in, &field_count) || field_count > in.size()) return corrupt("bad field count");
  for (uint64_t f = 0; f < field_count; ++f) {
    std::string name;
    if (!GetBytes(&in, &name)) return corrupt("truncated field name");
    if (name.empty() || !IsValidUtf8(name)) return corrupt("field name is empty or not UTF-8");
    if (!state.fields_.empty() && state.fields_.back().first >= name) {
      return corrupt("fields not in ascending name order");
    }
    FieldState field;
    auto field_removed = VersionVector::DecodeFrom(&in);
    if (!field_removed.ok()) return field_removed.status();
    field.removed = std::move(field_removed).value();
    uint64_t count = 0;
    if (!GetVarint(&in, &count) || count > in.size()) return corrupt("bad sibling count");
    for (uint64_t i = 0; i < count; ++i) {
      Sibling sibling;
      if (!GetDot(&in, &sibling.dot) || !GetVarint(&in, &sibling.hlc) ||
          !GetBytes(&in, &sibling.value)) {
        return corrupt("truncated sibling");
      }
      if (!field.siblings.empty() && field.siblings.back().dot >= sibling.dot) {
        return corrupt("siblings not in ascending dot order");
      }
      field.siblings.push_back(std::move(sibling));
    }
    if (!GetVarint(&in, &count) || count > in.size()) return corrupt("bad increment count");
    for (uint64_t i = 0; i < count; ++i) {
      Increment increment;
      uint64_t zigzag = 0;
      if (!GetDot(&in, &increment.dot) || !GetVarint(&in, &zigzag)) {
        return corrupt("truncated increment");
      }
      increment.delta = UnZigZag(zigzag);
      if (!field.increments.empty() && field.increments.back().dot >= increment.dot) {
        return corrupt("increments not in ascending dot order");
      }
      field.increments.push_back(increment);
    }
    state.fields_.emplace_back(std::move(name), std::move(field));
  }
  if (version == kStateFormatVersionEscrow) {
    uint64_t ledger_count = 0;
    if (!GetVarint(&in, &ledger_count) || ledger_count > in.size()) {
      return corrupt("bad ledger count");
    }
    for (uint64_t l = 0; l < ledger_count; ++l) {
      std::string name;
      if (!GetBytes(&in, &name)) return corrupt("truncated ledger name");
      if (name.empty() || !IsValidUtf8(name)) return corrupt("ledger name is empty or not UTF-8");
      if (!state.escrows_.empty() && state.escrows_.back().first >= name) {
        return corrupt("ledgers not in ascending name order");
      }
      auto ledger = EscrowLedger::DecodeFrom(&in);
      if (!ledger.ok()) return ledger.status();
      if (LedgerEmpty(*ledger)) return corrupt("an empty ledger");
      state.escrows_.emplace_back(std::move(name), std::move(ledger).value());
    }
    uint64_t list_count = 0;
    if (!GetVarint(&in, &list_count) || list_count > in.size()) {
      return corrupt("bad waiting list count");
    }
    if (ledger_count == 0 && list_count == 0) return corrupt("no escrow in version 2");
    for (uint64_t l = 0; l < list_count; ++l) {
      std::string name;
      if (!GetBytes(&in, &name)) return corrupt("truncated waiting list name");
      if (name.empty() || !IsValidUtf8(name)) return corrupt("waiting list name not UTF-8");
      if (!state.waiting_.empty() && state.waiting_.back().first >= name) {
        return corrupt("waiting lists not in ascending name order");
      }
      uint64_t count = 0;
      if (!GetVarint(&in, &count) || count == 0 || count > in.size()) {
        return corrupt("bad waiting count");
      }
      const EscrowLedger* ledger = state.Ledger(name);
      std::vector<EscrowWaiting> waiting;
      for (uint64_t i = 0; i < count; ++i) {
        EscrowWaiting event;
        uint64_t amount = 0;
        if (!GetDot(&in, &event.dot) || !GetVarint(&in, &event.prev) || in.size() < 2) {
          return corrupt("truncated waiting event");
        }
        const auto tag = static_cast<uint8_t>(in[0]);
        event.region = static_cast<uint8_t>(in[1]);
        in.remove_prefix(2);
        if (!GetVarint(&in, &amount)) return corrupt("truncated waiting event");
        event.amount = UnZigZag(amount);
        event.increment = tag == 0;
        if (!event.increment) event.kind = static_cast<EscrowOpKind>(tag);
        const bool operation = tag == static_cast<uint8_t>(EscrowOpKind::kTransfer) ||
                               tag == static_cast<uint8_t>(EscrowOpKind::kAccept) ||
                               tag == static_cast<uint8_t>(EscrowOpKind::kWant);
        // What Apply could have kept: a chained event its ledger is not at, nor past.
        const uint64_t at = ledger == nullptr ? 0 : ledger->Account(event.dot.origin).seq;
        if ((!event.increment && !operation) || event.region > kRegionIdMax ||
            (event.increment && event.region != 0) || event.prev >= event.dot.seq ||
            event.dot.seq <= at || event.prev == at) {
          return corrupt("a waiting event no chain could hold");
        }
        if (!waiting.empty() && waiting.back().dot >= event.dot) {
          return corrupt("waiting events not in ascending dot order");
        }
        waiting.push_back(event);
      }
      state.waiting_.emplace_back(std::move(name), std::move(waiting));
    }
  }
  if (!in.empty()) return corrupt("trailing bytes");
  return state;
}

uint64_t DocumentState::Digest() const {
  const std::string bytes = Encode();
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint64_t RenderedDigest(std::string_view key, const std::optional<std::string>& rendered) {
  XXH3_state_t* state = XXH3_createState();
  MERIDIAN_CHECK(state != nullptr);
  XXH3_64bits_reset(state);
  std::string key_size;  // a varint: the same bytes on every host
  PutVarint(&key_size, key.size());
  XXH3_64bits_update(state, key_size.data(), key_size.size());
  XXH3_64bits_update(state, key.data(), key.size());
  const uint8_t exists = rendered.has_value() ? 1 : 0;
  XXH3_64bits_update(state, &exists, 1);
  if (rendered) XXH3_64bits_update(state, rendered->data(), rendered->size());
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

std::string DocumentVersion(uint64_t rendered_digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[rendered_digest & 0xf];
    rendered_digest >>= 4;
  }
  return out;
}

}  // namespace meridian::core
