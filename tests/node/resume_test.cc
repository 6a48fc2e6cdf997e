// The watch resume rules of api/service.cc, which the HTTP and gRPC front ends share, against a
// node on a memory store whose change log and event log are trimmed by hand: which resume points
// are served from where, and which are refused, with what.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "api/service.h"
#include "node/node.h"
#include "storage/memory_store.h"

namespace meridian::api {
namespace {

class ResumeRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node::NodeConfig config;
    config.region = "us";
    config.data_dir = "unused: the node is given its store";
    config.regions = {{"us", 1, "127.0.0.1:1", "127.0.0.1:2", ""},
                      {"eu", 2, "127.0.0.1:3", "127.0.0.1:4", ""}};
    auto opened = node::Node::Open(config, storage::NewMemoryStore());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    node_ = std::move(opened).value();
  }

  // Commits writes us:1 .. us:count, lsn 1 .. count.
  void Write(int count) {
    for (int i = 0; i < count; ++i) {
      std::promise<Result<node::Receipt>> done;
      const core::Operation op{core::OpKind::kSet, {{"i", std::to_string(i)}}, {}};
      ASSERT_TRUE(node_->SubmitWrite(
          node::WriteRequest("k" + std::to_string(i % 3), op),
          [&done](Result<node::Receipt> receipt) { done.set_value(std::move(receipt)); }));
      ASSERT_TRUE(done.get_future().get().ok());
    }
  }

  storage::Store& store() { return node_->store(); }

  static ::testing::AssertionResult IsRefused(const std::variant<uint64_t, ApiError>& answer,
                                              int status, const std::string& code,
                                              const std::string& oldest = "") {
    const auto* error = std::get_if<ApiError>(&answer);
    if (error == nullptr) {
      return ::testing::AssertionFailure() << "served from lsn " << std::get<uint64_t>(answer);
    }
    if (error->status != status || error->code != code || error->oldest != oldest) {
      return ::testing::AssertionFailure() << error->status << " " << error->code << " oldest '"
                                           << error->oldest << "': " << error->message;
    }
    return ::testing::AssertionSuccess() << error->message;
  }

