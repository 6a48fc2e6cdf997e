// RocksDbStore: the Store on RocksDB, one column family per kind of record (docs/storage.md).
#pragma once

#include <memory>
#include <string>

#include "storage/store.h"

namespace meridian::storage {

struct RocksDbOptions {
  std::string path;
  bool sync = true;  // fsync every Commit (the durability promise); off only in tests
  size_t block_cache_bytes = 64 << 20;
};

// Opens (creating when missing) the store at options.path.
Result<std::unique_ptr<Store>> OpenRocksDbStore(const RocksDbOptions& options);

}  // namespace meridian::storage
