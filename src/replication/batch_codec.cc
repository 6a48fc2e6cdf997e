#include "replication/batch_codec.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "core/check.h"
#include "core/version_vector.h"
#include "meridian/event.pb.h"
#include "storage/keys.h"

namespace meridian::replication {

// How the events of a payload are read: strictly (the first event that does not decode fails
// the batch) or for the receive path (such an event is parked, core::DecodeOrPark).
struct EventReading {
  const core::Limits& limits;
  bool park = false;
  uint32_t schema_version_max = core::kEventSchemaVersion;
};

namespace {

// Version 1: each event whole. Version 2: a run of one origin's consecutive events with what
// they share taken out (docs/formats.md "Replication batches").
constexpr uint8_t kFormatWhole = 1;
constexpr uint8_t kFormatRun = 2;
// The same payloads as chunks of one zstd stream per subscription (BatchStreamEncoder).
constexpr uint8_t kFormatWholeStreamed = 3;
constexpr uint8_t kFormatRunStreamed = 4;
constexpr int kStreamWindowLog = 17;  // 128 KiB of history on each side of a stream
constexpr uint64_t kContextEntriesMax = core::kRegionIdMax + 1;

// What a run stores of one event: the dot and clock it shares with its neighbours, its context,
// and the rest (key and operation) as the event's Protobuf encoding without the others.
struct RunEntry {
  core::Dot dot;
  core::HlcTimestamp hlc = 0;
  core::VersionVector context;
  std::string rest;
};

// Entries of one origin with consecutive seqs (what a sender streams).
bool IsRun(const std::vector<RunEntry>& entries) {
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].dot.origin != entries[0].dot.origin ||
        entries[i].dot.seq != entries[0].dot.seq + i) {
      return false;
    }
  }
  return !entries.empty();
}

// The context an event of the run most likely has: the previous event's, with its own origin's
// entry just before it.
core::VersionVector Predicted(const core::VersionVector& previous, core::Dot dot) {
  core::VersionVector predicted = previous;
  predicted.Set(dot.origin, dot.seq - 1);
  return predicted;
}

std::string RunPayload(const std::vector<RunEntry>& entries) {
  std::string payload;
  core::PutVarint(&payload, entries.front().dot.origin);
  core::PutVarint(&payload, entries.front().dot.seq);
  core::HlcTimestamp previous_hlc = 0;
  const core::VersionVector* previous_context = nullptr;
  const core::VersionVector empty;
  for (const RunEntry& entry : entries) {
    core::PutVarint(&payload, core::ZigZag(static_cast<int64_t>(entry.hlc - previous_hlc)));
    // The context as the entries that differ from the prediction (seq 0: the entry is absent).
    const core::VersionVector predicted =
        Predicted(previous_context ? *previous_context : empty, entry.dot);
    std::vector<core::VersionVector::Entry> differ;
    for (const core::VersionVector* side : {&predicted, &entry.context}) {
      for (const auto& known : side->entries()) {
        const uint64_t seq = entry.context.Get(known.origin);
        if (seq != predicted.Get(known.origin) &&
            std::none_of(differ.begin(), differ.end(),
                         [&](const auto& d) { return d.origin == known.origin; })) {
          differ.push_back({known.origin, seq});
        }
      }
    }
    core::PutVarint(&payload, differ.size());
    for (const auto& changed : differ) {
      core::PutVarint(&payload, changed.origin);
      core::PutVarint(&payload, changed.seq);
    }
    core::PutVarint(&payload, entry.rest.size());
    payload += entry.rest;
    previous_hlc = entry.hlc;
    previous_context = &entry.context;
  }
  return payload;
}

std::string WholePayload(std::span<const std::string> encoded_events) {
  std::string payload;
  for (const std::string& bytes : encoded_events) {
    core::PutVarint(&payload, bytes.size());
    payload += bytes;
  }
  return payload;
}

// A batch holding only its header (ReadHeader reads it back): format version, count, raw size.
EncodedBatch StartBatch(uint8_t format, size_t count, size_t raw_size) {
  EncodedBatch batch;
  batch.raw_bytes = raw_size;
  batch.bytes.push_back(static_cast<char>(format));
  core::PutVarint(&batch.bytes, count);
  core::PutVarint(&batch.bytes, raw_size);
  return batch;
}

