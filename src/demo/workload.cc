#include "demo/workload.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>

#include "demo/processes.h"

namespace meridian::demo {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int kHotEvery = 5;  // every 5th tick of worker 0 is aimed at one item from all regions

std::string Path(int item, bool increment) {
  return "/v1/docs/" + client::EncodeKey(Workload::Key(item)) + (increment ? "/incr" : "");
}

}  // namespace

Workload::Workload(const Layout& layout, int rate)
    : layout_(layout),
      rate_(rate),
      workers_per_region_(std::clamp(rate / 75, 2, 8)),
      counters_(std::make_unique<Counters[]>(layout.regions.size())),
      stock_delta_(std::make_unique<std::atomic<int64_t>[]>(kItems)),
      stock_unanswered_(std::make_unique<std::atomic<uint64_t>[]>(kItems)) {}

std::string Workload::Key(int item) {
  char key[24];
  std::snprintf(key, sizeof key, "item:%04d", item + 1);
  return key;
}

bool Workload::Seed(std::string* error) {
  static const char* kNames[] = {"lamp", "desk",  "chair", "kettle", "mug",
                                 "rug",  "shelf", "stool", "vase",   "clock"};
  client::HttpClient writer = layout_.Client(0, std::chrono::seconds(10));
  std::string& session = seed_session_;  // threaded through the writes: the last covers all
  for (int item = 0; item < kItems; ++item) {
    const nlohmann::json doc = {
        {"name", std::string(kNames[item % 10]) + " #" + std::to_string(item + 1)},
        {"stock", kInitialStock},
        {"price", 10 + item * 7 % 90}};
    std::map<std::string, std::string> headers = {{"Content-Type", "application/json"}};
    if (!session.empty()) headers["Meridian-Session"] = session;
    client::HttpResponse response = writer.Request("PUT", Path(item, false), doc.dump(), headers);
    if (response.status != 200) {
      *error = "seeding " + Key(item) + " in " + layout_.regions[0].name +
               " failed: " + (response.status == 0 ? response.error : response.body);
      return false;
    }
    session = response.Header("meridian-session");
  }
  return true;
}

bool Workload::AwaitSeed(milliseconds timeout, std::string* error) {
  const std::string& session = seed_session_;
  const auto deadline = steady_clock::now() + timeout;
  for (size_t region = 1; region < layout_.regions.size(); ++region) {
    client::HttpClient reader = layout_.Client(region, std::chrono::seconds(10));
    for (;;) {
      client::HttpResponse response = reader.Request(
          "GET", Path(kItems - 1, false) + "?wait_ms=1000", "", {{"Meridian-Session", session}});
      if (response.status == 200) break;
      if (SignalsReceived() > 0) {
        *error = "interrupted";
        return false;
      }
      if (steady_clock::now() >= deadline) {
        *error = "the " + std::to_string(kItems) + " items written in " + layout_.regions[0].name +
                 " did not reach " + layout_.regions[region].name + " within " +
                 std::to_string(timeout.count() / 1000) + " s";
        return false;
      }
      if (response.status != 504) SleepUnlessSignalled(milliseconds(200));
    }
  }
  return true;
}

void Workload::Start() {
  start_ = steady_clock::now();
  for (int region = 0; region < static_cast<int>(layout_.regions.size()); ++region) {
    for (int worker = 0; worker < workers_per_region_; ++worker) {
      threads_.emplace_back([this, region, worker] { Run(region, worker); });
    }
  }
}

void Workload::Stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

// Worker w of every region ticks on one shared clock, so worker 0's hot ticks happen in every
// region at the same moment: two regions set the same item's price to different values (a
// conflict the merge resolves and records) while the third sells one of it.
Workload::Write Workload::HotWrite(int region, int64_t tick) const {
  const int64_t round = tick / kHotEvery;
  const int item = static_cast<int>(round * 7 % kItems);
  const int setter_a = static_cast<int>(round % 3);
  if (region != setter_a && region != (setter_a + 1) % 3) {
    return {"POST", item, R"({"stock":-1})", -1};
  }
  const int price = 20 + static_cast<int>(round % 30) + layout_.regions[region].id;
  return {"PATCH", item, R"({"price":)" + std::to_string(price) + "}", 0};
}

Workload::Write Workload::RandomWrite(uint32_t random) {
  const int item = static_cast<int>(random % kItems);
  const uint32_t kind = random / kItems % 100;
  if (kind < 65) return {"POST", item, R"({"stock":-1})", -1};  // a sale
  if (kind < 80) {                                              // a restock of 1 to 8
    const int amount = 1 + static_cast<int>(random / kItems / 100 % 8);
    return {"POST", item, R"({"stock":)" + std::to_string(amount) + "}", amount};
  }
  const int price = 5 + static_cast<int>(random / kItems / 100 % 95);
  return {"PATCH", item, R"({"price":)" + std::to_string(price) + "}", 0};
}

void Workload::Execute(int region, client::HttpClient& client, const Write& write) {
  const client::HttpResponse response =
      client.Send(write.method, Path(write.item, write.method == "POST"), write.body);
  Counters& counters = counters_[region];
  if (response.status == 200) {
    counters.acked.fetch_add(1);
    if (write.stock_delta != 0) stock_delta_[write.item].fetch_add(write.stock_delta);
  } else if (response.status == 0) {
    counters.unanswered.fetch_add(1);
    if (write.stock_delta != 0) stock_unanswered_[write.item].fetch_add(1);
  } else {
    counters.failed.fetch_add(1);
  }
}

void Workload::Run(int region, int worker) {
  client::HttpClient client = layout_.Client(region, std::chrono::seconds(10));
  std::mt19937 random(std::random_device{}());
  const auto interval =
      std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>(
          static_cast<double>(layout_.regions.size()) * workers_per_region_ / rate_));
  const auto first = start_ + interval * worker / workers_per_region_;
  for (int64_t tick = 0;; ++tick) {
    const auto at = first + interval * tick;
    if (steady_clock::now() - at > std::chrono::seconds(1)) {  // fell behind: skip, not burst
      tick = (steady_clock::now() - first) / interval;
      continue;
    }
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_until(lock, at, [this] { return stop_; })) return;
    }
    const bool hot = worker == 0 && tick % kHotEvery == 0;
    Execute(region, client, hot ? HotWrite(region, tick) : RandomWrite(random()));
  }
}

}  // namespace meridian::demo
