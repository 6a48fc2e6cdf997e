// Verification between two regions in one process (docs/verification.md): the Verifier driven
// against a peer's answers exactly as the transport and the simulator drive it, over real
// node::Regions on in-memory stores. Damage is injected into a store as a disk fault would do it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>

#include "core/event.h"
#include "node/region.h"
#include "node/verification.h"
#include "replication/verify.h"
#include "storage/memory_store.h"
#include "support/region_ops.h"

namespace meridian::node {
namespace {

using testing::Incr;
using testing::ManualClock;
using testing::Set;

// One region: its store, the Region, and its verifier of the other.
struct Side {
  Side(core::RegionId id, core::RegionId peer, ManualClock* clock)
      : id(id),
        clock(clock),
        store(storage::NewMemoryStore()),
        verifier(replication::VerifyOptions{.interval_ms = 0, .align_timeout_ms = 1000}, {peer},
                 0) {
    Restart();
  }
  // A new process over the same store (the document cache starts empty).
  void Restart() {
    region =
        std::make_unique<Region>(id, std::map<core::RegionId, std::string>{{1, "us"}, {2, "eu"}},
                                 store.get(), clock, core::Limits{}, 500);
    EXPECT_TRUE(region->Recover().ok());
    local = std::make_unique<RegionVerifyLocal>(region.get());
  }
  core::RegionId id;
  ManualClock* clock;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<Region> region;
  std::unique_ptr<RegionVerifyLocal> local;
  replication::Verifier verifier;
};

class VerificationTest : public ::testing::Test {
 protected:
  VerificationTest() : us_(1, 2, &clock_), eu_(2, 1, &clock_) {}

  // Writes in `from` and applies the events in `to` (nullptr: not yet), returning them.
  // One whole pass of `side`'s scrub, step after step (each seeks a bounded number of buckets):
  // the documents it found damaged.
  size_t ScrubPass(Side& side, std::vector<Change>* changes) {
    size_t damaged = 0;
    for (uint32_t step = 0; step <= core::DigestTree::kBuckets / Region::kScrubBucketsPerStep;
         ++step) {
      auto scrubbed = side.region->Scrub(1000, changes);
      EXPECT_TRUE(scrubbed.ok());
      if (!scrubbed.ok()) break;
      damaged += scrubbed->damaged;
      if (scrubbed->pass_done) break;
    }
    return damaged;
  }

  std::vector<core::Event> Write(Side& from, Side* to, std::vector<WriteRequest> writes) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> changes;
    from.region->CommitLocalWrites(writes, &outcomes, &changes);
    std::vector<core::Event> events;
    for (const Change& change : changes) {
      EXPECT_TRUE(from.store
                      ->ReadLog(change.dot.origin, change.dot.seq, 1,
                                [&](const storage::LoggedEvent& logged) {
                                  events.push_back(
                                      *core::DecodeEvent(logged.bytes, core::Limits{}));
                                })
                      .ok());
    }
    if (to != nullptr) Deliver(events, *to);
    return events;
  }
  void Deliver(const std::vector<core::Event>& events, Side& to) {
    std::vector<Change> changes;
    ASSERT_TRUE(to.region->ApplyRemoteEvents(events, &changes).ok());
  }

  // The peer's answer to a request, as its Verify handler gives it (states on its commit thread).
  // `hostile` may rewrite it.
  wire::VerifyReply Answer(Side& peer, const wire::VerifyRequest& request) {
    if (AsksStates(request)) {
      auto states = peer.region->ReadStates(KeysOf(request));
      EXPECT_TRUE(states.ok());
      return StatesReply(*states);
    }
    auto answer = AnswerTree(*peer.region, request);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    return *answer;
  }

