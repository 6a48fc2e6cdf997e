// DataDirectory: one process per data directory, and the identity record that tells a new, an
// intact and a copied directory apart and refuses one of another deployment or region.
#include "node/identity.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

namespace meridian::node {
namespace {

Result<std::unique_ptr<DataDirectory>> OpenUs(const std::string& path) {
  return DataDirectory::Open(path, "prod", "us", 1, 1000);
}

TEST(DataDirectory, ANewDirectoryGetsAnIncarnationThatAReopenKeeps) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  uint64_t incarnation = 0;
  {
    auto opened = OpenUs(path);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ((*opened)->start(), DataStart::kEmpty);
    EXPECT_EQ((*opened)->previous_incarnation(), 0u);
    incarnation = (*opened)->identity().incarnation;
    EXPECT_NE(incarnation, 0u);
    EXPECT_EQ((*opened)->identity().deployment, "prod");
  }
  auto reopened = OpenUs(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->start(), DataStart::kIntact);
  EXPECT_EQ((*reopened)->identity().incarnation, incarnation);
}

// A new incarnation is rebuilt only once MarkRebuilt says so, however often it restarts before;
// an empty directory of a new deployment (bootstrap) has nothing to rebuild, a copy always has.
TEST(DataDirectory, ANewIncarnationNeedsARebuildUntilItIsMarkedDone) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  {
    auto opened = OpenUs(path);
    ASSERT_TRUE(opened.ok());
    EXPECT_TRUE((*opened)->needs_rebuild());
  }
  {
    auto restarted = OpenUs(path);  // stopped midway: still to rebuild
    ASSERT_TRUE(restarted.ok());
    EXPECT_EQ((*restarted)->start(), DataStart::kIntact);
    EXPECT_TRUE((*restarted)->needs_rebuild());
    ASSERT_TRUE((*restarted)->MarkRebuilt().ok());
    EXPECT_FALSE((*restarted)->needs_rebuild());
  }
  auto done = OpenUs(path);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)->start(), DataStart::kIntact);
  EXPECT_FALSE((*done)->needs_rebuild());
  done->reset();

  const std::string copy = dir.path() + "/copy";
  std::filesystem::copy(path, copy, std::filesystem::copy_options::recursive);
  auto copied = DataDirectory::Open(copy, "prod", "us", 1, 1000, /*bootstrap=*/true);
  ASSERT_TRUE(copied.ok());
  EXPECT_TRUE((*copied)->needs_rebuild());  // bootstrap counts only for an empty directory

  auto bootstrapped = DataDirectory::Open(dir.path() + "/new", "prod", "us", 1, 1000, true);
  ASSERT_TRUE(bootstrapped.ok());
  EXPECT_EQ((*bootstrapped)->start(), DataStart::kEmpty);
  EXPECT_FALSE((*bootstrapped)->needs_rebuild());
}

TEST(DataDirectory, ADirectoryHeldByAnotherOpenIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  auto first = OpenUs(path);
  ASSERT_TRUE(first.ok());
  auto second = OpenUs(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use by another process"), std::string::npos)
      << second.status().message();
  first->reset();  // released
  EXPECT_TRUE(OpenUs(path).ok());
}

TEST(DataDirectory, ACopyIsRecognisedAndGetsANewIncarnation) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  uint64_t incarnation = 0;
  {
    auto opened = OpenUs(path);
    ASSERT_TRUE(opened.ok());
    incarnation = (*opened)->identity().incarnation;
  }
  const std::string copy = dir.path() + "/restored";
  std::filesystem::copy(path, copy, std::filesystem::copy_options::recursive);
  auto restored = OpenUs(copy);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ((*restored)->start(), DataStart::kCopied);
  EXPECT_EQ((*restored)->previous_incarnation(), incarnation);
  EXPECT_NE((*restored)->identity().incarnation, incarnation);
  restored->reset();
  // The copy's new record is its own from now on.
  auto again = OpenUs(copy);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->start(), DataStart::kIntact);
}

TEST(DataDirectory, ADirectoryOfAnotherDeploymentOrRegionIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  ASSERT_TRUE(OpenUs(path).ok());
  auto other_region = DataDirectory::Open(path, "prod", "eu", 2, 1000);
  ASSERT_FALSE(other_region.ok());
  EXPECT_EQ(other_region.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other_region.status().message().find("belongs to region 'us'"), std::string::npos);
  auto other_id = DataDirectory::Open(path, "prod", "us", 3, 1000);
  EXPECT_FALSE(other_id.ok());
  auto other_deployment = DataDirectory::Open(path, "staging", "us", 1, 1000);
  ASSERT_FALSE(other_deployment.ok());
  EXPECT_NE(other_deployment.status().message().find("belongs to deployment 'prod'"),
            std::string::npos);
}

TEST(DataDirectory, ADamagedRecordIsRefusedNotReplaced) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  ASSERT_TRUE(OpenUs(path).ok());
  std::ofstream(path + "/REGION_IDENTITY") << "deployment = \"prod\"\nregion = ";
  auto damaged = OpenUs(path);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace meridian::node
