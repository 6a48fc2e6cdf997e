// Key encodings shared by the stores: big-endian integers so that byte order is numeric order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::storage {

inline void PutBigEndian64(std::string* out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

inline void PutBigEndian16(std::string* out, uint32_t value) {
  out->push_back(static_cast<char>((value >> 8) & 0xff));
  out->push_back(static_cast<char>(value & 0xff));
}

inline uint32_t GetBigEndian16(std::string_view in) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(in[0])) << 8) | static_cast<uint8_t>(in[1]);
}

inline uint64_t GetBigEndian64(std::string_view in) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < in.size(); ++i)
    value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

// log: origin (1 byte) then seq (8 bytes, big-endian).
inline std::string LogKey(core::Dot dot) {
  std::string key(1, static_cast<char>(dot.origin));
  PutBigEndian64(&key, dot.seq);
  return key;
}

inline std::string SequenceKey(uint64_t sequence) {
  std::string key;
  PutBigEndian64(&key, sequence);
  return key;
}

// The refusal of Store::TrimChanges and TrimConflicts asked to trim past the end of their log:
// the recorded start would then be ahead of records still to come.
inline Status TrimPastTheEnd(std::string_view log, uint64_t before, uint64_t last) {
  return InvalidArgument("cannot trim the " + std::string(log) + " log below " +
                         std::to_string(before) + ": its last number is " + std::to_string(last));
}

// The refusal of a commit that replaces a dead letter never appended (CommitBatch::
// dead_letter_updates): nothing of the batch is written.
inline Status UnknownDeadLetter(uint64_t id) {
  return InvalidArgument("cannot replace dead letter " + std::to_string(id) + ": there is none");
}

}  // namespace meridian::storage