  // Runs one comparison of `side` with `peer` to its end, ticking virtual time; `between` runs
  // before every tick (replication in flight arrives there). Returns the result.
  replication::VerifyResult Compare(Side& side, Side& peer,
                                    const std::function<void()>& between = {}) {
    std::vector<replication::Verifier::Ready> pending;
    pending.push_back(side.verifier.Start(peer.region->id(), now_));
    for (int step = 0; step < 1000; ++step) {
      while (!pending.empty()) {
        replication::Verifier::Ready ready = std::move(pending.back());
        pending.pop_back();
        if (!ready.watch.empty()) side.region->Watch(ready.watch);
        for (auto& request : ready.requests) {
          ++requests_;
          wire::VerifyReply reply = Answer(peer, request.message);
          if (hostile) hostile(request.message, &reply);
          const size_t bytes = request.message.ByteSizeLong() + reply.ByteSizeLong();
          pending.push_back(side.verifier.Answered(peer.region->id(), reply, bytes, *side.local,
                                                   side.region->frontier(), now_));
        }
        for (auto& repair : ready.repairs) {
          std::vector<Change> changes;
          auto outcome = side.region->Repair(repair.peer, StatesOf(repair.states), &changes);
          repaired_changes_ += changes.size();
          Result<replication::RepairCounts> counts =
              outcome.ok() ? Result<replication::RepairCounts>(CountsOf(*outcome))
                           : Result<replication::RepairCounts>(outcome.status());
          pending.push_back(
              side.verifier.Repaired(repair.peer, counts, side.region->frontier(), now_));
        }
        if (!ready.unwatch.empty()) side.region->Unwatch(ready.unwatch);
        if (!ready.finished.empty()) return ready.finished.front();
      }
      if (between) between();
      now_ += 50;
      pending.push_back(side.verifier.Tick(now_, side.region->frontier()));
    }
    ADD_FAILURE() << "the comparison did not finish";
    return {};
  }

  std::vector<nlohmann::json> Repairs(Side& side) {
    std::vector<nlohmann::json> records;
    const auto recent = side.store->RecentRepairs(100);
    EXPECT_TRUE(recent.ok());
    for (const std::string& record : *recent) {
      records.push_back(nlohmann::json::parse(record));
    }
    return records;
  }

  ManualClock clock_;
  Side us_;
  Side eu_;
  uint64_t now_ = 1000;
  size_t requests_ = 0;
  size_t repaired_changes_ = 0;
  std::function<void(const wire::VerifyRequest&, wire::VerifyReply*)> hostile;
};

TEST_F(VerificationTest, IdenticalRegionsTakeOneSmallRoundTrip) {
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 300; ++i) writes.push_back({"item:" + std::to_string(i), Set("n", "1")});
  Write(us_, &eu_, writes);
  ASSERT_EQ(us_.region->digest(), eu_.region->digest());
  const replication::VerifyResult result = Compare(us_, eu_);
  EXPECT_EQ(result.state, replication::VerifyResult::State::kIdentical);
  EXPECT_EQ(result.round_trips, 1u);
  EXPECT_LT(result.bytes, 300u);
  EXPECT_EQ(result.candidates, 0u);
}

TEST_F(VerificationTest, ALostAndACorruptedDocumentAreFoundAndRestored) {
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 50; ++i) writes.push_back({"item:" + std::to_string(i), Set("n", "1")});
  writes.push_back({"item:7", Incr("sold", 3)});
  Write(us_, &eu_, writes);
  const uint64_t digest = us_.region->digest();
  storage::DamageMemoryStore(*eu_.store, "item:3", /*lose=*/true);
  storage::DamageMemoryStore(*eu_.store, "item:7", /*lose=*/false);
  // The scrub finds both; the documents leave the tree (and reads) until repaired.
  std::vector<Change> erased;
  EXPECT_EQ(ScrubPass(eu_, &erased), 2u);
  EXPECT_EQ(eu_.region->damaged_count(), 2u);
  EXPECT_NE(eu_.region->digest(), digest);
  EXPECT_FALSE(eu_.store->GetView("item:7").value().has_value());

  const replication::VerifyResult result = Compare(eu_, us_);
  EXPECT_EQ(result.state, replication::VerifyResult::State::kDiffering);
  EXPECT_EQ(result.repaired, 2u);
  EXPECT_EQ(eu_.region->damaged_count(), 0u);
  EXPECT_EQ(eu_.region->digest(), digest);
  EXPECT_EQ(*eu_.store->GetView("item:7").value(), R"({"n":1,"sold":3})");
  EXPECT_EQ(repaired_changes_, 2u);  // watches see the restored documents
  // The review queue: each found damaged, then restored from us.
  std::map<std::string, std::vector<std::string>> actions;
  for (const nlohmann::json& record : Repairs(eu_)) {
    actions[record["key"]].push_back(record["action"]);
  }
  EXPECT_EQ(actions["item:3"], (std::vector<std::string>{"restored from us", "marked for repair"}));
  EXPECT_EQ(actions["item:7"], (std::vector<std::string>{"restored from us", "marked for repair"}));
  // The other side has nothing to repair, and the next comparison is clean.
  EXPECT_EQ(Compare(us_, eu_).state, replication::VerifyResult::State::kIdentical);
  EXPECT_EQ(Compare(eu_, us_).state, replication::VerifyResult::State::kIdentical);
}

