// Fuzz target for every decoder of the core and of replication: events (Protobuf), replication
// batches (zstd, alone and streamed), version vectors and document states. Malformed bytes must give an error, never a crash, and whatever decodes must survive a
// round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/document.h"
#include "core/event.h"
#include "core/version_vector.h"
#include "replication/batch_codec.h"

using namespace meridian::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Limits limits;

  if (auto event = DecodeEvent(bytes, limits); event.ok()) {
    auto again = DecodeEvent(EncodeEvent(*event), limits);
    MERIDIAN_CHECK(again.ok() && *again == *event);
    // A decoded event must merge without breaking any invariant.
    DocumentState state;
    std::vector<Conflict> conflicts;
    state.Apply(*event, &conflicts);
    (void)state.Render();
  }

  if (auto batch = meridian::replication::DecodeBatch(bytes, {}, limits); batch.ok()) {
    auto again = meridian::replication::DecodeBatch(meridian::replication::EncodeBatch(*batch).bytes, {}, limits);
    MERIDIAN_CHECK(again.ok() && *again == *batch);
  }

  {
    // The bytes as a stream's chunks: split at the first byte's value, decoded in order by one
    // decoder. Whatever decodes must travel again through a fresh stream unchanged.
    namespace replication = meridian::replication;
    const size_t split = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]) % (bytes.size() + 1);
    replication::BatchStreamDecoder decoder;
    replication::BatchStreamEncoder encoder;
    replication::BatchStreamDecoder redecoder;
    for (std::string_view chunk : {bytes.substr(0, split), bytes.substr(split)}) {
      auto batch = decoder.Decode(chunk, {}, limits);
      if (!batch.ok()) break;
      std::vector<std::string> encoded;
      for (const Event& event : *batch) encoded.push_back(EncodeEvent(event));
      auto again = redecoder.Decode(encoder.Encode(encoded).bytes, {}, limits);
      MERIDIAN_CHECK(again.ok() && *again == *batch);
    }
  }

  if (auto vv = VersionVector::Decode(bytes); vv.ok()) {
    auto again = VersionVector::Decode(vv->Encode());
    MERIDIAN_CHECK(again.ok() && *again == *vv);
  }

  if (auto state = DocumentState::Decode(bytes); state.ok()) {
    auto again = DocumentState::Decode(state->Encode());
    MERIDIAN_CHECK(again.ok() && *again == *state);
    (void)state->Render();
  }
  return 0;
}
