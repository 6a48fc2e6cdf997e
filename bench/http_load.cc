// http_load: closed-loop HTTP load generator for a Meridian region node.
//
// Each client is one keep-alive HTTP/1.1 connection that sends a request, waits for the whole
// answer, records the latency and sends the next one. Clients are C++20 coroutines spread over
// --threads event loops (one io_context per thread, default 1, like redis-benchmark), so a
// client costs no thread of its own and the generator stays cheap next to the server it loads.
//
// Output: one line of JSON on stdout (diagnostics go to stderr), e.g.
//   {"mode":"put","clients":32,"requests":81234,"errors":0,"throughput_rps":27078.0,
//    "p50_ms":1.02,"p99_ms":2.3,"p999_ms":4.1,"max_ms":7.9,...}
//
// --mode request sends any request: --method, --path and --body, where {key0} ... {key9} ({key}
// is {key0}) become keys of the key space, distinct within one request, and {value} the document
// of --value-bytes: e.g. POST /v1/txn with two keys in its body.
//
// With --ca-file, every connection speaks TLS (verifying the node against that CA); with --token,
// every request carries `Authorization: Bearer <token>`.
//
// Build: g++ -std=c++20 -O2 -Wall -Wextra -Werror bench/http_load.cc -o http_load -lpthread -lssl
//   -lcrypto

#include <utility>  // g++ 12: must precede the asio headers when coroutines are used

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "cpu_usage.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------------
// Histogram: log-linear buckets over nanoseconds (HDR-style). Values below 256 ns are exact;
// above, each power of two is split into 128 buckets, so a bucket is at most 0.8% wide. Values
// are clamped at 2^40 ns (~18 min). Percentiles report the bucket's highest value (an upper
// bound, as HdrHistogram does); the exact maximum, minimum and sum are kept on the side.
// ---------------------------------------------------------------------------------------------
class Histogram {
 public:
  static constexpr int kSubBits = 8;  // 256 linear buckets, then 128 per octave
  static constexpr int kMaxBit = 40;  // values up to 2^40 ns
  static constexpr std::size_t kBuckets = (kMaxBit - kSubBits + 2) * (1u << (kSubBits - 1)) + 128;

  void record(std::uint64_t ns) {
    counts_[index(ns)] += 1;
    ++count_;
    sum_ += ns;
    max_ = std::max(max_, ns);
    min_ = std::min(min_, ns);
  }

  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return count_ ? max_ : 0; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const {
    return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0;
  }

  // Value (ns) at percentile p in [0, 100]: the smallest bucket whose cumulative count reaches
  // ceil(p/100 * count).
  std::uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(highest_in_bucket(i), max_);
    }
    return max_;
  }

  static std::size_t index(std::uint64_t v) {
    constexpr std::uint64_t kLimit = (std::uint64_t{1} << kMaxBit) - 1;
    if (v > kLimit) v = kLimit;
    if (v < (1u << kSubBits)) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - (kSubBits - 1);
    // (v >> shift) is in [128, 255]; octave `shift` owns buckets [shift*128+128, shift*128+255].
    return static_cast<std::size_t>(shift) * (1u << (kSubBits - 1)) +
           static_cast<std::size_t>(v >> shift);
  }

  static std::uint64_t highest_in_bucket(std::size_t i) {
    constexpr std::size_t kHalf = 1u << (kSubBits - 1);
    if (i < (1u << kSubBits)) return i;
    const std::size_t shift = i / kHalf - 1;
    const std::uint64_t mant = i - shift * kHalf;  // in [128, 255]
    return ((mant + 1) << shift) - 1;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------
enum class Mode { kPut, kGet, kIncr, kMixed, kRequest };

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "7001";
  int clients = 1;
  int threads = 1;
  double duration_s = 5;
  std::uint64_t requests = 0;  // when > 0, run this many measured requests instead of a duration
  Mode mode = Mode::kPut;
  std::string mode_name = "put";
  std::uint64_t keys = 10000;
  std::size_t value_bytes = 200;
  double warmup_s = 1;
  int read_pct = 90;  // mixed mode: share of GETs
  bool prepopulate = true;
  std::string key_prefix = "bench:";
  std::string query;  // appended to write paths, e.g. "durability=regions:1&timeout_ms=500"
  int timeout_ms = 5000;
  bool allow_non_loopback = false;
  long cpu_pid = 0;     // when > 0, the CPU this process spends in the measured window is reported
  std::string ca_file;  // when set: TLS, the node verified against this CA
  std::string token;    // when set: sent as a bearer token
  std::int64_t incr_delta = 1;  // incr mode: the delta of field "n"
  // --mode request: the request, with placeholders (see usage)
  std::string method = "POST";
  std::string path;
  std::string body;
};

