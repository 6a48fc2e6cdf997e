#include "replication/batch_codec.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "meridian/event.pb.h"

namespace meridian::replication {
namespace {

// Events as an origin writes them: one origin, consecutive seqs, inventory-like documents.
std::vector<core::Event> InventoryEvents(size_t count) {
  std::vector<core::Event> events;
  for (size_t i = 0; i < count; ++i) {
    core::Event event;
    event.dot = core::Dot{2, i + 1};
    event.hlc = core::MakeHlc(1'767'225'600'000 + i, 0);
    event.context = core::VersionVector{{1, 40 + i / 3}, {2, i}, {3, 17}};
    event.key = "sku-" + std::to_string(i % 97);
    if (i % 3 == 0) {
      event.op = core::Operation{core::OpKind::kIncrement, {}, {{"stock", -1}}};
    } else {
      event.op = core::Operation{core::OpKind::kSet,
                                 {{"name", "\"teapot model " + std::to_string(i % 13) + "\""},
                                  {"price", std::to_string(20 + i % 7)},
                                  {"warehouse", "\"eu-west-" + std::to_string(i % 4) + "\""}},
                                 {}};
    }
    events.push_back(std::move(event));
  }
  return events;
}

TEST(BatchCodecTest, RoundTrips) {
  for (size_t count : {0u, 1u, 7u, 1000u}) {
    const auto events = InventoryEvents(count);
    const EncodedBatch batch = EncodeBatch(events);
    auto decoded = DecodeBatch(batch.bytes, BatchLimits{}, core::Limits{});
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, events);
  }
}

TEST(BatchCodecTest, EventsThatAreNotOneOriginsRunTravelWhole) {
  auto events = InventoryEvents(10);
  events[4].dot.seq = 40;  // a gap
  events[4].context.Set(2, 39);
  const EncodedBatch gap = EncodeBatch(events);
  EXPECT_EQ(gap.bytes[0], 1);
  auto decoded = DecodeBatch(gap.bytes, BatchLimits{}, core::Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, events);
  const EncodedBatch run = EncodeBatch(InventoryEvents(10));
  EXPECT_EQ(run.bytes[0], 2);
}

TEST(BatchCodecTest, LogBytesEncodeAsTheEventsDo) {
  const auto events = InventoryEvents(300);
  std::vector<std::string> encoded;
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  const EncodedBatch from_log = EncodeBatchOfEncoded(encoded);
  EXPECT_EQ(from_log.bytes, EncodeBatch(events).bytes);
  auto decoded = DecodeBatch(from_log.bytes, BatchLimits{}, core::Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, events);
  // What a run leaves out (dots, clocks, contexts) makes its payload much smaller than whole.
  size_t whole = 0;
  for (const std::string& bytes : encoded) whole += bytes.size() + 1;
  EXPECT_LT(from_log.raw_bytes * 10, whole * 9) << from_log.raw_bytes << " of " << whole;
}

TEST(BatchCodecTest, ContextsThatMoveAnyWayRoundTrip) {
  auto events = InventoryEvents(6);
  events[1].context = core::VersionVector{{2, 1}};                   // entries gone
  events[2].context = core::VersionVector{{2, 2}, {31, 9}};          // a new one
  events[3].context = core::VersionVector{{1, 1}, {2, 3}, {31, 2}};  // one that went down
  events[5].hlc = events[4].hlc - 7;                                 // a clock that went back
  auto decoded = DecodeBatch(EncodeBatch(events).bytes, BatchLimits{}, core::Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, events);
}

TEST(BatchCodecTest, ABatchCompressesWhereOneEventCannot) {
  const EncodedBatch one = EncodeBatch(InventoryEvents(1));
  EXPECT_GT(one.bytes.size() * 10, one.raw_bytes * 8) << "a lone event gains little";
  const EncodedBatch many = EncodeBatch(InventoryEvents(1000));
  EXPECT_LT(many.bytes.size() * 4, many.raw_bytes) << many.bytes.size() << " of " << many.raw_bytes;
}

TEST(BatchCodecTest, RefusesWhatIsNotABatch) {
  const EncodedBatch batch = EncodeBatch(InventoryEvents(20));
  EXPECT_EQ(DecodeBatch("", BatchLimits{}, core::Limits{}).status().code(),
            StatusCode::kCorruption);
  std::string other_version = batch.bytes;
  other_version[0] = 9;
  EXPECT_EQ(DecodeBatch(other_version, BatchLimits{}, core::Limits{}).status().code(),
            StatusCode::kUnsupported);
  for (size_t cut : {1u, 2u, 3u, 10u}) {
    EXPECT_FALSE(
        DecodeBatch(batch.bytes.substr(0, batch.bytes.size() - cut), BatchLimits{}, core::Limits{})
            .ok());
  }
  std::string flipped = batch.bytes;
  flipped[flipped.size() / 2] ^= 0x55;
  EXPECT_FALSE(DecodeBatch(flipped, BatchLimits{}, core::Limits{}).ok());
}

// The log's bytes of InventoryEvents, cut into batches of `size` events.
std::vector<std::vector<std::string>> EncodedRuns(size_t events, size_t size) {
  std::vector<std::vector<std::string>> batches;
  for (const core::Event& event : InventoryEvents(events)) {
    if (batches.empty() || batches.back().size() == size) batches.emplace_back();
    batches.back().push_back(core::EncodeEvent(event));
  }
  return batches;
}

std::vector<core::Event> Decoded(std::span<const std::string> encoded) {
  std::vector<core::Event> events;
  for (const std::string& bytes : encoded) events.push_back(*core::DecodeEvent(bytes, {}));
  return events;
}

TEST(BatchStreamTest, SmallBatchesRoundTripInOrderAndCompressAgainstTheEarlierOnes) {
  BatchStreamEncoder encoder;
  BatchStreamDecoder decoder;
  size_t streamed_bytes = 0;
  size_t alone_bytes = 0;
  size_t raw_bytes = 0;
  for (const std::vector<std::string>& batch : EncodedRuns(600, 3)) {
    const EncodedBatch streamed = encoder.Encode(batch);
    EXPECT_EQ(streamed.bytes[0], 4);  // a run, streamed
    auto decoded = decoder.Decode(streamed.bytes, BatchLimits{}, core::Limits{});
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, Decoded(batch));
    streamed_bytes += streamed.bytes.size();
    alone_bytes += EncodeBatchOfEncoded(batch).bytes.size();
    raw_bytes += streamed.raw_bytes;
  }
  // Three events per batch: each compressed alone gains little; against the stream's history
  // they take a fraction of that.
  EXPECT_LT(streamed_bytes * 2, alone_bytes) << streamed_bytes << " against " << alone_bytes;
  EXPECT_LT(streamed_bytes * 3, raw_bytes) << streamed_bytes << " of " << raw_bytes;
  // Memory per stream, bounded by the 128 KiB window.
  std::printf("stream memory: encoder %zu B, decoder %zu B\n", encoder.MemoryBytes(),
              decoder.MemoryBytes());
  EXPECT_LT(encoder.MemoryBytes(), size_t{3} << 19);
  EXPECT_LT(decoder.MemoryBytes(), size_t{1} << 20);
  // Events that are not one origin's run travel whole, in the same stream.
  std::vector<std::string> mixed = EncodedRuns(4, 4).front();
  std::swap(mixed[1], mixed[2]);
  const EncodedBatch whole = encoder.Encode(mixed);
  EXPECT_EQ(whole.bytes[0], 3);
  auto decoded = decoder.Decode(whole.bytes, BatchLimits{}, core::Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, Decoded(mixed));
  // The stream's decoder reads batches of formats 1 and 2 too; DecodeBatch refuses a chunk.
  const EncodedBatch alone = EncodeBatchOfEncoded(mixed);
  EXPECT_TRUE(decoder.Decode(alone.bytes, BatchLimits{}, core::Limits{}).ok());
  EXPECT_EQ(DecodeBatch(whole.bytes, BatchLimits{}, core::Limits{}).status().code(),
            StatusCode::kUnsupported);
}

