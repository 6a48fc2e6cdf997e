// The web console (/ui/, docs/console.md) as a person sees it: a deployment made by `meridian init
// --tls --auth`, pages loaded in headless Chromium (Debian's `chromium`) with their scripts run,
// and the rendered pages checked for what they must show. Screenshots are kept in
// console-screenshots/ beside the test binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/cli.h"
#include "support/node_process.h"
#include "support/temp_dir.h"

namespace meridian::testing {
namespace {

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int code = -1;
    ASSERT_EQ(std::system("command -v chromium >/dev/null 2>&1"), 0)
        << "chromium (Debian's package) is missing: scripts/install-deps";
    base_ = FreeBasePort({1, 2, 3, 101, 102, 103, 201, 202, 203});
    const std::string out = RunCli("init --regions us,eu,asia --tls --auth --dir " + dir_.path() +
                                       "/d --base-port " + std::to_string(base_),
                                   &code);
    ASSERT_EQ(code, 0) << out;
    token_ = Trimmed(ReadFile(dir_.path() + "/d/pki/token"));
    const char* names[] = {"us", "eu", "asia"};
    for (int i = 0; i < 3; ++i) {
      NodeOptions options;
      options.region = names[i];
      options.config_file = dir_.path() + "/d/" + names[i] + ".toml";
      options.http_port = static_cast<uint16_t>(base_ + 1 + i);
      options.https_ca_file = dir_.path() + "/d/pki/ca.pem";
      nodes_.push_back(std::make_unique<NodeProcess>(options));
    }
    for (auto& node : nodes_) ASSERT_TRUE(node->Start()) << node->log();
    // Beside the test binary, wherever it is run from.
    screenshots_ =
        std::filesystem::read_symlink("/proc/self/exe").parent_path() / "console-screenshots";
    std::filesystem::create_directories(screenshots_);
  }

  HttpClient Client(int index) {
    HttpClient client = nodes_[index]->Client();
    client.SetBearerToken(token_);
    return client;
  }

  std::string Url(const std::string& fragment) const {
    return "https://127.0.0.1:" + std::to_string(base_ + 1) + "/ui/" + fragment;
  }

