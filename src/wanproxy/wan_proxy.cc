// The WAN proxy's forwarding engine: one Asio thread, plain completion handlers.
//
// Each accepted connection has two directions (listen side -> target side, and back). A
// direction reads chunks from its source, stamps each with a delivery time (read time + delay +
// jitter, never earlier than the previous chunk's), queues it, and writes it to its sink when
// that time has come, the connection is not stalled and the token bucket allows. A direction
// stops reading while its queue holds buffer_bytes (back-pressure), so nothing is ever dropped
// silently. A per-connection timer ticks ten times a second to decide drops and stalls.
#include "wanproxy/wan_proxy.h"

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <signal.h>

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <random>
#include <thread>
#include <unordered_set>

#include "wanproxy/json_quote.h"

namespace meridian::wanproxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Drops and stalls are decided at every tick of a connection's chaos timer.
constexpr auto kChaosTick = std::chrono::milliseconds(100);
constexpr double kTicksPerSecond = 10.0;
// A token bucket holds a twentieth of a second's worth of bytes, at most this many.
constexpr double kMaxBurst = 256 * 1024;
constexpr auto kControlTimeout = std::chrono::seconds(30);
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The chance per tick that gives the chance `p` per second.
double PerTick(double p) {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  return 1.0 - std::pow(1.0 - p, 1.0 / kTicksPerSecond);
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const asio::ip::address address = endpoint.address();
  const std::string port = std::to_string(endpoint.port());
  if (address.is_v6()) return "[" + address.to_string() + "]:" + port;
  return address.to_string() + ":" + port;
}

Status Unavailable(std::string message) {
  return Status(StatusCode::kUnavailable, std::move(message));
}

// The settings of one route: its own values, else the proxy-wide defaults.
struct RouteParams {
  uint32_t delay_ms = 0;
  uint32_t jitter_ms = 0;
  double drop = 0;
  double stall = 0;
  uint32_t stall_ms = 0;
  uint64_t bandwidth = 0;
  size_t buffer_bytes = 0;
};

// `rate` bytes per second; sends go out in pieces of at most the burst size.
class TokenBucket {
 public:
  void Init(uint64_t rate, Clock::time_point now) {
    rate_ = static_cast<double>(rate);
    burst_ = std::floor(std::clamp(rate_ / 20.0, 1.0, kMaxBurst));
    tokens_ = burst_;
    last_ = now;
  }
  bool limited() const { return rate_ > 0; }
  // How many of `want` bytes may be sent now: min(want, burst), or 0 (then see ReadyAt).
  size_t Take(Clock::time_point now, size_t want) {
    Refill(now);
    const double need = Need(want);
    if (tokens_ < need) return 0;
    tokens_ -= need;
    return static_cast<size_t>(need);
  }
  // When Take(now, want) failed: the time it will succeed.
  Clock::time_point ReadyAt(Clock::time_point now, size_t want) const {
    const double missing = Need(want) - tokens_;
    return now + std::chrono::microseconds(static_cast<int64_t>(std::ceil(missing / rate_ * 1e6)));
  }

 private:
  double Need(size_t want) const { return std::min(static_cast<double>(want), burst_); }
  void Refill(Clock::time_point now) {
    const double seconds = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + rate_ * seconds);
    last_ = now;
  }

  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point last_;
};

class Connection;

// One route. The configuration fields are set before the proxy's thread starts; the counters are
// read from any thread; `connections` and `next_id` belong to the proxy's thread.
struct RouteState {
  explicit RouteState(asio::io_context& io) : acceptor(io) {}

  size_t index = 0;
  Route route;
  RouteParams params;
  tcp::acceptor acceptor;
  std::vector<tcp::endpoint> targets;
  std::string listen_address;  // as bound
  uint16_t bound_port = 0;

  uint64_t next_id = 0;
  std::unordered_set<Connection*> connections;  // the open ones

  std::atomic<bool> partitioned{false};
  std::atomic<uint64_t> open{0};
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> bytes_to_target{0};
  std::atomic<uint64_t> bytes_to_client{0};
  std::atomic<uint64_t> drops{0};
  std::atomic<uint64_t> stalls{0};
  std::atomic<uint64_t> buffered_peak{0};
};