// A lost document found by a write, not the scrub: the write applies to what is left, and the
// repair brings back the rest without losing the write.
TEST_F(VerificationTest, ALostDocumentWrittenAgainKeepsTheNewWriteWhenRestored) {
  Write(us_, &eu_, {{"cart", Set("a", "1")}, {"cart", Incr("n", 5)}});
  storage::DamageMemoryStore(*eu_.store, "cart", /*lose=*/true);
  // Restarted (the document cache would otherwise still hold it), eu writes to it.
  eu_.Restart();
  Write(eu_, &us_, {{"cart", Incr("n", 1)}});
  EXPECT_TRUE(eu_.region->IsDamaged("cart"));
  EXPECT_EQ(*eu_.store->GetView("cart").value(), R"({"n":1})");
  EXPECT_EQ(*us_.store->GetView("cart").value(), R"({"a":1,"n":6})");
  const replication::VerifyResult result = Compare(eu_, us_);
  EXPECT_EQ(result.repaired, 1u);
  EXPECT_EQ(*eu_.store->GetView("cart").value(), R"({"a":1,"n":6})");
  EXPECT_FALSE(eu_.region->IsDamaged("cart"));
  EXPECT_EQ(eu_.region->digest(), us_.region->digest());
}

// A region whose log holds every event it applied rebuilds a damaged document from it, with no
// peer; once the log lacks an event of the frontier (trimmed), it leaves damage to the peers.
TEST_F(VerificationTest, ADamagedDocumentIsRebuiltFromTheRegionsOwnLogWhileItIsWhole) {
  Write(us_, &eu_, {{"cart", Set("a", "1")}, {"cart", Incr("n", 5)}, {"other", Set("x", "1")}});
  Write(eu_, &us_, {{"cart", Incr("n", 2)}, {"cart", Set("b", "2")}});
  const std::string whole = *us_.store->GetView("cart").value();
  ASSERT_EQ(*eu_.store->GetView("cart").value(), whole);
  const uint64_t digest = us_.region->digest();
  std::vector<Change> changes;
  EXPECT_EQ(eu_.region->RebuildFromLog(64, &changes).value(), 0u);  // nothing damaged
  storage::DamageMemoryStore(*eu_.store, "cart", /*lose=*/false);
  ASSERT_EQ(ScrubPass(eu_, &changes), 1u);
  ASSERT_TRUE(eu_.region->IsDamaged("cart"));
  changes.clear();
  EXPECT_EQ(eu_.region->RebuildFromLog(64, &changes).value(), 1u);
  EXPECT_FALSE(eu_.region->IsDamaged("cart"));
  EXPECT_EQ(*eu_.store->GetView("cart").value(), whole);
  EXPECT_EQ(eu_.region->digest(), digest);
  ASSERT_EQ(changes.size(), 1u);  // watches see it come back
  EXPECT_EQ(changes[0].key, "cart");
  const auto repairs = eu_.store->RecentRepairs(1).value();
  ASSERT_EQ(repairs.size(), 1u);
  EXPECT_NE(repairs[0].find("rebuilt from this region's event log (4 events)"), std::string::npos)
      << repairs[0];
  EXPECT_EQ(Compare(eu_, us_).state, replication::VerifyResult::State::kIdentical);

  // us's events 1..3 trimmed from eu's log: the next damage waits for a peer.
  ASSERT_TRUE(eu_.store->TrimLog(1, 3).ok());
  storage::DamageMemoryStore(*eu_.store, "other", /*lose=*/true);
  ASSERT_EQ(ScrubPass(eu_, &changes), 1u);
  EXPECT_EQ(eu_.region->RebuildFromLog(64, &changes).value(), 0u);
  EXPECT_TRUE(eu_.region->IsDamaged("other"));
  EXPECT_EQ(Compare(eu_, us_).repaired, 1u);
  EXPECT_FALSE(eu_.region->IsDamaged("other"));
  EXPECT_EQ(eu_.region->digest(), us_.region->digest());
}

// A step of the scrub seeks at most kScrubBucketsPerStep buckets (or its pace, when higher),
// however few documents it finds:
// a pass over a small store is spread over several steps instead of holding up the commit thread.
TEST_F(VerificationTest, AScrubStepSeeksABoundedNumberOfBuckets) {
  Write(us_, &eu_, {{"a", Set("x", "1")}});
  std::vector<Change> changes;
  uint32_t steps = 0;
  for (bool done = false; !done && steps < 100; ++steps) {
    auto step = eu_.region->Scrub(1000, &changes);  // the default pace
    ASSERT_TRUE(step.ok());
    done = step->pass_done;
  }
  EXPECT_EQ(steps, core::DigestTree::kBuckets / Region::kScrubBucketsPerStep);
}

