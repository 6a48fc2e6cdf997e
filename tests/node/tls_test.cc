// The HTTP API over TLS ([tls], docs/security.md) against real `meridian start` processes: HTTPS
// to the client library and the CLI with the deployment's CA, plaintext and unknown CAs refused,
// SSE and WebSocket watches over TLS, certificate rotation without a restart (files replaced,
// and SIGHUP), and the server's hardening: the connection limit enforced at accept, a WebSocket
// watcher that stops reading dropped, a watcher's buffer bounded in bytes. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/run_one.h"
#include "meridian/client.h"
#include "net/tls_context.h"
#include "support/certs.h"
#include "support/http_client.h"
#include "support/node_process.h"
#include "support/sse_stream.h"
#include "support/temp_dir.h"
#include "support/tokens.h"

namespace meridian::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

client::TlsContext ClientTls(const std::string& ca_file) {
  auto context = net::LoadClientContext(ca_file);
  if (!context.ok()) throw std::runtime_error(context.status().message());
  return std::move(context).value();
}

// Replaces `path` by a new file (another inode) with `text`, atomically.
void ReplaceFile(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".new";
  std::ofstream(temporary, std::ios::binary | std::ios::trunc) << text;
  std::filesystem::rename(temporary, path);
}

std::string TlsToml(const std::string& cert, const std::string& key, const std::string& ca) {
  return "[tls]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\nca_file = \"" + ca +
         "\"\n";
}

// A WebSocket watch over TLS (or plaintext without a context): Beast's client, each operation
// bounded by the TCP stream's timeout.
class WssWatch {
 public:
  explicit WssWatch(client::TlsContext tls) : tls_(std::move(tls)), ws_(io_, *tls_) {}

