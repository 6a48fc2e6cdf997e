// Tests of the WAN proxy (src/wanproxy, docs/wan-proxy.md) on loopback: an in-process WanProxy in
// front of an echo server started by the test, and the `meridian wan-proxy` command. Every wait
// is bounded; timings are asserted only as lower bounds (what the proxy promises), never as upper
// bounds.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>

#include <boost/asio.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "wanproxy/wan_proxy.h"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using json = nlohmann::json;
using meridian::StatusCode;
using meridian::wanproxy::ParseRoute;
using meridian::wanproxy::Route;
using meridian::wanproxy::RouteStats;
using meridian::wanproxy::WanProxy;
using meridian::wanproxy::WanProxyOptions;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kTimeout(10'000);

int64_t ElapsedMs(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

// Polls `condition` (a cheap check) until it holds or `timeout` passes.
template <typename Condition>
bool WaitUntil(Condition condition, milliseconds timeout = kTimeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// An echo server on an ephemeral loopback port, on its own thread. It passes the end of the
// stream back (shutdown of its sending side) once its peer has finished sending.
class EchoServer {
 public:
  EchoServer() : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    void Read() {
      socket.async_read_some(asio::buffer(buffer),
                             [self = shared_from_this()](const error_code& ec, size_t n) {
                               if (ec) {  // the end of the stream: pass it back
                                 error_code ignored;
                                 self->socket.shutdown(tcp::socket::shutdown_send, ignored);
                                 return;
                               }
                               asio::async_write(self->socket, asio::buffer(self->buffer.data(), n),
                                                 [self](const error_code& write_error, size_t) {
                                                   if (!write_error) self->Read();
                                                 });
                             });
    }
    tcp::socket socket;
    std::array<char, 64 * 1024> buffer;
  };

  void Accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket))->Read();
      Accept();
    });
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A loopback client whose every operation has a deadline: when it passes, the socket is closed
// and the operation reports timed_out.
class Client {
  struct Op {
    bool done = false;
    error_code ec;
  };

  static auto Handler(const std::shared_ptr<Op>& op) {
    return [op](const error_code& ec, size_t) {
      op->done = true;
      op->ec = ec;
    };
  }

 public:
  bool Connect(uint16_t port, milliseconds timeout = kTimeout) {
    auto op = std::make_shared<Op>();
    socket_.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                          [op](const error_code& ec) {
                            op->done = true;
                            op->ec = ec;
                          });
    return !Run({op}, timeout) && !op->ec;
  }

  error_code Write(const std::string& data, milliseconds timeout = kTimeout) {
    auto op = StartWrite(data);
    if (Run({op}, timeout)) return asio::error::timed_out;
    return op->ec;
  }

  // Reads exactly `size` bytes.
  error_code Read(size_t size, std::string* out, milliseconds timeout = kTimeout) {
    auto op = StartRead(size, out);
    if (Run({op}, timeout)) return asio::error::timed_out;
    return op->ec;
  }

  // Writes `data` while reading as many bytes back (from an echo server).
  error_code Exchange(const std::string& data, std::string* echoed,
                      milliseconds timeout = kTimeout) {
    auto read = StartRead(data.size(), echoed);
    auto write = StartWrite(data);
    if (Run({read, write}, timeout)) return asio::error::timed_out;
    return write->ec ? write->ec : read->ec;
  }

  // Reads until the peer ends the stream or the connection fails: eof, connection_reset, ...
  error_code ReadToEnd(std::string* out, milliseconds timeout = kTimeout) {
    auto op = std::make_shared<Op>();
    asio::async_read(socket_, asio::dynamic_buffer(*out), asio::transfer_all(), Handler(op));
    if (Run({op}, timeout)) return asio::error::timed_out;
    return op->ec;
  }

  void ShutdownSend() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
  }

 private:
  std::shared_ptr<Op> StartWrite(const std::string& data) {
    auto op = std::make_shared<Op>();
    asio::async_write(socket_, asio::buffer(data), Handler(op));
    return op;
  }

  std::shared_ptr<Op> StartRead(size_t size, std::string* out) {
    auto op = std::make_shared<Op>();
    out->assign(size, '\0');
    asio::async_read(socket_, asio::buffer(*out), Handler(op));
    return op;
  }

  // Runs until every op is done; true when the deadline passed first (the socket is then closed
  // and the ops run to completion with an error).
  bool Run(const std::vector<std::shared_ptr<Op>>& ops, milliseconds timeout) {
    const auto all_done = [&] {
      for (const auto& op : ops) {
        if (!op->done) return false;
      }
      return true;
    };
    const auto deadline = Clock::now() + timeout;
    io_.restart();
    while (!all_done() && io_.run_one_until(deadline) > 0) {
    }
    if (all_done()) return false;
    error_code ignored;
    socket_.close(ignored);
    io_.restart();
    while (!all_done() && io_.run_one_for(milliseconds(1000)) > 0) {
    }
    return true;
  }

  asio::io_context io_;
  tcp::socket socket_{io_};
};