// A write in flight (applied in us, not yet in eu) differs in the trees but is no difference:
// the comparison waits until eu has it and repairs nothing.
TEST_F(VerificationTest, AWriteInFlightIsNotADifference) {
  Write(us_, &eu_, {{"a", Set("x", "1")}, {"b", Set("x", "1")}});
  const std::vector<core::Event> in_flight = Write(us_, nullptr, {{"a", Set("x", "2")}});
  int ticks = 0;
  const replication::VerifyResult result = Compare(eu_, us_, [&] {
    if (++ticks == 3) Deliver(in_flight, eu_);  // replication catches up meanwhile
  });
  EXPECT_EQ(result.state, replication::VerifyResult::State::kIdentical) << result.error;
  EXPECT_EQ(result.candidates, 1u);
  EXPECT_EQ(result.in_flight, 1u);
  EXPECT_EQ(result.repaired + result.theirs, 0u);
  EXPECT_TRUE(Repairs(eu_).empty());
  EXPECT_EQ(*eu_.store->GetView("a").value(), R"({"x":2})");
}

// When this region's copy holds more than the peer's (the peer lost it), it is kept; the peer
// restores its own copy in its comparison.
TEST_F(VerificationTest, TheCopyThatHoldsMoreIsKept) {
  Write(us_, &eu_, {{"k", Set("x", "1")}});
  storage::DamageMemoryStore(*eu_.store, "k", /*lose=*/true);
  std::vector<Change> erased;
  ScrubPass(eu_, &erased);
  const replication::VerifyResult result = Compare(us_, eu_);
  EXPECT_EQ(result.theirs, 1u);
  EXPECT_EQ(result.repaired, 0u);
  EXPECT_EQ(*us_.store->GetView("k").value(), R"({"x":1})");
  EXPECT_EQ(Compare(eu_, us_).repaired, 1u);
  EXPECT_EQ(*eu_.store->GetView("k").value(), R"({"x":1})");
}

// A peer that has not applied what this region had never aligns: the page is deferred and the
// comparison ends without repairing anything.
TEST_F(VerificationTest, APeerThatStaysBehindIsNotComparedAgainst) {
  Write(us_, &eu_, {{"k", Set("x", "1")}});
  Write(eu_, nullptr, {{"k", Set("x", "2")}});  // never reaches us
  const replication::VerifyResult result = Compare(eu_, us_);
  EXPECT_EQ(result.state, replication::VerifyResult::State::kIdentical);
  EXPECT_EQ(result.in_flight, 1u);
  EXPECT_EQ(*eu_.store->GetView("k").value(), R"({"x":2})");
  EXPECT_TRUE(Repairs(eu_).empty());
}

// Malformed answers end the comparison as unknown, with the reason, and change nothing.
TEST_F(VerificationTest, MalformedAnswersEndTheComparison) {
  Write(us_, &eu_, {{"k", Set("x", "1")}});
  Write(us_, nullptr, {{"j", Set("x", "1")}});
  const std::vector<std::pair<std::string, std::function<void(wire::VerifyReply*)>>> attacks = {
      {"hashes", [](wire::VerifyReply* reply) { reply->add_hashes(1); }},
      {"bucket",
       [](wire::VerifyReply* reply) {
         if (reply->bucket_sizes_size() > 0) reply->set_bucket_sizes(0, 1'000'000);
       }},
      {"states",
       [](wire::VerifyReply* reply) {
         if (reply->copies_size() > 0) reply->mutable_copies(0)->set_key("another");
       }},
      {"frontier",
       [](wire::VerifyReply* reply) {
         if (reply->copies_size() > 0) reply->set_frontier("\xff\xff\xff");
       }},
  };
  for (const auto& [name, attack] : attacks) {
    hostile = [&](const wire::VerifyRequest&, wire::VerifyReply* reply) { attack(reply); };
    const replication::VerifyResult result = Compare(eu_, us_);
    EXPECT_EQ(result.state, replication::VerifyResult::State::kUnknown) << name;
    EXPECT_NE(result.error.find("malformed"), std::string::npos) << name << ": " << result.error;
  }
  hostile = nullptr;
  EXPECT_TRUE(Repairs(eu_).empty());
  // A request beyond the limits is refused by the answering side.
  wire::VerifyRequest request;
  request.set_level(4);
  request.add_nodes(0);
  EXPECT_FALSE(CheckVerifyRequest(request).ok());
  wire::VerifyRequest both;
  both.add_nodes(0);
  both.add_keys("k");
  EXPECT_FALSE(CheckVerifyRequest(both).ok());
}

}  // namespace
}  // namespace meridian::node
