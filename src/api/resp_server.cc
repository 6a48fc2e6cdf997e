#include "api/resp_server.h"

// g++ 12 needs <utility> before Asio when coroutines are used.
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <vector>

#include "api/async_node.h"
#include "api/request.h"
#include "api/resp.h"
#include "api/service.h"
#include "core/check.h"
#include "core/document.h"
#include "core/thread_name.h"
#include "net/tls_context.h"

// g++ 12 warns that Asio's coroutine frames are freed by a mismatched operator delete when they
// are inlined into some callers; Asio allocates and frees them with its own pair (a false
// positive of the inliner's view).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace meridian::api {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
template <class T>
using awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> use_awaitable;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using TlsStream = asio::ssl::stream<Socket>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
// What a connection may have sent without completing a command, and what it may have left
// unread of its replies and notifications, before it is closed (as Redis's query buffer and
// client output buffer limits do).
constexpr size_t kQueryBytesMax = 64 * 1024 * 1024;
constexpr size_t kOutboxBytesMax = 32 * 1024 * 1024;
// A pipeline's consecutive writes committed together at most (ExecuteWrites).
constexpr size_t kPipelineWritesMax = 256;
// Replies gathered from pipelined commands before they are written.
constexpr size_t kReplyFlushBytes = 64 * 1024;
// SCAN cursors remembered by the node; an older one answers an error.
constexpr size_t kCursorsMax = 16 * 1024;
// KEYS answers at most this many keys (SCAN has no bound).
constexpr size_t kKeysMax = 10'000;
// HDEL rewrites the document guarded by its version; a write between its read and its commit
// makes it read again, this many times at most.
constexpr int kRewriteAttempts = 16;
constexpr auto kTlsHandshakeTimeout = std::chrono::seconds(10);
// The protocol level answered to HELLO and INFO, for clients that choose features by it.
constexpr std::string_view kRedisVersion = "7.0.0";
constexpr std::string_view kWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";

// One connection. The session coroutine reads commands and answers them; while the connection
// is subscribed, a pump coroutine delivers notifications. Both run on the connection's one
// thread and write through Send, so their bytes never interleave.
struct Conn {
  explicit Conn(Executor executor) : executor(std::move(executor)) {}
  virtual ~Conn() = default;
  virtual awaitable<void> WriteAll(const std::string& bytes, ErrorCode& ec) = 0;
  virtual awaitable<size_t> ReadSome(char* data, size_t size, ErrorCode& ec) = 0;
  virtual awaitable<bool> Handshake() = 0;
  virtual void Close() = 0;
  virtual std::string Peer() = 0;

  const Executor executor;
  uint64_t id = 0;
  int protocol = 2;
  std::string authorization;  // "Bearer <token>" once AUTH succeeded
  std::string name;           // CLIENT SETNAME
  core::Dot last_write;       // for WAIT
  std::set<std::string> channels;
  std::set<std::string> patterns;
  std::shared_ptr<node::Watcher> watcher;
  std::string watched_prefix;
  std::shared_ptr<Timer> pump_timer;
  std::function<void()> pump_wake;  // wakes the pump (MakeWaker): any thread
  bool pumping = false;
  std::string outbox;
  bool writing = false;
  Clock::time_point write_since;  // while writing
  bool closed = false;
  bool quit = false;
  bool reading = false;        // waiting for the client's next bytes (not executing, not answering)
  bool draining = false;       // the server stops: no command after the ones already read
  std::function<void()> wake;  // set while a WAIT is parked: shutdown ends it
  bool subscribed() const { return !channels.empty() || !patterns.empty(); }
  // Ends the connection now (on its thread): a parked WAIT and the pump return, the socket closes.
  void End() {
    closed = true;
    if (wake) wake();
    if (pump_timer) pump_timer->cancel();
    Close();
  }
};

template <class S>
struct StreamConn final : Conn {
  template <class... Args>
  explicit StreamConn(Socket socket, Args&&... args)
      : Conn(socket.get_executor()), stream(std::move(socket), std::forward<Args>(args)...) {}

  Socket& socket() {
    if constexpr (std::is_same_v<S, TlsStream>) {
      return stream.next_layer();
    } else {
      return stream;
    }
  }
  awaitable<void> WriteAll(const std::string& bytes, ErrorCode& ec) override {
    co_await asio::async_write(stream, asio::buffer(bytes),
                               asio::redirect_error(use_awaitable, ec));
  }
  awaitable<size_t> ReadSome(char* data, size_t size, ErrorCode& ec) override {
    const size_t n = co_await stream.async_read_some(asio::buffer(data, size),
                                                     asio::redirect_error(use_awaitable, ec));
    co_return n;
  }
  awaitable<bool> Handshake() override {
    if constexpr (std::is_same_v<S, TlsStream>) {
      Timer deadline(executor, kTlsHandshakeTimeout);
      deadline.async_wait([this](const ErrorCode& ec) {
        ErrorCode ignored;
        if (!ec) socket().cancel(ignored);
      });
      ErrorCode ec;
      co_await stream.async_handshake(asio::ssl::stream_base::server,
                                      asio::redirect_error(use_awaitable, ec));
      deadline.cancel();
      if (ec) {
        spdlog::debug("redis port: TLS handshake with {} failed: {}", Peer(),
                      net::HandshakeFailure(stream.native_handle(), ec));
      }
      co_return !ec;
    } else {
      co_return true;
    }
  }
  void Close() override {
    ErrorCode ignored;
    socket().shutdown(Socket::shutdown_both, ignored);
    socket().close(ignored);
  }
  std::string Peer() override {
    ErrorCode ec;
    const auto endpoint = socket().remote_endpoint(ec);
    if (ec) return "?";
    return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }

  S stream;
  std::shared_ptr<asio::ssl::context> tls;  // kept as long as the connection
};

// The error reply of an API error: Redis's kinds where one fits, else "ERR <code>: <message>".
std::string ErrorText(const ApiError& error) {
  if (error.status == 401) return "NOAUTH " + error.message;
  if (error.status == 403) return "NOPERM " + error.message;
  if (error.code == "not_a_number") return std::string(kNotInteger);
  return "ERR " + error.code + ": " + error.message;
}

std::string WrongArity(std::string_view command) {
  std::string lower(command);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "ERR wrong number of arguments for '" + lower + "' command";
}

// A rendered document's fields, or an empty list for a document that is not an object (never
// written by the node).
std::vector<std::pair<std::string, std::string>> FieldsOf(const std::string& rendered) {
  auto fields = resp::DocumentFields(rendered);
  return fields ? std::move(*fields) : std::vector<std::pair<std::string, std::string>>{};
}

}  // namespace

