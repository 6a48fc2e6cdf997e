// MemoryStore: the Store in memory, for tests, fuzzing and the simulator. Commit is atomic (one
// mutex) and "durable" until the object is destroyed; Crash-style tests copy it to model what
// survived.
#pragma once

#include <memory>
#include <string_view>

#include "storage/store.h"

namespace meridian::storage {

std::unique_ptr<Store> NewMemoryStore();
// A copy of a store made by NewMemoryStore as it is now (a backup, for the simulator's restores).
std::unique_ptr<Store> CopyMemoryStore(Store& store);
// Fault injection, as a disk fault or an operator's mistake would do it: loses the document
// record of `key` (lose) or overwrites its state with bytes that do not decode. Nothing else
// (the digest index, the position record) changes.
void DamageMemoryStore(Store& store, std::string_view key, bool lose);

}  // namespace meridian::storage
