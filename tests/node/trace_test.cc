// Tracing across regions (docs/operations.md#tracing): a write carrying a W3C traceparent in us,
// relayed to asia through eu (the us-asia link cut), shows every hop: its write span in us, and
// send, wire and apply spans in eu and in asia (asia's naming eu as the region that brought it);
// asia's watch carries the write's traceparent; every region exports its spans to an OTLP
// collector (a small HTTP server here) as OTLP/JSON.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "support/cluster.h"
#include "support/sse_stream.h"
#include "support/temp_dir.h"

namespace meridian::testing {
namespace {

using nlohmann::json;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kClientSpan[] = "00f067aa0ba902b7";

// A collector: appends the body of every POST, one per line, to a file; answers 200.
constexpr char kCollector[] = R"PY(
import http.server, sys
out = open(sys.argv[2], "a")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out.write(body.decode() + "\n"); out.flush()
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
)PY";

class Collector {
 public:
  explicit Collector(const TempDir& dir) : port_(FreePort()), file_(dir.path() + "/otlp.jsonl") {
    std::ofstream(dir.path() + "/collector.py") << kCollector;
    const std::string script = dir.path() + "/collector.py";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/usr/bin/python3", "python3", script.c_str(), std::to_string(port_).c_str(),
              file_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Collector() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  uint16_t port() const { return port_; }
  std::string received() const { return ReadFile(file_); }

 private:
  uint16_t port_;
  std::string file_;
  pid_t pid_ = -1;
};

TEST(TraceTest, AWriteRelayedThroughEuShowsEveryHopInEveryRegion) {
  TempDir dir;
  Collector collector(dir);
  ClusterOptions options;
  options.extra_toml += "\n[[homes]]\nprefix = \"acct/\"\nregion = \"eu\"\n";
  options.extra_toml += "\n[tracing]\notlp_endpoint = \"http://127.0.0.1:" +
                        std::to_string(collector.port()) + "/v1/traces\"\ninterval_ms = 100\n";
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  // asia gets us's events through eu only: once a write of us reached asia, eu relays them.
  cluster.Partition("us", "asia");
  HttpClient asia = cluster.Client("asia");
  HttpClient us = cluster.Client("us");
  ASSERT_EQ(us.Send("PUT", "/v1/docs/warm", R"({"n":0})").status, 200);
  ASSERT_TRUE(WaitFor([&] { return asia.Get("/v1/docs/warm").status == 200; },
                      std::chrono::seconds(20)))
      << cluster.Logs();
  ASSERT_TRUE(WaitFor(
      [&] {
        const json status = json::parse(asia.Get("/v1/status").body, nullptr, false);
        if (!status.is_object()) return false;
        for (const json& peer : status["peers"]) {
          if (peer["name"] == "us") return peer["relayed_by"] == "eu";
        }
        return false;
      },
      std::chrono::seconds(20)))
      << cluster.Logs();
  SseStream watch(cluster.node("asia").http_port());
  ASSERT_EQ(watch.Open("/v1/watch?prefix=traced"), 200);

  // A malformed traceparent is ignored, as W3C Trace Context asks: the write is not traced.
  const HttpResponse untraced =
      us.Request("PUT", "/v1/docs/plain", R"({"n":0})",
                 {{"Content-Type", "application/json"}, {"traceparent", "00-zz-00-01"}});
  ASSERT_EQ(untraced.status, 200) << untraced.body;
  EXPECT_EQ(untraced.body.find("traceparent"), std::string::npos) << untraced.body;

  const std::string traceparent = std::string("00-") + kTraceId + "-" + kClientSpan + "-01";
  const HttpResponse put =
      us.Request("PUT", "/v1/docs/traced:1", R"({"n":1})",
                 {{"Content-Type", "application/json"}, {"traceparent", traceparent}});
  ASSERT_EQ(put.status, 200) << put.body;
  const std::string written = json::parse(put.body).value("traceparent", "");
  // The same trace, with the write's own span (a child of the client's).
  ASSERT_EQ(written.size(), 55u) << put.body;
  EXPECT_EQ(written.substr(0, 36), std::string("00-") + kTraceId + "-");
  EXPECT_NE(written.substr(36, 16), kClientSpan);
  const std::string write_span = written.substr(36, 16);

  // asia's watch shows the change with the write's trace context.
  const auto change = watch.Next(std::chrono::seconds(20));
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(json::parse(change->data).value("traceparent", ""), written) << change->data;

  // Every hop, gathered from every region by us.
  json spans;
  ASSERT_TRUE(WaitFor(
      [&] {
        const json trace = json::parse(
            us.Get(std::string("/v1/traces/") + kTraceId + "?regions=all").body, nullptr, false);
        if (!trace.is_object()) return false;
        spans = trace["spans"];
        return spans.size() >= 7;
      },
      std::chrono::seconds(20)))
      << spans.dump();
  std::map<std::string, json> by;  // "region name"
  for (const json& span : spans) by[span["region"].get<std::string>() + " " + span["name"].get<std::string>()] = span;
  ASSERT_TRUE(by.contains("us meridian.write")) << spans.dump();
  EXPECT_EQ(by["us meridian.write"]["span_id"], write_span);
  EXPECT_EQ(by["us meridian.write"]["parent_span_id"], kClientSpan);
  for (const char* region : {"eu", "asia"}) {
    for (const char* name : {"meridian.send", "meridian.wire", "meridian.apply"}) {
      const std::string hop = std::string(region) + " " + name;
      ASSERT_TRUE(by.contains(hop)) << hop << "\n" << spans.dump();
      EXPECT_EQ(by[hop]["parent_span_id"], write_span) << hop;
      EXPECT_EQ(by[hop]["attributes"]["meridian.origin"], "us") << hop;
      EXPECT_EQ(by[hop]["attributes"]["meridian.event"], "us:3") << hop;
      EXPECT_GE(by[hop]["duration_ms"].get<double>(), 0) << hop;
    }
  }
  // The path: eu had it from us directly, asia through eu.
  EXPECT_EQ(by["eu meridian.wire"]["attributes"]["meridian.via"], "us");
  EXPECT_EQ(by["asia meridian.wire"]["attributes"]["meridian.via"], "eu");
  // The steps follow one another: sent, then on the wire, then applied.
  for (const char* region : {"eu", "asia"}) {
    const std::string r = region;
    EXPECT_EQ(by[r + " meridian.send"]["end_unix_nano"],
              by[r + " meridian.wire"]["start_unix_nano"]);
    EXPECT_EQ(by[r + " meridian.wire"]["end_unix_nano"],
              by[r + " meridian.apply"]["start_unix_nano"]);
  }

  // Each region exported its spans to the collector as OTLP/JSON: the seven, once each. (A line
  // is read once complete: the collector writes it whole, then its newline.)
  struct Exported {
    std::string region;
    json span;
  };
  const auto exported = [&] {
    std::vector<Exported> all;
    std::string received = collector.received();
    received.erase(received.rfind('\n') == std::string::npos ? 0 : received.rfind('\n') + 1);
    std::istringstream lines(received);
    std::string line;
    while (std::getline(lines, line)) {
      const json request = json::parse(line);
      for (const json& resource : request["resourceSpans"]) {
        std::string region;
        for (const json& attribute : resource["resource"]["attributes"]) {
          if (attribute["key"] == "meridian.region") region = attribute["value"]["stringValue"];
        }
        for (const json& scope : resource["scopeSpans"]) {
          for (const json& span : scope["spans"]) all.push_back({region, span});
        }
      }
    }
    return all;
  };
  ASSERT_TRUE(WaitFor([&] { return exported().size() >= 7; }, std::chrono::seconds(20)))
      << collector.received();
  const std::vector<Exported> spans_exported = exported();
  EXPECT_EQ(spans_exported.size(), 7u) << collector.received();
  std::set<std::string> named;
  for (const Exported& entry : spans_exported) {
    named.insert(entry.region + " " + entry.span["name"].get<std::string>());
    EXPECT_EQ(entry.span["traceId"], kTraceId);
    EXPECT_EQ(entry.span["spanId"].get<std::string>().size(), 16u);
    EXPECT_GE(std::stoull(entry.span["endTimeUnixNano"].get<std::string>()),
              std::stoull(entry.span["startTimeUnixNano"].get<std::string>()));
  }
  EXPECT_EQ(named,
            (std::set<std::string>{"us meridian.write", "eu meridian.send", "eu meridian.wire",
                                   "eu meridian.apply", "asia meridian.send", "asia meridian.wire",
                                   "asia meridian.apply"}));

  // A strong write sent to us for a key whose home is eu is forwarded there with its trace
  // context: eu writes it, traced as a child of the client's span.
  const std::string strong_id = "1bf92f3577b34da6a3ce929d0e0e4736";
  const HttpResponse strong =
      us.Request("PUT", "/v1/docs/acct%2F1?consistency=strong", R"({"balance":5})",
                 {{"Content-Type", "application/json"},
                  {"traceparent", "00-" + strong_id + "-" + std::string(kClientSpan) + "-01"}});
  ASSERT_EQ(strong.status, 200) << strong.body;
  EXPECT_EQ(json::parse(strong.body).value("traceparent", "").substr(0, 36),
            "00-" + strong_id + "-")
      << strong.body;
  const json strong_spans = json::parse(us.Get("/v1/traces/" + strong_id + "?regions=all").body);
  ASSERT_FALSE(strong_spans["spans"].empty()) << strong_spans.dump();
  EXPECT_EQ(strong_spans["spans"][0]["name"], "meridian.write") << strong_spans.dump();
  EXPECT_EQ(strong_spans["spans"][0]["region"], "eu") << strong_spans.dump();
  EXPECT_EQ(strong_spans["spans"][0]["parent_span_id"], kClientSpan);
}

}  // namespace
}  // namespace meridian::testing
