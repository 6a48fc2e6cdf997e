// MemoryStore: the Store in memory, for tests, fuzzing and the simulator. Commit is atomic (one
// mutex) and "durable" until the object is destroyed; Crash-style tests copy it to model what
// survived.
#pragma once

#include <memory>

#include "storage/store.h"

namespace meridian::storage {

std::unique_ptr<Store> NewMemoryStore();
// A copy of a store made by NewMemoryStore as it is now (a backup, for the simulator's restores).
std::unique_ptr<Store> CopyMemoryStore(Store& store);

}  // namespace meridian::storage