  bool Open(uint16_t port, const std::string& target) {
    auto& lowest = beast::get_lowest_layer(ws_);
    lowest.expires_after(seconds(10));
    error_ = Run([&](auto handler) {
      lowest.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                           [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (error_) return false;
    if (!net::PrepareClientConnection(ws_.next_layer().native_handle(), "127.0.0.1")) return false;
    error_ = Run([&](auto handler) {
      ws_.next_layer().async_handshake(asio::ssl::stream_base::client,
                                       [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (error_) return false;
    error_ = Run([&](auto handler) {
      ws_.async_handshake("127.0.0.1:" + std::to_string(port), target,
                          [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    return !error_;
  }

  std::optional<std::string> Read() {
    beast::flat_buffer buffer;
    beast::get_lowest_layer(ws_).expires_after(seconds(10));
    error_ = Run([&](auto handler) { ws_.async_read(buffer, handler); });
    if (error_) return std::nullopt;
    return beast::buffers_to_string(buffer.data());
  }

  beast::error_code error() const { return error_; }

 private:
  template <typename Start>
  beast::error_code Run(Start start) {
    return client::RunOne(io_, std::move(start));
  }

  client::TlsContext tls_;
  asio::io_context io_;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  beast::error_code error_;
};

// One region node with [tls], its certificate from the CA `ca`.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_.path() + "/ca", "ca");
    const TestCert cert = MakeTestCert(ca_, "us");
    // The node reads its files from here; tests replace them to rotate the certificate.
    cert_file_ = dir_.path() + "/node-cert.pem";
    key_file_ = dir_.path() + "/node-key.pem";
    ca_file_ = dir_.path() + "/node-ca.pem";
    std::filesystem::copy_file(cert.cert_file, cert_file_);
    std::filesystem::copy_file(cert.key_file, key_file_);
    std::filesystem::copy_file(ca_.ca_file, ca_file_);
    NodeOptions options;
    options.extra_toml = "[storage]\nsync = false\n" + TlsToml(cert_file_, key_file_, ca_file_);
    options.https_ca_file = ca_.ca_file;
    options.log_level = "info";  // reloads are logged at info, with their cause
    node_ = std::make_unique<NodeProcess>(options);
    ASSERT_TRUE(node_->Start()) << "the node did not come up:\n" << node_->log();
  }

  ClientOptions Options(const std::string& ca_file) {
    ClientOptions options;
    options.regions.push_back(RegionEndpoint{"us", "127.0.0.1", node_->http_port(), true});
    options.ca_file = ca_file;
    options.attempt_timeout = milliseconds(1000);
    options.failover_budget = milliseconds(2000);
    options.background_probes = false;
    return options;
  }

  HttpClient Https(const std::string& ca_file) {
    return HttpClient("127.0.0.1", node_->http_port(), seconds(5), ClientTls(ca_file));
  }

  TempDir dir_;
  TestCa ca_;
  std::string cert_file_, key_file_, ca_file_;
  std::unique_ptr<NodeProcess> node_;
};

TEST_F(TlsTest, ServesHttpsToTheClientLibrary) {
  auto created = Client::Create(Options(ca_.ca_file));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Client& client = **created;
  auto receipt = client.Put("tls/a", R"({"v":1})");
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  auto read = client.Get("tls/a");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->doc.has_value());
  EXPECT_EQ(Parse(*read->doc), json({{"v", 1}}));
  auto status = client.StatusJson();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(Parse(*status)["region"], "us");
}

TEST_F(TlsTest, PlaintextIsRefusedWithoutAnAnswer) {
  HttpClient plain("127.0.0.1", node_->http_port(), seconds(5));
  const HttpResponse response = plain.Get("/healthz");
  EXPECT_EQ(response.status, 0) << response.body;
  // Nothing in plaintext comes back: the handshake fails and the connection is closed.
  const std::string answer =
      plain.Raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(answer.find("HTTP/"), std::string::npos) << answer;
  // The node still serves HTTPS.
  EXPECT_EQ(Https(ca_.ca_file).Get("/healthz").status, 200);
}

TEST_F(TlsTest, AClientWithAnotherCaIsRefusedWithAClearError) {
  const TestCa other = MakeTestCa(dir_.path() + "/other", "other");
  const HttpResponse response = Https(other.ca_file).Get("/healthz");
  EXPECT_EQ(response.status, 0);
  const std::string expected =
      "TLS handshake with 127.0.0.1:" + std::to_string(node_->http_port()) +
      " failed: certificate verify failed";
  EXPECT_NE(response.error.find(expected), std::string::npos) << response.error;

  auto created = Client::Create(Options(other.ca_file));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto read = (*created)->Get("x");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("certificate verify failed"), std::string::npos)
      << read.status().ToString();
}

TEST_F(TlsTest, ACertificateThatDoesNotNameTheAddressIsRefused) {
  // Issued by the right CA, but for another name only: hostname verification refuses it.
  const std::string stem = dir_.path() + "/ca/elsewhere";
  {
    std::ofstream ext(stem + ".ext");
    ext << "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        << "subjectAltName=DNS:elsewhere.example\n";
  }
  ASSERT_EQ(
      std::system(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "
                   "/CN=elsewhere -keyout '" +
                   stem + "-key.pem' -out '" + stem +
                   ".csr' >/dev/null 2>&1 && openssl x509 -req -in '" + stem + ".csr' -CA '" +
                   ca_.ca_file + "' -CAkey '" + ca_.key_file + "' -CAcreateserial -days 2 -out '" +
                   stem + ".pem' -extfile '" + stem + ".ext' >/dev/null 2>&1")
                      .c_str()),
      0);
  ReplaceFile(key_file_, ReadFile(stem + "-key.pem"));
  ReplaceFile(cert_file_, ReadFile(stem + ".pem"));
  HttpResponse response;
  EXPECT_TRUE(WaitFor(
      [&] {
        response = Https(ca_.ca_file).Get("/healthz");
        return response.status == 0 &&
               response.error.find("certificate verify failed") != std::string::npos;
      },
      seconds(20)))
      << response.status << " " << response.error;
}

TEST_F(TlsTest, SseWatchOverTlsDeliversChanges) {
  auto created = Client::Create(Options(ca_.ca_file));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Client& client = **created;
  auto first = client.Put("w/1", R"({"n":1})");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = client.Put("w/2", R"({"n":2})");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  // After the first: the second is delivered, whenever the watch connects.
  std::vector<WatchChange> changes;
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  Status watched = client.Watch(
      "w/", first->event,
      [&](const WatchChange& change) {
        changes.push_back(change);
        return false;
      },
      [&] { return std::chrono::steady_clock::now() > deadline; });
  ASSERT_TRUE(watched.ok()) << watched.ToString();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].key, "w/2");
  EXPECT_EQ(changes[0].event, second->event);
}

TEST_F(TlsTest, WebSocketWatchOverTlsDeliversChanges) {
  WssWatch ws(ClientTls(ca_.ca_file));
  ASSERT_TRUE(ws.Open(node_->http_port(), "/v1/watch?prefix=ws%2F")) << ws.error().message();
  HttpClient client = Https(ca_.ca_file);
  ASSERT_TRUE(
      WaitFor([&] { return Parse(client.Get("/v1/status").body)["watchers"] == 1; }, seconds(10)));
  const HttpResponse put = client.Send("PUT", "/v1/docs/ws%2Fa", R"({"v":7})");
  ASSERT_EQ(put.status, 200) << put.body << put.error;
  const auto message = ws.Read();
  ASSERT_TRUE(message.has_value()) << ws.error().message();
  const json change = Parse(*message);
  EXPECT_EQ(change["key"], "ws/a") << *message;
  EXPECT_EQ(change["doc"], json({{"v", 7}})) << *message;
}

// A CA of its own and a certificate for "us" from it.
struct Rotation {
  TestCa ca;
  std::string cert, key, ca_text;
};
Rotation NewCertificate(const std::string& dir, const std::string& name) {
  Rotation rotation{MakeTestCa(dir, name), "", "", ""};
  const TestCert cert = MakeTestCert(rotation.ca, "us");
  rotation.cert = ReadFile(cert.cert_file);
  rotation.key = ReadFile(cert.key_file);
  rotation.ca_text = ReadFile(rotation.ca.ca_file);
  return rotation;
}

TEST_F(TlsTest, CertificateRotatesWithoutARestartWhenItsFilesChange) {
  // A watch made before the rotation keeps its connection (and the certificate it was made with).
  WssWatch established(ClientTls(ca_.ca_file));
  ASSERT_TRUE(established.Open(node_->http_port(), "/v1/watch?prefix=r%2F"))
      << established.error().message();
  HttpClient writer = Https(ca_.ca_file);  // kept alive across the rotation too
  ASSERT_TRUE(
      WaitFor([&] { return Parse(writer.Get("/v1/status").body)["watchers"] == 1; }, seconds(10)));

  const Rotation next = NewCertificate(dir_.path() + "/next", "next");
  ASSERT_NE(Https(next.ca.ca_file).Get("/healthz").status, 200) << "not rotated yet";
  // As an operator's tooling does it: each file replaced whole; the key first.
  ReplaceFile(key_file_, next.key);
  ReplaceFile(cert_file_, next.cert);
  ReplaceFile(ca_file_, next.ca_text);
  EXPECT_TRUE(
      WaitFor([&] { return Https(next.ca.ca_file).Get("/healthz").status == 200; }, seconds(20)))
      << "new connections never got the new certificate:\n"
      << node_->log();
  EXPECT_NE(Https(ca_.ca_file).Get("/healthz").status, 200) << "the old certificate is gone";

  // Connections made before go on: the node did not restart.
  const HttpResponse put = writer.Send("PUT", "/v1/docs/r%2Fa", R"({"n":1})");
  ASSERT_EQ(put.status, 200) << put.body << put.error;
  const auto message = established.Read();
  ASSERT_TRUE(message.has_value()) << established.error().message();
  EXPECT_EQ(Parse(*message)["key"], "r/a") << *message;
  auto rotated = Client::Create(Options(next.ca.ca_file));
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  auto read = (*rotated)->Get("r/a");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(read->doc.has_value());
  EXPECT_TRUE(node_->running());
}

TEST_F(TlsTest, SighupReloadsTheCertificate) {
  // No connection is made between replacing the files and the signal, so nothing but SIGHUP
  // makes the node look at them (it checks them on accepting a connection otherwise); the log
  // says which caused the reload.
  const Rotation next = NewCertificate(dir_.path() + "/next", "next");
  ReplaceFile(key_file_, next.key);
  ReplaceFile(cert_file_, next.cert);
  ReplaceFile(ca_file_, next.ca_text);
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  const std::string reloaded = "reloaded the certificate from " + cert_file_ + " (SIGHUP)";
  EXPECT_TRUE(
      WaitFor([&] { return node_->log().find(reloaded) != std::string::npos; }, seconds(20)))
      << "SIGHUP did not reload the certificate:\n"
      << node_->log();
  EXPECT_EQ(Https(next.ca.ca_file).Get("/healthz").status, 200) << node_->log();
  EXPECT_TRUE(node_->running());
  EXPECT_EQ(Https(next.ca.ca_file).Get("/readyz").status, 200) << "still serving after SIGHUP";
}

TEST_F(TlsTest, AFailedReloadKeepsTheCertificateInUse) {
  ReplaceFile(cert_file_, "not a certificate\n");
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  // The reload fails (and is logged); connections keep getting the old certificate.
  EXPECT_TRUE(
      WaitFor([&] { return node_->log().find("reloading the certificate") != std::string::npos; },
              seconds(20)))
      << node_->log();
  EXPECT_NE(node_->log().find(cert_file_), std::string::npos) << node_->log();
  EXPECT_EQ(Https(ca_.ca_file).Get("/healthz").status, 200);
}

// ---- Hardening

// A plaintext node with extra config.
std::unique_ptr<NodeProcess> StartNode(const std::string& toml) {
  NodeOptions options;
  options.extra_toml = "[storage]\nsync = false\n" + toml;
  auto node = std::make_unique<NodeProcess>(options);
  if (!node->Start()) {
    ADD_FAILURE() << "the node did not come up:\n" << node->log();
    return nullptr;
  }
  return node;
}

TEST(HttpConnectionLimit, BeyondConnectionsMaxANewConnectionGets429AtOnce) {
  auto node = StartNode("[http]\nconnections_max = 2\n");
  ASSERT_TRUE(node);
  // Two kept-alive connections take the two places (the start-up probe's may still be closing).
  HttpClient a = node->Client();
  HttpClient b = node->Client();
  ASSERT_TRUE(WaitFor([&] { return a.Get("/healthz").status == 200; }, seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return b.Get("/healthz").status == 200; }, seconds(10)));
  // A third connection is answered before it sends anything.
  const std::string answer = node->Client().Raw("");
  EXPECT_EQ(answer.rfind("HTTP/1.1 429", 0), 0u) << answer;
  EXPECT_NE(answer.find("connections_max"), std::string::npos) << answer;
  // Once one of the two closes, a new connection is served again.
  a = node->Client();  // the old connection closes with the old client
  HttpClient c = node->Client();
  EXPECT_TRUE(WaitFor([&] { return c.Get("/healthz").status == 200; }, seconds(10)));
}

TEST_F(TlsTest, BeyondConnectionsMaxATlsConnectionIsClosedAtAccept) {
  node_->Terminate();
  {
    std::ofstream config(node_->config_path(), std::ios::app);
    config << "\n[http]\nconnections_max = 1\n";
  }
  ASSERT_TRUE(node_->Start()) << node_->log();
  HttpClient a = Https(ca_.ca_file);
  ASSERT_TRUE(WaitFor([&] { return a.Get("/healthz").status == 200; }, seconds(10)));
  const HttpResponse refused = Https(ca_.ca_file).Get("/healthz");
  EXPECT_EQ(refused.status, 0) << refused.body;
  EXPECT_NE(refused.error.find("TLS handshake"), std::string::npos) << refused.error;
  a = Https(ca_.ca_file);
  HttpClient c = Https(ca_.ca_file);
  EXPECT_TRUE(WaitFor([&] { return c.Get("/healthz").status == 200; }, seconds(10)));
}

double Metric(HttpClient& client, const std::string& name) {
  std::istringstream lines(client.Get("/metrics").body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

uint64_t Watchers(HttpClient& client) {
  const json status = Parse(client.Get("/v1/status").body);
  return status.is_object() ? status.value("watchers", uint64_t{999}) : 999;
}

TEST(WatchHardening, AWebSocketWatcherThatNeverReadsIsDropped) {
  // Large buffers: what drops the watcher is the write timeout, not the buffer bounds.
  auto node = StartNode(
      "[http]\nwrite_timeout_ms = 500\n[watch]\nbuffer_max = 100000\n"
      "buffer_bytes_max = 1099511627776\n");
  ASSERT_TRUE(node);
  HttpClient client = node->Client();
  // A WebSocket client with a small receive buffer that never reads once connected.
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  auto& lowest = beast::get_lowest_layer(ws);
  lowest.socket().open(tcp::v4());
  lowest.socket().set_option(asio::socket_base::receive_buffer_size(4096));
  lowest.expires_after(seconds(10));
  beast::error_code ec = client::RunOne(io, [&](auto handler) {
    lowest.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), node->http_port()),
                         [handler](beast::error_code e) mutable { handler(e, 0); });
  });
  ASSERT_FALSE(ec) << ec.message();
  ec = client::RunOne(io, [&](auto handler) {
    ws.async_handshake("127.0.0.1", "/v1/watch?prefix=big%2F",
                       [handler](beast::error_code e) mutable { handler(e, 0); });
  });
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(WaitFor([&] { return Watchers(client) == 1; }, seconds(10)));

  // Writes until the node's writes to it block for longer than the timeout (bounded).
  const std::string padding(50'000, 'p');  // two fields: 100 KB a document
  bool dropped = false;
  for (int i = 0; i < 400 && !dropped; ++i) {
    const HttpResponse put =
        client.Send("PUT", "/v1/docs/big%2F" + std::to_string(i % 20),
                    "{\"a\": \"" + padding + "\", \"b\": \"" + padding + "\"}");
    ASSERT_EQ(put.status, 200) << put.body << put.error;
    dropped = Watchers(client) == 0;
  }
  if (!dropped) dropped = WaitFor([&] { return Watchers(client) == 0; }, seconds(10));
  EXPECT_TRUE(dropped) << "the watcher that never reads is still there";
  EXPECT_EQ(Metric(client, "meridian_watch_overflows_total"), 0)
      << "dropped by the write timeout, not as an overflow";
  EXPECT_EQ(client.Get("/healthz").status, 200);
}

TEST(WatchHardening, AWatchersBufferIsBoundedInBytes) {
  // 64 KiB of buffer: a watcher that does not read overflows after a few large changes, long
  // before the 10000 changes of buffer_max.
  auto node = StartNode("[watch]\nbuffer_bytes_max = 65536\n");
  ASSERT_TRUE(node);
  HttpClient client = node->Client();
  SseStream watch(node->http_port());
  ASSERT_EQ(watch.Open("/v1/watch?prefix=b%2F", {}, seconds(10), 4096), 200) << watch.head();
  ASSERT_TRUE(WaitFor([&] { return Watchers(client) == 1; }, seconds(10)));
  const std::string padding(50'000, 'p');
  bool overflowed = false;
  int writes = 0;
  for (; writes < 2000 && !overflowed; ++writes) {
    const HttpResponse put = client.Send("PUT", "/v1/docs/b%2F" + std::to_string(writes % 10),
                                         "{\"pad\": \"" + padding + "\"}");
    ASSERT_EQ(put.status, 200) << put.body << put.error;
    overflowed = Metric(client, "meridian_watch_overflows_total") >= 1;
  }
  ASSERT_TRUE(overflowed) << "no overflow after " << writes << " writes of 50 KB";
  // It reads now: changes, then the slow_consumer error, then the end.
  std::optional<SseEvent> error;
  for (int i = 0; i < writes + 1; ++i) {
    auto event = watch.Next(seconds(10));
    if (!event) break;
    if (event->event == "error") {
      error = event;
      break;
    }
  }
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(Parse(error->data)["error"], "slow_consumer") << error->data;
  EXPECT_TRUE(watch.WaitClosed(seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return Watchers(client) == 0; }, seconds(10)));
}

// ---- Client endpoints

TEST(ClientEndpoints, HttpsSchemeMeansTls) {
  auto https = ParseRegionEndpoint("us=https://127.0.0.1:7001");
  ASSERT_TRUE(https.ok()) << https.status().ToString();
  EXPECT_TRUE(https->tls);
  EXPECT_EQ(https->host, "127.0.0.1");
  EXPECT_EQ(https->port, 7001);
  auto v6 = ParseRegionEndpoint("eu=https://[::1]:7002");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_TRUE(v6->tls);
  EXPECT_EQ(v6->host, "::1");
  auto http = ParseRegionEndpoint("asia=http://127.0.0.1:7003");
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  EXPECT_FALSE(http->tls);
  auto bare = ParseRegionEndpoint("asia=127.0.0.1:7003");
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare->tls);
  EXPECT_FALSE(ParseRegionEndpoint("us=ftp://127.0.0.1:7001").ok());
  EXPECT_FALSE(ParseRegionEndpoint("us=https://").ok());
}

TEST(ClientEndpoints, AnUnreadableCaFileFailsCreate) {
  ClientOptions options;
  options.regions.push_back(RegionEndpoint{"us", "127.0.0.1", 1, true});
  options.ca_file = "/nonexistent/ca.pem";
  options.background_probes = false;
  auto created = Client::Create(options);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(created.status().message().find("/nonexistent/ca.pem"), std::string::npos)
      << created.status().message();
}

// ---- Tokens

// A stand-in region on a thread: answers what the client asks (readiness, status, a document, a
// watch with one change), one connection at a time and each closed after its answer, and records
// every request's target and Authorization header.
class RecordingServer {
 public:
  RecordingServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~RecordingServer() {
    stop_ = true;
    asio::io_context io;  // wakes the accept
    tcp::socket wake(io);
    beast::error_code ignored;
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port()), ignored);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::vector<std::pair<std::string, std::string>> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      beast::flat_buffer buffer;
      beast::http::request<beast::http::string_body> request;
      beast::http::read(socket, buffer, request, ec);
      if (ec) continue;
      const std::string target(request.target());
      {
        std::lock_guard lock(mutex_);
        requests_.emplace_back(target, std::string(request[beast::http::field::authorization]));
      }
      std::string answer;
      if (target.rfind("/v1/watch", 0) == 0) {
        answer =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            "id: us:2\nevent: change\ndata: "
            "{\"key\":\"k\",\"doc\":{},\"event\":\"us:2\",\"hlc\":\"1.0\"}\n\n";
      } else {
        std::string body = R"({"ready":true,"region":"us","frontier":{"us":1},"v":1})";
        answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: "
            "close\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      asio::write(socket, asio::buffer(answer), ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> requests_;
  std::thread thread_;
};

TEST(ClientToken, EveryRequestCarriesTheBearerToken) {
  RecordingServer server;
  ClientOptions options;
  options.regions.push_back(RegionEndpoint{"us", "127.0.0.1", server.port()});
  options.token = "t0k.en";
  options.background_probes = false;
  options.failover_budget = seconds(5);
  auto created = Client::Create(options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Client& client = **created;
  auto read = client.Get("k");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  auto receipt = client.Put("k", R"({"v":1})");
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  int changes = 0;
  const Status watched = client.Watch(
      "", "", [&](const WatchChange&) { return ++changes < 1; }, nullptr);
  ASSERT_TRUE(watched.ok()) << watched.ToString();
  EXPECT_EQ(changes, 1);

  const auto requests = server.requests();
  std::set<std::string> seen;  // the paths asked, without their queries
  for (const auto& [target, authorization] : requests) {
    EXPECT_EQ(authorization, "Bearer t0k.en") << target;
    seen.insert(target.substr(0, target.find('?')));
  }
  for (const char* path : {"/readyz", "/v1/docs/k", "/v1/status", "/v1/watch"}) {
    EXPECT_TRUE(seen.contains(path))
        << path << " was not asked; " << requests.size() << " requests";
  }
}

// ---- The CLI

std::string RunCli(const std::string& arguments, int* exit_code,
                   const std::string& environment = "") {
  const std::string command =
      environment + " " + std::string(MeridianBinary()) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t got;
  while (pipe != nullptr && (got = fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, got);
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST_F(TlsTest, CliSpeaksHttpsWithTheCaFile) {
  const std::string regions =
      "--regions us=https://127.0.0.1:" + std::to_string(node_->http_port());
  int code = 0;
  std::string out =
      RunCli("put cli/a '{\"v\":1}' --json --ca-file '" + ca_.ca_file + "' " + regions, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("get cli/a " + regions, &code, "MERIDIAN_CA_FILE='" + ca_.ca_file + "'");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"v\": 1"), std::string::npos) << out;

  // Without the CA: the system's trust store does not know the test CA.
  out = RunCli("get cli/a --timeout-ms 500 " + regions, &code, "MERIDIAN_CA_FILE=");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("TLS handshake with 127.0.0.1:" + std::to_string(node_->http_port()) +
                     " failed: certificate verify failed"),
            std::string::npos)
      << out;
  // The node's config: https and its CA, from [tls].
  out = RunCli("get cli/a --config '" + node_->config_path() + "'", &code);
  EXPECT_EQ(code, 0) << out;
}

// A node with [tls] and [auth]: the CLI's token, from --token or MERIDIAN_TOKEN, is what lets it
// in.
TEST(TlsAuthCliTest, CliSendsTheTokenFromItsFlagOrTheEnvironment) {
  TempDir dir;
  const TestCa ca = MakeTestCa(dir.path() + "/ca", "ca");
  const TestCert cert = MakeTestCert(ca, "us");
  const std::string secret = "the CLI test's secret, at least thirty-two bytes";
  std::ofstream(dir.path() + "/jwt.key") << secret << "\n";
  NodeOptions options;
  options.extra_toml = "[storage]\nsync = false\n" +
                       TlsToml(cert.cert_file, cert.key_file, ca.ca_file) +
                       "[auth]\njwt_secret_file = \"" + dir.path() + "/jwt.key\"\n";
  options.https_ca_file = ca.ca_file;
  NodeProcess node(options);
  ASSERT_TRUE(node.Start()) << node.log();
  const std::string token = auth::MintToken(TokenClaims({"cli/"}, {"cli/"}), secret).value();
  const std::string common = "--ca-file '" + ca.ca_file +
                             "' --regions us=https://127.0.0.1:" + std::to_string(node.http_port());
  int code = 0;
  std::string out = RunCli("put cli/a '{\"v\":1}' " + common + " --token " + token, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("get cli/a " + common, &code, "MERIDIAN_TOKEN=" + token);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"v\": 1"), std::string::npos) << out;
  out = RunCli("get cli/a " + common, &code, "MERIDIAN_TOKEN=");
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("no token"), std::string::npos) << out;
}

}  // namespace
}  // namespace meridian::testing