  static ::testing::AssertionResult IsServedAfter(const std::variant<uint64_t, ApiError>& answer,
                                                  uint64_t lsn) {
    if (const auto* error = std::get_if<ApiError>(&answer)) {
      return ::testing::AssertionFailure() << error->code << ": " << error->message;
    }
    if (std::get<uint64_t>(answer) != lsn) {
      return ::testing::AssertionFailure() << "after lsn " << std::get<uint64_t>(answer);
    }
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<node::Node> node_;
};

TEST_F(ResumeRulesTest, FromIsServedOnlyWhileTheChangesAfterItAreKept) {
  Write(10);
  EXPECT_TRUE(IsServedAfter(ResumeLsn(*node_, "us:2"), 2)) << "nothing trimmed yet";
  ASSERT_TRUE(store().TrimChanges(6).ok());
  EXPECT_TRUE(IsRefused(ResumeLsn(*node_, "us:4"), 410, "resume_point_trimmed", "us:6"));
  EXPECT_TRUE(IsServedAfter(ResumeLsn(*node_, "us:5"), 5)) << "the next change, lsn 6, is kept";
  EXPECT_TRUE(IsServedAfter(ResumeLsn(*node_, "us:10"), 10));
  EXPECT_TRUE(IsRefused(ResumeLsn(*node_, "us:11"), 404, "unknown_event"));
  EXPECT_TRUE(IsRefused(ResumeLsn(*node_, "eu:1"), 404, "unknown_event"));
  // Retention removes us:1 .. us:7 from the event log: their positions are unknown.
  ASSERT_TRUE(store().TrimLog(1, 7).ok());
  EXPECT_TRUE(IsRefused(ResumeLsn(*node_, "us:7"), 410, "resume_point_trimmed", "us:6"));
  EXPECT_TRUE(IsServedAfter(ResumeLsn(*node_, "us:8"), 8));
}

TEST_F(ResumeRulesTest, SinceIsServedOnlyWhileEveryChangeItHasNotSeenIsKept) {
  Write(10);
  ASSERT_TRUE(store().TrimChanges(6).ok());
  const auto since = [&](uint64_t seq) {
    return SinceLsn(*node_, core::VersionVector{{1, seq}}, /*subscribed_lsn=*/10);
  };
  EXPECT_TRUE(IsRefused(since(4), 410, "resume_point_trimmed", "us:6"));
  EXPECT_TRUE(IsServedAfter(since(5), 5));
  EXPECT_TRUE(IsServedAfter(since(10), 10)) << "nothing unseen: live changes only";
  EXPECT_TRUE(
      IsRefused(SinceLsn(*node_, core::VersionVector(), 10), 410, "resume_point_trimmed", "us:6"))
      << "an origin missing from since is replayed from its first event, which is trimmed";
  // us:6 leaves the event log: where its change is cannot be told, and the change log was
  // trimmed, so it may be gone.
  ASSERT_TRUE(store().TrimLog(1, 7).ok());
  EXPECT_TRUE(IsRefused(since(5), 410, "resume_point_trimmed", "us:6"));
  EXPECT_TRUE(IsServedAfter(since(7), 7));
}

TEST_F(ResumeRulesTest, SinceBeyondTheEventLogReplaysAnUntrimmedChangeLog) {
  Write(4);
  ASSERT_TRUE(store().TrimLog(1, 2).ok());
  EXPECT_TRUE(IsServedAfter(SinceLsn(*node_, core::VersionVector{{1, 1}}, 4), 0))
      << "the whole change log, skipping what since covers";
  EXPECT_TRUE(IsRefused(ResumeLsn(*node_, "us:2"), 410, "resume_point_trimmed", "us:1"));
}

TEST_F(ResumeRulesTest, ABacklogTrimmedBeforeItIsReadEndsTheWatchInsteadOfSkipping) {
  Write(10);
  std::vector<node::Change> page;
  ASSERT_FALSE(ReadBacklog(*node_, 3, 10, "us:3", &page).has_value());
  ASSERT_EQ(page.size(), 7u);
  EXPECT_EQ(page.front().lsn, 4u);
  ASSERT_TRUE(store().TrimChanges(6).ok());
  const std::optional<ApiError> error = ReadBacklog(*node_, 3, 10, "us:3", &page);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "resume_point_trimmed");
  EXPECT_EQ(error->oldest, "us:6");
  EXPECT_NE(error->message.find("us:3"), std::string::npos) << error->message;
  EXPECT_TRUE(page.empty()) << "nothing after the gap is handed out";
  ASSERT_FALSE(ReadBacklog(*node_, 5, 7, "us:5", &page).has_value());
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page.back().lsn, 7u);
}

// What a watch does with each change it reads: an event moves the resume point and is sent
// unless the client has seen it or it is outside the prefix; a re-seed's merged document (no
// event) is sent within the prefix, as "merged", and leaves the resume point where it was.
TEST_F(ResumeRulesTest, AMergedChangeIsSentWithoutMovingTheResumePoint) {
  const node::Region& region = node_->region();
  const node::Change event{"k1", R"({"i":1})", core::Dot{1, 7}, 0, 7};
  const node::Change merged{"k2", R"({"i":2})", core::Dot{}, 0, 8};
  std::string last_event = "us:3";
  EXPECT_TRUE(WatchSends(region, event, "k", core::VersionVector{{1, 6}}, &last_event));
  EXPECT_EQ(last_event, "us:7");
  EXPECT_FALSE(WatchSends(region, event, "k", core::VersionVector{{1, 7}}, &last_event));
  EXPECT_FALSE(WatchSends(region, event, "x", {}, &last_event));
  EXPECT_TRUE(WatchSends(region, merged, "k", core::VersionVector{{1, 9}}, &last_event));
  EXPECT_FALSE(WatchSends(region, merged, "x", {}, &last_event));
  EXPECT_EQ(last_event, "us:7");
  EXPECT_EQ(ChangeJson(region, merged),
            R"({"key":"k2","doc":{"i":2},"event":null,"merged":true,"hlc":")" + core::FormatHlc(0) +
                R"("})");
}

}  // namespace
}  // namespace meridian::api