TEST(BatchStreamTest, AChunkOutOfOrderOrDamagedIsRefusedAndEndsTheStream) {
  const auto batches = EncodedRuns(60, 5);
  std::vector<std::string> chunks;
  BatchStreamEncoder encoder;
  for (const auto& batch : batches) chunks.push_back(encoder.Encode(batch).bytes);
  {
    BatchStreamDecoder decoder;  // the second chunk first: it refers to history it lacks
    EXPECT_FALSE(decoder.Decode(chunks[1], BatchLimits{}, core::Limits{}).ok());
    EXPECT_FALSE(decoder.Decode(chunks[0], BatchLimits{}, core::Limits{}).ok());
  }
  for (size_t at : {size_t{1}, size_t{4}, size_t{12}, chunks[3].size() / 2, chunks[3].size() - 1}) {
    SCOPED_TRACE(at);
    BatchStreamDecoder decoder;
    for (size_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(decoder.Decode(chunks[i], BatchLimits{}, core::Limits{}).ok());
    }
    std::string damaged = chunks[3];
    damaged[at] ^= 0x21;
    EXPECT_FALSE(decoder.Decode(damaged, BatchLimits{}, core::Limits{}).ok());
    // Whatever the damage, the stream does not go on.
    EXPECT_EQ(decoder.Decode(chunks[4], BatchLimits{}, core::Limits{}).status().code(),
              StatusCode::kCorruption);
  }
  {
    BatchStreamDecoder decoder;  // a chunk cut short
    EXPECT_FALSE(
        decoder.Decode(chunks[0].substr(0, chunks[0].size() - 3), BatchLimits{}, core::Limits{})
            .ok());
  }
  {
    // A chunk whose header promises more than it holds: refused (and the buffer grows only as
    // the chunk inflates, so the promise alone costs no 16 MiB).
    std::string header_lies;
    header_lies.push_back(chunks[0][0]);
    core::PutVarint(&header_lies, 5);
    core::PutVarint(&header_lies, 16 << 20);
    std::string_view rest = chunks[0];
    rest.remove_prefix(1);
    uint64_t skipped = 0;
    ASSERT_TRUE(core::GetVarint(&rest, &skipped) && core::GetVarint(&rest, &skipped));
    header_lies += rest;
    BatchStreamDecoder decoder;
    EXPECT_EQ(decoder.Decode(header_lies, BatchLimits{}, core::Limits{}).status().code(),
              StatusCode::kCorruption);
  }
  {
    BatchStreamDecoder decoder;  // counts and sizes are bounded as in every batch
    EXPECT_EQ(decoder.Decode(chunks[0], BatchLimits{4, 16 << 20}, core::Limits{}).status().code(),
              StatusCode::kTooLarge);
  }
}

