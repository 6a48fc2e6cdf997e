// A region node's data directory: held by one process at a time, and recording which deployment
// and region it belongs to and its incarnation (docs/operations.md#region-identity).
//
// The identity record (`REGION_IDENTITY`, a small TOML file beside the store) names the deployment,
// the region and its id, and an incarnation: a random number that changes whenever the directory
// starts empty or as a copy of another (a restored backup). A copy is recognised because the
// record also names the inode numbers of the directory and of the record itself, which a copy
// (cp, tar, rsync, a restore) does not keep. A directory that starts empty or as a copy may be
// behind what the other regions hold of its own events, so the node rebuilds before it writes
// (docs/replication.md#rebuilding).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::node {

struct DataIdentity {
  std::string deployment;
  std::string region;
  core::RegionId region_id = 0;
  uint64_t incarnation = 0;  // never 0 for a directory
  uint64_t created_ms = 0;   // when this incarnation began (wall clock)
  // False from the start of an incarnation until the region has rebuilt its own events from its
  // peers (MarkRebuilt): a node that stops midway rebuilds again at its next start.
  bool rebuilt = true;
};

// How the directory was found.
enum class DataStart {
  kIntact,  // its own record, in place: it holds everything it acknowledged
  kEmpty,   // no record: a new or emptied directory (a new incarnation)
  kCopied,  // a record written elsewhere: a restored or moved copy (a new incarnation)
};
std::string_view DataStartName(DataStart start);

class DataDirectory {
 public:
  // Creates `path` when missing and locks it for this process (an flock on `path/NODE_LOCK`,
  // released when the process ends, however it ends). Then reads the identity record and checks
  // it against `deployment`, `region` and `region_id`; writes a new record (a new incarnation)
  // when there is none or it was copied. A new incarnation is not yet rebuilt, except an empty
  // directory opened with `bootstrap` (a new deployment: nothing to rebuild). Errors: kUnavailable
  // when another process holds the directory or it cannot be written; kInvalidArgument when it
  // belongs to another deployment or region, or its record does not parse.
  static Result<std::unique_ptr<DataDirectory>> Open(const std::string& path,
                                                     const std::string& deployment,
                                                     const std::string& region,
                                                     core::RegionId region_id, uint64_t now_ms,
                                                     bool bootstrap = false);
  ~DataDirectory();
  DataDirectory(const DataDirectory&) = delete;
  DataDirectory& operator=(const DataDirectory&) = delete;

  const DataIdentity& identity() const { return identity_; }
  DataStart start() const { return start_; }
  // The incarnation the record held before this start (0: none).
  uint64_t previous_incarnation() const { return previous_incarnation_; }
  // True while this incarnation has not yet rebuilt its own events from its peers.
  bool needs_rebuild() const { return !identity_.rebuilt; }
  // Records (durably) that the rebuild is done.
  Status MarkRebuilt();

 private:
  DataDirectory() = default;
  std::string path_;
  uint64_t directory_inode_ = 0;
  int lock_fd_ = -1;
  DataIdentity identity_;
  DataStart start_ = DataStart::kIntact;
  uint64_t previous_incarnation_ = 0;
};

}  // namespace meridian::node
