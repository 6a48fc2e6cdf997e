// Bounded counters: the escrow of the room above a field's lower bound (docs/semantics.md,
// "Bounded counters").
//
// A declaration fixes the bound `min` and splits the room, value - min as the declaring region saw
// it, into per-region shares. From then on the field changes only by escrowed events, each written
// by one region about itself and replicated like any other event:
//   - increment (delta): a client's increment; a decrement needs that many rights;
//   - transfer (to, amount): the writer gives `amount` of its rights to `to`;
//   - accept (from, amount): the writer takes `amount` that `from` gave it into its rights;
//   - want (level): the writer asks to be brought up to `level` rights (0 withdraws the ask).
// The ledger keeps per origin one EscrowAccount that sums that origin's events, and
//
//   Rights(i) = share(i) + net(i) + sum over j of accepted(i)[j] - sum over k of given(i)[k].
//
// Why no view goes below the bound. Every term of Rights(i) but the share is written by i's own
// events alone: that is the point of `accept`. Region i writes an event only after deciding it on
// its own view, which holds all of i's events: a decrement or a transfer only when Rights(i)
// covers it (CheckIncrement, CheckTransfer), an accept or a positive increment only adds, a want
// changes nothing. So Rights(i) >= 0 after each of i's events. Any other view holds a prefix of
// i's events (each origin's events are applied in seq order), i.e. a state in which i stood: in
// every view that holds the declaration, Rights(i) >= 0 for every region i, whatever the view
// lacks of other origins' events.
//
// The bounded quantity. A view's value is Value() = min + sum of Rights(i) + Pending, where Pending
// is what the view shows transferred and not yet accepted (per pair, given - accepted when > 0).
// Both sums are >= 0, so no view's value goes below min: with or without partitions, in any
// delivery order across origins. Written with the increments: Value() - min = room + the sum of
// the increments the view holds + the sum over pairs of max(0, accepted - given), the rights a view
// shows accepted before it shows them given. That last term is 0 once the view holds every
// transfer whose acceptance it holds, so after everything is delivered Value() = min + room +
// every increment: the counter is exact. Once every transfer is also accepted (Pending = 0), the
// sum of all Rights is Value() - min, each Rights(i) >= 0.
//
// Why `accept`. Were a receiver to spend what it was given directly (Rights(i) = share + net +
// given to i - given by i), a view could hold the receiver's decrement without the giver's
// transfer, and without the giver's increment that had earned the rights, since delivery across
// origins is not causal. Room 0: eu increments 10 and gives the 10 to us, us decrements 10; asia
// receives only us's events and holds min - 10 as the sum of its increments, with Rights(us) = -10.
// Neither the increments nor those rights are bounded in such a view. With accept, us's decrement
// comes after us's accept in us's own order, so every view holding the decrement counts the 10
// as us's rights, even before eu's increment arrives: the view's value is then higher than the sum
// of its increments, never lower than min. A transfer given and not yet accepted stays in the
// value (Pending), so moving rights changes no region's value.
//
// Joining. Every account is written only by its origin's events, so the state after any set of
// per-origin prefixes is, per origin, the account of the longest prefix: Join takes per origin the
// account with the greater seq, then the greater event count (a view that parked one of the
// origin's events as a dead letter counts the later ones without it: same seq, fewer events), and
// of two declarations the greater (hlc, origin, seq). Join is
// commutative, associative and idempotent, and agrees with applying the events one by one.
//
// What the bound does not cover. Two different declarations of one field (two regions declaring
// it at once) are merged deterministically, but the rights spent under the losing one's shares
// then count against the winner's: the bound can be crossed. The API is to refuse a second
// declaration and to run the declaration of a homed key in its home. Increments accepted by a
// region before it applied the declaration are not escrowed and not in this ledger.
//
// Pure: no I/O, no clock. Not thread-safe. The caller serializes a region's decisions with the
// writes that follow them (check, then write and apply the event, before the next check).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/hlc.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::core {

// The bound and the initial shares. Written once, by the declaring region, as an event of its own.
struct EscrowDeclaration {
  Dot dot;
  HlcTimestamp hlc = 0;
  int64_t min = 0;
  std::map<RegionId, int64_t> shares;  // region -> its initial rights; no zero entries
  bool operator==(const EscrowDeclaration&) const = default;
};

// A declaration as the ledger accepts it: a real dot (origin <= 31, seq >= 1), shares of regions
// 0..31 each > 0, their sum (the room) and min + room within int64. kInvalidArgument otherwise.
Status ValidateEscrowDeclaration(const EscrowDeclaration& declaration);