// A proxied connection. Owned by its pending operations (shared_from_this); its route keeps a
// plain pointer while it is open.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<RouteState> route, tcp::socket client, uint64_t id, uint64_t seed)
      : route_(std::move(route)),
        id_(id),
        client_(std::move(client)),
        upstream_(client_.get_executor()),
        up_(client_.get_executor(), &client_, &upstream_, &route_->bytes_to_target),
        down_(client_.get_executor(), &upstream_, &client_, &route_->bytes_to_client),
        chaos_timer_(client_.get_executor()),
        rng_(seed),
        drop_per_tick_(PerTick(route_->params.drop)),
        stall_per_tick_(PerTick(route_->params.stall)) {}

  // Registers with the route and connects to the target.
  void Start() {
    route_->connections.insert(this);
    ++route_->open;
    ++route_->total;
    asio::async_connect(upstream_, route_->targets,
                        [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
                          self->OnConnected(ec);
                        });
  }

  // Closes both sides; `reset` makes both peers see a reset (RST) rather than an orderly end.
  void Close(bool reset) {
    if (closed_) return;
    closed_ = true;
    route_->connections.erase(this);
    --route_->open;
    error_code ignored;
    if (reset) {
      client_.set_option(tcp::socket::linger(true, 0), ignored);
      upstream_.set_option(tcp::socket::linger(true, 0), ignored);
    }
    client_.close(ignored);
    upstream_.close(ignored);
    up_.timer.cancel();
    down_.timer.cancel();
    chaos_timer_.cancel();
    spdlog::debug("wan-proxy {}: connection {} closed{}", route_->listen_address, id_,
                  reset ? " (reset)" : "");
  }

 private:
  struct Chunk {
    std::vector<char> data;
    size_t offset = 0;  // bytes already written
    Clock::time_point deliver;
  };

  struct Direction {
    Direction(const asio::any_io_executor& executor, tcp::socket* from_socket,
              tcp::socket* to_socket, std::atomic<uint64_t>* byte_counter)
        : from(from_socket), to(to_socket), bytes(byte_counter), timer(executor) {}

    tcp::socket* const from;
    tcp::socket* const to;
    std::atomic<uint64_t>* const bytes;
    asio::steady_timer timer;
    std::vector<char> read_buffer;
    std::deque<Chunk> queue;
    size_t buffered = 0;  // bytes in `queue` not yet written
    bool reading = false;
    bool busy = false;  // writing, or waiting on `timer` to write
    bool eof = false;   // `from` has finished sending
    bool shut = false;  // `to` has been told so
    Clock::time_point last_deliver;
    TokenBucket bucket;
  };

  const RouteParams& params() const { return route_->params; }

  void OnConnected(const error_code& ec) {
    if (closed_) return;
    if (ec) {
      ++route_->connect_failures;
      spdlog::warn("wan-proxy {}: cannot connect to {}: {}", route_->listen_address,
                   route_->route.target(), ec.message());
      Close(true);
      return;
    }
    error_code ignored;
    client_.set_option(tcp::no_delay(true), ignored);
    upstream_.set_option(tcp::no_delay(true), ignored);
    const Clock::time_point now = Clock::now();
    for (Direction* direction : {&up_, &down_}) {
      direction->last_deliver = now;
      direction->read_buffer.resize(std::min(kReadChunk, params().buffer_bytes));
      if (params().bandwidth > 0) direction->bucket.Init(params().bandwidth, now);
    }
    spdlog::debug("wan-proxy {}: connection {} open to {}", route_->listen_address, id_,
                  route_->route.target());
    if (drop_per_tick_ > 0 || stall_per_tick_ > 0) ScheduleChaos();
    MaybeRead(&up_);
    MaybeRead(&down_);
  }

  void MaybeRead(Direction* d) {
    if (closed_ || d->reading || d->eof) return;
    const size_t capacity = params().buffer_bytes;
    if (d->buffered >= capacity) return;  // resumed when a write frees room
    const size_t want = std::min(d->read_buffer.size(), capacity - d->buffered);
    d->reading = true;
    d->from->async_read_some(
        asio::buffer(d->read_buffer.data(), want),
        [self = shared_from_this(), d](const error_code& ec, size_t n) { self->OnRead(d, ec, n); });
  }

  void OnRead(Direction* d, const error_code& ec, size_t n) {
    d->reading = false;
    if (closed_) return;
    if (ec == asio::error::eof) {
      d->eof = true;
      MaybeWrite(d);  // passes the end on once the queue is empty
      return;
    }
    if (ec) {
      Close(true);
      return;
    }
    const Clock::time_point now = Clock::now();
    int64_t delay_us = int64_t{params().delay_ms} * 1000;
    if (params().jitter_ms > 0) {
      const int64_t jitter_us = int64_t{params().jitter_ms} * 1000;
      delay_us += std::uniform_int_distribution<int64_t>(-jitter_us, jitter_us)(rng_);
    }
    delay_us = std::max<int64_t>(delay_us, 0);
    const Clock::time_point deliver =
        std::max(d->last_deliver, now + std::chrono::microseconds(delay_us));
    d->last_deliver = deliver;
    const char* data = d->read_buffer.data();
    d->queue.push_back(Chunk{std::vector<char>(data, data + n), 0, deliver});
    d->buffered += n;
    if (d->buffered > route_->buffered_peak.load(std::memory_order_relaxed)) {
      route_->buffered_peak.store(d->buffered, std::memory_order_relaxed);
    }
    MaybeWrite(d);
    MaybeRead(d);
  }

  void MaybeWrite(Direction* d) {
    if (closed_ || d->busy) return;
    if (d->queue.empty()) {
      if (d->eof && !d->shut) PassEnd(d);
      return;
    }
    const Clock::time_point now = Clock::now();
    if (now < stalled_until_) {
      WaitThenWrite(d, stalled_until_);
      return;
    }
    Chunk& chunk = d->queue.front();
    if (now < chunk.deliver) {
      WaitThenWrite(d, chunk.deliver);
      return;
    }
    size_t n = chunk.data.size() - chunk.offset;
    if (d->bucket.limited()) {
      const size_t allowed = d->bucket.Take(now, n);
      if (allowed == 0) {
        WaitThenWrite(d, d->bucket.ReadyAt(now, n));
        return;
      }
      n = allowed;
    }
    d->busy = true;
    // The chunk stays put while written: a deque keeps references across push_back.
    asio::async_write(*d->to, asio::buffer(chunk.data.data() + chunk.offset, n),
                      [self = shared_from_this(), d](const error_code& ec, size_t written) {
                        self->OnWritten(d, ec, written);
                      });
  }

  void OnWritten(Direction* d, const error_code& ec, size_t written) {
    d->busy = false;
    if (closed_) return;
    if (ec) {
      Close(true);
      return;
    }
    Chunk& chunk = d->queue.front();
    chunk.offset += written;
    d->buffered -= written;
    *d->bytes += written;
    if (chunk.offset == chunk.data.size()) d->queue.pop_front();
    MaybeRead(d);
    MaybeWrite(d);
  }

  void WaitThenWrite(Direction* d, Clock::time_point when) {
    d->busy = true;
    d->timer.expires_at(when);
    d->timer.async_wait([self = shared_from_this(), d](const error_code&) {
      d->busy = false;
      self->MaybeWrite(d);
    });
  }

  // The source finished and everything it sent was delivered: finish the sink's side too, and
  // close once both directions are finished.
  void PassEnd(Direction* d) {
    d->shut = true;
    error_code ec;
    d->to->shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close(true);
      return;
    }
    if (up_.shut && down_.shut) Close(false);
  }

  void ScheduleChaos() {
    chaos_timer_.expires_after(kChaosTick);
    chaos_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->OnChaosTick();
    });
  }

  void OnChaosTick() {
    if (closed_) return;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const Clock::time_point now = Clock::now();
    if (drop_per_tick_ > 0 && uniform(rng_) < drop_per_tick_) {
      ++route_->drops;
      spdlog::info("wan-proxy {}: dropping connection {} (reset)", route_->listen_address, id_);
      Close(true);
      return;
    }
    if (stall_per_tick_ > 0 && now >= stalled_until_ && uniform(rng_) < stall_per_tick_) {
      ++route_->stalls;
      stalled_until_ = now + std::chrono::milliseconds(params().stall_ms);
      spdlog::debug("wan-proxy {}: stalling connection {} for {} ms", route_->listen_address, id_,
                    params().stall_ms);
    }
    ScheduleChaos();
  }

  const std::shared_ptr<RouteState> route_;
  const uint64_t id_;
  tcp::socket client_;    // the listen side
  tcp::socket upstream_;  // the target side
  Direction up_;          // client_ -> upstream_
  Direction down_;        // upstream_ -> client_
  asio::steady_timer chaos_timer_;
  std::mt19937_64 rng_;
  const double drop_per_tick_;
  const double stall_per_tick_;
  Clock::time_point stalled_until_;
  bool closed_ = false;
};

