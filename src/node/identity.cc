#include "node/identity.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace meridian::node {
namespace {

constexpr const char* kLockName = "NODE_LOCK";
// Not "IDENTITY": RocksDB keeps a file of that name in the same directory.
constexpr const char* kRecordName = "REGION_IDENTITY";

Status Unavailable(const std::string& message) {
  return Status(StatusCode::kUnavailable, message);
}

std::string Errno() {
  return std::strerror(errno);
}

uint64_t NewIncarnation() {
  std::random_device device;
  uint64_t value = 0;
  while (value == 0) value = (uint64_t{device()} << 32) ^ device();
  return value;
}

std::string Hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

struct Record {
  DataIdentity identity;
  uint64_t directory_inode = 0;
  uint64_t record_inode = 0;
};

Result<Record> ParseRecord(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    return Status(StatusCode::kInvalidArgument,
                  path + " does not parse: " + std::string(error.description()));
  }
  Record record;
  const auto deployment = table["deployment"].value<std::string>();
  const auto region = table["region"].value<std::string>();
  const auto region_id = table["region_id"].value<int64_t>();
  const auto incarnation = table["incarnation"].value<std::string>();
  const auto created = table["created_ms"].value<int64_t>();
  const auto directory_inode = table["directory_inode"].value<int64_t>();
  const auto record_inode = table["record_inode"].value<int64_t>();
  record.identity.rebuilt = table["rebuilt"].value_or(true);
  if (!deployment || !region || !region_id || !incarnation || !created || !directory_inode ||
      !record_inode || *region_id < 0 || *region_id > core::kRegionIdMax) {
    return Status(StatusCode::kInvalidArgument, path + " is not a complete identity record");
  }
  record.identity.deployment = *deployment;
  record.identity.region = *region;
  record.identity.region_id = static_cast<core::RegionId>(*region_id);
  record.identity.incarnation = std::strtoull(incarnation->c_str(), nullptr, 16);
  record.identity.created_ms = static_cast<uint64_t>(*created);
  record.directory_inode = static_cast<uint64_t>(*directory_inode);
  record.record_inode = static_cast<uint64_t>(*record_inode);
  if (record.identity.incarnation == 0) {
    return Status(StatusCode::kInvalidArgument, path + " holds no incarnation");
  }
  return record;
}

// Writes the record atomically (a new file, synced, renamed over the old one, the directory
// synced). The record names the new file's own inode, which the rename keeps.
Status WriteRecord(const std::string& directory, uint64_t directory_inode,
                   const DataIdentity& identity) {
  const std::string path = directory + "/" + kRecordName;
  const std::string temporary = path + ".new";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot write " + temporary + ": " + Errno());
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    return Unavailable("cannot stat " + temporary + ": " + Errno());
  }
  std::ostringstream text;
  text << "# The identity of this Meridian data directory, written by the node: do not edit or\n"
       << "# copy it. docs/operations.md#region-identity\n"
       << "deployment = " << toml::value<std::string>(identity.deployment) << "\n"
       << "region = " << toml::value<std::string>(identity.region) << "\n"
       << "region_id = " << identity.region_id << "\n"
       << "incarnation = \"" << Hex(identity.incarnation) << "\"\n"
       << "created_ms = " << identity.created_ms << "\n"
       << "rebuilt = " << (identity.rebuilt ? "true" : "false") << "\n"
       << "directory_inode = " << directory_inode << "\n"
       << "record_inode = " << info.st_ino << "\n";
  const std::string bytes = text.str();
  const bool written =
      ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  const bool synced = written && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return Unavailable("cannot write " + temporary + ": " + Errno());
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return Unavailable("cannot rename " + temporary + ": " + Errno());
  }
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

}  // namespace

std::string_view DataStartName(DataStart start) {
  switch (start) {
    case DataStart::kIntact:
      return "intact";
    case DataStart::kEmpty:
      return "empty";
    case DataStart::kCopied:
      return "copied";
  }
  return "?";
}

