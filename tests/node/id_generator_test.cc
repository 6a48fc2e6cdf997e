// Unique ids (node/id_generator.h): the layout, strictly increasing ids whatever the clock does,
// the durable reservation that keeps a restarted generator above every id issued before, and the
// refusals when nothing can be issued.
#include "node/id_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "storage/memory_store.h"

namespace meridian::node {
namespace {

constexpr uint64_t kMinute = 60'000;
// 2026-06-01T00:00:00Z.
constexpr uint64_t kJune = 1'780'272'000'000;

class FakeClock final : public core::PhysicalClock {
 public:
  explicit FakeClock(uint64_t now_ms) : now_ms(now_ms) {}
  uint64_t NowMs() override { return now_ms.load(); }
  std::atomic<uint64_t> now_ms;
};

// A region's durable state across "restarts": the store outlives the generators made on it, and
// every reservation saved is recorded (or refused while `fail` is set).
class IdGeneratorTest : public ::testing::Test {
 protected:
  std::unique_ptr<IdGenerator> Make(core::RegionId region, uint64_t reserve_ms = 1000) {
    IdGeneratorOptions options;
    options.region = region;
    options.clock = &clock_;
    options.reserve_ms = reserve_ms;
    options.recorded = store_->IdReservation().value();
    options.save = [this](uint64_t reservation) {
      if (fail_) return Status(StatusCode::kUnavailable, "disk full");
      saves_.push_back(reservation);
      return store_->SaveIdReservation(reservation);
    };
    return std::make_unique<IdGenerator>(std::move(options));
  }

  // `count` ids from `generator`, checked against the durable reservation: every id handed out
  // lies below what the store holds at that moment.
  std::vector<uint64_t> Take(IdGenerator& generator, uint32_t count) {
    std::vector<uint64_t> ids;
    const Status status = generator.Next(count, &ids);
    EXPECT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(ids.size(), count);
    const uint64_t durable = store_->IdReservation().value();
    for (uint64_t id : ids) {
      EXPECT_LT(IdMilliseconds(id), durable) << "an id beyond the durable reservation";
    }
    return ids;
  }

  // The clock in the ids' milliseconds.
  uint64_t NowMs() const { return clock_.now_ms.load() - kIdEpochUnixMs; }

  static void ExpectIncreasing(const std::vector<uint64_t>& ids) {
    for (size_t i = 1; i < ids.size(); ++i) {
      ASSERT_LT(ids[i - 1], ids[i]) << "at " << i;
    }
  }

  FakeClock clock_{kJune};
  std::unique_ptr<storage::Store> store_ = storage::NewMemoryStore();
  bool fail_ = false;
  std::vector<uint64_t> saves_;
};

TEST_F(IdGeneratorTest, IdsCarryTheRegionTheMillisecondAndASequence) {
  auto generator = Make(5, /*reserve_ms=*/1000);
  // A generator's first id is reserve_ms past the clock (what an earlier run may have reached).
  const uint64_t first_ms = NowMs() + 1 + 1000;
  std::vector<uint64_t> ids = Take(*generator, 3);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i] >> 58, 5u);
    EXPECT_EQ(IdRegion(ids[i]), 5u);
    EXPECT_EQ(IdMilliseconds(ids[i]), first_ms);
    EXPECT_EQ(IdSequence(ids[i]), i);
    EXPECT_EQ(ids[i], (uint64_t{5} << 58) | (first_ms << 16) | i);
  }
  // Until the clock passes that millisecond the ids count on in it ...
  clock_.now_ms += 500;
  EXPECT_EQ(Take(*generator, 1)[0], ids.back() + 1);
  // ... then each takes the clock's millisecond, from sequence 0.
  clock_.now_ms += 1000;
  const uint64_t later = Take(*generator, 1)[0];
  EXPECT_EQ(IdMilliseconds(later), NowMs());
  EXPECT_EQ(IdSequence(later), 0u);
  clock_.now_ms += 7;
  EXPECT_EQ(IdMilliseconds(Take(*generator, 1)[0]), NowMs());
}

TEST_F(IdGeneratorTest, EveryRegionIdLandsInBits58To62AndIdsArePositive) {
  for (core::RegionId region : {0u, 1u, 17u, 31u}) {
    auto generator = Make(region);
    for (uint64_t id : Take(*generator, 10)) {
      EXPECT_EQ(id >> 58, region);
      EXPECT_GT(static_cast<int64_t>(id), 0) << id;  // bit 63 clear, and never 0
    }
  }
}

TEST_F(IdGeneratorTest, AClockBeforeTheEpochCountsAsTheEpoch) {
  clock_.now_ms = kIdEpochUnixMs - 10 * kMinute;
  auto generator = Make(0, /*reserve_ms=*/1000);
  std::vector<uint64_t> ids = Take(*generator, 2);
  EXPECT_EQ(ids[0], uint64_t{1001} << 16);  // never 0, even in region 0
  EXPECT_EQ(ids[1], ids[0] + 1);
  clock_.now_ms = kIdEpochUnixMs - 20 * kMinute;
  EXPECT_EQ(Take(*generator, 1)[0], ids[1] + 1);
}