// One HTTP/1.1 connection to the control endpoint.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  using Handler = std::function<Response(const Request&)>;

  ControlSession(tcp::socket socket, Handler handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {}

  void Start() { Read(); }
  void Close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void Read() {
    request_ = {};
    stream_.expires_after(kControlTimeout);
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](const error_code& ec, size_t) {
                       if (ec) {
                         self->Close();
                         return;
                       }
                       self->Respond();
                     });
  }

  void Respond() {
    response_ = handler_(request_);
    response_.version(request_.version());
    response_.keep_alive(request_.keep_alive());
    response_.prepare_payload();
    stream_.expires_after(kControlTimeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](const error_code& ec, size_t) {
                        if (ec || !self->response_.keep_alive()) {
                          self->Close();
                          return;
                        }
                        self->Read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Request request_;
  Response response_;
  Handler handler_;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The percent-decoded value of `key` in a query string ("" when absent); false when malformed.
bool QueryParameter(std::string_view query, std::string_view key, std::string* value) {
  value->clear();
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto equals = pair.find('=');
    if (pair.substr(0, equals) != key) continue;
    const std::string_view raw =
        equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        value->push_back(' ');
      } else if (raw[i] == '%') {
        if (i + 2 >= raw.size()) return false;
        const int high = HexValue(raw[i + 1]);
        const int low = HexValue(raw[i + 2]);
        if (high < 0 || low < 0) return false;
        value->push_back(static_cast<char>(high * 16 + low));
        i += 2;
      } else {
        value->push_back(raw[i]);
      }
    }
    return true;
  }
  return true;
}

