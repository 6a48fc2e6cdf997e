// The demo's workload: an inventory of items written from every region at once (sales,
// restocks, price changes), paced to a total rate, with some writes aimed at the same item from
// several regions at the same moment. It keeps, per item, the sum of the stock deltas the
// regions acknowledged, which the proof checks every region's counters against.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "demo/layout.h"

namespace meridian::demo {

class Workload {
 public:
  static constexpr int kItems = 50;
  static constexpr int kInitialStock = 100;

  Workload(const Layout& layout, int rate);
  ~Workload() { Stop(); }

  // Creates every item from the first region; false with *error when a write fails.
  bool Seed(std::string* error);
  // Waits (up to `timeout`, or until a signal) until every region has every item; false with
  // *error naming the first region that does not.
  bool AwaitSeed(std::chrono::milliseconds timeout, std::string* error);
  void Start();
  void Stop();

  static std::string Key(int item);  // "item:0001"
  // Writes per region: answered 200, answered otherwise, or not answered at all (such a write
  // may or may not have been made).
  uint64_t acked(int region) const { return counters_[region].acked.load(); }
  uint64_t failed(int region) const { return counters_[region].failed.load(); }
  uint64_t unanswered(int region) const { return counters_[region].unanswered.load(); }
  // The sum of acknowledged stock deltas of `item`, and its unanswered stock writes.
  int64_t stock_delta(int item) const { return stock_delta_[item].load(); }
  uint64_t stock_unanswered(int item) const { return stock_unanswered_[item].load(); }

 private:
  struct Counters {
    std::atomic<uint64_t> acked{0}, failed{0}, unanswered{0};
  };
  std::string seed_session_;  // covers every seed write
  struct Write {
    std::string method;  // PATCH, or POST for an increment
    int item = 0;
    std::string body;
    int stock_delta = 0;  // for an increment
  };
  void Run(int region, int worker);
  Write HotWrite(int region, int64_t tick) const;
  static Write RandomWrite(uint32_t random);
  void Execute(int region, client::HttpClient& client, const Write& write);

  const Layout& layout_;
  int rate_;
  int workers_per_region_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;  // Stop()
  bool stop_ = false;
  std::vector<std::thread> threads_;
  std::unique_ptr<Counters[]> counters_;
  std::unique_ptr<std::atomic<int64_t>[]> stock_delta_;
  std::unique_ptr<std::atomic<uint64_t>[]> stock_unanswered_;
};

}  // namespace meridian::demo