TEST_F(IdGeneratorTest, ClockSetBackByMinutesKeepsIdsIncreasing) {
  auto generator = Make(3, /*reserve_ms=*/1000);
  std::vector<uint64_t> all = Take(*generator, 1);
  clock_.now_ms += 2000;  // past the first id: from here the ids follow the clock
  for (uint64_t id : Take(*generator, 100)) all.push_back(id);
  EXPECT_EQ(IdMilliseconds(all.back()), NowMs());
  clock_.now_ms += 5;
  for (uint64_t id : Take(*generator, 100)) all.push_back(id);
  const uint64_t before_jump = all.back();
  clock_.now_ms -= 10 * kMinute;  // an NTP step back, or an operator's mistake
  for (int i = 0; i < 50; ++i) {
    for (uint64_t id : Take(*generator, 40)) all.push_back(id);
    clock_.now_ms += 1;  // the clock runs on, still ten minutes behind
  }
  ExpectIncreasing(all);
  // Logically ahead of the clock: counting on from the last id issued, not from the clock.
  EXPECT_EQ(all[201], before_jump + 1);
  EXPECT_EQ(IdMilliseconds(all.back()), IdMilliseconds(before_jump));
  // Once the clock passes the ids again they follow it.
  clock_.now_ms += 11 * kMinute;
  const uint64_t caught_up = Take(*generator, 1)[0];
  EXPECT_GT(caught_up, all.back());
  EXPECT_EQ(IdMilliseconds(caught_up), NowMs());
}