  // Loads `url` in headless Chromium, runs its scripts for `budget_ms` of virtual time, and
  // returns the page as it was then; a screenshot of it goes to console-screenshots/<name>.png.
  std::string Render(const std::string& url, const std::string& name, int budget_ms = 4000) {
    const std::string flags =
        "chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
        "--ignore-certificate-errors --no-first-run --user-data-dir=" +
        dir_.path() + "/chromium --window-size=1400,1000 --virtual-time-budget=" +
        std::to_string(budget_ms) + " ";
    const std::string dom = dir_.path() + "/" + name + ".html";
    const int rendered = std::system(("timeout 60 " + flags + "--dump-dom '" + url + "' > " + dom +
                                      " 2>" + dir_.path() + "/chromium.log")
                                         .c_str());
    EXPECT_EQ(rendered, 0) << ReadFile(dir_.path() + "/chromium.log");
    const std::string png = (screenshots_ / (name + ".png")).string();
    std::filesystem::remove(png);
    EXPECT_EQ(std::system(("timeout 60 " + flags + "--screenshot=" + png + " '" + url +
                           "' >/dev/null 2>&1")
                              .c_str()),
              0);
    EXPECT_GT(std::filesystem::exists(png) ? std::filesystem::file_size(png) : 0, 10'000u) << png;
    return ReadFile(dom);
  }

  TempDir dir_;
  uint16_t base_ = 0;
  std::string token_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::filesystem::path screenshots_;
};

TEST_F(ConsoleTest, ItsFilesAreServedWithoutATokenAndHoldNoData) {
  HttpClient anonymous = nodes_[0]->Client();
  const HttpResponse page = anonymous.Get("/ui/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.Header("content-security-policy").find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(page.Header("x-frame-options"), "DENY");
  EXPECT_EQ(anonymous.Get("/ui/app.js").Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(anonymous.Get("/ui").status, 301);
  EXPECT_EQ(anonymous.Get("/ui/nothing.js").status, 404);
  EXPECT_EQ(Client(0).Request("POST", "/ui/").status, 405);
  // What it shows needs the token, as every other request.
  EXPECT_EQ(anonymous.Get("/v1/deployment").status, 401);
  EXPECT_EQ(anonymous.Get("/v1/docs/x/history").status, 401);
}

TEST_F(ConsoleTest, WithoutATokenItAsksForOne) {
  const std::string dom = Render(Url("#/deployment"), "login");
  EXPECT_NE(dom.find("<section id=\"login\" class=\"card\">"), std::string::npos) << dom;
  EXPECT_EQ(dom.find("equal digests"), std::string::npos) << dom;  // nothing was shown
}

TEST_F(ConsoleTest, TheDeploymentShowsEveryRegionAndPairLive) {
  HttpClient us = Client(0);
  ASSERT_EQ(us.Send("PUT", "/v1/docs/item:1", R"({"name":"lamp","stock":10})").status / 100, 2);
  HttpClient asia = Client(2);
  ASSERT_TRUE(WaitFor([&] { return asia.Get("/v1/docs/item:1").status == 200; },
                      std::chrono::seconds(20)));
  const std::string dom = Render(Url("#/deployment&token=" + token_), "deployment");
  // The token went into the tab's storage, out of the address; the login stays hidden.
  EXPECT_NE(dom.find("<section id=\"login\" class=\"card\" hidden=\"\">"), std::string::npos);
  EXPECT_NE(dom.find("region us of 3"), std::string::npos) << dom;
  EXPECT_NE(dom.find("converged: equal digests"), std::string::npos) << dom;
  // Six directed pairs, each link up; three regions serving; the map draws each region.
  EXPECT_EQ(Count(dom, "<td class=\"ok\">up</td>"), 6u) << dom;
  EXPECT_EQ(Count(dom, "\">serving</td>"), 3u) << dom;
  for (const char* name : {">us</text>", ">eu</text>", ">asia</text>"}) {
    EXPECT_NE(dom.find(name), std::string::npos) << name;
  }

  // asia stops: the console of us says so.
  nodes_[2]->Kill();
  const std::string down = Render(Url("#/deployment&token=" + token_), "deployment-asia-down");
  EXPECT_NE(down.find("a region is unreachable"), std::string::npos) << down;
  EXPECT_NE(down.find(">unreachable</td>"), std::string::npos) << down;
}

TEST_F(ConsoleTest, ADocumentWithWhatMadeItAndUserDataShownAsText) {
  HttpClient us = Client(0);
  HttpClient eu = Client(1);
  ASSERT_EQ(us.Send("PUT", "/v1/docs/item:1", R"({"name":"lamp","stock":10})").status / 100, 2);
  ASSERT_TRUE(WaitFor([&] { return eu.Get("/v1/docs/item:1").status == 200; },
                      std::chrono::seconds(20)));
  ASSERT_EQ(eu.Send("POST", "/v1/docs/item:1/incr", R"({"stock":-2})").status / 100, 2);
  // A document whose value is markup: shown as text, never run.
  ASSERT_EQ(us.Send("PUT", "/v1/docs/evil", R"({"html":"<img src=x onerror=alert(1)>"})").status /
                100,
            2);
  ASSERT_TRUE(WaitFor(
      [&] { return us.Get("/v1/docs/item:1").body.find("\"stock\":8") != std::string::npos; },
      std::chrono::seconds(20)));
  const std::string dom = Render(Url("#/documents/item%3A1&token=" + token_), "document");
  EXPECT_NE(dom.find("<h2 id=\"doc-key\">item:1</h2>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("\"stock\": 8"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<div>eu: -2</div>"), std::string::npos) << dom;  // increments by region
  EXPECT_NE(dom.find(">us:1</td>"), std::string::npos) << dom;          // the events
  EXPECT_NE(dom.find(">eu:1</td>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("increment {\"stock\":-2}"), std::string::npos) << dom;
  // The scan lists both keys.
  EXPECT_NE(dom.find(">evil</li>"), std::string::npos) << dom;

  const std::string evil = Render(Url("#/documents/evil&token=" + token_), "document-markup");
  EXPECT_NE(evil.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos) << evil;
  EXPECT_EQ(evil.find("<img"), std::string::npos) << evil;
}

TEST_F(ConsoleTest, TheWatchViewShowsChangesAsTheyHappen) {
  // Writes go on while the page watches; the page is read after a few seconds of them.
  std::atomic<bool> stop = false;
  std::thread writer([&] {
    HttpClient eu = Client(1);
    for (int i = 0; i < 400 && !stop; ++i) {
      eu.Send("PUT", "/v1/docs/live:" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}");
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  });
  const std::string dom = Render(Url("#/watch/live%3A&token=" + token_), "watch", 3000);
  stop = true;
  writer.join();
  EXPECT_NE(dom.find("<span id=\"watch-state\" class=\"badge ok\">live</span>"), std::string::npos)
      << dom;
  EXPECT_GE(Count(dom, ">live:"), 1u) << dom;
}

TEST_F(ConsoleTest, ATracedWriteShowsEveryRegionsSteps) {
  HttpClient us = Client(0);
  const std::string trace_id = "0af7651916cd43dd8448eb211c80319c";
  const HttpResponse put = us.Request("PUT", "/v1/docs/traced", R"({"n":1})",
                                      {{"Content-Type", "application/json"},
                                       {"traceparent", "00-" + trace_id + "-b7ad6b7169203331-01"}});
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string body = us.Get("/v1/traces/" + trace_id + "?regions=all").body;
        return Count(body, "\"meridian.apply\"") == 2;
      },
      std::chrono::seconds(20)));
  const std::string dom = Render(Url("#/trace/" + trace_id + "&token=" + token_), "trace");
  EXPECT_EQ(Count(dom, ">written (durable)</td>"), 1u) << dom;
  EXPECT_EQ(Count(dom, ">waited to be sent</td>"), 2u) << dom;
  EXPECT_EQ(Count(dom, ">on the wire</td>"), 2u) << dom;
  EXPECT_EQ(Count(dom, ">applied: readable</td>"), 2u) << dom;
  EXPECT_EQ(Count(dom, ">us (direct)</td>"), 6u) << dom;
  EXPECT_EQ(Count(dom, "<div class=\"bar"), 7u) << dom;
  // The document view links its traced event to the trace.
  const std::string doc = Render(Url("#/documents/traced&token=" + token_), "traced-document");
  EXPECT_NE(doc.find("href=\"#/trace/" + trace_id + "\""), std::string::npos) << doc;
}

TEST_F(ConsoleTest, OperationsShowVerificationAndRebuilding) {
  HttpClient us = Client(0);
  ASSERT_EQ(us.Request("POST", "/v1/verify").status, 202);
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string body = us.Get("/v1/verify").body;
        return Count(body, "\"compared\":true") == 2;
      },
      std::chrono::seconds(20)));
  const std::string dom = Render(Url("#/operations&token=" + token_), "operations");
  EXPECT_EQ(Count(dom, "\">identical</td>"), 2u) << dom;
  EXPECT_NE(dom.find("0 document(s) here marked damaged"), std::string::npos) << dom;
  EXPECT_EQ(Count(dom, "<td class=\"ok\">no</td>"), 3u) << dom;  // no region rebuilding
}

}  // namespace
}  // namespace meridian::testing