TEST(BatchCodecTest, BoundsCountAndSizeBeforeDecompressing) {
  const EncodedBatch batch = EncodeBatch(InventoryEvents(50));
  EXPECT_EQ(DecodeBatch(batch.bytes, BatchLimits{49, 16 << 20}, core::Limits{}).status().code(),
            StatusCode::kTooLarge);
  EXPECT_EQ(DecodeBatch(batch.bytes, BatchLimits{4096, batch.raw_bytes - 1}, core::Limits{})
                .status()
                .code(),
            StatusCode::kTooLarge);
  EXPECT_TRUE(DecodeBatch(batch.bytes, BatchLimits{50, batch.raw_bytes}, core::Limits{}).ok());

  // A header that understates the payload: refused from the frame's own size, before inflating.
  std::string_view rest = batch.bytes;
  rest.remove_prefix(1);
  uint64_t count = 0;
  uint64_t raw = 0;
  ASSERT_TRUE(core::GetVarint(&rest, &count) && core::GetVarint(&rest, &raw));
  std::string lying(1, batch.bytes[0]);
  core::PutVarint(&lying, count);
  core::PutVarint(&lying, raw / 2);
  lying += rest;
  EXPECT_EQ(DecodeBatch(lying, BatchLimits{}, core::Limits{}).status().code(),
            StatusCode::kCorruption);
}

TEST(BatchCodecTest, AnInvalidEventInsideIsRefused) {
  auto events = InventoryEvents(3);
  events[1].context = core::VersionVector{{2, 7}};  // does not end just before its own seq
  const EncodedBatch batch = EncodeBatch(events);
  EXPECT_EQ(DecodeBatch(batch.bytes, BatchLimits{}, core::Limits{}).status().code(),
            StatusCode::kCorruption);
}

}  // namespace
}  // namespace meridian::replication

