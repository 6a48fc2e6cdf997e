// The pages of a re-seeding snapshot (docs/replication.md#re-seeding, docs/formats.md): documents'
// merge states, each a key and a DocumentState encoding, framed with varint lengths and
// compressed with zstd as one frame per page.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meridian/status.h"

namespace meridian::replication {

using StatePage = std::vector<std::pair<std::string, std::string>>;  // (key, state) in key order

struct EncodedPage {
  std::string bytes;     // the zstd frame
  size_t raw_bytes = 0;  // the framed page before compression
};
EncodedPage EncodeStatePage(const StatePage& page);

// Bounds a received page is checked against before anything is allocated for it.
struct StatePageLimits {
  size_t raw_bytes_max = 64 << 20;
  size_t documents_max = 100'000;
};
// Decodes a page; kCorruption when the frame or the framing is damaged, when it exceeds `limits`,
// or when its keys are not strictly increasing and after `after`.
Result<StatePage> DecodeStatePage(std::string_view frame, std::string_view after,
                                  const StatePageLimits& limits = {});

}  // namespace meridian::replication