EncodedBatch Compress(uint8_t format, size_t count, const std::string& payload, int level) {
  EncodedBatch batch = StartBatch(format, count, payload.size());
  const size_t header = batch.bytes.size();
  batch.bytes.resize(header + ZSTD_compressBound(payload.size()));
  // With a checksum of the content: a damaged batch is refused, not applied as other events.
  thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> context(ZSTD_createCCtx(),
                                                                          ZSTD_freeCCtx);
  ZSTD_CCtx_reset(context.get(), ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_checksumFlag, 1);
  const size_t compressed =
      ZSTD_compress2(context.get(), batch.bytes.data() + header, batch.bytes.size() - header,
                     payload.data(), payload.size());
  MERIDIAN_CHECK(!ZSTD_isError(compressed));  // only possible with a too small buffer
  batch.bytes.resize(header + compressed);
  return batch;
}

// Adds one event's bytes to `out` as the reading says.
Status AddEvent(std::string_view bytes, const EventReading& reading, core::RemoteBatch* out) {
  if (!reading.park) {
    auto event = core::DecodeEvent(bytes, reading.limits, reading.schema_version_max);
    if (!event.ok()) return event.status();
    out->events.push_back(std::move(event).value());
    return Status::Ok();
  }
  auto received = core::DecodeOrPark(bytes, reading.limits, reading.schema_version_max);
  if (!received.ok()) return received.status();  // not even its dot: the batch is broken
  if (received->event) {
    out->events.push_back(std::move(*received->event));
  } else {
    out->parked.push_back(std::move(*received->parked));
  }
  return Status::Ok();
}

Result<core::RemoteBatch> DecodeWhole(std::string_view in, uint64_t count,
                                      const EventReading& reading) {
  core::RemoteBatch batch;
  batch.events.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t size = 0;
    if (!core::GetVarint(&in, &size) || size > in.size())
      return Corruption("batch: truncated event");
    if (Status status = AddEvent(in.substr(0, size), reading, &batch); !status.ok()) return status;
    in.remove_prefix(size);
  }
  if (!in.empty()) return Corruption("batch: bytes after the last event");
  return batch;
}

Result<core::RemoteBatch> DecodeRun(std::string_view in, uint64_t count,
                                    const EventReading& reading) {
  uint64_t origin = 0;
  uint64_t first_seq = 0;
  if (!core::GetVarint(&in, &origin) || !core::GetVarint(&in, &first_seq) ||
      origin > core::kRegionIdMax || first_seq == 0 || first_seq + count < first_seq) {
    return Corruption("batch: bad run header");
  }
  core::RemoteBatch batch;
  batch.events.reserve(count);
  core::HlcTimestamp previous_hlc = 0;
  core::VersionVector previous_context;
  wire::Event message;
  std::string whole;
  for (uint64_t i = 0; i < count; ++i) {
    const core::Dot dot{static_cast<core::RegionId>(origin), first_seq + i};
    uint64_t hlc_delta = 0;
    uint64_t differ = 0;
    if (!core::GetVarint(&in, &hlc_delta) || !core::GetVarint(&in, &differ) ||
        differ > kContextEntriesMax) {
      return Corruption("batch: truncated event");
    }
    core::VersionVector context = Predicted(previous_context, dot);
    for (uint64_t d = 0; d < differ; ++d) {
      uint64_t id = 0;
      uint64_t seq = 0;
      if (!core::GetVarint(&in, &id) || !core::GetVarint(&in, &seq) || id > core::kRegionIdMax) {
        return Corruption("batch: bad context entry");
      }
      context.Set(static_cast<core::RegionId>(id), seq);
    }
    uint64_t size = 0;
    if (!core::GetVarint(&in, &size) || size > in.size())
      return Corruption("batch: truncated event");
    // The whole event again, so that it is checked exactly as every other event is.
    if (!message.ParseFromArray(in.data(), static_cast<int>(size))) {
      return Corruption("event: not a valid protobuf message");
    }
    in.remove_prefix(size);
    const core::HlcTimestamp hlc = previous_hlc + static_cast<uint64_t>(core::UnZigZag(hlc_delta));
    message.set_origin(dot.origin);
    message.set_seq(dot.seq);
    message.set_hlc(hlc);
    message.set_context(context.Encode());
    message.SerializeToString(&whole);
    if (Status status = AddEvent(whole, reading, &batch); !status.ok()) return status;
    previous_hlc = hlc;
    previous_context = std::move(context);
  }
  if (!in.empty()) return Corruption("batch: bytes after the last event");
  return batch;
}