Response JsonResponse(http::status status, std::string body) {
  Response response(status, 11);
  response.set(http::field::server, "meridian-wan-proxy");
  response.set(http::field::content_type, "application/json");
  response.body() = std::move(body);
  response.body() += '\n';
  return response;
}

Response ErrorResponse(http::status status, std::string_view message) {
  return JsonResponse(status, "{\"error\":" + JsonQuote(message) + "}");
}

}  // namespace

class WanProxy::Impl {
 public:
  explicit Impl(WanProxyOptions options)
      : options_(std::move(options)), control_acceptor_(io_), work_(io_.get_executor()) {}

  ~Impl() { Stop(); }

  Status Start() {
    if (started_) return Status(StatusCode::kInternal, "the proxy was already started");
    started_ = true;
    if (Status status = ValidateOptions(options_); !status.ok()) return status;
    seed_ = options_.seed;
    if (seed_ == 0) {
      std::random_device device;
      seed_ = (uint64_t{device()} << 32 | device()) | 1;
    }
    tcp::resolver resolver(io_);
    for (size_t i = 0; i < options_.routes.size(); ++i) {
      const Route& route = options_.routes[i];
      auto state = std::make_shared<RouteState>(io_);
      state->index = i;
      state->route = route;
      state->params = ParamsOf(route);
      const std::string name = "route " + route.listen() + "=" + route.target();
      error_code ec;
      const auto targets =
          resolver.resolve(route.target_host, std::to_string(route.target_port), ec);
      if (ec || targets.empty()) {
        return Unavailable(name + ": cannot resolve target host '" + route.target_host +
                           "': " + ec.message());
      }
      for (const auto& entry : targets) state->targets.push_back(entry.endpoint());
      auto bound = Listen(&state->acceptor, route.listen_host, route.listen_port, name);
      if (!bound.ok()) return bound.status();
      state->listen_address = FormatEndpoint(*bound);
      state->bound_port = bound->port();
      routes_.push_back(std::move(state));
    }
    if (!options_.control.empty()) {
      const auto colon = options_.control.rfind(':');
      std::string host = options_.control.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      const auto port = static_cast<uint16_t>(std::stoul(options_.control.substr(colon + 1)));
      auto bound = Listen(&control_acceptor_, host, port, "control endpoint");
      if (!bound.ok()) return bound.status();
      control_address_ = FormatEndpoint(*bound);
      control_port_ = bound->port();
      AcceptControl();
    }
    for (const auto& route : routes_) Accept(route);
    running_ = true;
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  void Stop() {
    if (thread_.joinable()) {
      asio::post(io_, [this] {
        Shutdown();
        io_.stop();
      });
      thread_.join();
    } else {
      Shutdown();
    }
    running_ = false;
  }

  Status SetPartitioned(std::string_view name, bool partitioned) {
    return RunOnIo([this, name, partitioned] { return SetPartitionedOnIo(name, partitioned); });
  }

  WanProxyStats Stats() const {
    WanProxyStats stats;
    stats.seed = seed_;
    stats.control = control_address_;
    for (const auto& route : routes_) {
      RouteStats out;
      out.listen = route->listen_address;
      out.target = route->route.target();
      out.delay_ms = route->params.delay_ms;
      out.jitter_ms = route->params.jitter_ms;
      out.drop = route->params.drop;
      out.stall = route->params.stall;
      out.stall_ms = route->params.stall_ms;
      out.bandwidth = route->params.bandwidth;
      out.partitioned = route->partitioned;
      out.connections_open = route->open;
      out.connections_total = route->total;
      out.connections_refused = route->refused;
      out.connect_failures = route->connect_failures;
      out.bytes_to_target = route->bytes_to_target;
      out.bytes_to_client = route->bytes_to_client;
      out.drops = route->drops;
      out.stalls = route->stalls;
      out.buffered_peak = route->buffered_peak;
      stats.routes.push_back(std::move(out));
    }
    return stats;
  }

  size_t route_count() const { return options_.routes.size(); }
  uint16_t listen_port(size_t index) const {
    return index < routes_.size() ? routes_[index]->bound_port : 0;
  }
  std::string listen_address(size_t index) const {
    return index < routes_.size() ? routes_[index]->listen_address : std::string();
  }
  uint16_t control_port() const { return control_port_; }

 private:
  RouteParams ParamsOf(const Route& route) const {
    RouteParams params;
    params.delay_ms = route.delay_ms.value_or(options_.delay_ms);
    params.jitter_ms = route.jitter_ms.value_or(options_.jitter_ms);
    params.drop = route.drop.value_or(options_.drop);
    params.stall = route.stall.value_or(options_.stall);
    params.stall_ms = route.stall_ms.value_or(options_.stall_ms);
    params.bandwidth = route.bandwidth.value_or(options_.bandwidth);
    params.buffer_bytes = options_.buffer_bytes;
    return params;
  }

  Result<tcp::endpoint> Listen(tcp::acceptor* acceptor, const std::string& host, uint16_t port,
                               const std::string& what) {
    tcp::resolver resolver(io_);
    error_code ec;
    const auto addresses = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    if (ec || addresses.empty()) {
      return Unavailable(what + ": cannot resolve listen host '" + host + "': " + ec.message());
    }
    const tcp::endpoint endpoint = addresses.begin()->endpoint();
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable(what + ": cannot listen on " + FormatEndpoint(endpoint) + ": " +
                         ec.message());
    }
    tcp::endpoint bound = acceptor->local_endpoint(ec);
    if (ec) return Unavailable(what + ": " + ec.message());
    return bound;
  }

