// The monitoring kit in ops/ (docs/monitoring.md): Prometheus alert rules and their unit tests, a
// scrape config, and a Grafana dashboard, checked with Debian's promtool against each other and
// against what a live node exports.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "support/cluster.h"
#include "support/temp_dir.h"

namespace meridian::testing {
namespace {

using nlohmann::json;

const std::string kOps = std::string(MERIDIAN_SOURCE_DIR) + "/ops";

// Runs a shell command; its output (stdout and stderr) and exit status.
std::string Shell(const std::string& command, int* code) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t got;
  while (pipe != nullptr && (got = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

void RequirePromtool() {
  int code = -1;
  Shell("promtool --version", &code);
  ASSERT_EQ(code, 0) << "promtool (Debian's prometheus package) is missing: scripts/install-deps";
}

// The metric families an expression names (a histogram's _bucket, _sum and _count as itself).
std::set<std::string> MetricsNamed(const std::string& text) {
  std::set<std::string> names;
  const std::regex name(R"(meridian_[a-z_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator();
       ++it) {
    std::string metric = it->str();
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string tail = suffix;
      if (metric.size() > tail.size() && metric.ends_with(tail)) {
        metric.resize(metric.size() - tail.size());
        break;
      }
    }
    names.insert(metric);
  }
  return names;
}

std::vector<std::string> DashboardExpressions() {
  const json dashboard = json::parse(ReadFile(kOps + "/grafana/meridian-dashboard.json"));
  std::vector<std::string> expressions;
  for (const json& panel : dashboard.at("panels")) {
    if (panel.at("type") == "row") continue;
    EXPECT_FALSE(panel.at("targets").empty()) << panel.at("title");
    for (const json& target : panel.at("targets")) {
      expressions.push_back(target.at("expr").get<std::string>());
    }
  }
  return expressions;
}

TEST(Monitoring, PromtoolAcceptsTheRulesTheirTestsAndTheScrapeConfig) {
  RequirePromtool();
  int code = -1;
  std::string out = Shell("promtool check rules " + kOps + "/prometheus/meridian-alerts.yml", &code);
  EXPECT_EQ(code, 0) << out;
  // The alerts fire, and stay quiet, where the unit tests say (cd: rule_files are relative).
  out = Shell("cd " + kOps + "/prometheus && promtool test rules meridian-alerts.test.yml", &code);
  EXPECT_EQ(code, 0) << out;
  out = Shell("promtool check config " + kOps + "/prometheus/prometheus.yml", &code);
  EXPECT_EQ(code, 0) << out;
}

TEST(Monitoring, TheDashboardIsWhatItsGeneratorWritesAndItsQueriesParse) {
  RequirePromtool();
  TempDir dir;
  int code = -1;
  const std::string generated =
      Shell("python3 " + kOps + "/grafana/dashboard.py > " + dir.path() + "/dashboard.json", &code);
  ASSERT_EQ(code, 0) << generated;
  EXPECT_EQ(json::parse(ReadFile(dir.path() + "/dashboard.json")),
            json::parse(ReadFile(kOps + "/grafana/meridian-dashboard.json")))
      << "ops/grafana/meridian-dashboard.json differs from what ops/grafana/dashboard.py writes";
  // Every panel's query as a recording rule, with Grafana's variables given values: promtool
  // parses each one.
  const std::vector<std::string> expressions = DashboardExpressions();
  ASSERT_GE(expressions.size(), 20u);
  std::ofstream rules(dir.path() + "/dashboard-rules.yml");
  rules << "groups:\n  - name: dashboard\n    rules:\n";
  for (size_t i = 0; i < expressions.size(); ++i) {
    std::string expr = std::regex_replace(expressions[i], std::regex(R"(\$__rate_interval)"), "1m");
    expr = std::regex_replace(expr, std::regex(R"(\$region)"), ".*");
    rules << "      - record: dashboard:query" << i << "\n        expr: " << json(expr).dump()
          << "\n";
  }
  rules.close();
  const std::string out = Shell("promtool check rules " + dir.path() + "/dashboard-rules.yml", &code);
  EXPECT_EQ(code, 0) << out;
}

TEST(Monitoring, ALiveNodesMetricsPassPromtoolAndHoldEveryMetricTheKitNames) {
  RequirePromtool();
  ClusterOptions options;
  options.regions = {"us", "eu"};
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  // A write replicated (visibility and arrival observed in eu) and a verification run there
  // (its counters by peer and result): the series that appear with their first event.
  HttpClient us = cluster.node("us").Client();
  ASSERT_EQ(us.Send("PUT", "/v1/docs/watched", R"({"n":1})").status / 100, 2);
  HttpClient eu = cluster.node("eu").Client();
  ASSERT_TRUE(WaitFor([&] { return eu.Get("/v1/docs/watched").status == 200; },
                      std::chrono::seconds(20)))
      << cluster.Logs();
  ASSERT_EQ(eu.Request("POST", "/v1/verify?peer=us").status / 100, 2);
  std::string metrics;
  ASSERT_TRUE(WaitFor(
      [&] {
        metrics = eu.Get("/metrics").body;
        return metrics.find("meridian_verify_comparisons_total{") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << metrics;

  TempDir dir;
  std::ofstream(dir.path() + "/metrics.txt") << metrics;
  int code = -1;
  const std::string out = Shell("promtool check metrics < " + dir.path() + "/metrics.txt", &code);
  EXPECT_EQ(code, 0) << out;

  std::set<std::string> exported;
  const std::regex type_line(R"(# TYPE (meridian_[a-z_]+) )");
  for (auto it = std::sregex_iterator(metrics.begin(), metrics.end(), type_line);
       it != std::sregex_iterator(); ++it) {
    exported.insert((*it)[1].str());
  }
  std::string kit = ReadFile(kOps + "/prometheus/meridian-alerts.yml");
  for (const std::string& expr : DashboardExpressions()) kit += "\n" + expr;
  const std::set<std::string> named = MetricsNamed(kit);
  EXPECT_GE(named.size(), 30u);
  for (const std::string& name : named) {
    EXPECT_TRUE(exported.contains(name)) << name << " is named in ops/ but not exported";
  }
}

}  // namespace
}  // namespace meridian::testing