struct Payload {
  uint8_t format = kFormatWhole;  // kFormatWhole or kFormatRun
  size_t count = 0;
  std::string bytes;
};

// Taken apart at the Protobuf level (the receiver checks every event it rebuilds); anything
// unexpected is sent whole, as given.
Payload BuildPayload(std::span<const std::string> encoded_events) {
  std::vector<RunEntry> entries;
  entries.reserve(encoded_events.size());
  wire::Event message;
  for (const std::string& bytes : encoded_events) {
    if (!message.ParseFromString(bytes)) break;
    auto context = core::VersionVector::Decode(message.context());
    if (!context.ok() || message.origin() > core::kRegionIdMax) break;
    RunEntry entry{
        core::Dot{message.origin(), message.seq()}, message.hlc(), std::move(context).value(), {}};
    message.clear_origin();
    message.clear_seq();
    message.clear_hlc();
    message.clear_context();
    message.SerializeToString(&entry.rest);
    entries.push_back(std::move(entry));
  }
  if (entries.size() == encoded_events.size() && IsRun(entries)) {
    return Payload{kFormatRun, entries.size(), RunPayload(entries)};
  }
  return Payload{kFormatWhole, encoded_events.size(), WholePayload(encoded_events)};
}

Result<core::RemoteBatch> DecodePayload(uint8_t format, std::string_view payload, uint64_t count,
                                        const EventReading& reading) {
  if (format == kFormatRun) {
    if (count == 0) return Corruption("batch: an empty run");
    return DecodeRun(payload, count, reading);
  }
  return DecodeWhole(payload, count, reading);
}

Result<std::vector<core::Event>> Strict(Result<core::RemoteBatch> batch) {
  if (!batch.ok()) return batch.status();
  MERIDIAN_CHECK(batch->parked.empty());  // a strict reading parks nothing
  return std::move(batch->events);
}

// Reads the format version, event count and raw size, checking them against the limits.
Status ReadHeader(std::string_view* bytes, const BatchLimits& batch_limits, uint8_t* format,
                  uint64_t* count, uint64_t* raw_size) {
  if (bytes->empty()) return Corruption("batch: empty");
  *format = static_cast<uint8_t>(bytes->front());
  if (*format < kFormatWhole || *format > kFormatRunStreamed) {
    return Status(StatusCode::kUnsupported,
                  "batch: format version " + std::to_string(*format) + " is not supported");
  }
  bytes->remove_prefix(1);
  if (!core::GetVarint(bytes, count) || !core::GetVarint(bytes, raw_size)) {
    return Corruption("batch: truncated header");
  }
  if (*count > batch_limits.events_max) {
    return TooLarge("batch: " + std::to_string(*count) + " events; the limit is " +
                    std::to_string(batch_limits.events_max));
  }
  if (*raw_size > batch_limits.raw_bytes_max) {
    return TooLarge("batch: " + std::to_string(*raw_size) + " bytes uncompressed; the limit is " +
                    std::to_string(batch_limits.raw_bytes_max));
  }
  return Status::Ok();
}

}  // namespace

EncodedBatch EncodeBatch(const std::vector<core::Event>& events, int level) {
  std::vector<std::string> encoded;
  encoded.reserve(events.size());
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  return EncodeBatchOfEncoded(encoded, level);
}

EncodedBatch EncodeBatchOfEncoded(std::span<const std::string> encoded_events, int level) {
  const Payload payload = BuildPayload(encoded_events);
  return Compress(payload.format, payload.count, payload.bytes, level);
}