  void Run() {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& error) {
        spdlog::error("wan-proxy: {}", error.what());
      }
    }
  }

  void Accept(const std::shared_ptr<RouteState>& route) {
    route->acceptor.async_accept([this, route](const error_code& ec, tcp::socket socket) {
      if (stopping_ || ec == asio::error::operation_aborted) return;
      if (ec) {
        // E.g. out of file descriptors: try again shortly rather than spin.
        spdlog::warn("wan-proxy {}: accept failed: {}", route->listen_address, ec.message());
        RetryLater([this, route] { Accept(route); });
        return;
      }
      OnAccept(route, std::move(socket));
      Accept(route);
    });
  }

  void OnAccept(const std::shared_ptr<RouteState>& route, tcp::socket socket) {
    if (route->partitioned) {
      ++route->refused;
      error_code ignored;
      socket.set_option(tcp::socket::linger(true, 0), ignored);
      socket.close(ignored);
      return;
    }
    const uint64_t id = route->next_id++;
    const uint64_t seed = SplitMix64(seed_ ^ SplitMix64((uint64_t{route->index} << 40) + id));
    auto connection = std::make_shared<Connection>(route, std::move(socket), id, seed);
    connection->Start();
  }

  void AcceptControl() {
    control_acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
      if (stopping_ || ec == asio::error::operation_aborted) return;
      if (ec) {
        spdlog::warn("wan-proxy control: accept failed: {}", ec.message());
        RetryLater([this] { AcceptControl(); });
        return;
      }
      auto session = std::make_shared<ControlSession>(
          std::move(socket), [this](const Request& request) { return HandleControl(request); });
      std::erase_if(control_sessions_, [](const auto& weak) { return weak.expired(); });
      control_sessions_.push_back(session);
      session->Start();
      AcceptControl();
    });
  }

  template <typename F>
  void RetryLater(F retry) {
    auto timer = std::make_shared<asio::steady_timer>(io_, kAcceptRetry);
    timer->async_wait([this, timer, retry](const error_code& ec) {
      if (!ec && !stopping_) retry();
    });
  }

  Response HandleControl(const Request& request) {
    const std::string_view target(request.target().data(), request.target().size());
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    if (path == "/status") {
      if (request.method() != http::verb::get) return MethodNotAllowed("GET");
      return JsonResponse(http::status::ok, StatsJson(Stats()));
    }
    if (path == "/partition" || path == "/heal") {
      if (request.method() != http::verb::post) return MethodNotAllowed("POST");
      std::string route;
      if (!QueryParameter(query, "route", &route)) {
        return ErrorResponse(http::status::bad_request, "malformed percent-encoding in the query");
      }
      const Status status = SetPartitionedOnIo(route, path == "/partition");
      if (!status.ok()) return ErrorResponse(http::status::not_found, status.message());
      return JsonResponse(http::status::ok, StatsJson(Stats()));
    }
    return ErrorResponse(http::status::not_found,
                         "no endpoint " + std::string(path) +
                             " (GET /status, POST /partition?route=, POST /heal?route=)");
  }

  static Response MethodNotAllowed(const char* allow) {
    Response response = ErrorResponse(http::status::method_not_allowed,
                                      std::string("method not allowed; use ") + allow);
    response.set(http::field::allow, allow);
    return response;
  }

  // Runs `f` on the proxy's thread and waits for it (directly when not running, or when
  // already on that thread).
  Status RunOnIo(const std::function<Status()>& f) {
    if (!running_ || io_.get_executor().running_in_this_thread()) return f();
    std::promise<Status> done;
    std::future<Status> result = done.get_future();
    asio::post(io_, [&done, &f] { done.set_value(f()); });
    return result.get();
  }

  Result<std::vector<RouteState*>> FindRoutes(std::string_view name) const {
    std::vector<RouteState*> found;
    std::string known;
    for (const auto& route : routes_) {
      if (name.empty() || name == route->route.listen() || name == route->listen_address ||
          name == std::to_string(route->bound_port)) {
        found.push_back(route.get());
      }
      known += known.empty() ? "" : ", ";
      known += route->listen_address;
    }
    if (found.empty() && !name.empty()) {
      return Status(StatusCode::kNotFound,
                    "no route '" + std::string(name) + "' (routes: " + known + ")");
    }
    return found;
  }

  Status SetPartitionedOnIo(std::string_view name, bool partitioned) {
    auto routes = FindRoutes(name);
    if (!routes.ok()) return routes.status();
    for (RouteState* route : *routes) {
      const bool was = route->partitioned.exchange(partitioned);
      if (partitioned) CloseConnections(route, /*reset=*/true);
      if (was != partitioned) {
        spdlog::info("wan-proxy {}: {}", route->listen_address,
                     partitioned ? "partitioned" : "healed");
      }
    }
    return Status::Ok();
  }

  static void CloseConnections(RouteState* route, bool reset) {
    std::vector<std::shared_ptr<Connection>> open;
    for (Connection* connection : route->connections)
      open.push_back(connection->shared_from_this());
    for (const auto& connection : open) connection->Close(reset);
  }

  void Shutdown() {
    stopping_ = true;
    error_code ignored;
    control_acceptor_.close(ignored);
    for (const auto& weak : control_sessions_) {
      if (auto session = weak.lock()) session->Close();
    }
    control_sessions_.clear();
    for (const auto& route : routes_) {
      route->acceptor.close(ignored);
      CloseConnections(route.get(), /*reset=*/false);
    }
  }

  asio::io_context io_;  // first: destroyed last, after everything bound to it
  const WanProxyOptions options_;
  tcp::acceptor control_acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<RouteState>> routes_;
  std::vector<std::weak_ptr<ControlSession>> control_sessions_;  // proxy thread only
  std::string control_address_;
  uint16_t control_port_ = 0;
  uint64_t seed_ = 0;
  bool started_ = false;
  bool stopping_ = false;  // proxy thread only (or no thread)
  std::atomic<bool> running_{false};
  std::thread thread_;
};

