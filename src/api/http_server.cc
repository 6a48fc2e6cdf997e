#include "api/http_server.h"

// g++ 12 needs <utility> before Asio when coroutines are used.
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "api/async_node.h"
#include "api/forward.h"
#include "api/request.h"
#include "api/service.h"
#include "api/session_token.h"
#include "api/two_phase.h"
#include "api/ui_assets.h"
#include "core/document.h"
#include "core/thread_name.h"
#include "core/trace.h"
#include "net/tls_context.h"

namespace meridian::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
// Each HTTP thread runs an io_context of its own, and a connection lives on one of them: its
// handlers never run concurrently, with no strand. The executor is named by its concrete type: a
// type-erased one (any_io_executor), or a strand, costs allocations and atomic operations on every
// operation.
using Executor = asio::io_context::executor_type;
template <class T>
using awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> use_awaitable;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;
// With [tls] every connection is one of these; the session code is a template over the two
// stream types, so the plaintext path pays nothing for TLS.
using TlsStream = beast::ssl_stream<Stream>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTlsHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);
constexpr auto kWatchHeartbeat = std::chrono::seconds(15);
constexpr auto kShutdownGrace = std::chrono::seconds(10);
constexpr auto kWebSocketCloseTimeout = std::chrono::seconds(2);

// One accepted connection, as the server and the request handlers see it whatever its stream.
// Lives as long as its session coroutine; the server keeps a weak reference to wake or close it
// on shutdown.
struct Connection {
  explicit Connection(Executor executor) : executor(std::move(executor)) {}
  virtual ~Connection() = default;
  // Cancels a read waiting for the next request (shutdown); only on the connection's thread.
  virtual void CancelIdleRead() = 0;
  // The connection's io_context (one thread runs it), kept here because the stream moves into a
  // WebSocket for watches.
  const Executor executor;
  bool websocket = false;  // the stream was moved into a WebSocket
  bool busy = false;       // a request is being handled (touched only on the connection's thread)
  std::function<void()> wake;  // set while a watch or wait is parked
};

// A connection on a plaintext (Stream) or TLS (TlsStream) stream.
template <class S>
struct StreamConnection final : Connection {
  template <class... Args>
  explicit StreamConnection(Socket socket, Args&&... args)
      : Connection(socket.get_executor()),
        stream(Stream(std::move(socket)), std::forward<Args>(args)...) {}
  void CancelIdleRead() override {
    beast::error_code ignored;
    if (!websocket) tcp().socket().cancel(ignored);
  }
  Stream& tcp() { return beast::get_lowest_layer(stream); }
  S stream;
  // The TLS context the connection was made with: kept as long as the connection, whatever
  // contexts later reloads bring.
  std::shared_ptr<asio::ssl::context> tls;
};

Response MakeResponse(const Request& request, http::status status, std::string body,
                      std::string_view content_type = "application/json") {
  Response response(status, request.version());
  response.set(http::field::server, "meridian");
  response.set(http::field::content_type,
               beast::string_view(content_type.data(), content_type.size()));
  response.body() = std::move(body);
  return response;
}