namespace {

Result<core::RemoteBatch> DecodeWholeBatch(std::string_view bytes, const BatchLimits& batch_limits,
                                           const EventReading& reading) {
  uint8_t format = 0;
  uint64_t count = 0;
  uint64_t raw_size = 0;
  if (Status status = ReadHeader(&bytes, batch_limits, &format, &count, &raw_size); !status.ok())
    return status;
  if (format == kFormatWholeStreamed || format == kFormatRunStreamed) {
    return Status(StatusCode::kUnsupported,
                  "batch: format version " + std::to_string(format) +
                      " is a chunk of a stream; only the stream's decoder reads it");
  }
  // The frame must say it holds exactly raw_size bytes; anything else is refused before
  // decompressing, so a frame cannot expand past what the header promised.
  const unsigned long long frame_size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
  if (frame_size == ZSTD_CONTENTSIZE_ERROR || frame_size == ZSTD_CONTENTSIZE_UNKNOWN ||
      frame_size != raw_size) {
    return Corruption("batch: the zstd frame does not match the header");
  }
  std::string payload(raw_size, '\0');
  const size_t decompressed =
      ZSTD_decompress(payload.data(), payload.size(), bytes.data(), bytes.size());
  if (ZSTD_isError(decompressed) || decompressed != raw_size)
    return Corruption("batch: bad zstd frame");
  return DecodePayload(format, payload, count, reading);
}

}  // namespace

Result<std::vector<core::Event>> DecodeBatch(std::string_view bytes,
                                             const BatchLimits& batch_limits,
                                             const core::Limits& event_limits) {
  return Strict(DecodeWholeBatch(bytes, batch_limits, EventReading{event_limits}));
}

Result<core::RemoteBatch> DecodeRemoteBatch(std::string_view bytes, const BatchLimits& batch_limits,
                                            const core::Limits& event_limits,
                                            uint32_t schema_version_max) {
  return DecodeWholeBatch(bytes, batch_limits,
                          EventReading{event_limits, /*park=*/true, schema_version_max});
}

struct BatchStreamEncoder::State {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> context{ZSTD_createCCtx(), ZSTD_freeCCtx};
};

