#include "demo/proof.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "demo/processes.h"
#include "demo/view.h"

namespace meridian::demo {
namespace {

using nlohmann::json;
using std::chrono::steady_clock;

constexpr size_t kDetailsMax = 5;  // differences listed per check

// `value[key]`, or null when `value` is not an object holding `key`.
const json& At(const json& value, const char* key) {
  static const json kNull;
  return value.is_object() && value.contains(key) ? value[key] : kNull;
}

// One region's documents under "item:", as scanned page by page.
struct Scan {
  std::string raw;                   // every page's body, concatenated: compared byte for byte
  std::map<std::string, json> docs;  // key -> document
  std::string error;                 // why the scan stopped early
};

Scan ScanItems(client::HttpClient& client) {
  Scan scan;
  std::string after;
  for (int page = 0; page < 10000; ++page) {
    std::string target = "/v1/docs?prefix=item:&limit=1000";
    if (!after.empty()) target += "&after=" + client::EncodeKey(after);
    const client::HttpResponse response = client.Get(target);
    const json body = json::parse(response.body, nullptr, false);
    if (response.status != 200 || !At(body, "items").is_array()) {
      scan.error = "scan answered " + std::to_string(response.status) + " " +
                   (response.status == 0 ? response.error : response.body);
      return scan;
    }
    scan.raw += response.body;
    for (const json& item : body["items"]) {
      const json& key = At(item, "key");
      if (key.is_string()) scan.docs[key.get<std::string>()] = At(item, "doc");
    }
    if (!At(body, "next").is_string()) return scan;
    after = body["next"].get<std::string>();
  }
  return scan;
}

std::string Frontier(const json& status) {
  if (!At(status, "frontier").is_object()) return "(no answer)";
  std::string out;
  for (const auto& [origin, seq] : status["frontier"].items()) {
    out += (out.empty() ? "" : " ") + origin + ":" + seq.dump();
  }
  return out.empty() ? "(empty)" : out;
}

bool FrontiersEqual(const std::vector<json>& status) {
  for (const json& region : status) {
    if (!At(region, "frontier").is_object() || region["frontier"] != status[0]["frontier"]) {
      return false;
    }
  }
  return true;
}

const json& Doc(const Scan& scan, const std::string& key) {
  static const json kMissing;
  auto it = scan.docs.find(key);
  return it == scan.docs.end() ? kMissing : it->second;
}

// The differences found, a few of each kind.
struct Differences {
  std::map<std::string, std::vector<std::string>> lines;
  std::map<std::string, int> more;
  void Add(const std::string& kind, const std::string& line) {
    auto& kept = lines[kind];
    if (kept.size() < kDetailsMax) {
      kept.push_back(line);
    } else {
      ++more[kind];
    }
  }
  void Print() const {
    if (lines.empty()) return;
    std::printf("\n  what differs:\n");
    for (const auto& [kind, kept] : lines) {
      for (const std::string& line : kept) std::printf("    %s\n", line.c_str());
      if (more.count(kind)) std::printf("    ... and %d more %s\n", more.at(kind), kind.c_str());
    }
  }
};

}  // namespace

bool ProveConvergence(const Layout& layout, const Workload& workload,
                      std::chrono::milliseconds timeout) {
  const auto& regions = layout.regions;
  const size_t n = regions.size();
  auto clients = RegionClients(layout);
  std::printf("\nworkload stopped; waiting up to %lld s for every region to apply every event\n",
              static_cast<long long>(timeout.count() / 1000));
  std::fflush(stdout);
  const auto began = steady_clock::now();
  const int interrupt_at = SignalsReceived() + 1;  // a Ctrl-C now cuts the wait short
  std::vector<json> status;
  for (;;) {
    status = PollStatus(clients);
    if (FrontiersEqual(status) || steady_clock::now() - began >= timeout) break;
    if (!SleepUnlessSignalled(std::chrono::milliseconds(200), interrupt_at)) break;
  }
  const bool same_frontier = FrontiersEqual(status);
  const double waited = std::chrono::duration<double>(steady_clock::now() - began).count();
  std::printf(same_frontier ? "every region applied the same events after %.1f s\n\n"
                            : "the frontiers still differ after %.1f s\n\n",
              waited);

  std::vector<std::string> failures;
  Differences details;
  if (!same_frontier) failures.push_back("frontiers differ");
  std::printf("  %-6s %-16s %9s   %s\n", "region", "digest", "documents", "frontier");
  for (size_t i = 0; i < n; ++i) {
    std::printf("  %-6s %-16s %9s   %s\n", regions[i].name.c_str(),
                Show(status[i], {"digest"}).c_str(), Show(status[i], {"documents"}).c_str(),
                Frontier(status[i]).c_str());
  }
  std::printf("\n");

  // Documents, byte for byte.
  std::vector<Scan> scans;
  for (size_t i = 0; i < n; ++i) scans.push_back(ScanItems(clients[i]));
  std::map<std::string, int> seen;  // key -> regions holding it
  for (const Scan& scan : scans) {
    for (const auto& [key, doc] : scan.docs) ++seen[key];
  }
  size_t identical = 0;
  for (const auto& [key, count] : seen) {
    bool same = count == static_cast<int>(n);
    for (size_t i = 1; same && i < n; ++i) same = Doc(scans[i], key) == Doc(scans[0], key);
    if (same) {
      ++identical;
      continue;
    }
    std::string line = key + " differs:";
    for (size_t i = 0; i < n; ++i) {
      const json& doc = Doc(scans[i], key);
      line += " " + regions[i].name + " " + (doc.is_null() ? "(missing)" : doc.dump());
    }
    details.Add("documents", line);
  }
  bool bytes_equal = true;
  for (size_t i = 0; i < n; ++i) {
    if (!scans[i].error.empty()) {
      failures.push_back(regions[i].name + " could not be scanned");
      details.Add("scans", regions[i].name + ": " + scans[i].error);
    }
    bytes_equal = bytes_equal && scans[i].error.empty() && scans[i].raw == scans[0].raw;
  }
  if (bytes_equal && identical == seen.size()) {
    std::printf("  %zu documents identical in %zu regions (scans equal byte for byte)\n", identical,
                n);
  } else {
    std::printf("  documents differ: %zu of %zu identical in all %zu regions\n", identical,
                seen.size(), n);
    failures.push_back("documents differ");
  }

  // Digests: the regions' own summary of all their documents.
  bool digests_equal = true;
  for (size_t i = 0; i < n; ++i) {
    const std::string digest = Show(status[i], {"digest"});
    digests_equal = digests_equal && digest != "—" && digest == Show(status[0], {"digest"});
  }
  std::printf(digests_equal ? "  digests equal: %s\n" : "  digests differ (first: %s)\n",
              Show(status[0], {"digest"}).c_str());
  if (!digests_equal) failures.push_back("digests differ");

  // Stock counters: every acknowledged sale and restock counted once, in every region.
  int exact = 0;
  for (int item = 0; item < Workload::kItems; ++item) {
    const std::string key = Workload::Key(item);
    const int64_t expected = Workload::kInitialStock + workload.stock_delta(item);
    bool ok = true;
    const int64_t delta = workload.stock_delta(item);
    std::string line = key + " stock: expected " + std::to_string(expected) + " (" +
                       std::to_string(Workload::kInitialStock) + (delta < 0 ? " - " : " + ") +
                       std::to_string(delta < 0 ? -delta : delta) + " acknowledged), found";
    for (size_t i = 0; i < n; ++i) {
      const json& doc = Doc(scans[i], key);
      const json& stock = At(doc, "stock");
      ok = ok && stock.is_number_integer() && stock.get<int64_t>() == expected;
      line += " " + regions[i].name + " " + (stock.is_null() ? "(none)" : stock.dump());
    }
    if (ok) {
      ++exact;
    } else {
      const uint64_t unanswered = workload.stock_unanswered(item);
      if (unanswered > 0) line += "; " + std::to_string(unanswered) + " unanswered stock writes";
      details.Add("stock counters", line);
    }
  }
  std::printf("  stock counters exact: %d/%d\n", exact, Workload::kItems);
  if (exact != Workload::kItems) failures.push_back("stock counters differ");

  details.Print();
  std::string verdict;
  for (const std::string& failure : failures) verdict += (verdict.empty() ? "" : ", ") + failure;
  if (failures.empty()) {
    std::printf("\nCONVERGED\n");
  } else {
    std::printf("\nNOT CONVERGED: %s\n", verdict.c_str());
  }
  std::fflush(stdout);
  return failures.empty();
}

}  // namespace meridian::demo
