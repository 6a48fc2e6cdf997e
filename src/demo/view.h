// The demo's live view: every region's /v1/status and the workload's acknowledgements, drawn as
// a screen redrawn in place on a terminal, or as one line per refresh otherwise.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "demo/layout.h"
#include "demo/workload.h"

namespace meridian::demo {

// One client per region, for status polls and scans.
std::vector<client::HttpClient> RegionClients(const Layout& layout);
// Every region's GET /v1/status; a null entry for a region that did not answer 200 with JSON.
std::vector<nlohmann::json> PollStatus(std::vector<client::HttpClient>& clients);
// The value at `path` inside `json` as display text; "—" when missing or null. Numbers that are
// not integers get `decimals` decimals.
std::string Show(const nlohmann::json& json, const std::vector<std::string>& path,
                 int decimals = 1);

class View {
 public:
  View(const Layout& layout, const Workload& workload, bool tty, int duration_s);
  // Polls every region and draws; `elapsed` since the workload started.
  void Update(std::chrono::steady_clock::duration elapsed);

 private:
  std::string Screen(const std::vector<nlohmann::json>& status, const std::vector<double>& rates,
                     int elapsed_s) const;
  std::string Line(const std::vector<nlohmann::json>& status, const std::vector<double>& rates,
                   int elapsed_s) const;
  // Origin -> receiver figures from the receiver's status: lag events, lag ms, p50, p99, link.
  std::vector<std::string> Pair(const nlohmann::json& receiver, const std::string& origin) const;

  const Layout& layout_;
  const Workload& workload_;
  bool tty_;
  int duration_s_;
  std::vector<client::HttpClient> clients_;
  std::vector<uint64_t> last_acked_;
  std::chrono::steady_clock::time_point last_update_;
};

}  // namespace meridian::demo