namespace meridian::replication {
namespace {

// An encoded event rewritten at the Protobuf level.
std::string Rewritten(const core::Event& event, const std::function<void(wire::Event*)>& change) {
  wire::Event message;
  EXPECT_TRUE(message.ParseFromString(core::EncodeEvent(event)));
  change(&message);
  return message.SerializeAsString();
}

// The receive path's decoder splits a batch: the events that decode are returned, in order, and
// an event of a newer schema version or one that fails validation is parked with its dot, key,
// raw bytes and why; both batch formats (a run and whole events), alone and streamed.
TEST(BatchCodecTest, TheReceivePathParksWhatDoesNotDecodeAndKeepsTheRest) {
  const std::vector<core::Event> events = InventoryEvents(6);
  std::vector<std::string> encoded;
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  encoded[2] = Rewritten(events[2], [](wire::Event* message) {
    message->set_schema_version(core::kEventSchemaVersion + 1);
  });
  encoded[4] = Rewritten(events[4], [](wire::Event* message) {
    message->mutable_operation()->clear_counters();  // an increment without a counter
    message->mutable_operation()->clear_fields();
    message->mutable_operation()->set_kind(wire::Operation::INCREMENT);
  });
  // The same events in the other format: not a run (origin 3's event first).
  core::Event other = events[0];
  other.dot = core::Dot{3, 1};
  other.context = core::VersionVector{{3, 0}};
  std::vector<std::string> whole = encoded;
  whole.insert(whole.begin(), core::EncodeEvent(other));

  BatchStreamEncoder encoder;
  BatchStreamDecoder decoder;
  for (const auto& [batch, offset] :
       {std::pair{&encoded, size_t{0}}, std::pair{&whole, size_t{1}}}) {
    const EncodedBatch alone = EncodeBatchOfEncoded(*batch);
    const EncodedBatch streamed = encoder.Encode(*batch);
    for (const auto& decoded :
         {DecodeRemoteBatch(alone.bytes, BatchLimits{}, core::Limits{}),
          decoder.DecodeRemote(streamed.bytes, BatchLimits{}, core::Limits{})}) {
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      ASSERT_EQ(decoded->events.size(), 4u + offset);
      EXPECT_EQ(decoded->events[offset], events[0]);
      EXPECT_EQ(decoded->events[offset + 2], events[3]);
      EXPECT_EQ(decoded->events[offset + 3], events[5]);
      ASSERT_EQ(decoded->parked.size(), 2u);
      const core::ParkedEvent& newer = decoded->parked[0];
      EXPECT_EQ(newer.dot, events[2].dot);
      EXPECT_EQ(newer.key, events[2].key);
      EXPECT_EQ(newer.hlc, events[2].hlc);
      EXPECT_EQ(newer.schema_version, core::kEventSchemaVersion + 1);
      EXPECT_TRUE(newer.newer_schema);
      EXPECT_EQ(newer.reason, "schema version " + std::to_string(core::kEventSchemaVersion + 1) +
                                  " is newer than this node reads (" +
                                  std::to_string(core::kEventSchemaVersion) + ")");
      EXPECT_EQ(
          core::DecodeEvent(newer.bytes, core::Limits{}, core::kEventSchemaVersion + 1).value(),
          events[2]);  // the bytes are the event: a build that reads the newer version applies it
      const core::ParkedEvent& poison = decoded->parked[1];
      EXPECT_EQ(poison.dot, events[4].dot);
      EXPECT_FALSE(poison.newer_schema);
      EXPECT_EQ(poison.reason, "event: an increment names no counter");
    }
    // The strict reading refuses the batch, as before.
    EXPECT_FALSE(DecodeBatch(alone.bytes, BatchLimits{}, core::Limits{}).ok());
  }
}

// An event whose dot cannot be read, or a broken frame, is still a broken batch.
TEST(BatchCodecTest, AnEventWithoutAReadableDotBreaksTheBatch) {
  const std::vector<core::Event> events = InventoryEvents(3);
  std::vector<std::string> encoded;
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  encoded[1] = Rewritten(events[1], [](wire::Event* message) { message->set_seq(0); });
  auto decoded = DecodeRemoteBatch(EncodeBatchOfEncoded(encoded).bytes, BatchLimits{}, {});
  EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
  encoded[1] = "not an event";
  decoded = DecodeRemoteBatch(EncodeBatchOfEncoded(encoded).bytes, BatchLimits{}, {});
  EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
  std::string flipped = EncodeBatch(events).bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  EXPECT_FALSE(DecodeRemoteBatch(flipped, BatchLimits{}, {}).ok());
}

}  // namespace
}  // namespace meridian::replication