[[noreturn]] void usage(int code) {
  std::fprintf(
      code == 0 ? stdout : stderr,
      "usage: http_load --target HOST:PORT [options]\n"
      "  --target HOST:PORT     node to load (default 127.0.0.1:7001; loopback only)\n"
      "  --clients N            concurrent closed-loop keep-alive connections (default 1)\n"
      "  --threads T            event-loop threads the clients are spread over (default 1)\n"
      "  --duration-s S         measure for S seconds (default 5)\n"
      "  --requests R           measure exactly R requests instead of a duration\n"
      "  --warmup-s S           unmeasured load before measuring (default 1)\n"
      "  --mode put|get|incr|mixed|request  request kind (default put)\n"
      "  --keys K               key space: keys <prefix><0..K-1> (default 10000)\n"
      "  --key-prefix P         key prefix (default \"bench:\")\n"
      "  --value-bytes B        size of the JSON document {\"v\":\"xx..\"} (default 200)\n"
      "  --read-pct P           mixed mode: percent of GETs, the rest PUTs (default 90)\n"
      "  --incr-delta D         incr mode: add D to field \"n\" (default 1; -1 decrements)\n"
      "  --no-prepopulate       get/mixed: do not PUT every key before the run\n"
      "  --method M             request mode: the HTTP method (default POST)\n"
      "  --path P               request mode: the target; {key0}..{key9} ({key} = {key0}) are\n"
      "                         replaced by keys (percent-encoded), distinct within a request\n"
      "  --body B               request mode: the body (JSON), with the same {keyN} (as they\n"
      "                         are) and {value}, the document of --value-bytes\n"
      "  --query Q              query string added to writes (e.g. durability=regions:1)\n"
      "  --timeout-ms T         per-request timeout; a timeout counts as an error (default 5000)\n"
      "  --allow-non-loopback   permit a target that is not a loopback address\n"
      "  --ca-file FILE         speak TLS, verifying the node's certificate against FILE\n"
      "  --token T              send Authorization: Bearer T with every request\n"
      "  --cpu-pid PID          report the CPU time of PID (by thread name), of http_load and of\n"
      "                         the machine during the measured window, per request\n"
      "Prints one JSON line: mode, clients, requests, errors, throughput_rps, p50_ms, p99_ms,\n"
      "p999_ms, max_ms (+ extras). Latencies are of successful (2xx) requests only.\n");
  std::exit(code);
}

