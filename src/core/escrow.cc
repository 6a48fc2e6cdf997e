#include "core/escrow.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "core/check.h"

namespace meridian::core {

namespace {

// 2 adds each account's event count; 1 (accounts without it) still decodes, with a count of 0.
constexpr uint8_t kLedgerFormatVersion = 2;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

int64_t Saturate(__int128 value) {
  if (value > kInt64Max) return kInt64Max;
  if (value < kInt64Min) return kInt64Min;
  return static_cast<int64_t>(value);
}

bool FitsInt64(__int128 value) {
  return value >= kInt64Min && value <= kInt64Max;
}

__int128 Sum(const std::map<RegionId, int64_t>& amounts) {
  __int128 total = 0;
  for (const auto& [region, amount] : amounts) total += amount;
  return total;
}

int64_t Get(const std::map<RegionId, int64_t>& amounts, RegionId region) {
  auto it = amounts.find(region);
  return it == amounts.end() ? 0 : it->second;
}

const EscrowAccount& EmptyAccount() {
  static const EscrowAccount kEmpty;
  return kEmpty;
}

// The order that picks one of two different declarations, or of two accounts with one seq (which
// only a corrupted peer could send): any total order does, as long as every region uses it.
bool DeclarationBefore(const EscrowDeclaration& a, const EscrowDeclaration& b) {
  return std::tie(a.hlc, a.dot.origin, a.dot.seq, a.min, a.shares) <
         std::tie(b.hlc, b.dot.origin, b.dot.seq, b.min, b.shares);
}

bool AccountBefore(const EscrowAccount& a, const EscrowAccount& b) {
  return std::tie(a.seq, a.events, a.net, a.given, a.accepted, a.wanted) <
         std::tie(b.seq, b.events, b.net, b.given, b.accepted, b.wanted);
}

}  // namespace

Status ValidateEscrowDeclaration(const EscrowDeclaration& declaration) {
  if (declaration.dot.origin > kRegionIdMax || declaration.dot.seq == 0) {
    return InvalidArgument("escrow declaration: not a real dot");
  }
  __int128 room = 0;
  for (const auto& [region, share] : declaration.shares) {
    if (region > kRegionIdMax) return InvalidArgument("escrow declaration: region id above 31");
    if (share <= 0) return InvalidArgument("escrow declaration: a share is not positive");
    room += share;
  }
  if (room > kInt64Max || static_cast<__int128>(declaration.min) + room > kInt64Max) {
    return InvalidArgument("escrow declaration: min + room does not fit in 64 bits");
  }
  return Status::Ok();
}

std::map<RegionId, int64_t> SplitRoom(int64_t room, std::span<const RegionId> regions,
                                      RegionId declarer) {
  MERIDIAN_CHECK(room >= 0);
  const std::set<RegionId> distinct(regions.begin(), regions.end());
  MERIDIAN_CHECK(distinct.count(declarer) == 1);
  MERIDIAN_CHECK(*distinct.rbegin() <= kRegionIdMax);
  const auto n = static_cast<int64_t>(distinct.size());
  std::map<RegionId, int64_t> shares;
  for (RegionId region : distinct) {
    const int64_t share = room / n + (region == declarer ? room % n : 0);
    if (share > 0) shares[region] = share;
  }
  return shares;
}

Status EscrowLedger::Declare(const EscrowDeclaration& declaration) {
  MERIDIAN_RETURN_IF_ERROR(ValidateEscrowDeclaration(declaration));
  if (!declaration_ || DeclarationBefore(*declaration_, declaration)) declaration_ = declaration;
  return Status::Ok();
}

EscrowAccount& EscrowLedger::AccountFor(RegionId origin) {
  return accounts_[origin];
}

const EscrowAccount& EscrowLedger::Account(RegionId origin) const {
  auto it = accounts_.find(origin);
  return it == accounts_.end() ? EmptyAccount() : it->second;
}

int64_t EscrowLedger::Share(RegionId region) const {
  return declaration_ ? Get(declaration_->shares, region) : 0;
}

Status EscrowLedger::ApplyIncrement(const Dot& dot, int64_t delta) {
  MERIDIAN_CHECK(dot.origin <= kRegionIdMax && dot.seq != 0);
  const EscrowAccount& account = Account(dot.origin);
  if (dot.seq <= account.seq) return Status::Ok();
  const __int128 net = static_cast<__int128>(account.net) + delta;
  if (!FitsInt64(net)) return InvalidArgument("escrow increment: net past 64 bits");
  const uint64_t events = Account(dot.origin).events + 1;
  EscrowAccount& mine = AccountFor(dot.origin);
  mine.seq = dot.seq;
  mine.events = events;
  mine.net = static_cast<int64_t>(net);
  return Status::Ok();
}

Status EscrowLedger::ApplyTransfer(const Dot& dot, RegionId to, int64_t amount) {
  MERIDIAN_CHECK(dot.origin <= kRegionIdMax && dot.seq != 0);
  const EscrowAccount& account = Account(dot.origin);
  if (dot.seq <= account.seq) return Status::Ok();
  if (to > kRegionIdMax || to == dot.origin) {
    return InvalidArgument("escrow transfer: not to another region");
  }
  if (amount <= 0) return InvalidArgument("escrow transfer: amount not positive");
  const __int128 given = static_cast<__int128>(Get(account.given, to)) + amount;
  if (given > kInt64Max) return InvalidArgument("escrow transfer: given past 64 bits");
  const uint64_t events = Account(dot.origin).events + 1;
  EscrowAccount& mine = AccountFor(dot.origin);
  mine.seq = dot.seq;
  mine.events = events;
  mine.given[to] = static_cast<int64_t>(given);
  return Status::Ok();
}

Status EscrowLedger::ApplyAccept(const Dot& dot, RegionId from, int64_t amount) {
  MERIDIAN_CHECK(dot.origin <= kRegionIdMax && dot.seq != 0);
  const EscrowAccount& account = Account(dot.origin);
  if (dot.seq <= account.seq) return Status::Ok();
  if (from > kRegionIdMax || from == dot.origin) {
    return InvalidArgument("escrow accept: not from another region");
  }
  if (amount <= 0) return InvalidArgument("escrow accept: amount not positive");
  const __int128 accepted = static_cast<__int128>(Get(account.accepted, from)) + amount;
  if (accepted > kInt64Max) return InvalidArgument("escrow accept: accepted past 64 bits");
  const uint64_t events = Account(dot.origin).events + 1;
  EscrowAccount& mine = AccountFor(dot.origin);
  mine.seq = dot.seq;
  mine.events = events;
  mine.accepted[from] = static_cast<int64_t>(accepted);
  return Status::Ok();
}

Status EscrowLedger::ApplyWant(const Dot& dot, int64_t level) {
  MERIDIAN_CHECK(dot.origin <= kRegionIdMax && dot.seq != 0);
  if (dot.seq <= Account(dot.origin).seq) return Status::Ok();
  if (level < 0) return InvalidArgument("escrow want: level is negative");
  const uint64_t events = Account(dot.origin).events + 1;
  EscrowAccount& mine = AccountFor(dot.origin);
  mine.seq = dot.seq;
  mine.events = events;
  mine.wanted = level;
  return Status::Ok();
}

namespace {

__int128 RightsOf(const EscrowAccount& account, int64_t share) {
  return static_cast<__int128>(share) + account.net + Sum(account.accepted) - Sum(account.given);
}

Status BoundExceeded(int64_t needed, __int128 rights) {
  return Status(StatusCode::kBoundExceeded, "needs " + std::to_string(needed) +
                                                " of this region's rights, which hold " +
                                                std::to_string(Saturate(rights)));
}

}  // namespace

Status EscrowLedger::CheckIncrement(RegionId self, int64_t delta) const {
  MERIDIAN_CHECK(declared() && self <= kRegionIdMax);
  const EscrowAccount& account = Account(self);
  const __int128 rights = RightsOf(account, Share(self));
  if (delta < 0) {
    const __int128 needed = -static_cast<__int128>(delta);
    if (needed > rights) return BoundExceeded(Saturate(needed), rights);
    return Status::Ok();
  }
  if (!FitsInt64(static_cast<__int128>(account.net) + delta) || rights + delta > kInt64Max) {
    return InvalidArgument("increment would take the bounded counter past 64 bits");
  }
  return Status::Ok();
}

Status EscrowLedger::CheckTransfer(RegionId self, RegionId to, int64_t amount) const {
  MERIDIAN_CHECK(declared() && self <= kRegionIdMax);
  if (to > kRegionIdMax || to == self) return InvalidArgument("transfer: not to another region");
  if (amount <= 0) return InvalidArgument("transfer: amount not positive");
  const EscrowAccount& account = Account(self);
  if (static_cast<__int128>(Get(account.given, to)) + amount > kInt64Max) {
    return InvalidArgument("transfer: given past 64 bits");
  }
  const __int128 rights = RightsOf(account, Share(self));
  if (amount > rights) return BoundExceeded(amount, rights);
  return Status::Ok();
}

Status EscrowLedger::CheckAccept(RegionId self, RegionId from, int64_t amount) const {
  MERIDIAN_CHECK(declared() && self <= kRegionIdMax);
  if (from > kRegionIdMax || from == self)
    return InvalidArgument("accept: not from another region");
  if (amount <= 0 || amount > Pending(self, from)) {
    return InvalidArgument("accept: more than was given and not yet accepted");
  }
  if (RightsOf(Account(self), Share(self)) + amount > kInt64Max) {
    return InvalidArgument("accept: rights past 64 bits");
  }
  return Status::Ok();
}

int64_t EscrowLedger::Rights(RegionId region) const {
  return Saturate(RightsOf(Account(region), Share(region)));
}

namespace {

// Sum of Rights over every region: room + every net + every accepted - every given.
__int128 SumRights(const EscrowLedger& ledger) {
  __int128 total = ledger.declared() ? Sum(ledger.declaration()->shares) : 0;
  for (const auto& [origin, account] : ledger.accounts()) total += RightsOf(account, 0);
  return total;
}

// Sum of Pending over every pair.
__int128 SumPending(const EscrowLedger& ledger) {
  __int128 total = 0;
  for (const auto& [origin, account] : ledger.accounts()) {
    for (const auto& [to, given] : account.given) total += ledger.Pending(to, origin);
  }
  return total;
}

}  // namespace

int64_t EscrowLedger::TotalRights() const {
  return Saturate(SumRights(*this));
}

int64_t EscrowLedger::Pending(RegionId to, RegionId from) const {
  const int64_t given = Get(Account(from).given, to);
  const int64_t accepted = Get(Account(to).accepted, from);
  return given > accepted ? given - accepted : 0;  // both >= 0: no overflow
}

int64_t EscrowLedger::PendingTo(RegionId to) const {
  __int128 total = 0;
  for (const auto& [origin, account] : accounts_) {
    if (origin != to) total += Pending(to, origin);
  }
  return Saturate(total);
}

int64_t EscrowLedger::PendingTotal() const {
  return Saturate(SumPending(*this));
}

int64_t EscrowLedger::Projected(RegionId region) const {
  return Saturate(static_cast<__int128>(Rights(region)) + PendingTo(region));
}

std::optional<int64_t> EscrowLedger::Value() const {
  if (!declaration_) return std::nullopt;
  return Saturate(declaration_->min + SumRights(*this) + SumPending(*this));
}

void EscrowLedger::Join(const EscrowLedger& other) {
  if (other.declaration_ &&
      (!declaration_ || DeclarationBefore(*declaration_, *other.declaration_))) {
    declaration_ = other.declaration_;
  }
  for (const auto& [origin, account] : other.accounts_) {
    auto it = accounts_.find(origin);
    if (it == accounts_.end()) {
      accounts_.emplace(origin, account);
    } else if (AccountBefore(it->second, account)) {
      it->second = account;
    }
  }
}

namespace {

void PutAmounts(std::string* out, const std::map<RegionId, int64_t>& amounts) {
  PutVarint(out, amounts.size());
  for (const auto& [region, amount] : amounts) {
    out->push_back(static_cast<char>(region));
    PutVarint(out, static_cast<uint64_t>(amount));
  }
}

bool GetRegion(std::string_view* in, RegionId* region) {
  if (in->empty()) return false;
  *region = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  return *region <= kRegionIdMax;
}

bool GetAmount(std::string_view* in, int64_t* amount) {
  uint64_t value = 0;
  if (!GetVarint(in, &value) || value == 0 || value > static_cast<uint64_t>(kInt64Max)) {
    return false;
  }
  *amount = static_cast<int64_t>(value);
  return true;
}

// Positive amounts of regions 0..31 in ascending order, none of them `excluded` (a region's own
// account never names itself; kRegionIdMax + 1: exclude none).
bool GetAmounts(std::string_view* in, RegionId excluded, std::map<RegionId, int64_t>* amounts) {
  uint64_t count = 0;
  if (!GetVarint(in, &count) || count > kRegionIdMax + 1) return false;
  for (uint64_t i = 0; i < count; ++i) {
    RegionId region = 0;
    int64_t amount = 0;
    if (!GetRegion(in, &region) || !GetAmount(in, &amount) || region == excluded) return false;
    if (!amounts->empty() && amounts->rbegin()->first >= region) return false;
    amounts->emplace_hint(amounts->end(), region, amount);
  }
  return true;
}

}  // namespace

void EscrowLedger::EncodeTo(std::string* out) const {
  out->push_back(static_cast<char>(kLedgerFormatVersion));
  if (!declaration_) {
    out->push_back(0);
  } else {
    out->push_back(1);
    out->push_back(static_cast<char>(declaration_->dot.origin));
    PutVarint(out, declaration_->dot.seq);
    PutVarint(out, declaration_->hlc);
    PutVarint(out, ZigZag(declaration_->min));
    PutAmounts(out, declaration_->shares);
  }
  PutVarint(out, accounts_.size());
  for (const auto& [origin, account] : accounts_) {
    out->push_back(static_cast<char>(origin));
    PutVarint(out, account.seq);
    PutVarint(out, ZigZag(account.net));
    PutAmounts(out, account.given);
    PutAmounts(out, account.accepted);
    PutVarint(out, static_cast<uint64_t>(account.wanted));
    PutVarint(out, account.events);
  }
}

Result<EscrowLedger> EscrowLedger::DecodeFrom(std::string_view* in) {
  auto corrupt = [](const char* what) { return Corruption(std::string("escrow ledger: ") + what); };
  const uint8_t version = in->empty() ? 0 : static_cast<uint8_t>(in->front());
  if (version != 1 && version != kLedgerFormatVersion) return corrupt("unknown format version");
  in->remove_prefix(1);
  if (in->empty()) return corrupt("truncated declaration");
  const auto has_declaration = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  EscrowLedger ledger;
  if (has_declaration > 1) return corrupt("bad declaration marker");
  if (has_declaration == 1) {
    EscrowDeclaration declaration;
    uint64_t min = 0;
    if (!GetRegion(in, &declaration.dot.origin) || !GetVarint(in, &declaration.dot.seq) ||
        !GetVarint(in, &declaration.hlc) || !GetVarint(in, &min) ||
        !GetAmounts(in, kRegionIdMax + 1, &declaration.shares)) {
      return corrupt("truncated or malformed declaration");
    }
    declaration.min = UnZigZag(min);
    if (!ValidateEscrowDeclaration(declaration).ok()) return corrupt("invalid declaration");
    ledger.declaration_ = std::move(declaration);
  }
  uint64_t count = 0;
  if (!GetVarint(in, &count) || count > kRegionIdMax + 1) return corrupt("bad account count");
  for (uint64_t i = 0; i < count; ++i) {
    RegionId origin = 0;
    EscrowAccount account;
    uint64_t net = 0;
    uint64_t wanted = 0;
    if (!GetRegion(in, &origin) || !GetVarint(in, &account.seq) || !GetVarint(in, &net) ||
        !GetAmounts(in, origin, &account.given) || !GetAmounts(in, origin, &account.accepted) ||
        !GetVarint(in, &wanted) || (version >= 2 && !GetVarint(in, &account.events))) {
      return corrupt("truncated or malformed account");
    }
    if (account.seq == 0) return corrupt("account without an event");
    if (wanted > static_cast<uint64_t>(kInt64Max)) return corrupt("want past 64 bits");
    if (!ledger.accounts_.empty() && ledger.accounts_.rbegin()->first >= origin) {
      return corrupt("accounts not in ascending origin order");
    }
    account.net = UnZigZag(net);
    account.wanted = static_cast<int64_t>(wanted);
    ledger.accounts_.emplace_hint(ledger.accounts_.end(), origin, std::move(account));
  }
  return ledger;
}

std::string_view EscrowActionKindName(EscrowActionKind kind) {
  switch (kind) {
    case EscrowActionKind::kAccept:
      return "accept";
    case EscrowActionKind::kWant:
      return "want";
    case EscrowActionKind::kTransfer:
      return "transfer";
  }
  return "unknown";
}

Status ValidateEscrowPolicy(const EscrowPolicy& policy) {
  if (policy.low_water < 0 || policy.high_water < policy.low_water) {
    return InvalidArgument("escrow policy: needs 0 <= low_water <= high_water");
  }
  if (policy.give_percent < 0 || policy.give_percent > 100) {
    return InvalidArgument("escrow policy: give_percent must be 0..100");
  }
  return Status::Ok();
}

std::vector<EscrowAction> Rebalance(const EscrowLedger& ledger, RegionId self,
                                    const EscrowPolicy& policy, int64_t refused_need) {
  MERIDIAN_CHECK(ValidateEscrowPolicy(policy).ok());
  MERIDIAN_CHECK(self <= kRegionIdMax && refused_need >= 0);
  std::vector<EscrowAction> actions;
  if (!ledger.declared()) return actions;

  // 1. Accept what others gave. In its own view a region never has accepted more than it was
  // shown given (it accepts only what it saw), so afterwards its rights are its Projected.
  __int128 rights = ledger.Rights(self);
  for (const auto& [from, account] : ledger.accounts()) {
    if (from == self) continue;
    const auto amount =
        static_cast<int64_t>(std::min<__int128>(ledger.Pending(self, from), kInt64Max - rights));
    if (amount <= 0) continue;
    actions.push_back(EscrowAction{EscrowActionKind::kAccept, from, amount});
    rights += amount;
  }

  // 2. Ask, or withdraw a met ask.
  int64_t desired = 0;
  if (rights < policy.low_water) desired = policy.high_water;
  if (refused_need > rights) desired = std::max(desired, refused_need);
  const int64_t wanted = ledger.Account(self).wanted;
  if (desired > wanted) {
    actions.push_back(EscrowAction{EscrowActionKind::kWant, 0, desired});
  } else if (wanted > 0 && desired == 0 && rights >= wanted) {
    actions.push_back(EscrowAction{EscrowActionKind::kWant, 0, 0});
  }

  // 3. Serve unmet wants, poorest first.
  struct Wanter {
    __int128 projected;
    RegionId region;
    __int128 lacking;
  };
  std::vector<Wanter> wanters;
  for (const auto& [region, account] : ledger.accounts()) {
    if (region == self || account.wanted <= 0) continue;
    const __int128 projected = ledger.Projected(region);
    if (projected < account.wanted) {
      wanters.push_back(Wanter{projected, region, account.wanted - projected});
    }
  }
  std::sort(wanters.begin(), wanters.end(), [](const Wanter& a, const Wanter& b) {
    return std::tie(a.projected, a.region) < std::tie(b.projected, b.region);
  });
  // Rounded up, so that any region two rights richer than a wanter can serve it.
  __int128 budget = rights > 0 ? (rights * policy.give_percent + 99) / 100 : 0;
  for (const Wanter& wanter : wanters) {
    const __int128 halfway = (rights - wanter.projected) / 2;
    const __int128 room_in_given = kInt64Max - Get(ledger.Account(self).given, wanter.region);
    const __int128 amount = std::min({wanter.lacking, halfway, budget, room_in_given});
    if (amount <= 0) continue;
    actions.push_back(
        EscrowAction{EscrowActionKind::kTransfer, wanter.region, static_cast<int64_t>(amount)});
    rights -= amount;
    budget -= amount;
  }
  return actions;
}

}  // namespace meridian::core