WanProxy::WanProxy(WanProxyOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
WanProxy::~WanProxy() = default;

Status WanProxy::Start() {
  return impl_->Start();
}
void WanProxy::Stop() {
  impl_->Stop();
}
Status WanProxy::Partition(std::string_view route) {
  return impl_->SetPartitioned(route, true);
}
Status WanProxy::Heal(std::string_view route) {
  return impl_->SetPartitioned(route, false);
}
WanProxyStats WanProxy::stats() const {
  return impl_->Stats();
}
size_t WanProxy::route_count() const {
  return impl_->route_count();
}
uint16_t WanProxy::listen_port(size_t index) const {
  return impl_->listen_port(index);
}
std::string WanProxy::listen_address(size_t index) const {
  return impl_->listen_address(index);
}
uint16_t WanProxy::control_port() const {
  return impl_->control_port();
}

int RunWanProxy(const WanProxyOptions& options) {
  // Signals are caught from here on, before any thread starts.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.add(SIGUSR1);
  signals.add(SIGUSR2);

  WanProxy proxy(options);
  if (Status status = proxy.Start(); !status.ok()) {
    std::fprintf(stderr, "meridian wan-proxy: %s\n", status.message().c_str());
    return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  const WanProxyStats stats = proxy.stats();
  for (const RouteStats& route : stats.routes) {
    std::string line = "wan-proxy route " + route.listen + " -> " + route.target +
                       " delay_ms=" + std::to_string(route.delay_ms) +
                       " jitter_ms=" + std::to_string(route.jitter_ms);
    char extra[128];
    if (route.drop > 0) {
      std::snprintf(extra, sizeof extra, " drop=%g", route.drop);
      line += extra;
    }
    if (route.stall > 0) {
      std::snprintf(extra, sizeof extra, " stall=%g stall_ms=%u", route.stall, route.stall_ms);
      line += extra;
    }
    if (route.bandwidth > 0) line += " bandwidth=" + std::to_string(route.bandwidth);
    std::printf("%s\n", line.c_str());
  }
  if (!stats.control.empty()) std::printf("wan-proxy control %s\n", stats.control.c_str());
  std::printf("wan-proxy ready seed=%llu\n", static_cast<unsigned long long>(stats.seed));
  std::fflush(stdout);

  std::function<void(const error_code&, int)> on_signal = [&](const error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGUSR1 || signal == SIGUSR2) {
      const bool partition = signal == SIGUSR1;
      const Status status = partition ? proxy.Partition() : proxy.Heal();
      spdlog::info("wan-proxy: {}: {} every route", partition ? "SIGUSR1" : "SIGUSR2",
                   status.ok() ? (partition ? "partitioned" : "healed") : status.message());
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("wan-proxy: {}: stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
  };
  signals.async_wait(on_signal);
  io.run();
  proxy.Stop();
  return 0;
}

}  // namespace meridian::wanproxy