// The initial shares of `room` (>= 0) over `regions` (ids <= 31, duplicates ignored; the declarer
// among them): room / n each, and the remainder to the declarer; zero shares are left out. The
// caller guarantees the arguments (MERIDIAN_CHECK).
std::map<RegionId, int64_t> SplitRoom(int64_t room, std::span<const RegionId> regions,
                                      RegionId declarer);

// What one origin's escrow events sum to. Written only by that origin's events.
struct EscrowAccount {
  uint64_t seq = 0;                      // dot seq of the last event counted
  int64_t net = 0;                       // sum of its increments (< 0: consumed)
  std::map<RegionId, int64_t> given;     // cumulative rights transferred to each region, > 0
  std::map<RegionId, int64_t> accepted;  // cumulative rights accepted from each region, > 0
  int64_t wanted = 0;                    // the level of rights it last asked for (0: none)
  // How many of its origin's events of this field it counts. A view that parked one of them as a
  // dead letter counts the later ones without it: its account has the same seq as the whole one
  // and fewer events, and a join (a repair from a peer) takes the whole one.
  uint64_t events = 0;
  bool operator==(const EscrowAccount&) const = default;
};

// The escrow of one bounded field, as one region's view shows it.
class EscrowLedger {
 public:
  // Records a declaration (validated as ValidateEscrowDeclaration says; kInvalidArgument and no
  // change otherwise). Of two different declarations the greater (hlc, origin, seq) is kept, the
  // same in every region whatever the order; a repeated one changes nothing.
  Status Declare(const EscrowDeclaration& declaration);

  // Apply one escrow event of origin dot.origin. The caller applies each origin's events in seq
  // order (seqs may skip: the origin's events of other keys and fields take seqs too) and
  // guarantees a real dot (MERIDIAN_CHECK: origin <= 31, seq >= 1). An event whose seq is not
  // above its origin's account's is a duplicate: ignored, Ok. An event no origin could have
  // written (a region out of range or the origin itself as the other party, an amount <= 0, a want
  // < 0, a cumulative sum leaving int64) is refused with kInvalidArgument and changes nothing;
  // this depends only on the event and its origin's account, so every region refuses the same
  // events. Events may come before the declaration: they are kept and count once it arrives.
  Status ApplyIncrement(const Dot& dot, int64_t delta);
  Status ApplyTransfer(const Dot& dot, RegionId to, int64_t amount);
  Status ApplyAccept(const Dot& dot, RegionId from, int64_t amount);
  Status ApplyWant(const Dot& dot, int64_t level);

  // The decisions of region `self` on its own view, before it writes the event. The caller calls
  // them only when the field is declared in its view (MERIDIAN_CHECK), with self <= 31.
  //   CheckIncrement: a decrement of more than Rights(self) is kBoundExceeded; an increment that
  //     would take the account's net or Rights(self) past int64 is kInvalidArgument; else Ok.
  //   CheckTransfer: kInvalidArgument for an amount <= 0, a region out of range or self, or a
  //     cumulative sum past int64; kBoundExceeded for more than Rights(self).
  //   CheckAccept: kInvalidArgument unless 0 < amount <= Pending(self, from) (and Rights(self) +
  //     amount fits in int64).
  // A want needs no check beyond level >= 0.
  Status CheckIncrement(RegionId self, int64_t delta) const;
  Status CheckTransfer(RegionId self, RegionId to, int64_t amount) const;
  Status CheckAccept(RegionId self, RegionId from, int64_t amount) const;

  bool declared() const { return declaration_.has_value(); }
  const std::optional<EscrowDeclaration>& declaration() const { return declaration_; }
  const std::map<RegionId, EscrowAccount>& accounts() const { return accounts_; }
  // The account of `origin` (an empty one when it has written nothing).
  const EscrowAccount& Account(RegionId origin) const;

  // Rights(region) as defined above (share 0 while undeclared). Sums are exact; a result past
  // int64 (only under two conflicting declarations) saturates.
  int64_t Rights(RegionId region) const;
  // Sum of Rights over every region.
  int64_t TotalRights() const;
  // What `from` has given `to` and `to` has not accepted, as this view shows it (>= 0).
  int64_t Pending(RegionId to, RegionId from) const;
  // Sum of Pending(to, from) over every from.
  int64_t PendingTo(RegionId to) const;
  // Sum of Pending over every pair: rights on their way.
  int64_t PendingTotal() const;
  // Rights(region) + PendingTo(region): what the region will hold once it accepts what it is
  // shown to have been given. The rebalancing policy compares these.
  int64_t Projected(RegionId region) const;
  // min + TotalRights() + PendingTotal(): the field's value in this view (>= min, see above), or
  // nullopt while undeclared.
  std::optional<int64_t> Value() const;