class RespServer::Impl {
 public:
  explicit Impl(node::Node* node) : node_(node), limits_(node->config().limits) {
    const int threads =
        node->config().http_threads > 0
            ? node->config().http_threads
            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency() - 1));
    for (int i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
    parse_limits_.bulk_bytes_max = limits_.document_bytes_max + 64 * 1024;
    std::random_device device;
    cursor_random_.seed((static_cast<uint64_t>(device()) << 32) | device());
  }

  Status Start() {
    if (const net::TlsFiles& tls = node_->config().tls; tls.enabled()) {
      auto holder = net::TlsContextHolder::Create(tls);
      if (!holder.ok()) return holder.status();
      tls_ = std::move(holder).value();
    }
    const std::string& listen = node_->config().self().resp;
    std::string host;
    uint16_t port = 0;
    node::SplitHostPort(listen, &host, &port);
    ErrorCode ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return InvalidArgument("resp address " + host + " is not an IP address");
    acceptor_.emplace(*contexts_.front());
    const tcp::endpoint endpoint(address, port);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Status(StatusCode::kUnavailable, "cannot listen on " + listen + ": " + ec.message());
    port_ = acceptor_->local_endpoint().port();
    asio::co_spawn(*contexts_.front(), Accept(), asio::detached);
    asio::co_spawn(*contexts_.front(), Watchdog(), asio::detached);
    if (tls_) {
      hangup_.emplace(*contexts_.front(), SIGHUP);
      WaitForHangup();
    }
    // SIGTERM and SIGINT (the HTTP server stops on them too, and then stops the write queue): no
    // command is read after them, so none reaches a stopped queue.
    stop_signals_.emplace(*contexts_.front(), SIGINT, SIGTERM);
    stop_signals_->async_wait([this](const ErrorCode& ec, int) {
      if (!ec) Drain();
    });
    for (size_t i = 0; i < contexts_.size(); ++i) {
      guards_.push_back(asio::make_work_guard(*contexts_[i]));
      threads_.emplace_back([this, i] {
        core::NameThisThread("resp-" + std::to_string(i));
        contexts_[i]->run();
      });
    }
    spdlog::info("region {} serving the Redis protocol{} on {}:{}", node_->config().region,
                 tls_ ? " over TLS" : "", host, port_);
    return Status::Ok();
  }

  void DrainAndWait() {
    if (threads_.empty()) return;
    asio::post(*contexts_.front(), [this] { Drain(); });
    WaitForSessions(std::chrono::seconds(10));
  }

  void Stop() {
    if (stopping_.exchange(true) || threads_.empty()) return;
    asio::post(*contexts_.front(), [this] {
      ErrorCode ignored;
      if (acceptor_) acceptor_->close(ignored);
    });
    ForEachConnection([](Conn& conn) { conn.End(); });
    for (auto& guard : guards_) guard.reset();
    // Sessions end once their sockets are closed; a context still busy after that is stopped.
    WaitForSessions(std::chrono::seconds(5));
    for (auto& context : contexts_) context->stop();
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

  uint16_t port() const { return port_; }

 private:
  // Stops accepting, and ends every connection once the commands it already sent are answered.
  void Drain() {
    ErrorCode ignored;
    if (acceptor_) acceptor_->close(ignored);
    ForEachConnection([](Conn& conn) {
      conn.draining = true;
      if (conn.reading) {
        conn.End();
      } else if (conn.wake) {
        conn.wake();  // a WAIT answers with what holds now
      }
    });
  }

  // Runs `action` on the thread of every open connection.
  void ForEachConnection(const std::function<void(Conn&)>& action) {
    std::lock_guard lock(connections_mutex_);
    for (const auto& weak : connections_) {
      if (auto conn = weak.lock()) asio::post(conn->executor, [conn, action] { action(*conn); });
    }
  }

  // Waits (blocking) until every session has ended, or `timeout` has passed.
  void WaitForSessions(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (open_.load() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // SIGHUP reads the [tls] files again, as the HTTP server does (docs/security.md).
  void WaitForHangup() {
    hangup_->async_wait([this](const ErrorCode& ec, int) {
      if (ec) return;
      (void)tls_->Reload("SIGHUP");
      WaitForHangup();
    });
  }

  // Closes connections whose reply or notification has been in the socket longer than
  // http.write_timeout_ms: a client that stops reading does not keep its connection (and, when
  // subscribed, its watch) for good.
  awaitable<void> Watchdog() {
    const auto limit = std::chrono::milliseconds(node_->config().write_timeout_ms);
    Timer tick(co_await asio::this_coro::executor);
    while (!stopping_) {
      tick.expires_after(std::chrono::seconds(1));
      ErrorCode ec;
      co_await tick.async_wait(asio::redirect_error(use_awaitable, ec));
      ForEachConnection([limit](Conn& conn) {
        if (!conn.writing || conn.closed || Clock::now() - conn.write_since < limit) return;
        spdlog::warn("redis port: closing client {} ({}): it has not read its answers for {} ms",
                     conn.id, conn.Peer(), limit.count());
        conn.End();
      });
    }
  }

  awaitable<void> Accept() {
    size_t next = 0;
    for (;;) {
      ErrorCode ec;
      asio::io_context& home = *contexts_[next++ % contexts_.size()];
      Socket socket = co_await acceptor_->async_accept(home.get_executor(),
                                                       asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (stopping_) co_return;
        if (ec == asio::error::no_descriptors) {
          Timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
          co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
        }
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      if (open_.load() >= node_->config().connections_max) {
        // As Redis answers a client beyond maxclients (best effort); over TLS closed at once, as
        // answering would cost a handshake.
        static const std::string kRefusal = "-ERR max number of clients reached\r\n";
        if (!tls_) socket.write_some(asio::buffer(kRefusal), ec);
        socket.close(ec);
        continue;
      }
      std::shared_ptr<Conn> conn;
      if (tls_) {
        std::shared_ptr<asio::ssl::context> context = tls_->Current();
        auto tls_conn = std::make_shared<StreamConn<TlsStream>>(std::move(socket), *context);
        tls_conn->tls = std::move(context);
        conn = std::move(tls_conn);
      } else {
        conn = std::make_shared<StreamConn<Socket>>(std::move(socket));
      }
      conn->id = ++next_id_;
      ++open_;
      {
        std::lock_guard lock(connections_mutex_);
        std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
        connections_.push_back(conn);
      }
      const Executor executor = conn->executor;
      asio::co_spawn(executor, Session(std::move(conn)), [this](std::exception_ptr error) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            spdlog::error("redis port: session failed: {}", e.what());
          }
        }
        --open_;
      });
    }
  }

  // Writes `bytes` (moved from) after whatever the connection is writing. The coroutine that
  // finds the connection idle writes, also what others queue meanwhile; the others return at
  // once. False when the connection is closed or was closed for not reading.
  awaitable<bool> Send(std::shared_ptr<Conn> conn, std::string& bytes) {
    if (conn->closed) co_return false;
    if (conn->writing) {
      conn->outbox += bytes;
      bytes.clear();
      if (conn->outbox.size() > kOutboxBytesMax) {
        spdlog::warn("redis port: closing client {} ({}): it left {} bytes unread", conn->id,
                     conn->Peer(), conn->outbox.size());
        conn->End();
        co_return false;
      }
      co_return true;
    }
    conn->writing = true;
    std::string chunk;
    chunk.swap(bytes);
    ErrorCode ec;
    for (;;) {
      conn->write_since = Clock::now();
      co_await conn->WriteAll(chunk, ec);
      if (ec || conn->outbox.empty()) break;
      chunk.clear();
      chunk.swap(conn->outbox);
    }
    conn->writing = false;
    if (ec) {
      conn->End();
      co_return false;
    }
    co_return true;
  }

  awaitable<void> Session(std::shared_ptr<Conn> conn) {
    if (!co_await conn->Handshake()) {
      conn->Close();
      co_return;
    }
    std::string in;
    std::string out;
    std::vector<std::string> args;
    std::vector<std::vector<std::string>> batch;  // a pipeline's consecutive writes (ExecuteWrites)
    std::vector<char> chunk(kReadChunk);
    while (!conn->closed) {
      size_t pos = 0;
      for (;;) {
        size_t consumed = 0;
        std::string error;
        const resp::Parsed parsed = resp::ParseCommand(std::string_view(in).substr(pos),
                                                       parse_limits_, &args, &consumed, &error);
        pos += consumed;
        if (parsed == resp::Parsed::kNeedMore) {
          if (consumed == 0) break;
          continue;
        }
        if (parsed == resp::Parsed::kError) {
          if (!batch.empty()) co_await ExecuteWrites(conn, batch, out);
          batch.clear();
          resp::Writer(&out, conn->protocol).Error("ERR Protocol error: " + error);
          conn->quit = true;
          break;
        }
        if (Batchable(*conn, args)) {
          batch.push_back(std::move(args));
          if (batch.size() < kPipelineWritesMax) continue;
          co_await ExecuteWrites(conn, batch, out);
          batch.clear();
          if (conn->closed) break;
          continue;
        }
        if (!batch.empty()) {
          co_await ExecuteWrites(conn, batch, out);
          batch.clear();
          if (conn->closed) break;
        }
        co_await Execute(conn, args, out);
        if (conn->quit || conn->closed) break;
        if (out.size() >= kReplyFlushBytes && !co_await Send(conn, out)) break;
      }
      if (!batch.empty() && !conn->closed) {
        co_await ExecuteWrites(conn, batch, out);
      }
      batch.clear();
      in.erase(0, pos);
      if (!out.empty() && !co_await Send(conn, out)) break;
      if (conn->quit || conn->closed || conn->draining) break;
      if (in.size() > kQueryBytesMax) {
        std::string refusal;
        resp::Writer(&refusal).Error("ERR Protocol error: a request over " +
                                     std::to_string(kQueryBytesMax) + " bytes");
        co_await Send(conn, refusal);
        break;
      }
      ErrorCode ec;
      conn->reading = true;
      const size_t n = co_await conn->ReadSome(chunk.data(), chunk.size(), ec);
      conn->reading = false;
      if (ec || conn->draining) break;
      in.append(chunk.data(), n);
    }
    if (conn->watcher) node_->watches().Unsubscribe(conn->watcher);
    conn->watcher.reset();
    conn->End();
  }

  // --- Access and errors -------------------------------------------------------------------

  // [auth]: whether this connection may make `call` (api::CheckAccess, as HTTP and gRPC); the
  // refusal is answered when not.
  bool Allowed(Conn& conn, ApiCall& call, resp::Writer& reply) {
    if (auto refused = CheckAccess(*node_, conn.authorization, &call)) {
      reply.Error(ErrorText(*refused));
      return false;
    }
    return true;
  }
  bool AllowedKey(Conn& conn, Route route, const std::string& key, resp::Writer& reply) {
    if (auto invalid = CheckKey(key, limits_)) {
      reply.Error(ErrorText(*invalid));
      return false;
    }
    ApiCall call;
    call.route = route;
    call.key = key;
    return Allowed(conn, call, reply);
  }
  bool AllowedPrefix(Conn& conn, Route route, const std::string& prefix, resp::Writer& reply) {
    ApiCall call;
    call.route = route;
    call.prefix = prefix;
    return Allowed(conn, call, reply);
  }

  // The committed document of `key` here, or the error answered.
  std::optional<std::optional<std::string>> Read(const std::string& key, resp::Writer& reply) {
    auto view = node_->ReadView(key);
    if (!view.ok()) {
      reply.Error(ErrorText(ErrorFromStatus(view.status())));
      return std::nullopt;
    }
    return std::move(*view);
  }

  // An operation of canonical JSON values, checked against the limits; the error answered when
  // it is refused.
  bool Normalize(core::Operation* op, resp::Writer& reply) {
    if (Status status = core::CheckCanonicalOperation(op, limits_); !status.ok()) {
      reply.Error(ErrorText(ErrorFromStatus(status)));
      return false;
    }
    return true;
  }

  // Commits one write of the connection (durable when [storage] sync is on, as every write of
  // every API). The refusal is answered (and nullopt returned), except kPreconditionFailed,
  // which the caller answers (SET NX/XX: nil; HDEL: read again).
  awaitable<std::optional<Result<node::Receipt>>> Commit(std::shared_ptr<Conn> conn,
                                                         node::WriteRequest& write,
                                                         resp::Writer& reply) {
    Result<node::Receipt> receipt = co_await AwaitWrite<Executor>(*node_, write);
    if (!Settled(*conn, receipt, reply)) co_return std::nullopt;
    co_return std::optional<Result<node::Receipt>>(std::move(receipt));
  }

  // A commit's outcome as every write command takes it: a refusal other than
  // kPreconditionFailed is answered here (false); a write is the connection's last (for WAIT).
  static bool Settled(Conn& conn, const Result<node::Receipt>& outcome, resp::Writer& reply) {
    if (!outcome.ok() && outcome.status().code() != StatusCode::kPreconditionFailed) {
      reply.Error(ErrorText(ErrorFromStatus(outcome.status())));
      return false;
    }
    if (outcome.ok() && outcome->dot.seq != 0) conn.last_write = outcome->dot;
    return true;
  }

  // --- Commands ------------------------------------------------------------------------------

  awaitable<void> Execute(std::shared_ptr<Conn> conn, std::vector<std::string>& args,
                          std::string& out) {
    resp::Writer reply(&out, conn->protocol);
    const std::string command = resp::Upper(args[0]);
    const size_t argc = args.size();
    // Before AUTH, a node with [auth] answers only what authenticates.
    if (node_->secrets() != nullptr && conn->authorization.empty() && command != "AUTH" &&
        command != "HELLO" && command != "QUIT" && command != "RESET") {
      reply.Error("NOAUTH Authentication required.");
      co_return;
    }
    if (conn->subscribed() && conn->protocol < 3 && command != "SUBSCRIBE" &&
        command != "PSUBSCRIBE" && command != "UNSUBSCRIBE" && command != "PUNSUBSCRIBE" &&
        command != "PING" && command != "QUIT" && command != "RESET") {
      reply.Error("ERR Can't execute '" + args[0] +
                  "': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
                  "this context");
      co_return;
    }
    const auto started = Clock::now();
    const size_t before = out.size();
    const Route route = co_await Dispatch(conn, command, args, argc, reply);
    if (route != Route::kRejected) {
      // Counted with the HTTP and gRPC requests of the same route; a refusal as a 400.
      const bool refused = out.size() > before && out[before] == '-';
      node_->metrics().ObserveRequest(
          route, refused ? 400 : 200,
          std::chrono::duration<double>(Clock::now() - started).count());
    }
  }

  // Runs one command; returns the API route it counts as in the request metrics (kRejected:
  // none).
  awaitable<Route> Dispatch(std::shared_ptr<Conn> conn, const std::string& command,
                            std::vector<std::string>& args, size_t argc, resp::Writer& reply) {
    // --- strings
    if (command == "GET") {
      if (argc != 2) co_return Arity(reply, command);
      if (!AllowedKey(*conn, Route::kGetDocument, args[1], reply)) co_return Route::kGetDocument;
      auto doc = Read(args[1], reply);
      if (!doc) co_return Route::kGetDocument;
      if (!doc->has_value()) {
        reply.Null();
      } else if (auto value = resp::StringValue(**doc)) {
        reply.Bulk(resp::ValueOfJson(*value));
      } else {
        reply.Error(kWrongType);
      }
      co_return Route::kGetDocument;
    }
    if (Pipelinable(command)) {
      PreparedWrite prepared = PrepareWrite(*conn, command, args, reply);
      if (prepared.writes.empty()) co_return prepared.route;
      std::vector<Result<node::Receipt>> outcomes =
          co_await AwaitWrites<Executor>(*node_, prepared.writes);
      AnswerWrite(*conn, prepared, outcomes, reply);
      co_return prepared.route;
    }
    if (command == "MGET") {
      if (argc < 2) co_return Arity(reply, command);
      for (size_t i = 1; i < argc; ++i) {
        if (!AllowedKey(*conn, Route::kGetDocument, args[i], reply)) co_return Route::kGetDocument;
      }
      std::vector<std::optional<std::string>> values;
      for (size_t i = 1; i < argc; ++i) {
        auto doc = Read(args[i], reply);
        if (!doc) co_return Route::kGetDocument;
        // Missing, or not a string: nil, as Redis answers.
        values.push_back(doc->has_value() ? resp::StringValue(**doc) : std::nullopt);
      }
      reply.Array(values.size());
      for (const auto& value : values) {
        if (value) {
          reply.Bulk(resp::ValueOfJson(*value));
        } else {
          reply.Null();
        }
      }
      co_return Route::kGetDocument;
    }
    // --- keys
    if (command == "EXISTS") {
      if (argc < 2) co_return Arity(reply, command);
      int64_t count = 0;
      for (size_t i = 1; i < argc; ++i) {
        if (!AllowedKey(*conn, Route::kGetDocument, args[i], reply)) co_return Route::kGetDocument;
        auto doc = Read(args[i], reply);
        if (!doc) co_return Route::kGetDocument;
        if (doc->has_value()) ++count;
      }
      reply.Integer(count);
      co_return Route::kGetDocument;
    }
    if (command == "TYPE") {
      if (argc != 2) co_return Arity(reply, command);
      if (!AllowedKey(*conn, Route::kGetDocument, args[1], reply)) co_return Route::kGetDocument;
      auto doc = Read(args[1], reply);
      if (!doc) co_return Route::kGetDocument;
      reply.Simple(!doc->has_value() ? "none" : resp::StringValue(**doc) ? "string" : "hash");
      co_return Route::kGetDocument;
    }
    if (command == "SCAN") co_return Scan(*conn, args, reply);
    if (command == "KEYS") co_return Keys(*conn, args, reply);
    // --- hashes
    if (command == "HGET" || command == "HEXISTS") {
      if (argc != 3) co_return Arity(reply, command);
      if (!AllowedKey(*conn, Route::kGetDocument, args[1], reply)) co_return Route::kGetDocument;
      auto doc = Read(args[1], reply);
      if (!doc) co_return Route::kGetDocument;
      std::optional<std::string> value;
      if (doc->has_value()) {
        for (auto& [name, json] : FieldsOf(**doc)) {
          if (name == args[2]) value = std::move(json);
        }
      }
      if (command == "HEXISTS") {
        reply.Integer(value ? 1 : 0);
      } else if (value) {
        reply.Bulk(resp::ValueOfJson(*value));
      } else {
        reply.Null();
      }
      co_return Route::kGetDocument;
    }
    if (command == "HMGET") {
      if (argc < 3) co_return Arity(reply, command);
      if (!AllowedKey(*conn, Route::kGetDocument, args[1], reply)) co_return Route::kGetDocument;
      auto doc = Read(args[1], reply);
      if (!doc) co_return Route::kGetDocument;
      std::map<std::string, std::string> fields;
      if (doc->has_value()) {
        for (auto& [name, json] : FieldsOf(**doc)) fields[name] = std::move(json);
      }
      reply.Array(argc - 2);
      for (size_t i = 2; i < argc; ++i) {
        auto it = fields.find(args[i]);
        if (it == fields.end()) {
          reply.Null();
        } else {
          reply.Bulk(resp::ValueOfJson(it->second));
        }
      }
      co_return Route::kGetDocument;
    }
    if (command == "HGETALL" || command == "HKEYS" || command == "HVALS" || command == "HLEN") {
      if (argc != 2) co_return Arity(reply, command);
      if (!AllowedKey(*conn, Route::kGetDocument, args[1], reply)) co_return Route::kGetDocument;
      auto doc = Read(args[1], reply);
      if (!doc) co_return Route::kGetDocument;
      const auto fields =
          doc->has_value() ? FieldsOf(**doc) : std::vector<std::pair<std::string, std::string>>{};
      if (command == "HLEN") {
        reply.Integer(static_cast<int64_t>(fields.size()));
        co_return Route::kGetDocument;
      }
      if (command == "HGETALL") {
        reply.Map(fields.size());
      } else {
        reply.Array(fields.size());
      }
      for (const auto& [name, json] : fields) {
        if (command != "HVALS") reply.Bulk(name);
        if (command != "HKEYS") reply.Bulk(resp::ValueOfJson(json));
      }
      co_return Route::kGetDocument;
    }
    if (command == "HDEL") {
      if (argc < 3) co_return Arity(reply, command);
      co_await HashDelete(conn, args, reply);
      co_return Route::kPutDocument;
    }
    // --- replication
    if (command == "WAIT") {
      if (argc != 3) co_return Arity(reply, command);
      auto regions = resp::ParseInteger(args[1]);
      auto timeout = resp::ParseInteger(args[2]);
      if (!regions || !timeout || *regions < 0 || *timeout < 0) {
        reply.Error("ERR value is out of range, must be positive");
        co_return Route::kRejected;
      }
      const size_t others = node_->config().regions.size() - 1;
      if (conn->last_write.seq == 0) {
        // Nothing written on this connection: every region holds all of it.
        reply.Integer(static_cast<int64_t>(others));
        co_return Route::kRejected;
      }
      const core::Dot dot = conn->last_write;
      const size_t wanted = std::min<size_t>(static_cast<size_t>(*regions), others);
      // 0 waits as long as any wait may (kWaitMsMax), not forever.
      const uint64_t wait_ms =
          *timeout == 0 ? kWaitMsMax
                        : std::min<uint64_t>(static_cast<uint64_t>(*timeout), kWaitMsMax);
      const std::function<bool()> confirmed = [this, dot, wanted] {
        return DurabilityConfirmed(*node_, dot, wanted);
      };
      const std::function<bool()> stopping = [this, conn] {
        return stopping_.load() || conn->closed || conn->draining;
      };
      const auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
      co_await AwaitCondition<Executor>(*node_, deadline, confirmed, stopping, &conn->wake);
      reply.Integer(static_cast<int64_t>(node_->replication().RegionsHolding(dot)));
      co_return Route::kRejected;
    }
    // --- pub/sub
    if (command == "SUBSCRIBE" || command == "PSUBSCRIBE") {
      if (argc < 2) co_return Arity(reply, command);
      const bool pattern = command == "PSUBSCRIBE";
      for (size_t i = 1; i < argc; ++i) {
        // A channel that is about no key never gets a message: nothing to allow.
        const auto keys = KeysOf(args[i], pattern);
        if (keys && !AllowedPrefix(*conn, Route::kWatch, *keys, reply)) co_return Route::kWatch;
      }
      std::set<std::string>& set = pattern ? conn->patterns : conn->channels;
      const std::set<std::string> before = set;
      set.insert(args.begin() + 1, args.end());
      if (!Watch(conn)) {
        set = before;  // the subscription stays as it was
        reply.Error("ERR too many watches open (watch.watchers_max)");
        co_return Route::kWatch;
      }
      for (size_t i = 1; i < argc; ++i) {
        reply.Push(3);
        reply.Bulk(pattern ? "psubscribe" : "subscribe");
        reply.Bulk(args[i]);
        reply.Integer(static_cast<int64_t>(conn->channels.size() + conn->patterns.size()));
      }
      co_return Route::kWatch;
    }
    if (command == "UNSUBSCRIBE" || command == "PUNSUBSCRIBE") {
      const bool pattern = command == "PUNSUBSCRIBE";
      std::set<std::string>& set = pattern ? conn->patterns : conn->channels;
      std::vector<std::string> names(args.begin() + 1, args.end());
      if (names.empty()) names.assign(set.begin(), set.end());
      if (names.empty()) {
        reply.Push(3);
        reply.Bulk(pattern ? "punsubscribe" : "unsubscribe");
        reply.Null();
        reply.Integer(static_cast<int64_t>(conn->channels.size() + conn->patterns.size()));
      }
      for (const std::string& name : names) {
        set.erase(name);
        reply.Push(3);
        reply.Bulk(pattern ? "punsubscribe" : "unsubscribe");
        reply.Bulk(name);
        reply.Integer(static_cast<int64_t>(conn->channels.size() + conn->patterns.size()));
      }
      Watch(conn);
      co_return Route::kWatch;
    }
    if (command == "PUBLISH") {
      reply.Error(
          "ERR PUBLISH is not supported: the channels are keyspace notifications of documents "
          "(docs/redis.md)");
      co_return Route::kRejected;
    }
    // --- connection
    if (command == "PING") {
      if (argc > 2) co_return Arity(reply, command);
      if (conn->subscribed() && conn->protocol < 3) {
        reply.Array(2);
        reply.Bulk("pong");
        reply.Bulk(argc == 2 ? args[1] : "");
      } else if (argc == 2) {
        reply.Bulk(args[1]);
      } else {
        reply.Simple("PONG");
      }
      co_return Route::kRejected;
    }
    if (command == "ECHO") {
      if (argc != 2) co_return Arity(reply, command);
      reply.Bulk(args[1]);
      co_return Route::kRejected;
    }
    if (command == "QUIT") {
      reply.Simple("OK");
      conn->quit = true;
      co_return Route::kRejected;
    }
    if (command == "RESET") {
      conn->channels.clear();
      conn->patterns.clear();
      Watch(conn);
      conn->protocol = 2;
      reply.set_protocol(2);
      conn->authorization.clear();
      conn->name.clear();
      reply.Simple("RESET");
      co_return Route::kRejected;
    }
    if (command == "SELECT") {
      if (argc != 2) co_return Arity(reply, command);
      if (args[1] == "0") {
        reply.Simple("OK");
      } else {
        reply.Error("ERR DB index is out of range: a region has one keyspace, 0");
      }
      co_return Route::kRejected;
    }
    if (command == "AUTH") {
      if (argc != 2 && argc != 3) co_return Arity(reply, command);
      Authenticate(*conn, args[argc - 1], reply, true);
      co_return Route::kRejected;
    }
    if (command == "HELLO") {
      co_return Hello(*conn, args, reply);
    }
    if (command == "CLIENT") co_return Client(*conn, args, reply);
    if (command == "INFO") {
      // What /v1/status tells: admin, as there.
      ApiCall call;
      call.route = Route::kStatus;
      if (Allowed(*conn, call, reply))
        reply.Bulk(Info(args.size() > 1 ? resp::Upper(args[1]) : ""));
      co_return Route::kRejected;
    }
    if (command == "COMMAND") {
      const std::string sub = argc > 1 ? resp::Upper(args[1]) : "";
      if (sub == "COUNT") {
        reply.Integer(0);
      } else if (sub == "DOCS") {
        reply.Map(0);
      } else {
        reply.Array(0);
      }
      co_return Route::kRejected;
    }
    if (command == "CONFIG") co_return Config(args, reply);
    if (command == "DBSIZE" || command == "FLUSHALL" || command == "FLUSHDB" ||
        command == "MULTI" || command == "EXEC" || command == "EXPIRE" || command == "TTL") {
      reply.Error("ERR " + command + " is not supported (docs/redis.md)");
      co_return Route::kRejected;
    }
    std::string text = "ERR unknown command '" + args[0] + "', with args beginning with: ";
    for (size_t i = 1; i < argc && i < 4; ++i) text += "'" + args[i].substr(0, 64) + "' ";
    reply.Error(text);
    co_return Route::kRejected;
  }

  // The writes whose answers come from their own commits alone (the receipts, with the document
  // just before or after the write): SET, SETNX, MSET, INCR, INCRBY, DECR, DECRBY, HINCRBY, HSET,
  // HMSET, DEL and UNLINK. Consecutive ones of a pipeline commit together (ExecuteWrites). HDEL
  // is not one: it rewrites the hash on the condition of the version it read.
  static bool Pipelinable(const std::string& command) {
    return command == "SET" || command == "SETNX" || command == "INCR" || command == "INCRBY" ||
           command == "DECR" || command == "DECRBY" || command == "HINCRBY" || command == "HSET" ||
           command == "HMSET" || command == "MSET" || command == "DEL" || command == "UNLINK";
  }
  struct PreparedWrite {
    std::string command;
    Route route = Route::kPutDocument;
    // The command's writes (DEL: one per key named); none: refused, the refusal answered.
    std::vector<node::WriteRequest> writes = {};
    std::string field = {};                // an increment: the field whose value answers
    std::vector<std::string> fields = {};  // HSET: the fields it sets (its answer counts new ones)
  };

  // A pipelinable command's writes, checked as far as they can be before their commit.
  PreparedWrite PrepareWrite(Conn& conn, const std::string& command, std::vector<std::string>& args,
                             resp::Writer& reply) {
    PreparedWrite prepared{command};
    const size_t argc = args.size();
    if (command == "DEL" || command == "UNLINK") {
      prepared.route = Route::kDeleteDocument;
      if (argc < 2) {
        Arity(reply, command);
        return prepared;
      }
      for (size_t i = 1; i < argc; ++i) {
        if (!AllowedKey(conn, Route::kDeleteDocument, args[i], reply)) return prepared;
      }
      std::set<std::string> seen;
      std::vector<node::WriteRequest> writes;
      for (size_t i = 1; i < argc; ++i) {
        if (!seen.insert(args[i]).second) continue;
        // Only a document that exists here is deleted (and counted), as Redis counts.
        core::Operation op;
        op.kind = core::OpKind::kDelete;
        node::WriteRequest write(args[i], std::move(op));
        write.condition = core::Condition{args[i], std::nullopt, true};
        writes.push_back(std::move(write));
      }
      prepared.writes = std::move(writes);
      return prepared;
    }
    if (command == "MSET") {
      prepared.route = Route::kTransaction;
      if (argc < 3 || argc % 2 == 0) {
        Arity(reply, command);
        return prepared;
      }
      // One transaction: every region applies all of the keys or none.
      auto txn = std::make_shared<core::Transaction>();
      // As an HTTP transaction's body: within document_bytes_max, so that it replicates whole.
      size_t bytes = 0;
      for (size_t i = 1; i < argc; ++i) bytes += args[i].size();
      if (bytes > limits_.document_bytes_max) {
        reply.Error("ERR too_large: MSET of " + std::to_string(bytes) +
                    " bytes; a transaction takes at most limits.document_bytes_max (" +
                    std::to_string(limits_.document_bytes_max) + ")");
        return prepared;
      }
      for (size_t i = 1; i + 1 < argc; i += 2) {
        auto json = resp::JsonOfValue(args[i + 1]);
        if (!json) {
          NotUtf8(reply, Route::kTransaction);
          return prepared;
        }
        if (auto invalid = CheckKey(args[i], limits_)) {
          reply.Error(ErrorText(*invalid));
          return prepared;
        }
        core::Operation op;
        op.kind = core::OpKind::kReplace;
        op.fields.push_back({std::string(resp::kStringField), std::move(*json)});
        if (!Normalize(&op, reply)) return prepared;
        // A key named twice: the last value wins, as in Redis.
        std::erase_if(txn->then_ops,
                      [&](const core::KeyedOperation& kept) { return kept.key == args[i]; });
        txn->then_ops.push_back({args[i], std::move(op)});
      }
      if (txn->then_ops.size() > core::kTransactionOpsMax) {
        reply.Error("ERR MSET takes at most " + std::to_string(core::kTransactionOpsMax) + " keys");
        return prepared;
      }
      ApiCall call;
      call.route = Route::kTransaction;
      call.txn = txn;
      if (!Allowed(conn, call, reply)) return prepared;
      node::WriteRequest write;
      write.txn = std::move(txn);
      prepared.writes.push_back(std::move(write));
      return prepared;
    }
    if (command == "SET" || command == "SETNX") {
      if (argc < 3 || (command == "SETNX" && argc != 3)) {
        Arity(reply, command);
        return prepared;
      }
      std::optional<bool> exists;
      if (command == "SETNX") exists = false;
      for (size_t i = 3; i < argc; ++i) {
        const std::string option = resp::Upper(args[i]);
        if (option == "NX" && !exists) {
          exists = false;
        } else if (option == "XX" && !exists) {
          exists = true;
        } else if (option == "KEEPTTL") {
          // Documents have no time to live to keep.
        } else if (option == "EX" || option == "PX" || option == "EXAT" || option == "PXAT") {
          reply.Error(
              "ERR expiration is not supported: documents live until deleted (docs/redis.md)");
          return prepared;
        } else if (option == "GET") {
          reply.Error("ERR SET ... GET is not supported (docs/redis.md)");
          return prepared;
        } else {
          reply.Error("ERR syntax error");
          return prepared;
        }
      }
      if (!AllowedKey(conn, Route::kPutDocument, args[1], reply)) return prepared;
      auto json = resp::JsonOfValue(args[2]);
      if (!json) {
        NotUtf8(reply, Route::kPutDocument);
        return prepared;
      }
      core::Operation op;
      op.kind = core::OpKind::kReplace;
      op.fields.push_back({std::string(resp::kStringField), std::move(*json)});
      if (!Normalize(&op, reply)) return prepared;
      node::WriteRequest write(args[1], std::move(op));
      if (exists) write.condition = core::Condition{args[1], std::nullopt, exists};
      prepared.writes.push_back(std::move(write));
      return prepared;
    }
    if (command == "HSET" || command == "HMSET") {
      prepared.route = Route::kPatchDocument;
      if (argc < 4 || argc % 2 != 0) {
        Arity(reply, command);
        return prepared;
      }
      if (!AllowedKey(conn, Route::kPatchDocument, args[1], reply)) return prepared;
      std::map<std::string, std::string> fields;  // a field named twice: the last value
      for (size_t i = 2; i + 1 < argc; i += 2) {
        auto json = resp::JsonOfValue(args[i + 1]);
        if (!json) {
          NotUtf8(reply, Route::kPatchDocument);
          return prepared;
        }
        fields[args[i]] = std::move(*json);
      }
      core::Operation op;
      op.kind = core::OpKind::kSet;
      for (auto& [name, value] : fields) {
        prepared.fields.push_back(name);
        op.fields.push_back({name, std::move(value)});
      }
      if (!Normalize(&op, reply)) return prepared;
      node::WriteRequest write(args[1], std::move(op));
      // HSET answers how many of its fields are new: against the document just before it.
      write.want_document = true;
      prepared.writes.push_back(std::move(write));
      return prepared;
    }
    // INCR, INCRBY, DECR, DECRBY (a string's "value") and HINCRBY: one counter increment.
    prepared.route = Route::kIncrementDocument;
    const bool hash = command == "HINCRBY";
    const bool by = hash || command == "INCRBY" || command == "DECRBY";
    if (argc != (hash ? 4u : by ? 3u : 2u)) {
      Arity(reply, command);
      return prepared;
    }
    int64_t delta = 1;
    if (by) {
      auto parsed = resp::ParseInteger(args[hash ? 3 : 2]);
      if (!parsed) {
        reply.Error(kNotInteger);
        return prepared;
      }
      delta = *parsed;
    }
    if (command[0] == 'D') {
      if (delta == std::numeric_limits<int64_t>::min()) {
        reply.Error("ERR decrement would overflow");
        return prepared;
      }
      delta = -delta;
    }
    const std::string& key = args[1];
    prepared.field = hash ? args[2] : std::string(resp::kStringField);
    // The answer is the field's value: the key must be readable too.
    if (!AllowedKey(conn, Route::kIncrementDocument, key, reply) ||
        !AllowedKey(conn, Route::kGetDocument, key, reply)) {
      return prepared;
    }
    if (!hash) {
      auto before = Read(key, reply);
      if (!before) return prepared;
      if (before->has_value() && !resp::StringValue(**before)) {
        reply.Error(kWrongType);
        return prepared;
      }
    }
    core::Operation op;
    op.kind = core::OpKind::kIncrement;
    op.counters.push_back({prepared.field, delta});
    if (!Normalize(&op, reply)) return prepared;
    node::WriteRequest write(key, std::move(op));
    write.want_document = true;
    prepared.writes.push_back(std::move(write));
    return prepared;
  }

  // A pipelinable command's answer from the outcomes of its writes (in their order).
  static void AnswerWrite(Conn& conn, const PreparedWrite& prepared,
                          std::span<const Result<node::Receipt>> outcomes, resp::Writer& reply) {
    const std::string& command = prepared.command;
    MERIDIAN_CHECK(outcomes.size() == prepared.writes.size());
    for (const Result<node::Receipt>& outcome : outcomes) {
      if (!Settled(conn, outcome, reply)) return;
    }
    if (command == "DEL" || command == "UNLINK") {
      // A key that did not exist here failed its condition: not counted.
      reply.Integer(
          std::count_if(outcomes.begin(), outcomes.end(),
                        [](const Result<node::Receipt>& outcome) { return outcome.ok(); }));
      return;
    }
    const Result<node::Receipt>& outcome = outcomes.front();
    if (!outcome.ok()) {
      // NX on a key that exists, XX on one that does not.
      if (command == "SETNX") {
        reply.Integer(0);
      } else {
        reply.Null();
      }
      return;
    }
    if (command == "SETNX") {
      reply.Integer(1);
    } else if (command == "SET" || command == "HMSET" || command == "MSET") {
      reply.Simple("OK");
    } else if (command == "HSET") {
      int64_t added = static_cast<int64_t>(prepared.fields.size());
      if (outcome->document_before) {
        for (const auto& [name, json] : FieldsOf(*outcome->document_before)) {
          added -= std::count(prepared.fields.begin(), prepared.fields.end(), name);
        }
      }
      reply.Integer(added);
    } else {
      // The field's value just after this increment, whatever committed after it.
      std::optional<int64_t> value;
      if (outcome->document) {
        for (const auto& [name, json] : FieldsOf(*outcome->document)) {
          if (name == prepared.field) value = resp::ParseInteger(json);
        }
      }
      if (value) {
        reply.Integer(*value);
      } else {
        // Committed, but the field is not an integer (a concurrent set of another kind merged).
        reply.Error(kNotInteger);
      }
    }
  }

  // Whether `args` may join a pipeline's batch of writes committed together (ExecuteWrites): a
  // pipelinable write on a connection that may run it now.
  bool Batchable(const Conn& conn, const std::vector<std::string>& args) const {
    if (args.empty() || args[0].size() > 7) return false;
    if (!Pipelinable(resp::Upper(args[0]))) return false;
    if (node_->secrets() != nullptr && conn.authorization.empty()) return false;
    return !(conn.subscribed() && conn.protocol < 3);
  }

  // A pipeline's consecutive pipelinable writes: submitted at once, so that they commit in order
  // in as few groups as the write queue makes (sharing fsyncs, as redis's one fsync per event
  // loop turn), then answered in order.
  awaitable<void> ExecuteWrites(std::shared_ptr<Conn> conn,
                                std::vector<std::vector<std::string>>& batch, std::string& out) {
    if (batch.size() == 1) {
      co_await Execute(conn, batch.front(), out);
      co_return;
    }
    const auto started = Clock::now();
    std::vector<std::string> answers(batch.size());
    std::vector<PreparedWrite> prepared;
    prepared.reserve(batch.size());
    std::vector<node::WriteRequest> writes;
    for (size_t i = 0; i < batch.size(); ++i) {
      resp::Writer reply(&answers[i], conn->protocol);
      prepared.push_back(PrepareWrite(*conn, resp::Upper(batch[i][0]), batch[i], reply));
      // Moved out: the vector keeps its size, which AnswerWrite counts on.
      for (node::WriteRequest& write : prepared.back().writes) writes.push_back(std::move(write));
    }
    std::vector<Result<node::Receipt>> outcomes = co_await AwaitWrites<Executor>(*node_, writes);
    size_t next = 0;  // each command's outcomes follow one another, in the batch's order
    for (size_t i = 0; i < batch.size(); ++i) {
      const size_t count = prepared[i].writes.size();
      if (count == 0) continue;
      resp::Writer reply(&answers[i], conn->protocol);
      AnswerWrite(*conn, prepared[i], std::span(outcomes).subspan(next, count), reply);
      next += count;
    }
    MERIDIAN_CHECK(next == outcomes.size());
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    for (size_t i = 0; i < answers.size(); ++i) {
      out += answers[i];
      node_->metrics().ObserveRequest(
          prepared[i].route, !answers[i].empty() && answers[i][0] == '-' ? 400 : 200, seconds);
    }
  }

  static Route Arity(resp::Writer& reply, const std::string& command) {
    reply.Error(WrongArity(command));
    return Route::kRejected;
  }
  static Route NotUtf8(resp::Writer& reply, Route route) {
    reply.Error("ERR values must be UTF-8: documents hold JSON text (docs/redis.md)");
    return route;
  }

  // HDEL: fields leave a document only through a replace, so the document is read, rewritten
  // without them (deleted when none is left) guarded by the version read, and read again when
  // another write came in between.
  awaitable<void> HashDelete(std::shared_ptr<Conn> conn, std::vector<std::string>& args,
                             resp::Writer& reply) {
    const std::string& key = args[1];
    if (!AllowedKey(*conn, Route::kPutDocument, key, reply)) co_return;
    const std::set<std::string> names(args.begin() + 2, args.end());
    for (int attempt = 0; attempt < kRewriteAttempts; ++attempt) {
      auto doc = Read(key, reply);
      if (!doc) co_return;
      if (!doc->has_value()) {
        reply.Integer(0);
        co_return;
      }
      core::Operation op;
      op.kind = core::OpKind::kReplace;
      int64_t removed = 0;
      for (auto& [name, json] : FieldsOf(**doc)) {
        if (names.count(name) != 0) {
          ++removed;
        } else {
          op.fields.push_back({name, std::move(json)});
        }
      }
      if (removed == 0) {
        reply.Integer(0);
        co_return;
      }
      if (op.fields.empty()) op.kind = core::OpKind::kDelete;
      if (!Normalize(&op, reply)) co_return;
      node::WriteRequest write(key, std::move(op));
      write.condition = core::Condition{key, core::DocumentVersion(core::RenderedDigest(key, *doc)),
                                        std::nullopt};
      auto committed = co_await Commit(conn, write, reply);
      if (!committed) co_return;
      if (committed->ok()) {
        reply.Integer(removed);
        co_return;
      }
    }
    reply.Error("ERR HDEL: the document kept changing; try again");
  }

  // SCAN cursor [MATCH pattern] [COUNT n] [TYPE string|hash]. A cursor is a number the node
  // remembers (the key to go on after); "0" starts and ends.
  Route Scan(Conn& conn, std::vector<std::string>& args, resp::Writer& reply) {
    if (args.size() < 2) return Arity(reply, "SCAN");
    std::string pattern = "*";
    size_t count = 10;
    std::string type;
    for (size_t i = 2; i < args.size(); ++i) {
      const std::string option = resp::Upper(args[i]);
      if (i + 1 >= args.size()) {
        reply.Error("ERR syntax error");
        return Route::kScan;
      }
      if (option == "MATCH") {
        pattern = args[++i];
      } else if (option == "COUNT") {
        auto parsed = resp::ParseInteger(args[++i]);
        if (!parsed || *parsed < 1) {
          reply.Error("ERR syntax error");
          return Route::kScan;
        }
        count = std::min<size_t>(static_cast<size_t>(*parsed), kScanLimitMax);
      } else if (option == "TYPE") {
        type = resp::Upper(args[++i]);
      } else {
        reply.Error("ERR syntax error");
        return Route::kScan;
      }
    }
    const std::string prefix = resp::GlobPrefix(pattern);
    if (!AllowedPrefix(conn, Route::kScan, prefix, reply)) return Route::kScan;
    std::string after;
    if (args[1] != "0") {
      auto cursor = resp::ParseInteger(args[1]);
      std::lock_guard lock(cursors_mutex_);
      auto it = cursor ? cursors_.find(static_cast<uint64_t>(*cursor)) : cursors_.end();
      if (it == cursors_.end()) {
        reply.Error("ERR invalid cursor: unknown or expired (SCAN from 0 again)");
        return Route::kScan;
      }
      after = it->second;
    }
    std::vector<std::string> keys;
    std::string last;
    auto more = ScanPage(node_->store(), prefix, after, count, node_->config().scan_page_bytes_max,
                         [&](std::string_view key, std::string_view doc) {
                           last = key;
                           if (!resp::GlobMatch(pattern, key)) return;
                           if (!type.empty()) {
                             const bool string = resp::StringValue(doc).has_value();
                             if ((type == "STRING") != string) return;
                             if (type != "STRING" && type != "HASH") return;
                           }
                           keys.emplace_back(key);
                         });
    if (!more.ok()) {
      reply.Error(ErrorText(ErrorFromStatus(more.status())));
      return Route::kScan;
    }
    std::string next = "0";
    if (*more) {
      std::lock_guard lock(cursors_mutex_);
      uint64_t id = 0;
      while (id == 0 || cursors_.count(id) != 0) id = cursor_random_() >> 2;
      cursors_[id] = last;
      cursor_order_.push_back(id);
      while (cursor_order_.size() > kCursorsMax) {
        cursors_.erase(cursor_order_.front());
        cursor_order_.pop_front();
      }
      next = std::to_string(id);
    }
    reply.Array(2);
    reply.Bulk(next);
    reply.Array(keys.size());
    for (const std::string& key : keys) reply.Bulk(key);
    return Route::kScan;
  }

  Route Keys(Conn& conn, std::vector<std::string>& args, resp::Writer& reply) {
    if (args.size() != 2) return Arity(reply, "KEYS");
    const std::string& pattern = args[1];
    const std::string prefix = resp::GlobPrefix(pattern);
    if (!AllowedPrefix(conn, Route::kScan, prefix, reply)) return Route::kScan;
    std::vector<std::string> keys;
    std::string after;
    for (;;) {
      std::string last;
      auto more = ScanPage(node_->store(), prefix, after, kScanLimitMax,
                           node_->config().scan_page_bytes_max,
                           [&](std::string_view key, std::string_view) {
                             last = key;
                             if (resp::GlobMatch(pattern, key)) keys.emplace_back(key);
                           });
      if (!more.ok()) {
        reply.Error(ErrorText(ErrorFromStatus(more.status())));
        return Route::kScan;
      }
      if (keys.size() > kKeysMax) {
        reply.Error("ERR KEYS matched more than " + std::to_string(kKeysMax) + " keys: use SCAN");
        return Route::kScan;
      }
      if (!*more) break;
      after = last;
    }
    reply.Array(keys.size());
    for (const std::string& key : keys) reply.Bulk(key);
    return Route::kScan;
  }

  // AUTH [username] token / HELLO ... AUTH username token: the token of [auth], verified as a
  // bearer token of the HTTP API would be.
  bool Authenticate(Conn& conn, const std::string& token, resp::Writer& reply, bool answer_ok) {
    if (node_->secrets() == nullptr) {
      reply.Error(
          "ERR AUTH <password> called without any password configured for the default user. "
          "Are you sure your configuration is correct?");
      return false;
    }
    const std::string authorization = "Bearer " + token;
    auto authenticated = Authenticated(*node_, authorization);
    if (auto* error = std::get_if<ApiError>(&authenticated)) {
      reply.Error("WRONGPASS invalid username-password pair or user is disabled: " +
                  error->message);
      return false;
    }
    conn.authorization = authorization;
    if (answer_ok) reply.Simple("OK");
    return true;
  }

  Route Hello(Conn& conn, std::vector<std::string>& args, resp::Writer& reply) {
    int protocol = conn.protocol;
    size_t i = 1;
    if (args.size() > 1) {
      auto version = resp::ParseInteger(args[1]);
      if (!version || (*version != 2 && *version != 3)) {
        reply.Error("NOPROTO unsupported protocol version");
        return Route::kRejected;
      }
      protocol = static_cast<int>(*version);
      i = 2;
    }
    std::string name = conn.name;
    for (; i < args.size(); ++i) {
      const std::string option = resp::Upper(args[i]);
      if (option == "AUTH" && i + 2 < args.size()) {
        if (!Authenticate(conn, args[i + 2], reply, false)) return Route::kRejected;
        i += 2;
      } else if (option == "SETNAME" && i + 1 < args.size()) {
        name = args[++i];
      } else {
        reply.Error("ERR Syntax error in HELLO option '" + args[i] + "'");
        return Route::kRejected;
      }
    }
    if (node_->secrets() != nullptr && conn.authorization.empty()) {
      reply.Error(
          "NOAUTH HELLO must be called with the client already authenticated, otherwise "
          "the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the "
          "client and select the RESP protocol version at the same time");
      return Route::kRejected;
    }
    conn.protocol = protocol;
    conn.name = name;
    reply.set_protocol(protocol);
    reply.Map(7);
    reply.Bulk("server");
    reply.Bulk("meridian");
    reply.Bulk("version");
    reply.Bulk(kRedisVersion);
    reply.Bulk("proto");
    reply.Integer(protocol);
    reply.Bulk("id");
    reply.Integer(static_cast<int64_t>(conn.id));
    reply.Bulk("mode");
    reply.Bulk("standalone");
    reply.Bulk("role");
    reply.Bulk("master");
    reply.Bulk("modules");
    reply.Array(0);
    return Route::kRejected;
  }

  Route Client(Conn& conn, std::vector<std::string>& args, resp::Writer& reply) {
    const std::string sub = args.size() > 1 ? resp::Upper(args[1]) : "";
    if (sub == "SETNAME" && args.size() == 3) {
      conn.name = args[2];
      reply.Simple("OK");
    } else if (sub == "GETNAME" && args.size() == 2) {
      if (conn.name.empty()) {
        reply.Null();
      } else {
        reply.Bulk(conn.name);
      }
    } else if (sub == "ID" && args.size() == 2) {
      reply.Integer(static_cast<int64_t>(conn.id));
    } else if (sub == "SETINFO" && args.size() == 4) {
      reply.Simple("OK");
    } else if ((sub == "INFO" && args.size() == 2) || (sub == "LIST" && args.size() == 2)) {
      reply.Bulk("id=" + std::to_string(conn.id) + " addr=" + conn.Peer() + " name=" + conn.name +
                 " db=0 sub=" + std::to_string(conn.channels.size()) +
                 " psub=" + std::to_string(conn.patterns.size()) +
                 " resp=" + std::to_string(conn.protocol) + "\n");
    } else {
      reply.Error("ERR CLIENT " + (args.size() > 1 ? args[1] : std::string()) +
                  " is not supported (docs/redis.md)");
    }
    return Route::kRejected;
  }

  std::string Info(const std::string& section) const {
    const node::NodeConfig& config = node_->config();
    const bool all =
        section.empty() || section == "ALL" || section == "EVERYTHING" || section == "DEFAULT";
    std::string text;
    if (all || section == "SERVER") {
      text += "# Server\r\nredis_version:" + std::string(kRedisVersion) +
              "\r\nredis_mode:standalone\r\nmeridian_region:" + config.region +
              "\r\ntcp_port:" + std::to_string(port_) +
              "\r\nuptime_in_seconds:" + std::to_string(static_cast<int64_t>(node_->uptime_s())) +
              "\r\n\r\n";
    }
    if (all || section == "CLIENTS") {
      text += "# Clients\r\nconnected_clients:" + std::to_string(open_.load()) + "\r\n\r\n";
    }
    if (all || section == "PERSISTENCE") {
      text += std::string("# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_fsync:") +
              (config.sync ? "always" : "no") + "\r\n\r\n";
    }
    if (all || section == "REPLICATION") {
      // Every region takes writes: each is a master, and the others are its peers, not replicas.
      text += "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmeridian_regions:" +
              std::to_string(config.regions.size()) + "\r\n\r\n";
    }
    if (all || section == "KEYSPACE") text += "# Keyspace\r\n\r\n";
    return text;
  }

  Route Config(std::vector<std::string>& args, resp::Writer& reply) {
    const std::string sub = args.size() > 1 ? resp::Upper(args[1]) : "";
    if (sub == "GET" && args.size() >= 3) {
      // What a client asks before it starts (redis-benchmark asks for save and appendonly).
      const std::vector<std::pair<std::string, std::string>> settings = {
          {"appendfsync", node_->config().sync ? "always" : "no"},
          {"appendonly", "yes"},
          {"databases", "1"},
          {"maxmemory", "0"},
          {"notify-keyspace-events", "KA"},
          {"save", ""},
      };
      std::vector<std::pair<std::string, std::string>> found;
      for (const auto& setting : settings) {
        for (size_t i = 2; i < args.size(); ++i) {
          if (resp::GlobMatch(args[i], setting.first)) {
            found.push_back(setting);
            break;
          }
        }
      }
      reply.Map(found.size());
      for (const auto& [name, value] : found) {
        reply.Bulk(name);
        reply.Bulk(value);
      }
    } else if (sub == "SET" && args.size() == 4 &&
               resp::Upper(args[2]) == "NOTIFY-KEYSPACE-EVENTS") {
      reply.Simple("OK");  // notifications are always on
    } else if (sub == "RESETSTAT") {
      reply.Simple("OK");
    } else {
      reply.Error("ERR CONFIG " + sub +
                  " is not supported: the node's settings are its TOML file "
                  "(docs/configuration.md)");
    }
    return Route::kRejected;
  }

  // --- Keyspace notifications ----------------------------------------------------------------

  // The key prefix a channel or pattern can be about: a keyspace channel's key (or its pattern's
  // literal start); everything for a keyevent channel or a pattern that may match either; a
  // channel that is neither gets nothing, and nothing needs reading for it (nullopt).
  static std::optional<std::string> KeysOf(const std::string& name, bool pattern) {
    const std::string_view keyspace = resp::kKeyspaceChannel;
    if (!pattern) {
      if (name.starts_with(keyspace)) return name.substr(keyspace.size());
      if (name.starts_with(resp::kKeyeventChannel)) return "";
      return std::nullopt;
    }
    const std::string literal = resp::GlobPrefix(name);
    if (literal.size() >= keyspace.size() && literal.starts_with(keyspace)) {
      return literal.substr(keyspace.size());
    }
    if (std::string_view(keyspace).starts_with(literal) ||
        std::string_view(resp::kKeyeventChannel).starts_with(literal) ||
        literal.starts_with(resp::kKeyeventChannel)) {
      return "";
    }
    return std::nullopt;
  }

  // (Re)subscribes the connection's watcher to the longest prefix all its subscriptions share,
  // and starts the pump. False when the node has no room for another watcher.
  bool Watch(const std::shared_ptr<Conn>& conn) {
    std::optional<std::string> prefix;
    const auto widen = [&](const std::optional<std::string>& keys) {
      if (!keys) return;
      if (!prefix) {
        prefix = *keys;
        return;
      }
      size_t common = 0;
      while (common < prefix->size() && common < keys->size() &&
             (*prefix)[common] == (*keys)[common]) {
        ++common;
      }
      prefix->resize(common);
    };
    for (const std::string& channel : conn->channels) widen(KeysOf(channel, false));
    for (const std::string& pattern : conn->patterns) widen(KeysOf(pattern, true));
    if (!prefix) {
      if (conn->watcher) node_->watches().Unsubscribe(conn->watcher);
      conn->watcher.reset();
      return true;
    }
    if (conn->watcher && conn->watched_prefix == *prefix) return true;
    if (!conn->pump_timer) std::tie(conn->pump_timer, conn->pump_wake) = MakeWaker(conn->executor);
    std::function<void()> notify = conn->pump_wake;
    uint64_t published = 0;
    // The new watcher before the old one goes: a refusal leaves the connection as it was.
    auto watcher = node_->watches().Subscribe(*prefix, node_->config().watch_buffer_max,
                                              std::move(notify), &published);
    if (!watcher) return false;
    if (conn->watcher) node_->watches().Unsubscribe(conn->watcher);
    conn->watcher = std::move(watcher);
    conn->watched_prefix = *prefix;
    if (!conn->pumping) {
      conn->pumping = true;
      asio::co_spawn(conn->executor, Pump(conn), asio::detached);
    }
    return true;
  }

  // Delivers the watcher's changes as notifications while the connection is subscribed.
  awaitable<void> Pump(std::shared_ptr<Conn> conn) {
    while (!conn->closed && conn->watcher) {
      bool overflowed = false;
      std::shared_ptr<node::Watcher> watcher = conn->watcher;
      std::vector<node::Change> changes = watcher->Take(&overflowed);
      if (overflowed) {
        // As Redis closes a subscriber over its output buffer limit.
        spdlog::warn("redis port: closing subscriber {} ({}): it fell behind", conn->id,
                     conn->Peer());
        conn->End();
        break;
      }
      std::string out;
      resp::Writer push(&out, conn->protocol);
      for (const node::Change& change : changes) {
        const std::string event = change.doc ? "set" : "del";
        const std::string keyspace = std::string(resp::kKeyspaceChannel) + change.key;
        const std::string keyevent = std::string(resp::kKeyeventChannel) + event;
        for (const auto& [channel, message] :
             {std::pair<const std::string&, const std::string&>{keyspace, event},
              {keyevent, change.key}}) {
          if (conn->channels.count(channel) != 0) {
            push.Push(3);
            push.Bulk("message");
            push.Bulk(channel);
            push.Bulk(message);
          }
          for (const std::string& pattern : conn->patterns) {
            if (!resp::GlobMatch(pattern, channel)) continue;
            push.Push(4);
            push.Bulk("pmessage");
            push.Bulk(pattern);
            push.Bulk(channel);
            push.Bulk(message);
          }
        }
      }
      if (!out.empty()) {
        if (!co_await Send(conn, out)) break;
        continue;
      }
      if (conn->watcher != watcher) continue;  // resubscribed meanwhile: take from the new one
      conn->pump_timer->expires_at(Clock::time_point::max());
      ErrorCode ec;
      co_await conn->pump_timer->async_wait(asio::redirect_error(use_awaitable, ec));
    }
    conn->pumping = false;
  }

  node::Node* const node_;
  const core::Limits limits_;
  resp::ParseLimits parse_limits_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::optional<asio::basic_socket_acceptor<tcp, Executor>> acceptor_;
  std::unique_ptr<net::TlsContextHolder> tls_;
  std::optional<asio::signal_set> hangup_;
  std::optional<asio::signal_set> stop_signals_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> next_id_{0};
  std::mutex connections_mutex_;
  std::list<std::weak_ptr<Conn>> connections_;
  std::mutex cursors_mutex_;
  std::map<uint64_t, std::string> cursors_;
  std::deque<uint64_t> cursor_order_;
  std::mt19937_64 cursor_random_;
};

RespServer::RespServer(node::Node* node) : impl_(std::make_unique<Impl>(node)) {}
RespServer::~RespServer() {
  impl_->Stop();
}
Status RespServer::Start() {
  return impl_->Start();
}
void RespServer::Stop() {
  impl_->Stop();
}
void RespServer::Drain() {
  impl_->DrainAndWait();
}
uint16_t RespServer::port() const {
  return impl_->port();
}

}  // namespace meridian::api