Response ErrorResponse(const Request& request, const ApiError& error) {
  Response response =
      MakeResponse(request, static_cast<http::status>(error.status), ErrorBody(error));
  if (!error.allow.empty()) response.set(http::field::allow, error.allow);
  if (error.status == 401) response.set(http::field::www_authenticate, "Bearer");
  return response;
}

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(node::Node* node)
      : node_(node),
        contexts_(MakeContexts(node->config().http_threads > 0 ? node->config().http_threads
                                                               : DefaultThreads())),
        io_(*contexts_.front()),
        acceptor_(io_),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        hard_stop_(io_),
        write_timeout_(node->config().write_timeout_ms) {}

  Status Listen() {
    if (const net::TlsFiles& tls = node_->config().tls; tls.enabled()) {
      auto holder = net::TlsContextHolder::Create(tls);
      if (!holder.ok()) return holder.status();
      tls_ = std::move(holder).value();
    }
    std::string host;
    uint16_t port = 0;
    node::SplitHostPort(node_->config().self().http, &host, &port);
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return InvalidArgument("http address " + host + " is not an IP address");
    const tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + node_->config().self().http + ": " + ec.message());
    }
    return Status::Ok();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // One HTTP thread per core but one: the commit thread (and RocksDB under it) needs a core of
  // its own, and on small machines extra HTTP threads only contend with it.
  static int DefaultThreads() {
    const unsigned cores = std::thread::hardware_concurrency();
    return static_cast<int>(cores > 1 ? cores - 1 : 1);
  }

  void Run() {
    WaitForSignal();
    asio::co_spawn(io_, Accept(), asio::detached);
    spdlog::info("region {} serving {} on {}", node_->config().region, tls_ ? "HTTPS" : "HTTP",
                 node_->config().self().http);
    std::vector<std::thread> threads;
    for (size_t i = 1; i < contexts_.size(); ++i) {
      // Kept running while it has no connection, until the stop.
      idle_guards_.push_back(asio::make_work_guard(*contexts_[i]));
      threads.emplace_back([this, i] {
        core::NameThisThread("http-" + std::to_string(i));
        contexts_[i]->run();
      });
    }
    io_.run();
    for (std::thread& thread : threads) thread.join();
    if (before_node_stop_) before_node_stop_();
    node_->Stop();
    spdlog::info("region {} stopped: every acknowledged write is durable", node_->config().region);
  }

  void SetBeforeNodeStop(std::function<void()> hook) { before_node_stop_ = std::move(hook); }

  void RequestStop() {
    asio::post(io_, [this] { BeginStop(); });
  }

 private:
  // SIGINT and SIGTERM stop the server; SIGHUP reads the [tls] files and the [auth] secrets again
  // (the rotations of docs/security.md) and keeps serving.
  void WaitForSignal() {
    signals_.async_wait([this](const beast::error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        if (tls_) (void)tls_->Reload("SIGHUP");
        if (auth::SecretFile* secrets = node_->secrets()) {
          if (Status reloaded = secrets->Reload(); !reloaded.ok()) {
            spdlog::error("SIGHUP: {}; keeping the secrets read before", reloaded.message());
          }
        }
        if (!tls_ && node_->secrets() == nullptr)
          spdlog::info("SIGHUP: no [tls] or [auth] to reload");
        WaitForSignal();
        return;
      }
      spdlog::info("signal {}: stopping", signal);
      BeginStop();
    });
  }

  void BeginStop() {
    if (stopping_.exchange(true)) return;
    beast::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    hard_stop_.expires_after(kShutdownGrace);
    hard_stop_.async_wait([this](const beast::error_code& ec) {
      if (!ec) {
        spdlog::warn("connections still open after {} s: closing them",
                     std::chrono::duration_cast<std::chrono::seconds>(kShutdownGrace).count());
        for (const auto& context : contexts_) context->stop();
      }
    });
    std::lock_guard lock(connections_mutex_);
    for (const auto& weak : connections_) {
      auto connection = weak.lock();
      if (!connection) continue;
      asio::post(connection->executor, [connection] {
        if (connection->wake) connection->wake();
        if (!connection->busy) connection->CancelIdleRead();
      });
    }
    MaybeFinishStop();
  }

  void MaybeFinishStop() {
    if (stopping_ && open_connections_.load() == 0) {
      asio::post(io_, [this] {
        hard_stop_.cancel();
        for (auto& guard : idle_guards_) guard.reset();
      });
    }
  }

  awaitable<void> Accept() {
    const node::NodeConfig& config = node_->config();
    for (;;) {
      beast::error_code ec;
      asio::io_context& home = *contexts_[next_context_++ % contexts_.size()];
      Socket socket = co_await acceptor_.async_accept(home.get_executor(),
                                                      asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (stopping_) co_return;
        if (ec == asio::error::no_descriptors) {
          // Out of file descriptors: back off instead of spinning; open connections finish.
          spdlog::warn("accept: out of file descriptors; pausing new connections for 100 ms");
          Timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
          co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
        }
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      if (open_connections_.load() >= config.connections_max) {
        // Refused before anything is read or parsed (or, with TLS, any handshake computed): an
        // overloaded server spends almost nothing on connections it cannot serve.
        Refuse(std::move(socket));
        continue;
      }
      if (tls_) {
        std::shared_ptr<asio::ssl::context> context = tls_->Current();
        auto connection =
            std::make_shared<StreamConnection<TlsStream>>(std::move(socket), *context);
        connection->tls = std::move(context);
        Spawn(std::move(connection));
      } else {
        Spawn(std::make_shared<StreamConnection<Stream>>(std::move(socket)));
      }
    }
  }

  template <class S>
  void Spawn(std::shared_ptr<StreamConnection<S>> connection) {
    ++open_connections_;
    {
      std::lock_guard lock(connections_mutex_);
      std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
      connections_.push_back(connection);
    }
    const Executor executor = connection->executor;
    asio::co_spawn(executor, Session(std::move(connection)), [this](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          spdlog::error("session failed: {}", e.what());
        }
      }
      --open_connections_;
      MaybeFinishStop();
    });
  }

  // A connection beyond http.connections_max. Plaintext: a canned 429 at once, the rest of what
  // the client sends read and dropped (closing with unread data would reset the connection, and
  // the client might lose the answer) for at most a second. TLS: closed at once, as answering
  // would cost a handshake. The refusals in progress are bounded too.
  void Refuse(Socket socket) {
    beast::error_code ignored;
    if (tls_ || refusing_.load() >= 64) {
      socket.close(ignored);
      return;
    }
    ++refusing_;
    const Executor executor = socket.get_executor();
    asio::co_spawn(
        executor,
        [](Socket socket) -> awaitable<void> {
          const std::string body = ErrorBody(
              {429, "overloaded", "too many open connections (http.connections_max)", {}});
          const std::string answer =
              "HTTP/1.1 429 Too Many Requests\r\nServer: meridian\r\n"
              "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
          Stream stream(std::move(socket));
          beast::error_code ec;
          stream.expires_after(std::chrono::seconds(1));
          co_await asio::async_write(stream, asio::buffer(answer),
                                     asio::redirect_error(use_awaitable, ec));
          stream.socket().shutdown(Socket::shutdown_send, ec);
          char discard[4096];
          for (int i = 0; i < 16 && !ec; ++i) {
            co_await stream.async_read_some(asio::buffer(discard),
                                            asio::redirect_error(use_awaitable, ec));
          }
        }(std::move(socket)),
        [this](std::exception_ptr) { --refusing_; });
  }

  template <class S>
  awaitable<void> Session(std::shared_ptr<StreamConnection<S>> connection) {
    const node::NodeConfig& config = node_->config();
    // Named: the handlers take the connection as a Connection (see Watch on temporaries).
    const std::shared_ptr<Connection> base = connection;
    if constexpr (std::is_same_v<S, TlsStream>) {
      // TLS only: anything else (a plaintext request) fails the handshake and is closed
      // without an answer.
      beast::error_code ec;
      connection->tcp().expires_after(std::min<Clock::duration>(
          kTlsHandshakeTimeout, std::chrono::milliseconds(config.idle_timeout_ms)));
      co_await connection->stream.async_handshake(asio::ssl::stream_base::server,
                                                  asio::redirect_error(use_awaitable, ec));
      if (ec) {
        spdlog::debug("TLS handshake failed: {}",
                      net::HandshakeFailure(connection->stream.native_handle(), ec));
        beast::error_code ignored;
        connection->tcp().socket().close(ignored);
        co_return;
      }
    }
    beast::flat_buffer buffer;
    for (;;) {
      connection->busy = false;
      if (stopping_) break;
      http::request_parser<http::string_body> parser;
      parser.body_limit(config.body_bytes_max);
      parser.header_limit(16 * 1024);
      connection->tcp().expires_after(std::chrono::milliseconds(config.idle_timeout_ms));
      beast::error_code ec;
      co_await http::async_read(connection->stream, buffer, parser,
                                asio::redirect_error(use_awaitable, ec));
      connection->busy = true;
      const auto started = Clock::now();
      if (ec) {
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == asio::error::eof || ec == beast::error::timeout ||
            ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
          break;  // closed, timed out or cancelled: nothing to answer
        }
        ApiError error;
        if (ec == http::error::body_limit) {
          error = {413,
                   "too_large",
                   "the body is larger than " + std::to_string(config.body_bytes_max) + " bytes",
                   {}};
        } else if (ec == http::error::header_limit) {
          error = {431, "headers_too_large", "the request headers are larger than 16 KiB", {}};
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
          error = {400, "bad_request", "this is not an HTTP/1.1 request: " + ec.message(), {}};
        } else {
          break;
        }
        Request blank;
        blank.version(11);
        Response response = ErrorResponse(blank, error);
        response.keep_alive(false);
        response.prepare_payload();
        connection->tcp().expires_after(write_timeout_);
        co_await http::async_write(connection->stream, response,
                                   asio::redirect_error(use_awaitable, ec));
        break;
      }
      Request request = parser.release();
      const RequestView view{
          std::string_view(request.method_string().data(), request.method_string().size()),
          std::string_view(request.target().data(), request.target().size()),
          Header(request, http::field::content_type),
          Header(request, "Meridian-Session"),
          Header(request, "Last-Event-ID"),
          request.body(),
          Header(request, "Idempotency-Key"),
          Header(request, http::field::if_match),
          Header(request, http::field::if_none_match),
          Header(request, kForwardedHeader),
          Header(request, "traceparent")};
      auto parsed = ParseRequest(view, config.limits);
      // [auth] before any handler (watches included): 401 or 403 replaces the call. A refused
      // watch ends its connection, as every watch does.
      if (auto refused = CheckToken(request, parsed)) {
        auto* call = std::get_if<ApiCall>(&parsed);
        if (call != nullptr && call->route == Route::kWatch) request.keep_alive(false);
        parsed = *refused;
      }
      if (auto* call = std::get_if<ApiCall>(&parsed);
          call != nullptr && call->route == Route::kWatch) {
        co_await Watch(connection, request, *call);
        break;  // a watch ends its connection
      }
      Response response;
      Route route = Route::kRejected;
      if (auto* error = std::get_if<ApiError>(&parsed)) {
        response = ErrorResponse(request, *error);
      } else {
        ApiCall& call = std::get<ApiCall>(parsed);
        route = call.route;
        response = co_await Handle(base, request, call);
      }
      node_->metrics().ObserveRequest(
          route, static_cast<int>(response.result_int()),
          std::chrono::duration<double>(Clock::now() - started).count());
      if (request.method() == http::verb::head) {
        response.content_length(response.body().size());
        response.body().clear();
      } else {
        response.prepare_payload();
      }
      response.keep_alive(request.keep_alive() && !stopping_);
      connection->tcp().expires_after(write_timeout_);
      co_await http::async_write(connection->stream, response,
                                 asio::redirect_error(use_awaitable, ec));
      if (ec || !response.keep_alive()) break;
    }
    if (connection->websocket) co_return;
    beast::error_code ignored;
    if constexpr (std::is_same_v<S, TlsStream>) {
      // close_notify, so that the client tells a complete answer from a cut one.
      connection->tcp().expires_after(kTlsShutdownTimeout);
      co_await connection->stream.async_shutdown(asio::redirect_error(use_awaitable, ignored));
      connection->tcp().socket().close(ignored);
    } else {
      connection->tcp().socket().shutdown(Socket::shutdown_send, ignored);
    }
  }

  // [auth] (api/authorize.h): the refusal of a request, or nullopt. A request that did not parse
  // is refused too when its token does not verify, so that without one nothing is learnt but
  // 401; its own error stands otherwise.
  std::optional<ApiError> CheckToken(const Request& request,
                                     std::variant<ApiCall, ApiError>& parsed) {
    const std::string_view authorization = Header(request, http::field::authorization);
    if (auto* call = std::get_if<ApiCall>(&parsed)) return CheckAccess(*node_, authorization, call);
    if (node_->secrets() == nullptr) return std::nullopt;
    auto authenticated = Authenticated(*node_, authorization);
    if (auto* error = std::get_if<ApiError>(&authenticated)) return *error;
    return std::nullopt;
  }

  static std::string_view Header(const Request& request, http::field field) {
    auto it = request.find(field);
    return it == request.end() ? std::string_view()
                               : std::string_view(it->value().data(), it->value().size());
  }
  static std::string_view Header(const Request& request, std::string_view name) {
    auto it = request.find(beast::string_view(name.data(), name.size()));
    return it == request.end() ? std::string_view()
                               : std::string_view(it->value().data(), it->value().size());
  }

  // A timer on the connection's io_context and a thread-safe function that wakes whoever waits
  // on it: the way commits and shutdown reach a parked watch.
  static std::pair<std::shared_ptr<Timer>, std::function<void()>> MakeWaker(
      const std::shared_ptr<Connection>& connection) {
    return api::MakeWaker(connection->executor);
  }

  // Parks the coroutine until `ready()` holds, a commit happens, or the deadline passes; loops
  // until ready or deadline. Returns ready().
  awaitable<bool> WaitUntil(const std::shared_ptr<Connection>& connection,
                            const Clock::time_point& deadline, const std::function<bool()>& ready) {
    const std::function<bool()> stopping = [this] { return stopping_.load(); };
    const bool done =
        co_await AwaitCondition<Executor>(*node_, deadline, ready, stopping, &connection->wake);
    co_return done;
  }

  // Region::RetryDeadLetter on the commit thread, without blocking this one.
  awaitable<Result<node::DeadLetterRetry>> RetryDeadLetter(uint64_t id) {
    auto executor = co_await asio::this_coro::executor;
    auto initiation = [this, executor, id](auto handler) {
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      const bool queued = node_->SubmitDeadLetterRetry(
          id, [shared, executor](Result<node::DeadLetterRetry> outcome) {
            asio::post(executor, [shared, outcome = std::move(outcome)]() mutable {
              (*shared)(std::move(outcome));
            });
          });
      if (!queued) {
        asio::post(executor, [shared] {
          (*shared)(Result<node::DeadLetterRetry>(
              Status(StatusCode::kUnavailable, "the node is stopping")));
        });
      }
    };
    Result<node::DeadLetterRetry> outcome =
        co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&,
                                      void(Result<node::DeadLetterRetry>)>(initiation,
                                                                           use_awaitable);
    co_return outcome;
  }

  awaitable<Result<node::Receipt>> SubmitWrite(node::WriteRequest& request) {
    Result<node::Receipt> outcome = co_await AwaitWrite<Executor>(*node_, request);
    co_return outcome;
  }

  // Runs `job` (blocking: a forward, a two-phase commit) on the forward pool; `busy` when the
  // pool is full.
  template <typename T>
  awaitable<T> OnPool(std::function<T()> job, T busy) {
    auto executor = co_await asio::this_coro::executor;
    auto initiation = [this, executor, &job, &busy](auto handler) {
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      const bool queued = forwards_.Submit([shared, executor, job = std::move(job)] {
        T answer = job();
        asio::post(executor, [shared, answer = std::move(answer)]() mutable {
          (*shared)(std::move(answer));
        });
      });
      if (!queued) {
        asio::post(executor,
                   [shared, busy = std::move(busy)]() mutable { (*shared)(std::move(busy)); });
      }
    };
    T outcome = co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, void(T)>(
        initiation, use_awaitable);
    co_return outcome;
  }

  static ApiError PoolBusy() {
    return {429, "overloaded", "too many requests wait for other regions", {}};
  }

  // How long the console's deployment view waits for each other region's status.
  static constexpr std::chrono::milliseconds kDeploymentAskTimeout{1000};

  // GET `target` of every other region with the caller's Authorization, all at once (one forward
  // pool job, a thread per region), each bounded by kDeploymentAskTimeout: what the console's
  // deployment and trace views gather. With the pool full, no region is asked (empty map).
  awaitable<std::map<std::string, RegionAnswer>> AskEveryRegion(const Request& request,
                                                                std::string target) {
    using Answers = std::map<std::string, RegionAnswer>;
    std::string authorization(Header(request, http::field::authorization));
    std::function<Answers()> job = [this, target = std::move(target),
                                    authorization = std::move(authorization)] {
      std::vector<std::pair<std::string, std::future<Forwarded>>> asks;
      for (const node::RegionAddress& address : node_->config().regions) {
        if (address.name == node_->config().region) continue;
        ForwardRequest forward;
        forward.method = "GET";
        forward.target = target;
        if (!authorization.empty()) forward.headers["authorization"] = authorization;
        asks.emplace_back(address.name,
                          std::async(std::launch::async, [this, id = address.id, forward] {
                            return Forward(*node_, id, forward, kDeploymentAskTimeout);
                          }));
      }
      Answers answers;
      for (auto& [name, ask] : asks) {
        Forwarded got = ask.get();
        answers[name] = RegionAnswer{got.status, std::move(got.body), std::move(got.error)};
      }
      return answers;
    };
    Answers busy;
    Answers answers = co_await OnPool<Answers>(std::move(job), std::move(busy));
    co_return answers;
  }

  // Runs Forward on the forward pool; 429 when it is full.
  awaitable<Forwarded> RunForward(core::RegionId region, ForwardRequest forward,
                                  std::chrono::milliseconds timeout) {
    Forwarded busy;
    busy.status = 429;
    busy.body = ErrorBody(PoolBusy());
    // Named, not temporaries of the co_await expression (see Watch).
    std::function<Forwarded()> job = [this, region, forward = std::move(forward), timeout] {
      return Forward(*node_, region, forward, timeout);
    };
    Forwarded outcome = co_await OnPool<Forwarded>(std::move(job), std::move(busy));
    co_return outcome;
  }

  // A strong transaction across homes: two-phase commit, coordinated here, on the forward pool.
  awaitable<std::variant<Coordinated, ApiError>> RunCoordinate(const Request& request,
                                                               const ApiCall& call,
                                                               const StrongRoute& route) {
    CoordinateRequest coordinate;
    coordinate.txn = call.txn;
    coordinate.body = request.body();
    coordinate.authorization = std::string(Header(request, http::field::authorization));
    coordinate.idempotency_key = call.idempotency_key;
    coordinate.timeout_ms = call.durability_timeout_ms;
    using Outcome = std::variant<Coordinated, ApiError>;
    std::function<Outcome()> job = [this, route, coordinate = std::move(coordinate)] {
      return Coordinate(*node_, route, coordinate);
    };
    Outcome busy = PoolBusy();
    Outcome outcome = co_await OnPool<Outcome>(std::move(job), std::move(busy));
    co_return outcome;
  }

  // The home's answer as this region's: its status, body and the headers a client reads.
  static Response ForwardedResponse(const Request& request, const Forwarded& forwarded) {
    auto header = [&](const char* name) {
      auto it = forwarded.headers.find(name);
      return it == forwarded.headers.end() ? std::string() : it->second;
    };
    std::string type = header("content-type");
    Response response = MakeResponse(request, static_cast<http::status>(forwarded.status),
                                     forwarded.body, type.empty() ? "application/json" : type);
    for (const char* name : {"etag", "meridian-session", "idempotent-replayed", "allow"}) {
      if (std::string value = header(name); !value.empty()) response.set(name, value);
    }
    return response;
  }

  // A strong request of a region that is not its home: sent to the home, whose answer is the
  // answer. A forwarded request is never forwarded again (421 not_home: the homes disagree while
  // a move replicates).
  awaitable<Response> ForwardStrong(const Request& request, const ApiCall& call,
                                    const StrongRoute& route) {
    if (!call.forwarded_by.empty()) {
      co_return ErrorResponse(
          request, {421,
                    "not_home",
                    "region " + node_->config().region + " is not the home of this request's " +
                        "keys (region " + route.home_name + " is, as far as it knows); " +
                        "forwarded by region " + call.forwarded_by,
                    {}});
    }
    ForwardRequest forward;
    forward.method = std::string(request.method_string());
    forward.target = std::string(request.target());
    forward.body = request.body();
    const bool write = IsWrite(call.route);
    const std::string idempotency_key = AddForwardHeaders(
        *node_,
        {Header(request, http::field::content_type), Header(request, http::field::authorization),
         Header(request, "Meridian-Session"), Header(request, http::field::if_match),
         Header(request, http::field::if_none_match), Header(request, "Idempotency-Key"),
         Header(request, "traceparent")},
        write, &forward);
    Forwarded forwarded = co_await RunForward(
        route.home, std::move(forward), std::chrono::milliseconds(call.durability_timeout_ms));
    if (forwarded.status == 0 || forwarded.status == 421) {
      co_return ErrorResponse(request, *ForwardedError(route, forwarded, write, idempotency_key));
    }
    co_return ForwardedResponse(request, forwarded);
  }

  // POST /v1/homes/move: a planned move runs in the prefix's current home (forwarded there); a
  // forced one where it is received.
  awaitable<std::variant<nlohmann::json, Forwarded, ApiError>> MoveHome(const Request& request,
                                                                        const ApiCall& call) {
    auto plan = PlanHomeMove(*node_, call.move);
    if (auto* error = std::get_if<ApiError>(&plan)) co_return *error;
    HomeMovePlan& move = std::get<HomeMovePlan>(plan);
    if (move.unchanged) co_return HomeJson(*node_, move.home);
    if (!move.here) {
      if (!call.forwarded_by.empty()) {
        co_return ApiError{
            421,
            "not_home",
            "region " + node_->config().region + " is not the home of '" + call.move.prefix + "'",
            {}};
      }
      ForwardRequest forward;
      forward.method = "POST";
      forward.target = "/v1/homes/move";
      forward.body = nlohmann::json{{"prefix", call.move.prefix}, {"to", call.move.to}}.dump();
      // The caller's token goes with it (admin, checked again there).
      AddForwardHeaders(*node_,
                        {.content_type = "application/json",
                         .authorization = Header(request, http::field::authorization)},
                        /*write=*/false, &forward);
      Forwarded forwarded = co_await RunForward(move.home.region, std::move(forward),
                                                std::chrono::milliseconds(5000));
      if (forwarded.status == 0) {
        co_return ApiError{503,
                           "home_unavailable",
                           "the home of '" + call.move.prefix + "', region " +
                               node_->homes().NameOf(move.home.region) +
                               ", could not be reached (" + forwarded.error +
                               "): a planned move needs it; when it is lost, force the move "
                               "(\"force\": true, docs/semantics.md#home-regions)",
                           {}};
      }
      co_return forwarded;
    }
    node::WriteRequest write = node::HomeMoveWrite(node_->homes(), move.next);
    Result<node::Receipt> receipt = co_await SubmitWrite(write);
    if (!receipt.ok()) co_return ErrorFromStatus(receipt.status());
    nlohmann::json body = HomeJson(*node_, move.next);
    body["event"] = node_->region().EventId(receipt->dot);
    co_return body;
  }

  awaitable<Response> Handle(const std::shared_ptr<Connection>& connection, const Request& request,
                             ApiCall& call) {
    node::Region& region = node_->region();
    storage::Store& store = node_->store();
    const node::NodeConfig& config = node_->config();

    // consistency=strong: runs in the key's home; anywhere else it is forwarded there, and the
    // session wait is the home's.
    // A transaction whose keys have different homes is coordinated here (two-phase commit).
    std::optional<StrongRoute> across;
    if (call.strong) {
      auto routed = RouteStrong(*node_, call);
      if (auto* error = std::get_if<ApiError>(&routed)) co_return ErrorResponse(request, *error);
      const StrongRoute route = std::get<StrongRoute>(routed);
      if (route.across()) {
        across = route;
      } else if (!route.here) {
        co_return co_await ForwardStrong(request, call, route);
      }
    }
    // A read (or write) carrying a session token first waits for the frontier to cover it.
    if (call.session && !call.session->empty()) {
      const core::VersionVector token = *call.session;
      const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(call.wait_ms);
      const std::function<bool()> covers = [&] { return region.frontier().Dominates(token); };
      const bool covered = co_await WaitUntil(connection, deadline, covers);
      if (!covered) co_return ErrorResponse(request, SessionTimeout(call.wait_ms));
    }

    switch (call.route) {
      case Route::kPutDocument:
      case Route::kPatchDocument:
      case Route::kIncrementDocument:
      case Route::kDeleteDocument:
      case Route::kTransaction:
      case Route::kPutBounds: {
        if (auto error = CheckDurabilityRegions(config, call.durability_regions)) {
          co_return ErrorResponse(request, *error);
        }
        Result<node::Receipt> receipt = Status(StatusCode::kInternal, "not run");
        std::string write_trace;  // the write's trace context (core/trace.h), when traced here
        if (across) {
          auto coordinated = co_await RunCoordinate(request, call, *across);
          if (auto* error = std::get_if<ApiError>(&coordinated)) {
            co_return ErrorResponse(request, *error);
          }
          receipt = std::move(std::get<Coordinated>(coordinated).receipt);
        } else {
          if (call.strong) {
            // Keys held by a two-phase transaction: it commits or aborts within about a round
            // trip (the commit path refuses a write on a key still held, 423 locked).
            const auto locked = [&] { return HeldByTransaction(region, call.key, call.txn.get()); };
            if (locked()) {
              co_await WaitUntil(
                  connection, Clock::now() + std::chrono::milliseconds(call.durability_timeout_ms),
                  [&] { return !locked(); });
            }
          }
          node::WriteRequest write = MakeWriteRequest(call);
          write_trace = write.trace;
          const uint64_t started_ns = core::WallNs();
          receipt = co_await SubmitWrite(write);
          if (!write_trace.empty() && receipt.ok() && !receipt->replayed) {
            node_->traces().Record({WriteSpan(*node_, call, write_trace, *receipt, started_ns)});
          }
        }
        if (!receipt.ok() && receipt.status().code() == StatusCode::kNotHome && call.strong &&
            !across && call.forwarded_by.empty()) {
          // The home moved away between the routing and the commit: to where it is now.
          auto routed = RouteStrong(*node_, call);
          if (auto* route = std::get_if<StrongRoute>(&routed); route != nullptr && !route->here) {
            co_return co_await ForwardStrong(request, call, *route);
          }
        }
        if (!receipt.ok()) co_return ErrorResponse(request, ErrorFromStatus(receipt.status()));
        core::VersionVector session = receipt->frontier;
        if (call.session) session.Merge(*call.session);
        const std::string token = EncodeSessionToken(session);
        nlohmann::json body = ReceiptJson(region, *receipt, token);
        if (!write_trace.empty() && !receipt->replayed) {
          body["traceparent"] = core::FormatTraceparent(write_trace);
        }
        if (call.durability_regions > 0 && receipt->dot.seq != 0) {
          // Other regions confirm by acknowledging the write over replication.
          const Clock::time_point deadline =
              Clock::now() + std::chrono::milliseconds(call.durability_timeout_ms);
          const core::Dot dot = receipt->dot;
          const size_t wanted = call.durability_regions;
          const std::function<bool()> confirmed = [this, dot, wanted] {
            return DurabilityConfirmed(*node_, dot, wanted);
          };
          if (!co_await WaitUntil(connection, deadline, confirmed)) {
            body["error"] = "durability_timeout";
            body["message"] =
                DurabilityTimeoutMessage(call.durability_regions, call.durability_timeout_ms);
            body["confirmed_regions"] = node_->replication().RegionsHolding(dot);
            Response response = MakeResponse(request, http::status::gateway_timeout, body.dump());
            response.set("Meridian-Session", token);
            co_return response;
          }
          body["confirmed_regions"] = node_->replication().RegionsHolding(dot);
        }
        Response response = MakeResponse(request, http::status::ok, body.dump());
        response.set("Meridian-Session", token);
        if (receipt->replayed) response.set("Idempotent-Replayed", "true");
        if (!receipt->version.empty())
          response.set(http::field::etag, '"' + receipt->version + '"');
        co_return response;
      }
      case Route::kPrepareTransaction: {
        // A coordinator's prepare: the locks of the transaction's keys homed here.
        if (!node_->homes().IdOf(call.forwarded_by)) {
          co_return ErrorResponse(
              request, {400,
                        "bad_header",
                        "a prepare comes from its coordinator: Meridian-Forwarded must name a "
                        "configured region",
                        {}});
        }
        // Blocking (it may wait for another transaction's locks to go): on the forward pool.
        using Outcome = std::variant<Prepared, ApiError>;
        std::function<Outcome()> job = [this, id = call.txn_id, coordinator = call.forwarded_by,
                                        txn = call.txn, lock_ms = call.lock_ms] {
          return PrepareHere(*node_, id, coordinator, *txn, lock_ms);
        };
        Outcome busy = PoolBusy();
        Outcome prepared = co_await OnPool<Outcome>(std::move(job), std::move(busy));
        if (auto* error = std::get_if<ApiError>(&prepared))
          co_return ErrorResponse(request, *error);
        const Prepared& locks = std::get<Prepared>(prepared);
        const nlohmann::json body = {{"txn", call.txn_id},
                                     {"locked", locks.locked},
                                     {"event", region.EventId(locks.event)},
                                     {"session", EncodeSessionToken(locks.frontier)}};
        co_return MakeResponse(request, http::status::ok, body.dump());
      }
      case Route::kResolveTransaction: {
        const std::string id = call.txn_id;
        std::function<Result<node::Decision>()> job = [this, id] { return Resolve(*node_, id); };
        Result<node::Decision> busy = Status(StatusCode::kOverloaded, "too many requests wait");
        Result<node::Decision> resolved =
            co_await OnPool<Result<node::Decision>>(std::move(job), std::move(busy));
        if (!resolved.ok()) co_return ErrorResponse(request, ErrorFromStatus(resolved.status()));
        const nlohmann::json body = {{"txn", id}, {"decision", node::DecisionName(*resolved)}};
        co_return MakeResponse(request, http::status::ok, body.dump());
      }
      case Route::kHomes:
        co_return MakeResponse(request, http::status::ok, HomesJson(*node_).dump());
      case Route::kMoveHome: {
        auto moved = co_await MoveHome(request, call);
        if (auto* error = std::get_if<ApiError>(&moved)) co_return ErrorResponse(request, *error);
        if (auto* forwarded = std::get_if<Forwarded>(&moved)) {
          co_return ForwardedResponse(request, *forwarded);
        }
        co_return MakeResponse(request, http::status::ok, std::get<nlohmann::json>(moved).dump());
      }
      case Route::kGetDocument: {
        if (call.strong) {
          // Still the home as the read begins, and whole: not while rebuilding, when it may lack
          // strong writes it acknowledged. A home that moved away since the routing forwards on.
          Status readable = region.CheckStrongRead(call.key);
          if (readable.code() == StatusCode::kLocked) {
            // Held by a two-phase transaction: it commits or aborts within about a round trip.
            co_await WaitUntil(
                connection, Clock::now() + std::chrono::milliseconds(call.durability_timeout_ms),
                [&] { return region.CheckStrongRead(call.key).code() != StatusCode::kLocked; });
            readable = region.CheckStrongRead(call.key);
          }
          if (!readable.ok()) {
            auto routed = RouteStrong(*node_, call);
            auto* route = std::get_if<StrongRoute>(&routed);
            if (readable.code() == StatusCode::kNotHome && route != nullptr && !route->here &&
                call.forwarded_by.empty()) {
              co_return co_await ForwardStrong(request, call, *route);
            }
            co_return ErrorResponse(request, ErrorFromStatus(readable));
          }
        }
        auto view = node_->ReadView(call.key);
        if (!view.ok()) co_return ErrorResponse(request, ErrorFromStatus(view.status()));
        if (!view->has_value()) {
          co_return ErrorResponse(request, {404, "not_found", "no document with this key", {}});
        }
        const std::string etag =
            '"' + core::DocumentVersion(core::RenderedDigest(call.key, *view)) + '"';
        Response response = MakeResponse(request, http::status::ok, std::move(**view));
        response.set(http::field::etag, etag);
        co_return response;
      }
      case Route::kHistory: {
        auto history = HistoryJson(*node_, call.key);
        if (auto* error = std::get_if<ApiError>(&history)) co_return ErrorResponse(request, *error);
        co_return MakeResponse(request, http::status::ok,
                               std::get<nlohmann::json>(history).dump(
                                   -1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
      case Route::kDeployment: {
        // Every other region's own status, asked with the client's token.
        std::map<std::string, RegionAnswer> answers =
            co_await AskEveryRegion(request, "/v1/status");
        co_return MakeResponse(request, http::status::ok, DeploymentJson(*node_, answers).dump());
      }
      case Route::kTrace: {
        // This region's spans; with regions=all, every other region's too.
        std::map<std::string, RegionAnswer> answers;
        if (call.every_region) {
          answers = co_await AskEveryRegion(request, "/v1/traces/" + core::Hex(call.key));
        }
        co_return MakeResponse(request, http::status::ok,
                               TraceJson(*node_, call.key, answers)
                                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
      case Route::kConsole: {
        if (call.key == "/ui") {
          Response moved = MakeResponse(request, http::status::moved_permanently, "", "text/plain");
          moved.set(http::field::location, "/ui/");
          co_return moved;
        }
        const UiAsset* asset = FindUiAsset(std::string_view(call.key).substr(4));
        if (asset == nullptr) {
          co_return ErrorResponse(request, {404, "not_found", "no such console file", {}});
        }
        Response response =
            MakeResponse(request, http::status::ok, std::string(asset->body), asset->content_type);
        // The console's own files only: no inline script or style, no other origin, no framing.
        response.set("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                     "base-uri 'none'; form-action 'none'");
        response.set("X-Content-Type-Options", "nosniff");
        response.set("X-Frame-Options", "DENY");
        response.set("Referrer-Policy", "no-referrer");
        response.set(http::field::cache_control, "no-cache");
        co_return response;
      }
      case Route::kGetBounds: {
        auto bounds = BoundsJson(*node_, call.key);
        if (auto* error = std::get_if<ApiError>(&bounds)) co_return ErrorResponse(request, *error);
        co_return MakeResponse(request, http::status::ok, std::get<nlohmann::json>(bounds).dump());
      }
      case Route::kScan: {
        std::string body = "{\"items\":[";
        std::string last;
        bool first = true;
        auto more =
            ScanPage(store, call.prefix, call.after, call.limit, config.scan_page_bytes_max,
                     [&](std::string_view key, std::string_view doc) {
                       if (!first) body += ',';
                       first = false;
                       body += "{\"key\":" + nlohmann::json(std::string(key)).dump() + ",\"doc\":";
                       body += doc;
                       body += '}';
                       last = key;
                     });
        if (!more.ok()) co_return ErrorResponse(request, ErrorFromStatus(more.status()));
        body += "],\"next\":";
        body += *more ? nlohmann::json(last).dump() : "null";
        body += '}';
        co_return MakeResponse(request, http::status::ok, std::move(body));
      }
      case Route::kConflicts: {
        auto records = store.RecentConflicts(call.limit);
        if (!records.ok()) co_return ErrorResponse(request, ErrorFromStatus(records.status()));
        auto total = store.ConflictCount();
        std::string body = "{\"conflicts\":[";
        for (size_t i = 0; i < records->size(); ++i) {
          if (i > 0) body += ',';
          body += (*records)[i];
        }
        body += "],\"total\":" + std::to_string(total.ok() ? *total : 0) + "}";
        co_return MakeResponse(request, http::status::ok, std::move(body));
      }
      case Route::kVerify:
        co_return MakeResponse(request, http::status::ok, VerifyJson(*node_).dump());
      case Route::kVerifyNow: {
        if (auto error = VerifyNow(*node_, call.peer)) co_return ErrorResponse(request, *error);
        co_return MakeResponse(request, http::status::accepted, R"({"started":true})");
      }
      case Route::kRepairs: {
        auto answer = RepairsJson(*node_, call.limit);
        if (auto* error = std::get_if<ApiError>(&answer)) {
          co_return ErrorResponse(request, *error);
        }
        co_return MakeResponse(request, http::status::ok, std::get<nlohmann::json>(answer).dump());
      }
      case Route::kDeadLetters: {
        auto answer = DeadLettersJson(*node_, call.limit);
        if (auto* error = std::get_if<ApiError>(&answer)) {
          co_return ErrorResponse(request, *error);
        }
        co_return MakeResponse(request, http::status::ok, std::get<nlohmann::json>(answer).dump());
      }
      case Route::kRetryDeadLetter: {
        auto answer =
            DeadLetterRetryAnswer(call.dead_letter, co_await RetryDeadLetter(call.dead_letter));
        if (auto* error = std::get_if<ApiError>(&answer)) {
          co_return ErrorResponse(request, *error);
        }
        co_return MakeResponse(request, http::status::ok, std::get<nlohmann::json>(answer).dump());
      }
      case Route::kIds: {
        auto ids = IssueIds(*node_, call.count);
        if (auto* error = std::get_if<ApiError>(&ids)) co_return ErrorResponse(request, *error);
        co_return MakeResponse(request, http::status::ok,
                               IdsJson(std::get<std::vector<uint64_t>>(ids)));
      }
      case Route::kStatus:
        co_return MakeResponse(request, http::status::ok, StatusJson().dump());
      case Route::kMetrics:
        co_return MakeResponse(request, http::status::ok, node_->metrics().Serialize(Snapshot()),
                               "text/plain; version=0.0.4");
      case Route::kHealth:
        co_return MakeResponse(request, http::status::ok, R"({"status":"alive"})");
      case Route::kReady: {
        nlohmann::json reasons = nlohmann::json::array();
        if (node_->storage_failed()) reasons.push_back("storage: a commit failed; see the log");
        for (const std::string& problem : node_->replication().Problems(region.frontier())) {
          reasons.push_back(problem);
        }
        if (stopping_) reasons.push_back("shutting down");
        if (node_->write_queue_depth() * 10 >= config.write_queue_max * 9) {
          reasons.push_back("overloaded: the write queue is over 90% full");
        }
        if (reasons.empty()) co_return MakeResponse(request, http::status::ok, R"({"ready":true})");
        nlohmann::json body = {{"error", "not_ready"},
                               {"message", "this region cannot take traffic now"},
                               {"reasons", reasons}};
        // Rebuilding: reads answer from what it holds, writes wait (docs/replication.md).
        if (region.rebuilding()) body["reason"] = "rebuilding";
        co_return MakeResponse(request, http::status::service_unavailable, body.dump());
      }
      case Route::kWatch:
      case Route::kRejected:
        break;
    }
    co_return ErrorResponse(request, {500, "internal", "unrouted request", {}});
  }

  node::Metrics::Snapshot Snapshot() { return api::Snapshot(*node_, open_connections_.load()); }

  nlohmann::json StatusJson() { return api::StatusJson(*node_); }

  // A watch: SSE unless the request is a WebSocket upgrade. First the changes logged after the
  // resume point (from the log, each with the document as that change left it), then live
  // changes, each once; closes with a reason when the watcher falls more than watch.buffer_max
  // changes behind.
  // g++ 12 destroys temporaries in co_await expressions twice: coroutines here take their
  // arguments by reference and callers pass named objects that outlive the call.
  template <class S>
  awaitable<void> Watch(const std::shared_ptr<StreamConnection<S>>& connection,
                        const Request& request, const ApiCall& call) {
    const std::shared_ptr<Connection> base = connection;
    node::Region& region = node_->region();
    const node::NodeConfig& config = node_->config();
    beast::error_code ec;

    std::optional<ApiError> rejection;
    auto reject = [&]() -> awaitable<void> {
      const ApiError& error = *rejection;
      Response response = ErrorResponse(request, error);
      response.keep_alive(false);
      response.prepare_payload();
      co_await http::async_write(connection->stream, response,
                                 asio::redirect_error(use_awaitable, ec));
    };

    uint64_t resume_lsn = 0;
    bool resuming = false;
    if (!call.resume_from.empty()) {
      auto lsn = ResumeLsn(*node_, call.resume_from);
      if (auto* error = std::get_if<ApiError>(&lsn)) {
        rejection = *error;
        co_await reject();
        co_return;
      }
      resume_lsn = std::get<uint64_t>(lsn);
      resuming = true;
    }
    core::VersionVector seen;  // since: changes of these events are not sent again
    if (!call.since.empty()) {
      auto parsed = ParseSince(*node_, call.since);
      if (auto* error = std::get_if<ApiError>(&parsed)) {
        rejection = *error;
        co_await reject();
        co_return;
      }
      seen = std::get<core::VersionVector>(parsed);
    }

    // Like any read, a watch with a session token starts once this region covers it.
    if (call.session && !call.session->empty()) {
      const core::VersionVector token = *call.session;
      const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(call.wait_ms);
      const std::function<bool()> covers = [&] { return region.frontier().Dominates(token); };
      if (!co_await WaitUntil(base, deadline, covers)) {
        rejection = SessionTimeout(call.wait_ms);
        co_await reject();
        co_return;
      }
    }

    auto [timer, wake] = MakeWaker(base);
    auto executor = connection->executor;
    uint64_t subscribed_lsn = 0;
    std::shared_ptr<node::Watcher> watcher =
        node_->watches().Subscribe(call.prefix, config.watch_buffer_max, wake, &subscribed_lsn);
    if (!watcher) {
      rejection = TooManyWatches();
      co_await reject();
      co_return;
    }
    // A `since` watch's replay starts where the subscription leaves off: found now, before
    // streaming, so that a resume point the change log no longer covers is refused like `from`'s.
    if (!call.since.empty()) {
      auto lsn = SinceLsn(*node_, seen, subscribed_lsn);
      if (auto* error = std::get_if<ApiError>(&lsn)) {
        node_->watches().Unsubscribe(watcher);
        rejection = *error;
        co_await reject();
        co_return;
      }
      resume_lsn = std::get<uint64_t>(lsn);
      resuming = true;
    }
    connection->wake = wake;

    const bool is_websocket = websocket::is_upgrade(request);
    std::shared_ptr<websocket::stream<S>> ws;
    bool closed = false;
    auto reader_done =
        std::make_shared<bool>(false);  // shared: the reader may outlive a failed write
    if (is_websocket) {
      ws = std::make_shared<websocket::stream<S>>(std::move(connection->stream));
      connection->websocket = true;
      beast::get_lowest_layer(*ws).expires_never();
      websocket::stream_base::timeout timeouts =
          websocket::stream_base::timeout::suggested(beast::role_type::server);
      timeouts.handshake_timeout = kWebSocketCloseTimeout;  // also bounds the closing handshake
      ws->set_option(timeouts);
      co_await ws->async_accept(request, asio::redirect_error(use_awaitable, ec));
      if (ec) closed = true;
      ws->text(true);
      if (!closed) {
        // Reads keep control frames (ping, close) flowing; a close or error ends the watch.
        asio::co_spawn(
            executor,
            [ws, wake, reader_done]() -> awaitable<void> {
              beast::flat_buffer buffer;
              beast::error_code read_error;
              while (!read_error) {
                co_await ws->async_read(buffer, asio::redirect_error(use_awaitable, read_error));
                buffer.consume(buffer.size());
              }
              *reader_done = true;
              wake();
            },
            asio::detached);
      }
    } else {
      const std::string header =
          "HTTP/1.1 200 OK\r\nServer: meridian\r\nContent-Type: text/event-stream\r\n"
          "Cache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n";
      connection->tcp().expires_after(write_timeout_);
      co_await asio::async_write(connection->stream, asio::buffer(header),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) closed = true;
    }

    // Every write to a WebSocket is bounded by http.write_timeout_ms, as the stream's expiry
    // bounds SSE writes (a WebSocket's stream has no expiry: its reader waits for the client's
    // frames indefinitely): a client that stops reading is dropped, socket and buffer with it.
    // Each write has a number: a deadline that expired just as its write completed (its handler
    // already queued, beyond cancel's reach) closes nothing once a later write has begun.
    Timer write_deadline(executor);
    auto writes = std::make_shared<uint64_t>(0);  // writes begun; odd while one is under way
    auto begin_write = [&] {
      const uint64_t write = ++*writes;
      write_deadline.expires_after(write_timeout_);
      write_deadline.async_wait(
          [weak = std::weak_ptr(ws), writes, write](const beast::error_code& wait_error) {
            if (wait_error || *writes != write) return;
            if (auto stream = weak.lock()) {
              beast::error_code ignored;
              beast::get_lowest_layer(*stream).socket().close(ignored);
            }
          });
    };
    auto end_write = [&] {
      ++*writes;
      write_deadline.cancel();
    };

    // What `send` writes next: an SSE event name and id (ignored on WebSocket) and the payload.
    std::string event_name;
    std::string event_id;
    std::string payload;
    auto send = [&]() -> awaitable<void> {
      if (closed) co_return;
      if (is_websocket) {
        begin_write();
        co_await ws->async_write(asio::buffer(payload), asio::redirect_error(use_awaitable, ec));
        end_write();
      } else {
        std::string frame;
        if (!event_id.empty()) frame += "id: " + event_id + "\n";
        frame += "event: " + event_name + "\ndata: " + payload + "\n\n";
        connection->tcp().expires_after(write_timeout_);
        co_await asio::async_write(connection->stream, asio::buffer(frame),
                                   asio::redirect_error(use_awaitable, ec));
      }
      if (ec) closed = true;
    };

    // The backlog: logged changes after the resume point up to the subscription.
    std::optional<ApiError> backlog_error;
    uint64_t sent_lsn = resuming ? resume_lsn : subscribed_lsn;
    std::string last_event = call.resume_from;
    std::vector<node::Change> page;
    while (resuming && !closed && sent_lsn < subscribed_lsn) {
      backlog_error = ReadBacklog(*node_, sent_lsn, subscribed_lsn, last_event, &page);
      if (backlog_error || page.empty()) break;
      for (node::Change& change : page) {
        sent_lsn = change.lsn;
        if (!WatchSends(region, change, call.prefix, seen, &last_event)) continue;
        event_name = "change";
        event_id = last_event;
        payload = ChangeJson(region, change);
        co_await send();
        if (closed) break;
      }
    }
    if (backlog_error) {
      // Never skip silently to later changes: that would leave a gap.
      event_name = "error";
      event_id.clear();
      payload = ErrorBody(*backlog_error);
      co_await send();
      closed = true;
    }
    sent_lsn = std::max(sent_lsn, subscribed_lsn);

    // Live changes.
    while (!closed && !stopping_ && !(ws && *reader_done)) {
      bool overflowed = false;
      std::vector<node::Change> changes = watcher->Take(&overflowed);
      for (const node::Change& change : changes) {
        if (change.lsn <= sent_lsn) continue;
        sent_lsn = change.lsn;
        if (!WatchSends(region, change, call.prefix, seen, &last_event)) continue;
        event_name = "change";
        event_id = last_event;
        payload = ChangeJson(region, change);
        co_await send();
        if (closed) break;
      }
      if (closed) break;
      if (overflowed) {
        event_name = "error";
        event_id.clear();
        payload = ErrorBody(SlowConsumer(config.watch_buffer_max, last_event));
        co_await send();
        if (is_websocket && !closed) {
          websocket::close_reason reason(websocket::close_code::policy_error,
                                         "slow consumer: resume from " + last_event);
          begin_write();
          co_await ws->async_close(reason, asio::redirect_error(use_awaitable, ec));
          end_write();
          closed = true;
        }
        break;
      }
      if (!changes.empty()) continue;
      timer->expires_after(kWatchHeartbeat);
      beast::error_code wait_error;
      co_await timer->async_wait(asio::redirect_error(use_awaitable, wait_error));
      if (!wait_error) {  // quiet for a while: keep the connection alive
        if (is_websocket) {
          begin_write();
          co_await ws->async_ping({}, asio::redirect_error(use_awaitable, ec));
          end_write();
          if (ec) closed = true;
        } else if (!closed) {
          connection->tcp().expires_after(write_timeout_);
          co_await asio::async_write(connection->stream,
                                     asio::buffer(std::string_view(": keep-alive\n\n")),
                                     asio::redirect_error(use_awaitable, ec));
          if (ec) closed = true;
        }
      }
    }
    if (is_websocket && !closed && stopping_) {
      websocket::close_reason reason(websocket::close_code::going_away, "region shutting down");
      begin_write();
      co_await ws->async_close(reason, asio::redirect_error(use_awaitable, ec));
      end_write();
    }
    connection->wake = nullptr;
    node_->watches().Unsubscribe(watcher);
    if (ws) {
      // Close the socket, then let the reader notice before the stream goes away with us.
      beast::error_code ignored;
      beast::get_lowest_layer(*ws).socket().shutdown(Socket::shutdown_both, ignored);
      beast::get_lowest_layer(*ws).socket().close(ignored);
      for (int i = 0; i < 50 && !*reader_done; ++i) {
        timer->expires_after(std::chrono::milliseconds(100));
        co_await timer->async_wait(asio::redirect_error(use_awaitable, ec));
      }
    }
  }

  node::Node* node_;
  // Strong requests forwarded to their home region: blocking calls, off the HTTP threads.
  // One thread per forward waiting on its home (up to its timeout_ms): enough for as many
  // concurrent strong clients as a region usually serves; beyond, they queue (then 429).
  ForwardPool forwards_{32, 4096};
  // This region's two-phase locks: released once aborted, asked about once past their deadline.
  LockKeeper keeper_{node_, std::chrono::milliseconds(100)};
  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int threads) {
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    for (int i = 0; i < std::max(threads, 1); ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));  // one thread runs each
    }
    return contexts;
  }

  // One per HTTP thread; the first also runs the acceptor, signals and the shutdown timer.
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;
  std::vector<asio::executor_work_guard<Executor>> idle_guards_;  // touched on io_'s thread
  size_t next_context_ = 0;                                       // Accept's only
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer hard_stop_;
  std::atomic<bool> stopping_{false};
  std::function<void()> before_node_stop_;
  std::atomic<size_t> open_connections_{0};
  std::atomic<size_t> refusing_{0};  // connections being refused (Refuse)
  // With [tls]: the server's context, reloaded when its files change and on SIGHUP.
  std::unique_ptr<net::TlsContextHolder> tls_;
  const std::chrono::milliseconds write_timeout_;  // http.write_timeout_ms
  std::mutex connections_mutex_;
  std::vector<std::weak_ptr<Connection>> connections_;
};

HttpServer::HttpServer(node::Node* node) : impl_(std::make_unique<Impl>(node)) {}
HttpServer::~HttpServer() = default;
Status HttpServer::Listen() {
  return impl_->Listen();
}
void HttpServer::Run() {
  impl_->Run();
}
void HttpServer::SetBeforeNodeStop(std::function<void()> hook) {
  impl_->SetBeforeNodeStop(std::move(hook));
}

void HttpServer::RequestStop() {
  impl_->RequestStop();
}
uint16_t HttpServer::port() const {
  return impl_->port();
}

}  // namespace meridian::api
