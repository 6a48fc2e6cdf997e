#include "core/version_vector.h"

#include <algorithm>

namespace meridian::core {

std::string RegionName(const std::map<RegionId, std::string>& names, RegionId id) {
  auto it = names.find(id);
  return it == names.end() ? "#" + std::to_string(id) : it->second;
}

std::string Dot::ToString() const {
  return std::to_string(origin) + ":" + std::to_string(seq);
}

std::string_view OrderingName(Ordering ordering) {
  switch (ordering) {
    case Ordering::kEqual:
      return "equal";
    case Ordering::kBefore:
      return "before";
    case Ordering::kAfter:
      return "after";
    case Ordering::kConcurrent:
      return "concurrent";
  }
  return "unknown";
}

VersionVector::VersionVector(std::initializer_list<Entry> entries) {
  for (const Entry& entry : entries) Set(entry.origin, std::max(entry.seq, Get(entry.origin)));
}

uint64_t VersionVector::Get(RegionId origin) const {
  for (const Entry& entry : entries_) {
    if (entry.origin == origin) return entry.seq;
    if (entry.origin > origin) break;
  }
  return 0;
}

void VersionVector::Set(RegionId origin, uint64_t seq) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), origin,
                             [](const Entry& entry, RegionId id) { return entry.origin < id; });
  if (it != entries_.end() && it->origin == origin) {
    if (seq == 0) {
      entries_.erase(it);
    } else {
      it->seq = seq;
    }
  } else if (seq != 0) {
    entries_.insert(it, Entry{origin, seq});
  }
}

bool VersionVector::Dominates(const VersionVector& other) const {
  auto mine = entries_.begin();
  for (const Entry& theirs : other.entries_) {
    while (mine != entries_.end() && mine->origin < theirs.origin) ++mine;
    if (mine == entries_.end() || mine->origin != theirs.origin || mine->seq < theirs.seq) {
      return false;
    }
  }
  return true;
}

void VersionVector::Merge(const VersionVector& other) {
  if (other.entries_.empty()) return;
  std::vector<Entry> merged;
  merged.reserve(entries_.size() + other.entries_.size());
  auto a = entries_.begin();
  auto b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->origin < b->origin)) {
      merged.push_back(*a++);
    } else if (a == entries_.end() || b->origin < a->origin) {
      merged.push_back(*b++);
    } else {
      merged.push_back(Entry{a->origin, std::max(a->seq, b->seq)});
      ++a;
      ++b;
    }
  }
  entries_ = std::move(merged);
}

void VersionVector::EraseCoveredBy(const VersionVector& other) {
  std::erase_if(entries_,
                [&other](const Entry& entry) { return other.Get(entry.origin) >= entry.seq; });
}

VersionVector VersionVector::Meet(const VersionVector& a, const VersionVector& b) {
  VersionVector result;
  for (const Entry& entry : a.entries_) {
    const uint64_t seq = std::min(entry.seq, b.Get(entry.origin));
    if (seq != 0) result.entries_.push_back(Entry{entry.origin, seq});
  }
  return result;
}

Ordering VersionVector::Compare(const VersionVector& other) const {
  const bool ge = Dominates(other);
  const bool le = other.Dominates(*this);
  if (ge && le) return Ordering::kEqual;
  if (le) return Ordering::kBefore;
  if (ge) return Ordering::kAfter;
  return Ordering::kConcurrent;
}

void PutVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

bool GetVarint(std::string_view* in, uint64_t* value) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    if (shift == 63 && byte > 1) return false;  // more than 64 bits
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

void VersionVector::EncodeTo(std::string* out) const {
  PutVarint(out, entries_.size());
  for (const Entry& entry : entries_) {
    out->push_back(static_cast<char>(entry.origin));
    PutVarint(out, entry.seq);
  }
}

std::string VersionVector::Encode() const {
  std::string out;
  EncodeTo(&out);
  return out;
}

Result<VersionVector> VersionVector::DecodeFrom(std::string_view* in) {
  uint64_t count = 0;
  if (!GetVarint(in, &count)) return Corruption("version vector: truncated entry count");
  if (count > kRegionIdMax + 1) return Corruption("version vector: more entries than regions");
  VersionVector vv;
  vv.entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (in->empty()) return Corruption("version vector: truncated entry");
    const auto origin = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    uint64_t seq = 0;
    if (!GetVarint(in, &seq)) return Corruption("version vector: truncated seq");
    if (origin > kRegionIdMax) return Corruption("version vector: region id above 31");
    if (seq == 0) return Corruption("version vector: zero entry");
    if (!vv.entries_.empty() && vv.entries_.back().origin >= origin) {
      return Corruption("version vector: entries not in ascending origin order");
    }
    vv.entries_.push_back(Entry{origin, seq});
  }
  return vv;
}

Result<VersionVector> VersionVector::Decode(std::string_view bytes) {
  auto vv = DecodeFrom(&bytes);
  if (vv.ok() && !bytes.empty()) return Corruption("version vector: trailing bytes");
  return vv;
}

std::string VersionVector::ToString() const {
  std::string text = "{";
  for (const Entry& entry : entries_) {
    if (text.size() > 1) text += ", ";
    text += std::to_string(entry.origin) + ":" + std::to_string(entry.seq);
  }
  return text + "}";
}

}  // namespace meridian::core
