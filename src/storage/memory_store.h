// MemoryStore: the Store in memory, for tests, fuzzing and the simulator. Commit is atomic (one
// mutex) and "durable" until the object is destroyed; Crash-style tests copy it to model what
// survived.
#pragma once

#include <memory>

#include "storage/store.h"

namespace meridian::storage {

std::unique_ptr<Store> NewMemoryStore();

}  // namespace meridian::storage
