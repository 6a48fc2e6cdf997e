// The specification of docs/semantics.md computed from a set of events alone, without the merge
// code: what every region must render once it has applied exactly those events. A value or an
// increment survives unless a write whose context covers it removed it (a set of that field, a
// replace or a delete of the document); a field renders the greatest (hlc, region id) surviving
// set plus the surviving increments. A bounded field (docs/semantics.md#bounded-counters) renders
// its winning declaration's min and shares plus every escrowed increment, whatever else was
// written to it; escrowed increments count nowhere else.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/event.h"

namespace meridian::sim {

class Oracle {
 public:
  explicit Oracle(std::vector<core::Event> events);
  // The canonical JSON the key must render, or nullopt when the document must not exist.
  std::optional<std::string> Render(const std::string& key) const;

 private:
  bool RemovedByDocument(const std::string& key, const core::Dot& dot) const;
  bool RemovedInField(const std::string& key, const std::string& field, const core::Dot& dot) const;
  std::optional<std::string> RenderField(const std::string& key, const std::string& field) const;

  std::vector<core::Event> events_;
};

}  // namespace meridian::sim