bool IsClosedByPeer(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

// One HTTP/1.1 request on a fresh connection ("Connection: close").
struct HttpResult {
  int status = 0;
  std::string body;
};

HttpResult Http(uint16_t port, const std::string& method, const std::string& target) {
  Client client;
  HttpResult result;
  if (!client.Connect(port)) return result;
  const std::string request = method + " " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n";
  if (client.Write(request)) return result;
  std::string response;
  if (client.ReadToEnd(&response) != asio::error::eof) return result;
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return result;
  result.status = std::atoi(response.c_str() + 9);
  const auto end_of_headers = response.find("\r\n\r\n");
  if (end_of_headers != std::string::npos) result.body = response.substr(end_of_headers + 4);
  return result;
}

json ParseJson(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// "127.0.0.1:0=127.0.0.1:<target>" plus `settings` (",delay=40").
Route LoopbackRoute(uint16_t target, const std::string& settings = "") {
  auto route = ParseRoute("127.0.0.1:0=127.0.0.1:" + std::to_string(target) + settings);
  EXPECT_TRUE(route.ok()) << route.status().message();
  return route.ok() ? route.value() : Route{};
}

class WanProxyTest : public ::testing::Test {
 protected:
  // Starts a proxy with one route to the echo server (plus `settings`) unless `options` already
  // has routes.
  WanProxy& StartProxy(WanProxyOptions options, const std::string& settings = "") {
    if (options.routes.empty()) options.routes.push_back(LoopbackRoute(echo_.port(), settings));
    if (options.seed == 0) options.seed = 42;
    proxy_ = std::make_unique<WanProxy>(std::move(options));
    const meridian::Status status = proxy_->Start();
    EXPECT_TRUE(status.ok()) << status.message();
    return *proxy_;
  }

  RouteStats Stats(size_t route = 0) const { return proxy_->stats().routes.at(route); }

  void TearDown() override {
    if (proxy_) proxy_->Stop();
  }

  EchoServer echo_;
  std::unique_ptr<WanProxy> proxy_;
};

// --- ParseRoute ------------------------------------------------------------------------------

TEST(ParseRouteTest, AcceptsAddressesAndSettings) {
  auto route = ParseRoute("127.0.0.1:9101=127.0.0.1:7102,delay=40,jitter=5");
  ASSERT_TRUE(route.ok()) << route.status().message();
  EXPECT_EQ(route->listen_host, "127.0.0.1");
  EXPECT_EQ(route->listen_port, 9101);
  EXPECT_EQ(route->target_host, "127.0.0.1");
  EXPECT_EQ(route->target_port, 7102);
  EXPECT_EQ(route->delay_ms, 40u);
  EXPECT_EQ(route->jitter_ms, 5u);
  EXPECT_FALSE(route->drop.has_value());
  EXPECT_EQ(route->listen(), "127.0.0.1:9101");
  EXPECT_EQ(route->target(), "127.0.0.1:7102");

  auto full =
      ParseRoute("[::1]:0=localhost:80,drop=0.25,stall=1,stall-ms=300,bandwidth=1000000,delay=0");
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(full->listen_host, "::1");
  EXPECT_EQ(full->listen(), "[::1]:0");
  EXPECT_EQ(full->target_host, "localhost");
  EXPECT_EQ(full->drop, 0.25);
  EXPECT_EQ(full->stall, 1.0);
  EXPECT_EQ(full->stall_ms, 300u);
  EXPECT_EQ(full->bandwidth, 1000000u);
  EXPECT_EQ(full->delay_ms, 0u);
  EXPECT_FALSE(full->jitter_ms.has_value());
}

TEST(ParseRouteTest, RejectsMalformedRoutesWithAClearMessage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty route; expected LISTEN=TARGET"},
      {"127.0.0.1:9101", "expected LISTEN=TARGET"},
      {"=127.0.0.1:7102", "LISTEN address before '=' is missing"},
      {"127.0.0.1:9101=", "TARGET address after '=' is missing"},
      {"127.0.0.1=127.0.0.1:7102", "listen address '127.0.0.1' is not HOST:PORT"},
      {":9101=127.0.0.1:7102", "has no host"},
      {"127.0.0.1:99999=127.0.0.1:7102", "port that is not a number from 0 to 65535"},
      {"127.0.0.1:91x=127.0.0.1:7102", "port that is not a number"},
      {"::1:9101=127.0.0.1:7102", "IPv6 address without brackets"},
      {"[::1:9101=127.0.0.1:7102", "unclosed '['"},
      {"127.0.0.1:9101=127.0.0.1:0", "target port must not be 0"},
      {"127.0.0.1:9101=127.0.0.1:7102,delay=-3",
       "delay '-3' is not a whole number of milliseconds"},
      {"127.0.0.1:9101=127.0.0.1:7102,delay=abc", "delay 'abc' is not a whole number"},
      {"127.0.0.1:9101=127.0.0.1:7102,jitter=600001", "jitter '600001' is not a whole number"},
      {"127.0.0.1:9101=127.0.0.1:7102,delay", "option 'delay' needs a value"},
      {"127.0.0.1:9101=127.0.0.1:7102,delay=", "option 'delay' needs a value"},
      {"127.0.0.1:9101=127.0.0.1:7102,delay=1,delay=2", "option 'delay' is given twice"},
      {"127.0.0.1:9101=127.0.0.1:7102,,delay=1", "an empty option"},
      {"127.0.0.1:9101=127.0.0.1:7102,", "an empty option"},
      {"127.0.0.1:9101=127.0.0.1:7102,drop=1.5", "drop '1.5' is not a probability"},
      {"127.0.0.1:9101=127.0.0.1:7102,stall=x", "stall 'x' is not a probability"},
      {"127.0.0.1:9101=127.0.0.1:7102,stall-ms=0", "stall-ms '0' is not a whole number"},
      {"127.0.0.1:9101=127.0.0.1:7102,bandwidth=fast", "bandwidth 'fast' is not a whole number"},
      {"127.0.0.1:9101=127.0.0.1:7102,color=red", "unknown option 'color' (known: delay"},
  };
  for (const auto& [text, expected] : cases) {
    auto route = ParseRoute(text);
    ASSERT_FALSE(route.ok()) << "accepted '" << text << "'";
    EXPECT_EQ(route.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(route.status().message().find(expected), std::string::npos)
        << "route '" << text << "': message '" << route.status().message() << "' lacks '"
        << expected << "'";
    if (!text.empty()) {
      EXPECT_NE(route.status().message().find("route '" + text + "'"), std::string::npos)
          << "the message should quote the route: " << route.status().message();
    }
  }
}

TEST(ParseRouteTest, OptionsAreValidated) {
  WanProxyOptions options;
  EXPECT_NE(meridian::wanproxy::ValidateOptions(options).message().find("no routes"),
            std::string::npos);
  options.routes.push_back(ParseRoute("127.0.0.1:9101=127.0.0.1:7102").value());
  EXPECT_TRUE(meridian::wanproxy::ValidateOptions(options).ok());
  options.routes.push_back(ParseRoute("127.0.0.1:9101=127.0.0.1:7103").value());
  EXPECT_NE(meridian::wanproxy::ValidateOptions(options).message().find(
                "two routes listen on 127.0.0.1:9101"),
            std::string::npos);
  options.routes.pop_back();
  options.drop = 2;
  EXPECT_FALSE(meridian::wanproxy::ValidateOptions(options).ok());
  options.drop = 0;
  options.control = "nowhere";
  EXPECT_NE(meridian::wanproxy::ValidateOptions(options).message().find("control address"),
            std::string::npos);
  WanProxy proxy(options);
  EXPECT_EQ(proxy.Start().code(), StatusCode::kInvalidArgument);
}

// --- Forwarding ------------------------------------------------------------------------------

TEST_F(WanProxyTest, PassesLargePayloadsUnchangedAndInOrderBothWays) {
  WanProxy& proxy = StartProxy({});
  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  const std::string payload = RandomBytes(8 << 20, 1);
  std::string echoed;
  ASSERT_FALSE(client.Exchange(payload, &echoed));
  EXPECT_TRUE(echoed == payload) << "the echoed bytes differ from the payload";

  // The end of the stream passes through both ways, then the proxy closes the connection.
  client.ShutdownSend();
  std::string rest;
  EXPECT_EQ(client.ReadToEnd(&rest), asio::error::eof);
  EXPECT_TRUE(rest.empty());
  ASSERT_TRUE(WaitUntil([&] { return Stats().connections_open == 0; }));
  const RouteStats stats = Stats();
  EXPECT_EQ(stats.connections_total, 1u);
  EXPECT_EQ(stats.bytes_to_target, payload.size());
  EXPECT_EQ(stats.bytes_to_client, payload.size());
  EXPECT_LE(stats.buffered_peak, WanProxyOptions().buffer_bytes);
}

TEST_F(WanProxyTest, ServesManyConnectionsAtOnce) {
  WanProxy& proxy = StartProxy({});
  std::vector<Client> clients(8);
  for (Client& client : clients) ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  ASSERT_TRUE(WaitUntil([&] { return Stats().connections_open == clients.size(); }));
  for (size_t i = 0; i < clients.size(); ++i) {
    const std::string message = RandomBytes(100'000, 100 + i);
    std::string echoed;
    ASSERT_FALSE(clients[i].Exchange(message, &echoed));
    EXPECT_TRUE(echoed == message) << "connection " << i;
  }
}

TEST_F(WanProxyTest, DelaysEachDirectionOfEveryRoute) {
  WanProxyOptions options;
  options.delay_ms = 40;                                               // the default
  options.routes.push_back(LoopbackRoute(echo_.port()));               // takes 40 ms
  options.routes.push_back(LoopbackRoute(echo_.port(), ",delay=80"));  // its own 80 ms
  WanProxy& proxy = StartProxy(std::move(options));
  for (size_t route = 0; route < 2; ++route) {
    const int64_t delay = route == 0 ? 40 : 80;
    Client client;
    ASSERT_TRUE(client.Connect(proxy.listen_port(route)));
    for (int round = 0; round < 3; ++round) {
      std::string echoed;
      const auto start = Clock::now();
      ASSERT_FALSE(client.Exchange("ping", &echoed));
      const int64_t round_trip = ElapsedMs(start);
      EXPECT_EQ(echoed, "ping");
      // One delay to the echo server, one back.
      EXPECT_GE(round_trip, 2 * delay) << "route " << route << " round " << round;
    }
    EXPECT_EQ(Stats(route).delay_ms, static_cast<uint32_t>(delay));
  }
}

TEST_F(WanProxyTest, JitterNeverReordersBytes) {
  // Delays drawn from 0 to 20 ms: consecutive chunks would overtake each other if they were
  // delivered at their own times.
  WanProxy& proxy = StartProxy({}, ",delay=10,jitter=10");
  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  std::string sent;
  std::string echoed;
  for (int burst = 0; burst < 20; ++burst) {
    std::string message;
    for (int i = 0; i < 25; ++i) {
      const std::string piece = "<" + std::to_string(burst * 25 + i) + ">";
      message += piece;
      // Each piece is written on its own, so the proxy reads many separate chunks.
      ASSERT_FALSE(client.Write(piece));
    }
    sent += message;
    std::string back;
    ASSERT_FALSE(client.Read(message.size(), &back));
    echoed += back;
  }
  EXPECT_EQ(echoed, sent);
}

TEST_F(WanProxyTest, BandwidthCapSlowsTransfersAndBuffersAreBounded) {
  WanProxyOptions options;
  options.bandwidth = 256 * 1024;  // bytes per second, per direction
  options.buffer_bytes = 64 * 1024;
  WanProxy& proxy = StartProxy(std::move(options));
  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  const std::string payload = RandomBytes(256 * 1024, 2);
  std::string echoed;
  const auto start = Clock::now();
  ASSERT_FALSE(client.Exchange(payload, &echoed));
  const int64_t elapsed = ElapsedMs(start);
  EXPECT_TRUE(echoed == payload);
  // 256 KiB at 256 KiB/s is one second, less the bucket's initial burst (1/20 s).
  EXPECT_GE(elapsed, 900);
  // The proxy read faster than it could send, so it held as much as it may, and no more.
  const RouteStats stats = Stats();
  EXPECT_LE(stats.buffered_peak, 64u * 1024);
  EXPECT_GE(stats.buffered_peak, 32u * 1024);
  EXPECT_EQ(stats.bandwidth, 256u * 1024);
}

// --- Faults ----------------------------------------------------------------------------------

TEST_F(WanProxyTest, PartitionClosesConnectionsAndRefusesNewOnesUntilHeal) {
  WanProxy& proxy = StartProxy({});
  Client before;
  ASSERT_TRUE(before.Connect(proxy.listen_port(0)));
  std::string echoed;
  ASSERT_FALSE(before.Exchange("hello", &echoed));

  ASSERT_TRUE(proxy.Partition(proxy.listen_address(0)).ok());
  EXPECT_TRUE(Stats().partitioned);
  EXPECT_EQ(Stats().connections_open, 0u);
  std::string rest;
  EXPECT_TRUE(IsClosedByPeer(before.ReadToEnd(&rest))) << "the open connection was not closed";

  Client during;
  if (during.Connect(proxy.listen_port(0))) {  // accepted, then reset at once
    EXPECT_TRUE(IsClosedByPeer(during.Exchange("lost", &echoed)));
    EXPECT_GE(Stats().connections_refused, 1u);
  }

  EXPECT_EQ(proxy.Partition("127.0.0.1:1").code(), StatusCode::kNotFound);
  ASSERT_TRUE(proxy.Heal(std::to_string(proxy.listen_port(0))).ok());  // by port
  EXPECT_FALSE(Stats().partitioned);
  Client after;
  ASSERT_TRUE(after.Connect(proxy.listen_port(0)));
  ASSERT_FALSE(after.Exchange("again", &echoed));
  EXPECT_EQ(echoed, "again");
}

TEST_F(WanProxyTest, PartitionWithoutARouteCutsEveryRoute) {
  WanProxyOptions options;
  options.routes.push_back(LoopbackRoute(echo_.port()));
  options.routes.push_back(LoopbackRoute(echo_.port()));
  WanProxy& proxy = StartProxy(std::move(options));
  ASSERT_TRUE(proxy.Partition().ok());
  EXPECT_TRUE(Stats(0).partitioned);
  EXPECT_TRUE(Stats(1).partitioned);
  ASSERT_TRUE(proxy.Heal(proxy.listen_address(1)).ok());
  EXPECT_TRUE(Stats(0).partitioned);
  EXPECT_FALSE(Stats(1).partitioned);
  ASSERT_TRUE(proxy.Heal().ok());
  EXPECT_FALSE(Stats(0).partitioned);
}

TEST_F(WanProxyTest, DropResetsConnections) {
  WanProxy& proxy = StartProxy({}, ",drop=1");  // certain within the first second
  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  std::string rest;
  const error_code ec = client.ReadToEnd(&rest);
  EXPECT_TRUE(IsClosedByPeer(ec)) << ec.message();
  EXPECT_GE(Stats().drops, 1u);
}

TEST_F(WanProxyTest, StallPausesWithoutLosingData) {
  WanProxyOptions options;
  options.stall = 1;  // a stall starts within 0.1 s after the previous one ends
  options.stall_ms = 200;
  WanProxy& proxy = StartProxy(std::move(options));
  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  ASSERT_TRUE(WaitUntil([&] { return Stats().stalls >= 1; }));
  for (int round = 0; round < 3; ++round) {
    const std::string payload = RandomBytes(200'000, 10 + round);
    std::string echoed;
    ASSERT_FALSE(client.Exchange(payload, &echoed));
    EXPECT_TRUE(echoed == payload) << "round " << round;
  }
  EXPECT_EQ(Stats().drops, 0u);
  EXPECT_EQ(Stats().connections_open, 1u);
}

TEST_F(WanProxyTest, CountsConnectionsThatCannotReachTheTarget) {
  uint16_t closed_port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    closed_port = acceptor.local_endpoint().port();
  }  // nothing listens there now
  WanProxyOptions options;
  options.routes.push_back(LoopbackRoute(closed_port));
  WanProxy& proxy = StartProxy(std::move(options));
  Client client;
  // The proxy may reset the connection before the client's connect completes; either way the
  // client gets no data and the proxy counts one failure.
  if (client.Connect(proxy.listen_port(0))) {
    std::string rest;
    EXPECT_TRUE(IsClosedByPeer(client.ReadToEnd(&rest)));
  }
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (Stats().connect_failures == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(Stats().connect_failures, 1u);
}

// --- Control endpoint ------------------------------------------------------------------------

TEST_F(WanProxyTest, ControlEndpointReportsPartitionsAndHeals) {
  WanProxyOptions options;
  options.control = "127.0.0.1:0";
  WanProxy& proxy = StartProxy(std::move(options), ",delay=5,jitter=2");
  const uint16_t control = proxy.control_port();
  ASSERT_NE(control, 0);
  const std::string listen = proxy.listen_address(0);

  Client client;
  ASSERT_TRUE(client.Connect(proxy.listen_port(0)));
  std::string echoed;
  ASSERT_FALSE(client.Exchange("12345", &echoed));
  // Bytes are counted once the proxy's write completes, which may be just after they arrived.
  ASSERT_TRUE(WaitUntil([&] { return Stats().bytes_to_client == 5; }));

  HttpResult status = Http(control, "GET", "/status");
  ASSERT_EQ(status.status, 200) << status.body;
  json body = ParseJson(status.body);
  ASSERT_TRUE(body.is_object()) << status.body;
  EXPECT_EQ(body["seed"], 42);
  ASSERT_EQ(body["routes"].size(), 1u);
  const json& route = body["routes"][0];
  EXPECT_EQ(route["listen"], listen);
  EXPECT_EQ(route["target"], "127.0.0.1:" + std::to_string(echo_.port()));
  EXPECT_EQ(route["delay_ms"], 5);
  EXPECT_EQ(route["jitter_ms"], 2);
  EXPECT_EQ(route["partitioned"], false);
  EXPECT_EQ(route["connections_open"], 1);
  EXPECT_EQ(route["connections_total"], 1);
  EXPECT_EQ(route["bytes_to_target"], 5);
  EXPECT_EQ(route["bytes_to_client"], 5);
  EXPECT_EQ(route["drops"], 0);
  EXPECT_EQ(route["stalls"], 0);

  HttpResult partition = Http(control, "POST", "/partition?route=" + listen);
  ASSERT_EQ(partition.status, 200) << partition.body;
  EXPECT_EQ(ParseJson(partition.body)["routes"][0]["partitioned"], true);
  EXPECT_TRUE(Stats().partitioned);
  std::string rest;
  EXPECT_TRUE(IsClosedByPeer(client.ReadToEnd(&rest)));
  Client refused;
  if (refused.Connect(proxy.listen_port(0))) {
    EXPECT_TRUE(IsClosedByPeer(refused.Exchange("lost", &echoed)));
  }

  HttpResult heal = Http(control, "POST", "/heal");  // every route
  ASSERT_EQ(heal.status, 200) << heal.body;
  EXPECT_EQ(ParseJson(heal.body)["routes"][0]["partitioned"], false);
  Client healed;
  ASSERT_TRUE(healed.Connect(proxy.listen_port(0)));
  ASSERT_FALSE(healed.Exchange("back", &echoed));
  EXPECT_EQ(echoed, "back");

  // Percent-encoded names work too; unknown routes, methods and paths are refused.
  EXPECT_EQ(
      Http(control, "POST", "/partition?route=127.0.0.1%3A" + std::to_string(proxy.listen_port(0)))
          .status,
      200);
  EXPECT_TRUE(Stats().partitioned);
  HttpResult unknown = Http(control, "POST", "/heal?route=127.0.0.1:1");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(ParseJson(unknown.body)["error"].get<std::string>().find("no route '127.0.0.1:1'"),
            std::string::npos)
      << unknown.body;
  EXPECT_EQ(Http(control, "GET", "/partition").status, 405);
  EXPECT_EQ(Http(control, "POST", "/status").status, 405);
  EXPECT_EQ(Http(control, "GET", "/nothing").status, 404);
}

// --- The command -----------------------------------------------------------------------------

const char* MeridianBinary() {
  if (const char* path = std::getenv("MERIDIAN_BINARY")) return path;
  return MERIDIAN_BINARY_PATH;
}

// A child process running `meridian ARGS...`, its standard output and error collected through
// pipes. Killed (SIGKILL) and reaped on destruction if still running.
class Command {
 public:
  explicit Command(const std::vector<std::string>& args) {
    std::vector<std::string> argv_strings = {MeridianBinary()};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int out[2];
    int err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::close(out[0]);
      ::close(err[0]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
  }
  ~Command() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }
  bool started() const { return pid_ > 0; }

  // Collects output until `done(stdout)` holds, both streams end, or `timeout` passes.
  bool CollectUntil(const std::function<bool(const std::string&)>& done,
                    milliseconds timeout = kTimeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done(out_)) {
      const auto left = deadline - Clock::now();
      if (left <= milliseconds(0) || (out_fd_ < 0 && err_fd_ < 0)) return false;
      Collect(std::chrono::duration_cast<milliseconds>(left));
    }
    return true;
  }

  void Signal(int signal) const { ::kill(pid_, signal); }

  // Waits for the exit status (-1 after `timeout`).
  int Wait(milliseconds timeout = kTimeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        while (out_fd_ >= 0 || err_fd_ >= 0) Collect(milliseconds(100));
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      Collect(milliseconds(10));  // also keeps the pipes from filling up
    }
    return -1;
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  // One poll of both pipes, for at most `timeout`.
  void Collect(milliseconds timeout) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (out_fd_ < 0 && err_fd_ < 0) {
      std::this_thread::sleep_for(timeout);
      return;
    }
    if (::poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      int& fd = i == 0 ? out_fd_ : err_fd_;
      if (n <= 0) {
        ::close(fd);
        fd = -1;
      } else {
        (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
      }
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

// The port at the end of the address that follows `marker` in `text` ("...marker 127.0.0.1:P").
uint16_t PortAfter(const std::string& text, const std::string& marker) {
  const auto at = text.find(marker);
  if (at == std::string::npos) return 0;
  const auto end = text.find_first_of(" \n", at + marker.size());
  const std::string address = text.substr(at + marker.size(), end - at - marker.size());
  return static_cast<uint16_t>(std::atoi(address.substr(address.rfind(':') + 1).c_str()));
}

TEST_F(WanProxyTest, CommandRunsRoutesObeysSignalsAndStopsCleanly) {
  const std::string target = "127.0.0.1:" + std::to_string(echo_.port());
  Command command({"wan-proxy", "--route", "127.0.0.1:0=" + target + ",delay=5", "--route",
                   "127.0.0.1:0=" + target, "--jitter-ms", "1", "--control", "127.0.0.1:0",
                   "--seed", "7", "--log-level", "warn"});
  ASSERT_TRUE(command.started());
  ASSERT_TRUE(command.CollectUntil([](const std::string& out) {
    return out.find("wan-proxy ready") != std::string::npos;
  })) << "stdout: "
      << command.out() << "\nstderr: " << command.err();
  // One line per route: "wan-proxy route LISTEN -> TARGET delay_ms=5 jitter_ms=1".
  EXPECT_NE(command.out().find(" -> " + target + " delay_ms=5 jitter_ms=1\n"), std::string::npos)
      << command.out();
  EXPECT_NE(command.out().find(" -> " + target + " delay_ms=0 jitter_ms=1\n"), std::string::npos)
      << command.out();
  EXPECT_NE(command.out().find("wan-proxy ready seed=7"), std::string::npos) << command.out();
  const uint16_t port = PortAfter(command.out(), "wan-proxy route ");
  const uint16_t control = PortAfter(command.out(), "wan-proxy control ");
  ASSERT_NE(port, 0) << command.out();
  ASSERT_NE(control, 0) << command.out();

  Client client;
  ASSERT_TRUE(client.Connect(port));
  std::string echoed;
  ASSERT_FALSE(client.Exchange("through the command", &echoed));
  EXPECT_EQ(echoed, "through the command");

  const auto partitioned = [&](bool expected) {
    return WaitUntil([&] {
      const json status = ParseJson(Http(control, "GET", "/status").body);
      if (!status.is_object() || status["routes"].size() != 2) return false;
      return status["routes"][0]["partitioned"] == expected &&
             status["routes"][1]["partitioned"] == expected;
    });
  };
  command.Signal(SIGUSR1);
  EXPECT_TRUE(partitioned(true)) << "SIGUSR1 did not partition every route";
  std::string rest;
  EXPECT_TRUE(IsClosedByPeer(client.ReadToEnd(&rest)));
  command.Signal(SIGUSR2);
  EXPECT_TRUE(partitioned(false)) << "SIGUSR2 did not heal every route";

  command.Signal(SIGTERM);
  EXPECT_EQ(command.Wait(), 0) << "stderr: " << command.err();
}

TEST(WanProxyCommandTest, RejectsBadRoutesAndDocumentsEveryOption) {
  Command bad({"wan-proxy", "--route", "127.0.0.1:9101"});
  ASSERT_TRUE(bad.started());
  EXPECT_EQ(bad.Wait(), 2);
  EXPECT_NE(bad.err().find("meridian wan-proxy: route '127.0.0.1:9101': expected LISTEN=TARGET"),
            std::string::npos)
      << bad.err();

  Command help({"wan-proxy", "--help"});
  ASSERT_TRUE(help.started());
  EXPECT_EQ(help.Wait(), 0);
  for (const char* option :
       {"--route", "--delay-ms", "--jitter-ms", "--drop", "--stall", "--stall-ms", "--bandwidth",
        "--buffer-bytes", "--seed", "--control", "--log-level"}) {
    EXPECT_NE(help.out().find(option), std::string::npos) << option << " in:\n" << help.out();
  }
}

}  // namespace