  // Merges another view of the same field (see "Joining" above).
  void Join(const EscrowLedger& other);

  // Canonical binary form: equal ledgers, equal bytes.
  //   ledger      = u8 format version (1), declaration, varint account count, account*
  //   declaration = u8 0 (none) | u8 1, u8 origin, varint seq, varint hlc, varint zigzag(min),
  //                 varint share count, (u8 region, varint share)*
  //   account     = u8 origin, varint seq, varint zigzag(net), varint count, (u8 region, varint
  //                 amount)* given, varint count, (u8 region, varint amount)* accepted,
  //                 varint wanted
  // Regions ascending and <= 31, amounts > 0 and within int64, accounts' seq >= 1.
  void EncodeTo(std::string* out) const;
  // Decodes from the front of *in and advances it. Only what Declare and Apply* could have built
  // decodes; anything else is kCorruption, never a crash.
  static Result<EscrowLedger> DecodeFrom(std::string_view* in);

  bool operator==(const EscrowLedger&) const = default;

 private:
  EscrowAccount& AccountFor(RegionId origin);
  int64_t Share(RegionId region) const;

  std::optional<EscrowDeclaration> declaration_;
  std::map<RegionId, EscrowAccount> accounts_;  // only origins that wrote an event
};

// The rebalancing policy's knobs (docs/semantics.md, "Bounded counters"). Amounts are in units
// of the counter.
struct EscrowPolicy {
  int64_t low_water = 0;      // a region whose rights fall below this asks for more...
  int64_t high_water = 0;     // ...up to this level (>= low_water)
  int64_t give_percent = 50;  // at most this part of a region's rights (rounded up) leaves it
                              // in one round; 0: it never gives
  bool operator==(const EscrowPolicy&) const = default;
};

// 0 <= low_water <= high_water, 0 <= give_percent <= 100; kInvalidArgument otherwise.
Status ValidateEscrowPolicy(const EscrowPolicy& policy);

enum class EscrowActionKind : uint8_t { kAccept, kWant, kTransfer };
std::string_view EscrowActionKindName(EscrowActionKind kind);

// One escrow event the region should write about itself.
struct EscrowAction {
  EscrowActionKind kind = EscrowActionKind::kWant;
  RegionId region = 0;  // kAccept: the giver; kTransfer: the receiver; kWant: unused (0)
  int64_t amount = 0;   // kAccept, kTransfer: rights moved (> 0); kWant: the level asked for
  bool operator==(const EscrowAction&) const = default;
};

// One round of rebalancing for region `self`, decided on its own view: the events it should
// write, in this order, each applied to its ledger before the next is written (each then passes
// its Check). Empty while the field is undeclared in this view. `refused_need` is the largest
// number of rights a decrement refused since the last round needed (its -delta; 0: none).
// The round:
//   1. accepts everything shown given to self and not yet accepted;
//   2. asks (want) for high_water when its rights are below low_water, or for refused_need when
//      that is more than its rights — raising its standing want only; withdraws a standing want
//      (want 0) once its rights reach it and it needs nothing;
//   3. serves other regions' unmet wants (wanted > Projected), poorest first: to each, the least
//      of what it still lacks, half the difference between self's rights and its Projected, and
//      what is left of the round's budget (give_percent of self's rights after the accepts,
//      rounded up).
// A donor never leaves itself poorer than the region it gives to, so transfers move rights only
// from richer to poorer regions that ask: on views that hold everything, each transfer lowers the
// sum of the squares of the Projected rights, and rounds with no new increments come to an end
// (every round empty). A donor counts its own transfers at once, so it never serves the same
// shortfall twice; k donors whose views lack each other's transfers can together give a region
// up to k times the level it asked for. Those rights are moved, not lost: the region then
// withdraws its want and can serve others. The policy must be valid (MERIDIAN_CHECK), self <= 31,
// refused_need >= 0.
std::vector<EscrowAction> Rebalance(const EscrowLedger& ledger, RegionId self,
                                    const EscrowPolicy& policy, int64_t refused_need);

}  // namespace meridian::core
