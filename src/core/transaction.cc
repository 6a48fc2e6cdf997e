#include "core/transaction.h"

#include "core/document.h"

namespace meridian::core {

bool ConditionHolds(const Condition& condition, const std::optional<std::string>& rendered) {
  if (condition.exists && *condition.exists != rendered.has_value()) return false;
  if (condition.version) {
    return rendered.has_value() &&
           DocumentVersion(RenderedDigest(condition.key, rendered)) == *condition.version;
  }
  return true;
}

}  // namespace meridian::core
