// The replication batch: events as they travel between regions, compressed with zstd. A single
// event compresses poorly (about 1.2x); a batch of events of similar shape compresses several
// times, which is why the stream packs events into batches.
//
// Format (docs/formats.md, "Replication batches"):
//   byte     format version: 1 (whole events) or 2 (one origin's run); 3 and 4 are the same
//            payloads streamed (BatchStreamEncoder, below)
//   varint   event count
//   varint   raw size: the bytes of the uncompressed payload
//   rest     zstd frame (with a content checksum) of the payload. Version 1: for each event,
//            varint length then core::EncodeEvent. Version 2: origin and first seq, then per
//            event its HLC as a delta, its context as the entries that differ from the
//            previous event's, and its key and operation.
//
// Pure: no I/O. Decoding never trusts the sizes it reads: counts and sizes are bounded by
// BatchLimits before anything is allocated, so a hostile or corrupt batch costs at most
// raw_bytes_max of memory.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "meridian/status.h"

namespace meridian::replication {

struct BatchLimits {
  size_t events_max = 4096;
  size_t raw_bytes_max = 16 << 20;  // uncompressed payload
};

struct EncodedBatch {
  std::string bytes;     // what goes on the wire
  size_t raw_bytes = 0;  // the payload before compression (for the wire/raw ratio metric)
};

// Version 2 when the events are one origin's consecutive run, else version 1. zstd level 1: on
// this data as small as level 3 and several times faster.
EncodedBatch EncodeBatch(const std::vector<core::Event>& events, int level = 1);
// The same from events already encoded with core::EncodeEvent (as the log holds them).
EncodedBatch EncodeBatchOfEncoded(std::span<const std::string> encoded_events, int level = 1);

// Decodes and validates every event (core::DecodeEvent). kCorruption for bytes that are not a
// batch, kTooLarge for a batch over the limits, kUnsupported for an unknown format version (and
// for the streamed versions 3 and 4, which only a BatchStreamDecoder can read).
Result<std::vector<core::Event>> DecodeBatch(std::string_view bytes,
                                             const BatchLimits& batch_limits,
                                             const core::Limits& event_limits);
// The same for the receive path (docs/replication.md#dead-letters): an event that does not decode
// or validate, or whose schema version is newer than `schema_version_max`, is parked
// (core::DecodeOrPark) and the others are returned beside it. The batch still fails as a whole
// when its framing or compression is broken, or when an event's dot cannot be read (not a
// meridian.wire.Event; origin above 31; seq 0).
Result<core::RemoteBatch> DecodeRemoteBatch(
    std::string_view bytes, const BatchLimits& batch_limits, const core::Limits& event_limits,
    uint32_t schema_version_max = core::kEventSchemaVersion);

// Streamed batches (format versions 3 and 4: the payloads of 1 and 2): every batch of one
// subscription is a flushed chunk of one zstd stream, so a small batch is compressed against
// the batches before it on that stream. A sender can then send small batches often (a short
// linger) without the bytes per event of compressing each alone. A chunk decodes only after
// every earlier chunk of its stream, in order: one encoder and one decoder per stream, each used
// by one thread at a time. The header also holds an XXH3 hash of the payload, checked after
// decompression (the zstd frame's own checksum comes only at its end, which a stream never
// reaches). The window is 128 KiB; with its buffers a stream's encoder holds about 0.95 MiB and
// its decoder about 0.6 MiB (MemoryBytes; measured in batch_codec_test).
class BatchStreamEncoder {
 public:
  explicit BatchStreamEncoder(int level = 1);
  ~BatchStreamEncoder();
  BatchStreamEncoder(const BatchStreamEncoder&) = delete;
  BatchStreamEncoder& operator=(const BatchStreamEncoder&) = delete;

  EncodedBatch Encode(std::span<const std::string> encoded_events);
  // What the zstd stream holds in memory (about 0.95 MiB once it has compressed a batch).
  size_t MemoryBytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct EventReading;  // how a payload's events are read (batch_codec.cc)

class BatchStreamDecoder {
 public:
  BatchStreamDecoder();
  ~BatchStreamDecoder();
  BatchStreamDecoder(const BatchStreamDecoder&) = delete;
  BatchStreamDecoder& operator=(const BatchStreamDecoder&) = delete;

  // Any format version: 1 and 2 as DecodeBatch does, 3 and 4 as the next chunk of the stream.
  // After an error the stream cannot go on: every later streamed batch is refused.
  Result<std::vector<core::Event>> Decode(std::string_view bytes, const BatchLimits& batch_limits,
                                          const core::Limits& event_limits);
  // The same, parking events as DecodeRemoteBatch does. A chunk with parked events decoded whole:
  // the stream goes on.
  Result<core::RemoteBatch> DecodeRemote(std::string_view bytes, const BatchLimits& batch_limits,
                                         const core::Limits& event_limits,
                                         uint32_t schema_version_max = core::kEventSchemaVersion);
  // What the zstd stream holds in memory (about 0.6 MiB once it has decoded a chunk).
  size_t MemoryBytes() const;

 private:
  struct State;
  Result<core::RemoteBatch> DecodeChunk(std::string_view bytes, const BatchLimits& batch_limits,
                                        const EventReading& reading);
  std::unique_ptr<State> state_;
};

}  // namespace meridian::replication