TEST_F(IdGeneratorTest, ASpentMillisecondCarriesIntoTheNext) {
  auto generator = Make(2, /*reserve_ms=*/1000);
  const uint64_t ms = NowMs() + 1 + 1000;  // the first id's millisecond
  std::vector<uint64_t> all;
  // The clock stands still: 7 x 10,000 ids are more than one millisecond's 65,536.
  for (int i = 0; i < 7; ++i) {
    for (uint64_t id : Take(*generator, 10'000)) all.push_back(id);
  }
  ExpectIncreasing(all);
  EXPECT_EQ(IdMilliseconds(all[65'535]), ms);
  EXPECT_EQ(IdSequence(all[65'535]), 65'535u);
  EXPECT_EQ(IdMilliseconds(all[65'536]), ms + 1);  // within one call
  EXPECT_EQ(IdSequence(all[65'536]), 0u);
  EXPECT_EQ(IdMilliseconds(all.back()), ms + 1);
  EXPECT_EQ(IdSequence(all.back()), 70'000u - 65'536u - 1);
  for (uint64_t id : all) EXPECT_EQ(IdRegion(id), 2u);
}

TEST_F(IdGeneratorTest, OneDurableReservationPerPeriodNotPerRequest) {
  auto generator = Make(1, /*reserve_ms=*/100);
  for (int i = 0; i < 1000; ++i) {
    Take(*generator, 3);
    clock_.now_ms += 1;
  }
  // A reservation reaches 101 ms past the clock: about ten of them in 1000 ms.
  EXPECT_GE(saves_.size(), 9u);
  EXPECT_LE(saves_.size(), 11u);
  EXPECT_EQ(generator->reservations(), saves_.size());
  EXPECT_EQ(generator->issued(), 3000u);
  ExpectIncreasing(saves_);
  EXPECT_EQ(generator->reservation(), saves_.back());
}

TEST_F(IdGeneratorTest, NoIdBeyondTheReservationUntilANewOneIsDurable) {
  auto generator = Make(4, /*reserve_ms=*/1000);
  const uint64_t first = Take(*generator, 1)[0];
  ASSERT_EQ(saves_.size(), 1u);
  const uint64_t reservation = saves_[0];
  EXPECT_EQ(reservation, IdMilliseconds(first) + 1 + 1000);
  // The disk fails: ids inside the reservation are still handed out (nothing to save), up to its
  // last millisecond ...
  fail_ = true;
  clock_.now_ms = kIdEpochUnixMs + reservation - 1;
  std::vector<uint64_t> inside;
  for (int i = 0; i < 6; ++i) {
    for (uint64_t id : Take(*generator, 10'000)) inside.push_back(id);
  }
  EXPECT_EQ(IdMilliseconds(inside.back()), reservation - 1);
  // ... but none at or beyond it: a call that would cross it is refused whole.
  std::vector<uint64_t> refused;
  Status status = generator->Next(10'000, &refused);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("disk full"), std::string::npos) << status.ToString();
  EXPECT_TRUE(refused.empty());
  clock_.now_ms += 1;
  EXPECT_EQ(generator->Next(1, &refused).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(refused.empty());
  EXPECT_EQ(store_->IdReservation().value(), reservation);
  EXPECT_EQ(generator->issued(), 60'001u);
  // The disk is back: the next ids come once their reservation is durable.
  fail_ = false;
  const uint64_t after = Take(*generator, 1)[0];
  EXPECT_GT(after, inside.back());
  EXPECT_EQ(IdMilliseconds(after), reservation);
  EXPECT_GT(store_->IdReservation().value(), reservation);
}

TEST_F(IdGeneratorTest, ARestartWithTheClockSetBackNeverRepeatsAnId) {
  std::vector<uint64_t> all;
  {
    auto generator = Make(9, /*reserve_ms=*/2000);
    for (int i = 0; i < 20; ++i) {
      for (uint64_t id : Take(*generator, 50)) all.push_back(id);
      clock_.now_ms += 300;
    }
  }  // the process dies (kill -9: nothing more than what the store holds survives)
  const uint64_t recorded = store_->IdReservation().value();
  ASSERT_GE(saves_.size(), 2u);
  // It comes back with its clock an hour behind.
  clock_.now_ms -= 60 * kMinute;
  auto restarted = Make(9, /*reserve_ms=*/2000);
  const std::vector<uint64_t> after = Take(*restarted, 100);
  EXPECT_GT(after.front(), all.back());
  // It starts at the recorded reservation: above everything the first run may have issued.
  EXPECT_EQ(IdMilliseconds(after.front()), recorded);
  EXPECT_EQ(IdSequence(after.front()), 0u);
  for (uint64_t id : after) all.push_back(id);
  // Restarts in quick succession, the clock standing still: each starts above the last.
  for (int restart = 0; restart < 5; ++restart) {
    auto again = Make(9, /*reserve_ms=*/2000);
    for (uint64_t id : Take(*again, 10)) all.push_back(id);
  }
  ExpectIncreasing(all);
  EXPECT_EQ(std::set<uint64_t>(all.begin(), all.end()).size(), all.size());
}

TEST_F(IdGeneratorTest, AStoreWithoutTheLastReservationStillStartsAboveTheIdsIssued) {
  // A region issues ids with a sound clock, then its data directory is lost (or restored from a
  // backup older than its last reservation). The first id of the next run is reserve_ms past the
  // clock, which is above everything the lost one issued: its reservations never reached further
  // than that past its clock.
  std::vector<uint64_t> lost;
  {
    auto generator = Make(6, /*reserve_ms=*/1000);
    for (int i = 0; i < 30; ++i) {
      for (uint64_t id : Take(*generator, 100)) lost.push_back(id);
      clock_.now_ms += 100;
    }
  }
  EXPECT_EQ(IdMilliseconds(lost.back()), NowMs() - 100);  // the last ids followed the clock
  store_ = storage::NewMemoryStore();
  auto fresh = Make(6, /*reserve_ms=*/1000);
  const uint64_t first = Take(*fresh, 1)[0];
  EXPECT_GT(first, lost.back());
  EXPECT_EQ(IdMilliseconds(first), NowMs() + 1 + 1000);
}

TEST_F(IdGeneratorTest, NothingIsIssuedPastTheEndOfTheIdsClock) {
  // A clock set past 2165: refused, and nothing is reserved for it.
  clock_.now_ms = kIdEpochUnixMs + kIdMillisecondsEnd;
  auto generator = Make(1);
  std::vector<uint64_t> ids;
  EXPECT_EQ(generator->Next(1, &ids).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ids.empty());
  EXPECT_TRUE(saves_.empty());
  // Set right again, it issues as before.
  clock_.now_ms = kJune;
  EXPECT_EQ(IdMilliseconds(Take(*generator, 1)[0]), NowMs() + 1 + 1000);

  // The counter's very last values: a record at the last millisecond leaves 65,536 ids.
  store_ = storage::NewMemoryStore();
  ASSERT_TRUE(store_->SaveIdReservation(kIdMillisecondsEnd - 1).ok());
  auto last = Make(31);
  std::vector<uint64_t> tail;
  for (int i = 0; i < 6; ++i) {
    for (uint64_t id : Take(*last, 10'000)) tail.push_back(id);
  }
  EXPECT_EQ(last->Next(10'000, &ids).code(), StatusCode::kUnavailable);  // only 5,536 left
  EXPECT_TRUE(ids.empty());
  for (uint64_t id : Take(*last, 5'536)) tail.push_back(id);
  ExpectIncreasing(tail);
  EXPECT_EQ(tail.back(), (uint64_t{31} << 58) | (kIdCounterEnd - 1));
  EXPECT_EQ(static_cast<int64_t>(tail.back()), INT64_MAX);
  EXPECT_EQ(last->Next(1, &ids).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ids.empty());
}

TEST_F(IdGeneratorTest, ConcurrentCallersNeverShareAnId) {
  auto generator = Make(12, /*reserve_ms=*/5);
  constexpr int kThreads = 4;
  std::vector<std::vector<uint64_t>> taken(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::vector<uint64_t> ids;
        if (!generator->Next(7, &ids).ok()) return;
        taken[t].insert(taken[t].end(), ids.begin(), ids.end());
        if (i % 10 == 0) clock_.now_ms += 1;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<uint64_t> all;
  for (const auto& ids : taken) {
    ASSERT_EQ(ids.size(), 1400u);
    ExpectIncreasing(ids);  // each caller sees them increase
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), kThreads * 1400u);
  EXPECT_LT(IdMilliseconds(*all.rbegin()), store_->IdReservation().value());
}

}  // namespace
}  // namespace meridian::node
