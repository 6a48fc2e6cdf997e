#include "core/transaction.h"

#include <set>

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

std::vector<std::string> Transaction::Keys() const {
  std::vector<std::string> keys;
  std::set<std::string, std::less<>> seen;
  VisitKeys([&](const std::string& key, bool) {
    if (seen.insert(key).second) keys.push_back(key);
    return true;
  });
  return keys;
}

}  // namespace meridian::core