Result<std::unique_ptr<DataDirectory>> DataDirectory::Open(const std::string& path,
                                                           const std::string& deployment,
                                                           const std::string& region,
                                                           core::RegionId region_id,
                                                           uint64_t now_ms, bool bootstrap) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) return Unavailable("cannot create data_dir " + path + ": " + error.message());

  std::unique_ptr<DataDirectory> directory(new DataDirectory());
  const std::string lock_path = path + "/" + kLockName;
  directory->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (directory->lock_fd_ < 0) return Unavailable("cannot open " + lock_path + ": " + Errno());
  if (::flock(directory->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    std::string holder;
    std::ifstream(lock_path) >> holder;
    return Unavailable("data_dir " + path + " is in use by another process" +
                       (holder.empty() ? "" : " (pid " + holder + ")") +
                       "; one directory serves one node");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(directory->lock_fd_, 0) != 0 ||
      ::pwrite(directory->lock_fd_, pid.data(), pid.size(), 0) !=
          static_cast<ssize_t>(pid.size())) {
    return Unavailable("cannot write " + lock_path + ": " + Errno());
  }

  struct stat dir_info {};
  if (::stat(path.c_str(), &dir_info) != 0)
    return Unavailable("cannot stat " + path + ": " + Errno());
  directory->path_ = path;
  directory->directory_inode_ = dir_info.st_ino;
  const std::string record_path = path + "/" + kRecordName;
  struct stat record_info {};
  DataIdentity& identity = directory->identity_;
  if (::stat(record_path.c_str(), &record_info) != 0) {
    if (errno != ENOENT) return Unavailable("cannot stat " + record_path + ": " + Errno());
    directory->start_ = DataStart::kEmpty;
  } else {
    Result<Record> record = ParseRecord(record_path);
    if (!record.ok()) return record.status();
    const DataIdentity& found = record->identity;
    if (found.deployment != deployment) {
      return Status(StatusCode::kInvalidArgument, "data_dir " + path + " belongs to deployment '" +
                                                      found.deployment + "', not '" + deployment +
                                                      "' (node.deployment)");
    }
    if (found.region != region || found.region_id != region_id) {
      return Status(StatusCode::kInvalidArgument,
                    "data_dir " + path + " belongs to region '" + found.region + "' (id " +
                        std::to_string(found.region_id) + "), not '" + region + "' (id " +
                        std::to_string(region_id) + ")");
    }
    identity = found;
    directory->previous_incarnation_ = found.incarnation;
    const bool same_place =
        record->directory_inode == dir_info.st_ino && record->record_inode == record_info.st_ino;
    directory->start_ = same_place ? DataStart::kIntact : DataStart::kCopied;
  }
  if (directory->start_ != DataStart::kIntact) {
    identity.deployment = deployment;
    identity.region = region;
    identity.region_id = region_id;
    identity.incarnation = NewIncarnation();
    identity.created_ms = now_ms;
    identity.rebuilt = bootstrap && directory->start_ == DataStart::kEmpty;
    if (Status status = WriteRecord(path, dir_info.st_ino, identity); !status.ok()) return status;
    spdlog::info("data_dir {}: {}, new incarnation {} of region {}", path,
                 directory->start_ == DataStart::kEmpty ? "no identity record (new or emptied)"
                                                        : "a copy (restored or moved)",
                 Hex(identity.incarnation), region);
  }
  return directory;
}

Status DataDirectory::MarkRebuilt() {
  if (identity_.rebuilt) return Status::Ok();
  DataIdentity rebuilt = identity_;
  rebuilt.rebuilt = true;
  if (Status status = WriteRecord(path_, directory_inode_, rebuilt); !status.ok()) return status;
  identity_ = rebuilt;
  return Status::Ok();
}

DataDirectory::~DataDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

}  // namespace meridian::node
