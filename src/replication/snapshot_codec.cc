#include "replication/snapshot_codec.h"

#include <zstd.h>

#include "core/check.h"
#include "core/version_vector.h"

namespace meridian::replication {
namespace {

Status Corrupt(const std::string& what) {
  return Status(StatusCode::kCorruption, "snapshot page: " + what);
}

bool GetBytes(std::string_view* in, std::string* out) {
  uint64_t size = 0;
  if (!core::GetVarint(in, &size) || size > in->size()) return false;
  out->assign(in->substr(0, size));
  in->remove_prefix(size);
  return true;
}

}  // namespace

EncodedPage EncodeStatePage(const StatePage& page) {
  std::string raw;
  for (const auto& [key, state] : page) {
    core::PutVarint(&raw, key.size());
    raw += key;
    core::PutVarint(&raw, state.size());
    raw += state;
  }
  EncodedPage encoded;
  encoded.raw_bytes = raw.size();
  encoded.bytes.resize(ZSTD_compressBound(raw.size()));
  const size_t size =
      ZSTD_compress(encoded.bytes.data(), encoded.bytes.size(), raw.data(), raw.size(), 1);
  MERIDIAN_CHECK(!ZSTD_isError(size));
  encoded.bytes.resize(size);
  return encoded;
}

Result<StatePage> DecodeStatePage(std::string_view frame, std::string_view after,
                                  const StatePageLimits& limits) {
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Corrupt("not a zstd frame with its size");
  }
  if (size > limits.raw_bytes_max) return Corrupt("larger than the bound");
  std::string raw(size, '\0');
  const size_t got = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
  if (ZSTD_isError(got) || got != size) return Corrupt("does not decompress");
  StatePage page;
  std::string_view in = raw;
  std::string previous(after);
  while (!in.empty()) {
    if (page.size() == limits.documents_max) return Corrupt("too many documents");
    std::pair<std::string, std::string> entry;
    if (!GetBytes(&in, &entry.first) || !GetBytes(&in, &entry.second)) {
      return Corrupt("truncated");
    }
    if (entry.first.empty() || (!(page.empty() && after.empty()) && entry.first <= previous)) {
      return Corrupt("keys out of order");
    }
    previous = entry.first;
    page.push_back(std::move(entry));
  }
  return page;
}

}  // namespace meridian::replication
