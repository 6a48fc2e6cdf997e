#include "replication/batch_codec.h"

#include <zstd.h>

#include "core/check.h"
#include "core/version_vector.h"

namespace meridian::replication {
namespace {

constexpr uint8_t kBatchFormatVersion = 1;

}  // namespace

EncodedBatch EncodeBatch(const std::vector<core::Event>& events, int level) {
  std::vector<std::string> encoded;
  encoded.reserve(events.size());
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  return EncodeBatchOfEncoded(encoded, level);
}

EncodedBatch EncodeBatchOfEncoded(std::span<const std::string> encoded_events, int level) {
  std::string payload;
  for (const std::string& bytes : encoded_events) {
    core::PutVarint(&payload, bytes.size());
    payload += bytes;
  }
  EncodedBatch batch;
  batch.raw_bytes = payload.size();
  batch.bytes.push_back(static_cast<char>(kBatchFormatVersion));
  core::PutVarint(&batch.bytes, encoded_events.size());
  core::PutVarint(&batch.bytes, payload.size());
  const size_t header = batch.bytes.size();
  batch.bytes.resize(header + ZSTD_compressBound(payload.size()));
  const size_t compressed = ZSTD_compress(batch.bytes.data() + header, batch.bytes.size() - header,
                                          payload.data(), payload.size(), level);
  MERIDIAN_CHECK(!ZSTD_isError(compressed));  // only possible with a too small buffer
  batch.bytes.resize(header + compressed);
  return batch;
}

Result<std::vector<core::Event>> DecodeBatch(std::string_view bytes,
                                             const BatchLimits& batch_limits,
                                             const core::Limits& event_limits) {
  if (bytes.empty()) return Corruption("batch: empty");
  if (static_cast<uint8_t>(bytes.front()) != kBatchFormatVersion) {
    return Status(StatusCode::kUnsupported,
                  "batch: format version " + std::to_string(static_cast<uint8_t>(bytes.front())) +
                      " is not supported");
  }
  bytes.remove_prefix(1);
  uint64_t count = 0;
  uint64_t raw_size = 0;
  if (!core::GetVarint(&bytes, &count) || !core::GetVarint(&bytes, &raw_size)) {
    return Corruption("batch: truncated header");
  }
  if (count > batch_limits.events_max) {
    return TooLarge("batch: " + std::to_string(count) + " events; the limit is " +
                    std::to_string(batch_limits.events_max));
  }
  if (raw_size > batch_limits.raw_bytes_max) {
    return TooLarge("batch: " + std::to_string(raw_size) + " bytes uncompressed; the limit is " +
                    std::to_string(batch_limits.raw_bytes_max));
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

  std::vector<core::Event> events;
  events.reserve(count);
  std::string_view in = payload;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t size = 0;
    if (!core::GetVarint(&in, &size) || size > in.size())
      return Corruption("batch: truncated event");
    auto event = core::DecodeEvent(in.substr(0, size), event_limits);
    if (!event.ok()) return event.status();
    events.push_back(std::move(event).value());
    in.remove_prefix(size);
  }
  if (!in.empty()) return Corruption("batch: bytes after the last event");
  return events;
}

}  // namespace meridian::replication
