// The write queue's leaders (node/write_queue.h): a lone write submitted with a defer is
// committed by the submitting thread itself, at its next turn; a larger group goes to the commit
// thread; and a deferred turn that finds another leader at work leaves the write to that one.
#include "node/write_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/memory_store.h"

namespace meridian::node {
namespace {

using namespace std::chrono_literals;

struct FixedClock : core::PhysicalClock {
  uint64_t NowMs() override { return 1'700'000'000'000; }
};

WriteRequest Put(const std::string& key) {
  core::Operation op;
  op.kind = core::OpKind::kReplace;
  op.fields.push_back({"value", "1"});
  return WriteRequest(key, std::move(op));
}

class WriteQueueTest : public ::testing::Test {
 protected:
  // What the submitting thread was asked to run at its next turn (an I/O loop's post).
  WriteQueue::Defer Defer() {
    return [this](std::function<void()> lead) { turns_.push_back(std::move(lead)); };
  }
  // Runs this thread's next turns, as its event loop would.
  void RunTurns() {
    while (!turns_.empty()) {
      auto turn = std::move(turns_.front());
      turns_.erase(turns_.begin());
      turn();
    }
  }
  // A submitted write's outcome and the thread that answered it.
  struct Answer {
    std::promise<std::thread::id> thread;
    std::future<std::thread::id> answered = thread.get_future();
    bool ok = false;
  };
  WriteQueue::Callback Record(Answer* answer) {
    return [answer](Result<Receipt> outcome) {
      answer->ok = outcome.ok();
      answer->thread.set_value(std::this_thread::get_id());
    };
  }

  FixedClock clock_;
  std::unique_ptr<storage::Store> store_ = storage::NewMemoryStore();
  Region region_{1, {{1, "us"}, {2, "eu"}}, store_.get(), &clock_, core::Limits{}, 500};
  std::vector<std::function<void()>> turns_;
};

TEST_F(WriteQueueTest, ALoneWriteIsCommittedByTheThreadThatSubmittedIt) {
  WriteQueue queue(&region_, 256, 1024, nullptr);
  Answer answer;
  ASSERT_TRUE(queue.Submit(Put("a"), Record(&answer), Defer()));
  ASSERT_EQ(turns_.size(), 1u);  // one turn scheduled, not yet run: nothing answered
  EXPECT_EQ(answer.answered.wait_for(50ms), std::future_status::timeout);
  RunTurns();
  ASSERT_EQ(answer.answered.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(answer.answered.get(), std::this_thread::get_id());
  EXPECT_TRUE(answer.ok);
}

TEST_F(WriteQueueTest, AGroupGoesToTheCommitThread) {
  WriteQueue queue(&region_, 256, 1024, nullptr);
  Answer first;
  Answer second;
  ASSERT_TRUE(queue.Submit(Put("a"), Record(&first), Defer()));
  ASSERT_TRUE(queue.Submit(Put("b"), Record(&second), Defer()));
  EXPECT_EQ(turns_.size(), 1u);  // one turn per thread, however many writes
  RunTurns();
  ASSERT_EQ(first.answered.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(second.answered.wait_for(10s), std::future_status::ready);
  EXPECT_NE(first.answered.get(), std::this_thread::get_id());
  EXPECT_NE(second.answered.get(), std::this_thread::get_id());
  EXPECT_TRUE(first.ok && second.ok);
}

TEST_F(WriteQueueTest, ATurnThatFindsAnotherLeaderLeavesTheWriteToIt) {
  WriteQueue queue(&region_, 256, 1024, nullptr);
  // The commit thread leads, held in a task until released.
  std::mutex mutex;
  std::condition_variable changed;
  bool running = false;
  bool release = false;
  ASSERT_TRUE(queue.SubmitTask([&] {
    std::unique_lock lock(mutex);
    running = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
  }));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, 10s, [&] { return running; }));
  }
  Answer answer;
  ASSERT_TRUE(queue.Submit(Put("a"), Record(&answer), Defer()));
  RunTurns();  // finds the commit thread leading: commits nothing
  EXPECT_EQ(answer.answered.wait_for(50ms), std::future_status::timeout);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  // The commit thread, done with its task, takes the write.
  ASSERT_EQ(answer.answered.wait_for(10s), std::future_status::ready);
  EXPECT_NE(answer.answered.get(), std::this_thread::get_id());
  EXPECT_TRUE(answer.ok);
}

TEST_F(WriteQueueTest, WithoutADeferTheCommitThreadCommits) {
  WriteQueue queue(&region_, 256, 1024, nullptr);
  Answer answer;
  ASSERT_TRUE(queue.Submit(Put("a"), Record(&answer)));
  EXPECT_TRUE(turns_.empty());
  ASSERT_EQ(answer.answered.wait_for(10s), std::future_status::ready);
  EXPECT_NE(answer.answered.get(), std::this_thread::get_id());
  EXPECT_TRUE(answer.ok);
}

}  // namespace
}  // namespace meridian::node