template <class T>
T parse_number(std::string_view flag, const char* s) {
  char* end = nullptr;
  errno = 0;
  T out{};
  if constexpr (std::is_floating_point_v<T>) {
    out = static_cast<T>(std::strtod(s, &end));
  } else {
    const long long v = std::strtoll(s, &end, 10);
    if (v < 0) end = nullptr;
    out = static_cast<T>(v);
  }
  if (end == nullptr || end == s || *end != '\0' || errno != 0) {
    std::fprintf(stderr, "http_load: bad value for %.*s: '%s'\n", static_cast<int>(flag.size()),
                 flag.data(), s);
    std::exit(1);
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "http_load: %s needs a value\n", argv[i]);
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(0);
    } else if (a == "--target") {
      const std::string t = value();
      const auto colon = t.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == t.size()) {
        std::fprintf(stderr, "http_load: --target must be HOST:PORT\n");
        std::exit(1);
      }
      o.host = t.substr(0, colon);
      if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']')
        o.host = o.host.substr(1, o.host.size() - 2);
      o.port = t.substr(colon + 1);
    } else if (a == "--clients") {
      o.clients = parse_number<int>(a, value());
    } else if (a == "--threads") {
      o.threads = parse_number<int>(a, value());
    } else if (a == "--duration-s") {
      o.duration_s = parse_number<double>(a, value());
    } else if (a == "--requests") {
      o.requests = parse_number<std::uint64_t>(a, value());
    } else if (a == "--warmup-s") {
      o.warmup_s = parse_number<double>(a, value());
    } else if (a == "--mode") {
      o.mode_name = value();
      if (o.mode_name == "put")
        o.mode = Mode::kPut;
      else if (o.mode_name == "get")
        o.mode = Mode::kGet;
      else if (o.mode_name == "incr")
        o.mode = Mode::kIncr;
      else if (o.mode_name == "mixed")
        o.mode = Mode::kMixed;
      else if (o.mode_name == "request")
        o.mode = Mode::kRequest;
      else {
        std::fprintf(stderr, "http_load: --mode must be put, get, incr, mixed or request\n");
        std::exit(1);
      }
    } else if (a == "--keys") {
      o.keys = parse_number<std::uint64_t>(a, value());
    } else if (a == "--key-prefix") {
      o.key_prefix = value();
    } else if (a == "--value-bytes") {
      o.value_bytes = parse_number<std::size_t>(a, value());
    } else if (a == "--read-pct") {
      o.read_pct = parse_number<int>(a, value());
    } else if (a == "--incr-delta") {
      const char* text = value();
      char* end = nullptr;
      errno = 0;
      o.incr_delta = std::strtoll(text, &end, 10);  // may be negative
      if (end == text || *end != '\0' || errno != 0) {
        std::fprintf(stderr, "http_load: bad value for --incr-delta: '%s'\n", text);
        std::exit(1);
      }
    } else if (a == "--method") {
      o.method = value();
    } else if (a == "--path") {
      o.path = value();
    } else if (a == "--body") {
      o.body = value();
    } else if (a == "--no-prepopulate") {
      o.prepopulate = false;
    } else if (a == "--query") {
      o.query = value();
    } else if (a == "--timeout-ms") {
      o.timeout_ms = parse_number<int>(a, value());
    } else if (a == "--ca-file") {
      o.ca_file = value();
    } else if (a == "--token") {
      o.token = value();
    } else if (a == "--allow-non-loopback") {
      o.allow_non_loopback = true;
    } else if (a == "--cpu-pid") {
      o.cpu_pid = parse_number<long>(a, value());
      if (o.cpu_pid <= 0) {
        std::fprintf(stderr, "http_load: --cpu-pid must be a process id\n");
        std::exit(1);
      }
    } else {
      std::fprintf(stderr, "http_load: unknown option '%s' (see --help)\n", argv[i]);
      std::exit(1);
    }
  }
  if (o.clients < 1 || o.clients > 10000) {
    std::fprintf(stderr, "http_load: --clients must be 1..10000\n");
    std::exit(1);
  }
  if (o.threads < 1 || o.threads > 256) {
    std::fprintf(stderr, "http_load: --threads must be 1..256\n");
    std::exit(1);
  }
  o.threads = std::min(o.threads, o.clients);
  if (o.keys < 1) {
    std::fprintf(stderr, "http_load: --keys must be >= 1\n");
    std::exit(1);
  }
  if (o.requests == 0 && !(o.duration_s > 0 && o.duration_s <= 86400)) {
    std::fprintf(stderr, "http_load: --duration-s must be in (0, 86400]\n");
    std::exit(1);
  }
  if (!(o.warmup_s >= 0 && o.warmup_s <= 3600)) {
    std::fprintf(stderr, "http_load: --warmup-s must be in [0, 3600]\n");
    std::exit(1);
  }
  if (o.read_pct < 0 || o.read_pct > 100) {
    std::fprintf(stderr, "http_load: --read-pct must be 0..100\n");
    std::exit(1);
  }
  if (o.timeout_ms < 1) {
    std::fprintf(stderr, "http_load: --timeout-ms must be >= 1\n");
    std::exit(1);
  }
  if (o.mode == Mode::kRequest && (o.path.empty() || o.path.front() != '/')) {
    std::fprintf(stderr, "http_load: --mode request needs --path starting with '/'\n");
    std::exit(1);
  }
  if (o.value_bytes > (64u << 20)) {
    std::fprintf(stderr, "http_load: --value-bytes too large\n");
    std::exit(1);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

// Percent-encodes a key for a path segment: unreserved characters and ':' '@' stay as they are.
std::string encode_key(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (const unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '@') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string make_value(std::size_t bytes) {
  // {"v":"<x * n>"} is n + 8 bytes.
  const std::size_t n = bytes > 8 ? bytes - 8 : 0;
  return "{\"v\":\"" + std::string(n, 'x') + "\"}";
}

struct SplitMix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

enum class Op { kPut, kGet, kIncr, kRequest };

// A --mode request template (--path, --body): literal text and placeholders.
struct Template {
  static constexpr int kLiteral = -1;
  static constexpr int kValue = -2;
  static constexpr int kSlotsMax = 10;  // {key0} ... {key9}
  struct Part {
    std::string text;     // the literal text of a kLiteral part
    int slot = kLiteral;  // kLiteral, kValue, or the key slot 0..9
  };
  std::vector<Part> parts;
  int key_slots = 0;  // the highest key slot used, plus one
};

Template parse_template(std::string_view text) {
  Template out;
  std::string literal;
  for (std::size_t i = 0; i < text.size();) {
    const std::string_view rest = text.substr(i);
    int slot = Template::kLiteral;
    std::size_t length = 0;
    if (rest.starts_with("{value}")) {
      slot = Template::kValue;
      length = 7;
    } else if (rest.starts_with("{key}")) {
      slot = 0;
      length = 5;
    } else if (rest.size() >= 6 && rest.starts_with("{key") &&
               std::isdigit(static_cast<unsigned char>(rest[4])) && rest[5] == '}') {
      slot = rest[4] - '0';
      length = 6;
    }
    if (slot == Template::kLiteral) {
      literal.push_back(text[i++]);
      continue;
    }
    if (!literal.empty()) out.parts.push_back({std::move(literal), Template::kLiteral});
    literal.clear();
    out.parts.push_back({{}, slot});
    if (slot >= 0) out.key_slots = std::max(out.key_slots, slot + 1);
    i += length;
  }
  if (!literal.empty()) out.parts.push_back({std::move(literal), Template::kLiteral});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared run state
// ---------------------------------------------------------------------------------------------
struct Shared {
  const Options* opt = nullptr;
  std::unique_ptr<asio::ssl::context> tls;  // with --ca-file
  tcp::resolver::results_type endpoints;
  std::string host_header;
  std::string value;
  std::string incr_body = "{\"n\":1}";
  std::string encoded_prefix;  // percent-encoded key prefix
  Template path;               // --mode request
  Template body;
  int key_slots = 0;  // keys drawn per request in request mode
  Clock::time_point measure_start;
  Clock::time_point measure_end;          // duration mode only
  std::atomic<std::uint64_t> tickets{0};  // requests mode: measured requests handed out
  std::atomic<bool> stop{false};
};

struct Conn;

// One event loop (thread) with the clients it runs. Counters are per loop, merged at the end.
struct Loop {
  asio::io_context ctx{1};
  Histogram hist;
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;
  std::uint64_t transport_errors = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t status_4xx = 0;
  std::uint64_t status_5xx = 0;
  std::uint64_t status_other = 0;
  Clock::time_point last_completion{};
  // Connections that the watchdog checks, and how many clients still run.
  std::vector<Conn*> conns;
  int active = 0;
};

// A keep-alive connection. Timeouts are enforced by the loop's watchdog, which closes the socket
// of a connection whose operation runs past its deadline (no timer is armed per request: that
// would cost timerfd system calls on every request).
struct Conn {
  explicit Conn(Loop& l) : loop(l), socket(l.ctx) { loop.conns.push_back(this); }
  ~Conn() {
    close();
    std::erase(loop.conns, this);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void close() {
    beast::error_code ignored;
    if (socket.is_open()) {
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    }
    tls.reset();
    connected = false;
  }

  Loop& loop;
  tcp::socket socket;
  // Over `socket`, with --ca-file. The flat stream hands each write to TLS as one buffer: asio's
  // TLS stream takes one buffer of a sequence per record, and a request is several.
  std::unique_ptr<beast::flat_stream<asio::ssl::stream<tcp::socket&>>> tls;
  beast::flat_buffer buf;
  bool connected = false;
  bool timed_out = false;
  Clock::time_point deadline = Clock::time_point::max();  // of the operation in flight
};

// Closes connections whose operation has passed its deadline; ends when no client is left.
asio::awaitable<void> watchdog(Loop& loop, int timeout_ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto tick = std::chrono::milliseconds(std::clamp(timeout_ms / 4, 1, 100));
  while (loop.active > 0) {
    timer.expires_after(tick);
    beast::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    const auto now = Clock::now();
    for (Conn* c : loop.conns) {
      if (c->deadline <= now && c->socket.is_open()) {
        c->timed_out = true;
        c->close();
      }
    }
  }
}

// Connects c (if needed); on failure counts nothing and returns false with ec set.
asio::awaitable<bool> ensure_connected(Conn& c, const Shared& sh, beast::error_code& ec) {
  if (c.connected) co_return true;
  c.timed_out = false;
  c.deadline = Clock::now() + std::chrono::milliseconds(sh.opt->timeout_ms);
  co_await asio::async_connect(c.socket, sh.endpoints,
                               asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) c.socket.set_option(tcp::no_delay(true), ec);
  if (!ec && sh.tls) {
    c.tls =
        std::make_unique<beast::flat_stream<asio::ssl::stream<tcp::socket&>>>(c.socket, *sh.tls);
    c.tls->next_layer().set_verify_callback(asio::ssl::host_name_verification(sh.opt->host));
    co_await c.tls->next_layer().async_handshake(asio::ssl::stream_base::client,
                                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  c.deadline = Clock::time_point::max();
  if (ec) {
    c.close();
    co_return false;
  }
  c.connected = true;
  c.buf.clear();
  co_return true;
}

// One request/answer exchange on a connected Conn. Returns the HTTP status, or 0 on a transport
// error or timeout (ec set); the connection is closed when it cannot be reused.
template <class Stream>
asio::awaitable<unsigned> write_and_read(Stream& stream, beast::flat_buffer& buf,
                                         http::request<http::string_body>& req, bool& keep_alive,
                                         beast::error_code& ec) {
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return 0;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return 0;
  keep_alive = parser.get().keep_alive();
  co_return parser.get().result_int();
}

asio::awaitable<unsigned> exchange(Conn& c, http::request<http::string_body>& req, int timeout_ms,
                                   beast::error_code& ec) {
  c.timed_out = false;
  c.deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  bool keep_alive = true;
  const unsigned status = c.tls ? co_await write_and_read(*c.tls, c.buf, req, keep_alive, ec)
                                : co_await write_and_read(c.socket, c.buf, req, keep_alive, ec);
  if (!ec && !keep_alive) c.close();
  c.deadline = Clock::time_point::max();
  if (ec) {
    if (c.timed_out) ec = asio::error::timed_out;
    c.close();
  }
  co_return status;
}

void init_request(http::request<http::string_body>& req, const Shared& sh) {
  req.version(11);
  req.set(http::field::host, sh.host_header);
  req.set(http::field::user_agent, "meridian-http_load");
  req.set(http::field::accept, "application/json");
  if (!sh.opt->token.empty()) req.set(http::field::authorization, "Bearer " + sh.opt->token);
  req.keep_alive(true);
}

// Points req at key `key_no` with operation `op`; `target` is a reused scratch string.
void set_op(http::request<http::string_body>& req, Op op, std::uint64_t key_no, const Shared& sh,
            std::string& target) {
  const Options& o = *sh.opt;
  target.assign("/v1/docs/");
  target += sh.encoded_prefix;
  char num[24];
  const int n = std::snprintf(num, sizeof num, "%" PRIu64, key_no);
  target.append(num, static_cast<std::size_t>(n));
  switch (op) {
    case Op::kPut:
      if (req.method() != http::verb::put) {
        req.method(http::verb::put);
        req.set(http::field::content_type, "application/json");
        req.body() = sh.value;
        req.prepare_payload();
      }
      if (!o.query.empty()) target.append("?").append(o.query);
      break;
    case Op::kIncr:
      if (req.method() != http::verb::post) {
        req.method(http::verb::post);
        req.set(http::field::content_type, "application/json");
        req.body() = sh.incr_body;
        req.prepare_payload();
      }
      target += "/incr";
      if (!o.query.empty()) target.append("?").append(o.query);
      break;
    case Op::kRequest:  // set_request's
      break;
    case Op::kGet:
      if (req.method() != http::verb::get) {
        req.method(http::verb::get);
        req.erase(http::field::content_type);
        req.body().clear();
        req.prepare_payload();  // no Content-Length on a body-less GET
      }
      break;
  }
  req.target(target);
}

// Fills `out` from `t`: key slot i becomes `prefix` + keys[i], {value} the document.
void expand(const Template& t, const std::array<std::uint64_t, Template::kSlotsMax>& keys,
            std::string_view prefix, const Shared& sh, std::string& out) {
  out.clear();
  for (const Template::Part& part : t.parts) {
    if (part.slot == Template::kLiteral) {
      out += part.text;
    } else if (part.slot == Template::kValue) {
      out += sh.value;
    } else {
      char num[24];
      const int n = std::snprintf(num, sizeof num, "%" PRIu64, keys[part.slot]);
      out.append(prefix).append(num, static_cast<std::size_t>(n));
    }
  }
}

// Points req at the --mode request template with fresh keys, distinct within the request.
void set_request(http::request<http::string_body>& req, SplitMix64& rng, const Shared& sh,
                 std::string& target) {
  const Options& o = *sh.opt;
  std::array<std::uint64_t, Template::kSlotsMax> keys{};
  for (int i = 0; i < sh.key_slots; ++i) {
    bool fresh = false;
    while (!fresh) {  // o.keys >= key_slots, checked at start
      keys[i] = rng.below(o.keys);
      fresh = std::find(keys.begin(), keys.begin() + i, keys[i]) == keys.begin() + i;
    }
  }
  expand(sh.path, keys, sh.encoded_prefix, sh, target);
  if (!o.query.empty())
    target.append(target.find('?') == std::string::npos ? "?" : "&").append(o.query);
  req.target(target);
  expand(sh.body, keys, o.key_prefix, sh, req.body());
  req.prepare_payload();
}

// A closed-loop client: warm-up requests first (not recorded), then measured ones.
asio::awaitable<void> client(Shared& sh, Loop& loop, std::uint64_t seed) {
  const Options& o = *sh.opt;
  Conn c(loop);
  http::request<http::string_body> req;
  init_request(req, sh);
  std::string target;
  SplitMix64 rng{seed};
  asio::steady_timer backoff(loop.ctx);
  if (o.mode == Mode::kRequest) {
    req.method_string(o.method);
    if (!o.body.empty()) req.set(http::field::content_type, "application/json");
  }

  for (;;) {
    if (sh.stop.load(std::memory_order_relaxed)) break;
    // A request is measured when it starts inside the window (and, with --requests, holds a
    // ticket).
    const auto now = Clock::now();
    const bool measured = now >= sh.measure_start;
    if (measured) {
      if (o.requests > 0) {
        if (sh.tickets.fetch_add(1, std::memory_order_relaxed) >= o.requests) break;
      } else if (now >= sh.measure_end) {
        break;
      }
    }

    beast::error_code ec;
    if (!co_await ensure_connected(c, sh, ec)) {
      if (measured) {
        ++loop.errors;
        ++loop.transport_errors;
        loop.last_completion = Clock::now();
      }
      backoff.expires_after(std::chrono::milliseconds(20));  // do not spin on a dead server
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }

    Op op = Op::kPut;
    switch (o.mode) {
      case Mode::kPut:
        op = Op::kPut;
        break;
      case Mode::kGet:
        op = Op::kGet;
        break;
      case Mode::kIncr:
        op = Op::kIncr;
        break;
      case Mode::kMixed:
        op = rng.below(100) < static_cast<std::uint64_t>(o.read_pct) ? Op::kGet : Op::kPut;
        break;
      case Mode::kRequest:
        op = Op::kRequest;
        break;
    }
    if (op == Op::kRequest) {
      set_request(req, rng, sh, target);
    } else {
      set_op(req, op, rng.below(o.keys), sh, target);
    }

    const auto t0 = Clock::now();
    const unsigned status = co_await exchange(c, req, o.timeout_ms, ec);
    const auto t1 = Clock::now();
    if (!c.connected) ++loop.reconnects;
    if (!measured) continue;

    loop.last_completion = t1;
    if (ec) {
      ++loop.errors;
      ++loop.transport_errors;
      if (ec == asio::error::timed_out) ++loop.timeouts;
    } else if (status >= 200 && status < 300) {
      ++loop.ok;
      loop.hist.record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    } else {
      ++loop.errors;
      if (status >= 400 && status < 500)
        ++loop.status_4xx;
      else if (status >= 500 && status < 600)
        ++loop.status_5xx;
      else
        ++loop.status_other;
    }
  }
  --loop.active;
}

// Prepopulation: PUT keys begin, begin+stride, ... < end on one connection; failures are counted.
asio::awaitable<void> populate(Shared& sh, Loop& loop, std::uint64_t begin, std::uint64_t end,
                               std::uint64_t stride, std::atomic<std::uint64_t>& failures) {
  Conn c(loop);
  http::request<http::string_body> req;
  init_request(req, sh);
  std::string target;
  for (std::uint64_t k = begin; k < end; k += stride) {
    beast::error_code ec;
    if (!co_await ensure_connected(c, sh, ec)) {
      failures.fetch_add(1);
      continue;
    }
    set_op(req, Op::kPut, k, sh, target);
    const unsigned status = co_await exchange(c, req, sh.opt->timeout_ms, ec);
    if (ec || status < 200 || status >= 300) failures.fetch_add(1);
  }
  --loop.active;
}

void run_loops(std::vector<std::unique_ptr<Loop>>& loops, int timeout_ms) {
  std::vector<std::thread> threads;
  threads.reserve(loops.size());
  for (auto& l : loops) {
    asio::co_spawn(l->ctx, watchdog(*l, timeout_ms), asio::detached);
    threads.emplace_back([&ctx = l->ctx] {
      try {
        ctx.run();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "http_load: event loop failed: %s\n", e.what());
        std::_Exit(1);
      }
    });
  }
  for (auto& t : threads) t.join();
}

bool is_loopback(const tcp::resolver::results_type& eps) {
  if (eps.empty()) return false;
  for (const auto& e : eps) {
    if (!e.endpoint().address().is_loopback()) return false;
  }
  return true;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      out += b;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// CPU accounting of the measured window (--cpu-pid): the server's threads by name, this
// process, and the machine.
struct CpuSample {
  meridian::bench::ProcessTicks server;
  double self_s = 0;
  meridian::bench::MachineTicks machine;
};

CpuSample sample_cpu(long pid) {
  CpuSample out;
  out.server = meridian::bench::SampleProcess(pid);
  out.self_s = meridian::bench::SelfCpuSeconds();
  out.machine = meridian::bench::SampleMachine();
  return out;
}

// ,"cpu":{...} for the JSON line, or "" when either sample failed.
std::string cpu_json(const CpuSample& a, const CpuSample& b, std::uint64_t requests) {
  if (!a.server.ok || !b.server.ok || !a.machine.ok || !b.machine.ok || requests == 0) return {};
  const double n = static_cast<double>(requests);
  auto per_req = [&](std::uint64_t ticks) {
    return static_cast<double>(ticks) * meridian::bench::MicrosPerTick() / n;
  };
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", per_req(b.server.total - a.server.total));
  std::string out = std::string(",\"cpu\":{\"server_us_per_req\":") + buf;
  out += ",\"server_threads_us_per_req\":{";
  bool first = true;
  for (const auto& [name, delta] : meridian::bench::GroupTicksSince(a.server, b.server)) {
    std::snprintf(buf, sizeof buf, "%.2f", per_req(delta));
    out += (first ? "\"" : ",\"") + json_escape(name) + "\":" + buf;
    first = false;
  }
  std::snprintf(buf, sizeof buf, "%.2f", (b.self_s - a.self_s) * 1e6 / n);
  out += std::string("},\"load_us_per_req\":") + buf;
  std::snprintf(buf, sizeof buf, "%.1f", meridian::bench::BusyPercent(a.machine, b.machine));
  out += std::string(",\"machine_busy_pct\":") + buf;
  out += ",\"cores\":" + std::to_string(std::thread::hardware_concurrency()) + "}";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);

  Shared sh;
  sh.opt = &o;
  sh.value = make_value(o.value_bytes);
  sh.encoded_prefix = encode_key(o.key_prefix);
  sh.incr_body = "{\"n\":" + std::to_string(o.incr_delta) + "}";
  if (o.mode == Mode::kRequest) {
    sh.path = parse_template(o.path);
    sh.body = parse_template(o.body);
    sh.key_slots = std::max(sh.path.key_slots, sh.body.key_slots);
    if (o.keys < static_cast<std::uint64_t>(sh.key_slots)) {
      std::fprintf(stderr, "http_load: --keys must be at least the %d keys a request names\n",
                   sh.key_slots);
      return 1;
    }
    // Keys go into the body as they are: inside a JSON string, the prefix must need no escaping.
    for (const unsigned char c : o.key_prefix) {
      if (sh.body.key_slots > 0 && (c == '"' || c == '\\' || c < 0x20)) {
        std::fprintf(stderr,
                     "http_load: --key-prefix must not hold '\"', '\\' or control "
                     "characters when --body names keys\n");
        return 1;
      }
    }
  }
  if (!o.ca_file.empty()) {
    sh.tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    beast::error_code ec;
    sh.tls->load_verify_file(o.ca_file, ec);
    if (ec) {
      std::fprintf(stderr, "http_load: cannot load --ca-file %s: %s\n", o.ca_file.c_str(),
                   ec.message().c_str());
      return 1;
    }
    sh.tls->set_verify_mode(asio::ssl::verify_peer);
  }
  sh.host_header =
      (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" + o.port;
  try {
    asio::io_context ctx;
    tcp::resolver resolver(ctx);
    sh.endpoints = resolver.resolve(o.host, o.port);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_load: cannot resolve %s:%s: %s\n", o.host.c_str(), o.port.c_str(),
                 e.what());
    return 1;
  }
  if (!o.allow_non_loopback && !is_loopback(sh.endpoints)) {
    std::fprintf(stderr,
                 "http_load: %s is not a loopback address (pass --allow-non-loopback to permit)\n",
                 o.host.c_str());
    return 1;
  }

  // 1. Prepopulate every key (get and mixed modes), on up to 32 connections, unmeasured.
  if (o.prepopulate && (o.mode == Mode::kGet || o.mode == Mode::kMixed)) {
    const auto t0 = Clock::now();
    std::atomic<std::uint64_t> failures{0};
    const std::uint64_t conns = std::min<std::uint64_t>(o.keys, 32);
    std::vector<std::unique_ptr<Loop>> loops;
    for (int t = 0; t < o.threads; ++t) loops.push_back(std::make_unique<Loop>());
    for (std::uint64_t c = 0; c < conns; ++c) {
      Loop& l = *loops[c % loops.size()];
      ++l.active;
      asio::co_spawn(l.ctx, populate(sh, l, c, o.keys, conns, failures), asio::detached);
    }
    run_loops(loops, o.timeout_ms);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr,
                 "http_load: prepopulated %" PRIu64 " keys in %.2f s (%" PRIu64 " failed)\n",
                 o.keys, secs, failures.load());
    if (failures.load() > 0) {
      std::fprintf(stderr, "http_load: prepopulation failed; is the node up at %s:%s?\n",
                   o.host.c_str(), o.port.c_str());
      return 1;
    }
  }

  // 2. Warm up, then measure.
  std::vector<std::unique_ptr<Loop>> loops;
  for (int t = 0; t < o.threads; ++t) loops.push_back(std::make_unique<Loop>());
  const auto start = Clock::now();
  sh.measure_start = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.warmup_s));
  sh.measure_end = sh.measure_start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(o.duration_s));
  for (int c = 0; c < o.clients; ++c) {
    Loop& l = *loops[static_cast<std::size_t>(c % o.threads)];
    ++l.active;
    asio::co_spawn(l.ctx, client(sh, l, 0x1234567ull * static_cast<std::uint64_t>(c + 1)),
                   asio::detached);
  }
  CpuSample cpu_before;
  std::thread cpu_sampler;
  if (o.cpu_pid > 0) {
    cpu_sampler = std::thread([&] {
      std::this_thread::sleep_until(sh.measure_start);
      cpu_before = sample_cpu(o.cpu_pid);
    });
  }
  run_loops(loops, o.timeout_ms);
  if (cpu_sampler.joinable()) cpu_sampler.join();
  const CpuSample cpu_after = o.cpu_pid > 0 ? sample_cpu(o.cpu_pid) : CpuSample{};
  if (o.cpu_pid > 0 && (!cpu_before.server.ok || !cpu_after.server.ok)) {
    std::fprintf(stderr, "http_load: could not read /proc/%ld/stat: no CPU figures\n", o.cpu_pid);
  }

  Histogram hist;
  Loop total;
  Clock::time_point last = sh.measure_start;
  for (const auto& l : loops) {
    hist.merge(l->hist);
    total.ok += l->ok;
    total.errors += l->errors;
    total.transport_errors += l->transport_errors;
    total.timeouts += l->timeouts;
    total.reconnects += l->reconnects;
    total.status_4xx += l->status_4xx;
    total.status_5xx += l->status_5xx;
    total.status_other += l->status_other;
    last = std::max(last, l->last_completion);
  }
  const double elapsed = std::chrono::duration<double>(last - sh.measure_start).count();
  const double rps = elapsed > 0 ? static_cast<double>(total.ok) / elapsed : 0;
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  const std::string request_json =
      o.mode != Mode::kRequest
          ? std::string()
          : ",\"method\":\"" + json_escape(o.method) + "\",\"path\":\"" + json_escape(o.path) +
                "\",\"keys_per_request\":" + std::to_string(sh.key_slots);

  std::printf(
      "{\"mode\":\"%s\",\"clients\":%d,\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
      ",\"throughput_rps\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f"
      ",\"mean_ms\":%.4f,\"min_ms\":%.4f,\"p90_ms\":%.4f,\"ok\":%" PRIu64
      ",\"elapsed_s\":%.3f"
      ",\"errors_transport\":%" PRIu64 ",\"errors_timeout\":%" PRIu64 ",\"errors_4xx\":%" PRIu64
      ",\"errors_5xx\":%" PRIu64 ",\"errors_other_status\":%" PRIu64 ",\"reconnects\":%" PRIu64
      ",\"threads\":%d,\"keys\":%" PRIu64 ",\"value_bytes\":%zu,\"target\":\"%s\"%s%s}\n",
      o.mode_name.c_str(), o.clients, total.ok + total.errors, total.errors, rps,
      ms(hist.percentile(50)), ms(hist.percentile(99)), ms(hist.percentile(99.9)), ms(hist.max()),
      hist.mean() / 1e6, ms(hist.min()), ms(hist.percentile(90)), total.ok, elapsed,
      total.transport_errors, total.timeouts, total.status_4xx, total.status_5xx,
      total.status_other, total.reconnects, o.threads, o.keys, sh.value.size(),
      json_escape(sh.host_header).c_str(), request_json.c_str(),
      cpu_json(cpu_before, cpu_after, total.ok).c_str());
  std::fflush(stdout);
  return total.ok == 0 ? 3 : 0;
}