BatchStreamEncoder::BatchStreamEncoder(int level) : state_(std::make_unique<State>()) {
  MERIDIAN_CHECK(state_->context != nullptr);
  ZSTD_CCtx_setParameter(state_->context.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(state_->context.get(), ZSTD_c_windowLog, kStreamWindowLog);
}

BatchStreamEncoder::~BatchStreamEncoder() = default;

size_t BatchStreamEncoder::MemoryBytes() const {
  return ZSTD_sizeof_CCtx(state_->context.get());
}

EncodedBatch BatchStreamEncoder::Encode(std::span<const std::string> encoded_events) {
  const Payload payload = BuildPayload(encoded_events);
  EncodedBatch batch =
      StartBatch(payload.format == kFormatRun ? kFormatRunStreamed : kFormatWholeStreamed,
                 payload.count, payload.bytes.size());
  storage::PutBigEndian64(&batch.bytes, XXH3_64bits(payload.bytes.data(), payload.bytes.size()));
  const size_t header = batch.bytes.size();
  // A flush ends the chunk at a block boundary: the receiver decodes all of it at once.
  batch.bytes.resize(header + ZSTD_compressBound(payload.bytes.size()) + 64);
  ZSTD_inBuffer in{payload.bytes.data(), payload.bytes.size(), 0};
  ZSTD_outBuffer out{batch.bytes.data() + header, batch.bytes.size() - header, 0};
  for (;;) {
    const size_t left = ZSTD_compressStream2(state_->context.get(), &out, &in, ZSTD_e_flush);
    MERIDIAN_CHECK(!ZSTD_isError(left));
    if (left == 0) break;
    batch.bytes.resize(batch.bytes.size() + left + 64);  // room for the rest of the flush
    out.dst = batch.bytes.data() + header;
    out.size = batch.bytes.size() - header;
  }
  batch.bytes.resize(header + out.pos);
  return batch;
}

struct BatchStreamDecoder::State {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> context{ZSTD_createDCtx(), ZSTD_freeDCtx};
  bool broken = false;  // an earlier chunk failed: the stream's history is lost
};

BatchStreamDecoder::BatchStreamDecoder() : state_(std::make_unique<State>()) {
  MERIDIAN_CHECK(state_->context != nullptr);
  // A stream that asks for a larger window is refused: memory stays bounded per stream.
  ZSTD_DCtx_setParameter(state_->context.get(), ZSTD_d_windowLogMax, kStreamWindowLog);
}

BatchStreamDecoder::~BatchStreamDecoder() = default;

size_t BatchStreamDecoder::MemoryBytes() const {
  return ZSTD_sizeof_DCtx(state_->context.get());
}

Result<std::vector<core::Event>> BatchStreamDecoder::Decode(std::string_view bytes,
                                                            const BatchLimits& batch_limits,
                                                            const core::Limits& event_limits) {
  return Strict(DecodeChunk(bytes, batch_limits, EventReading{event_limits}));
}

Result<core::RemoteBatch> BatchStreamDecoder::DecodeRemote(std::string_view bytes,
                                                           const BatchLimits& batch_limits,
                                                           const core::Limits& event_limits,
                                                           uint32_t schema_version_max) {
  return DecodeChunk(bytes, batch_limits,
                     EventReading{event_limits, /*park=*/true, schema_version_max});
}

Result<core::RemoteBatch> BatchStreamDecoder::DecodeChunk(std::string_view bytes,
                                                          const BatchLimits& batch_limits,
                                                          const EventReading& reading) {
  if (!bytes.empty() && static_cast<uint8_t>(bytes.front()) != kFormatWholeStreamed &&
      static_cast<uint8_t>(bytes.front()) != kFormatRunStreamed) {
    return DecodeWholeBatch(bytes, batch_limits, reading);
  }
  if (state_->broken) return Corruption("batch: an earlier chunk of this stream was refused");
  state_->broken = true;  // until this chunk has decoded whole
  uint8_t format = 0;
  uint64_t count = 0;
  uint64_t raw_size = 0;
  if (Status status = ReadHeader(&bytes, batch_limits, &format, &count, &raw_size); !status.ok())
    return status;
  if (bytes.size() < 8) return Corruption("batch: truncated header");
  const uint64_t hash = storage::GetBigEndian64(bytes);
  bytes.remove_prefix(8);
  // The buffer grows as the chunk inflates (from 64 KiB, doubling), so a short chunk costs
  // little whatever its header promises; one byte more than promised is room to notice a chunk
  // that holds more, which is refused, not truncated.
  const uint64_t room = raw_size + 1;
  std::string payload(std::min<uint64_t>(room, 64 << 10), '\0');
  ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
  ZSTD_outBuffer out{payload.data(), payload.size(), 0};
  for (;;) {
    if (out.pos == out.size) {
      if (payload.size() >= room) {
        return Corruption("batch: the chunk holds more than its header says");
      }
      payload.resize(std::min<uint64_t>(room, payload.size() * 2));
      out.dst = payload.data();
      out.size = payload.size();
    }
    const size_t before_in = in.pos;
    const size_t before_out = out.pos;
    const size_t result = ZSTD_decompressStream(state_->context.get(), &out, &in);
    if (ZSTD_isError(result)) {
      return Corruption(std::string("batch: bad zstd chunk: ") + ZSTD_getErrorName(result));
    }
    if (out.pos > raw_size) return Corruption("batch: the chunk holds more than its header says");
    // Every byte read and room left in the output: the flushed chunk has given all it holds.
    if (in.pos == in.size && out.pos < out.size) break;
    if (in.pos == before_in && out.pos == before_out) {
      return Corruption("batch: the zstd chunk does not decode");
    }
  }
  if (out.pos != raw_size) return Corruption("batch: the chunk holds less than its header says");
  payload.resize(raw_size);
  if (XXH3_64bits(payload.data(), payload.size()) != hash) {
    return Corruption("batch: the payload does not match its hash");
  }
  auto events = DecodePayload(format == kFormatRunStreamed ? kFormatRun : kFormatWhole, payload,
                              count, reading);
  if (events.ok()) state_->broken = false;
  return events;
}

}  // namespace meridian::replication
