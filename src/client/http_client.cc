#include "client/http_client.h"

#include "client/run_one.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>

#include "net/host_port.h"
#include "net/tls_context.h"

namespace meridian::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

// A connection to one server, plaintext or TLS: With(f) calls f with the stream to use.
class Link {
 public:
  Link(asio::io_context& io, const TlsContext& tls) {
    if (tls) {
      tls_.emplace(io, *tls);
    } else {
      plain_.emplace(io);
    }
  }

  beast::tcp_stream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  template <typename F>
  void With(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  // Connects and, with TLS, makes the handshake, each bounded by `timeout`; "" or why not.
  std::string Connect(asio::io_context& io, const std::string& host, uint16_t port,
                      std::chrono::milliseconds timeout) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return "connect: '" + host + "' is not an IP address";
    tcp().expires_after(timeout);
    ec = RunOne(io, [&](auto handler) {
      tcp().async_connect(tcp::endpoint(address, port),
                          [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (ec) return "connect: " + ec.message();
    if (!tls_) return "";
    if (!net::PrepareClientConnection(tls_->native_handle(), host)) {
      return "TLS with " + net::FormatHostPort(host, port) + ": cannot verify the name '" + host +
             "'";
    }
    tcp().expires_after(timeout);
    ec = RunOne(io, [&](auto handler) {
      tls_->async_handshake(asio::ssl::stream_base::client,
                            [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (ec) {
      return "TLS handshake with " + net::FormatHostPort(host, port) +
             " failed: " + net::HandshakeFailure(tls_->native_handle(), ec);
    }
    return "";
  }

 private:
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
};

// The server closed the connection (a TLS server may do so without close_notify).
bool Closed(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::eof ||
         ec == asio::ssl::error::stream_truncated;
}

}  // namespace

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  TlsContext tls;
  std::string authorization;  // "Bearer <token>", or empty
  asio::io_context io;
  std::optional<Link> link;
  beast::flat_buffer buffer;

  bool Connect(std::string* error) {
    link.emplace(io, tls);
    *error = link->Connect(io, host, port, timeout);
    if (!error->empty()) {
      link.reset();
      return false;
    }
    buffer.clear();
    return true;
  }

  template <typename Start>
  beast::error_code Run(Start start) {
    return RunOne(io, std::move(start));
  }
};

void HttpClient::SetTimeout(std::chrono::milliseconds timeout) {
  impl_->timeout = timeout;
}

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout,
                       TlsContext tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
  impl_->tls = std::move(tls);
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

void HttpClient::SetBearerToken(std::string token) {
  impl_->authorization = token.empty() ? std::string() : "Bearer " + token;
}

HttpResponse HttpClient::Request(const std::string& method, const std::string& target,
                                 const std::string& body,
                                 const std::map<std::string, std::string>& headers) {
  HttpResponse out;
  http::request<http::string_body> request(http::string_to_verb(method), target, 11);
  if (request.method() == http::verb::unknown) request.method_string(method);
  request.set(http::field::host, impl_->host);
  if (!impl_->authorization.empty()) request.set(http::field::authorization, impl_->authorization);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || method == "PUT" || method == "POST" || method == "PATCH")
    request.prepare_payload();
  request.keep_alive(true);

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->link && !impl_->Connect(&out.error)) return out;
    Link& link = *impl_->link;
    link.tcp().expires_after(impl_->timeout);
    beast::error_code ec = impl_->Run([&](auto handler) {
      link.With([&](auto& stream) { http::async_write(stream, request, std::move(handler)); });
    });
    if (!ec) out.sent = true;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    parser.skip(method == "HEAD");  // an answer to HEAD has headers only
    if (!ec) {
      ec = impl_->Run([&](auto handler) {
        link.With([&](auto& stream) {
          http::async_read(stream, impl_->buffer, parser, std::move(handler));
        });
      });
    }
    if (ec) {
      impl_->link.reset();
      out.error = ec.message();
      // A kept-alive connection the server closed meanwhile: retry once on a fresh one. Only for
      // the first attempt and only when nothing was answered.
      if (attempt == 0 && Closed(ec)) continue;
      return out;
    }
    auto response = parser.release();
    out.status = static_cast<int>(response.result_int());
    out.body = std::move(response.body());
    for (const auto& field : response) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(field.value());
    }
    out.error.clear();
    if (!response.keep_alive()) impl_->link.reset();
    return out;
  }
  return out;
}

HttpResponse HttpClient::Send(const std::string& method, const std::string& target,
                              const std::string& json) {
  return Request(method, target, json, {{"Content-Type", "application/json"}});
}

std::string HttpClient::Raw(const std::string& bytes) {
  asio::io_context io;
  Link link(io, impl_->tls);
  if (!link.Connect(io, impl_->host, impl_->port, impl_->timeout).empty()) return "";
  link.tcp().expires_after(impl_->timeout);
  beast::error_code ec = RunOne(io, [&](auto handler) {
    link.With([&](auto& stream) { asio::async_write(stream, asio::buffer(bytes), handler); });
  });
  std::string answer;
  char chunk[4096];
  for (int i = 0; i < 1000 && !ec; ++i) {
    link.tcp().expires_after(impl_->timeout);
    size_t got = 0;
    ec = RunOne(
        io,
        [&](auto handler) {
          link.With([&](auto& stream) { stream.async_read_some(asio::buffer(chunk), handler); });
        },
        &got);
    answer.append(chunk, got);
  }
  return answer;
}

struct StreamConnection::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  TlsContext tls;
  asio::io_context io;  // before `link`: outlives it
  std::optional<Link> link;
  char chunk[16384];
  bool pending = false;  // a read is under way (it may complete in a later Read)
  bool done = false;
  beast::error_code error;
  size_t got = 0;
};

StreamConnection::StreamConnection(std::string host, uint16_t port,
                                   std::chrono::milliseconds timeout, TlsContext tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
  impl_->tls = std::move(tls);
}

StreamConnection::~StreamConnection() = default;
StreamConnection::StreamConnection(StreamConnection&&) noexcept = default;
StreamConnection& StreamConnection::operator=(StreamConnection&&) noexcept = default;

bool StreamConnection::Open(const std::string& request, std::string* error) {
  Impl& impl = *impl_;
  impl.link.emplace(impl.io, impl.tls);
  *error = impl.link->Connect(impl.io, impl.host, impl.port, impl.timeout);
  if (!error->empty()) return false;
  impl.link->tcp().expires_after(impl.timeout);
  const beast::error_code ec = RunOne(impl.io, [&](auto handler) {
    impl.link->With(
        [&](auto& stream) { asio::async_write(stream, asio::buffer(request), handler); });
  });
  if (ec) {
    *error = "sending the request: " + ec.message();
    return false;
  }
  impl.link->tcp().expires_never();  // a stream may be quiet for long: Read bounds each wait
  return true;
}

bool StreamConnection::Read(std::string* out, std::chrono::milliseconds wait, std::string* error) {
  Impl& impl = *impl_;
  error->clear();
  if (!impl.link) {
    *error = "not connected";
    return false;
  }
  if (!impl.pending) {
    impl.pending = true;
    impl.done = false;
    Impl* state = &impl;
    impl.link->With([&](auto& stream) {
      stream.async_read_some(asio::buffer(impl.chunk), [state](beast::error_code ec, size_t got) {
        state->error = ec;
        state->got = got;
        state->done = true;
      });
    });
  }
  impl.io.restart();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (!impl.done && impl.io.run_one_until(deadline) > 0) {
  }
  if (!impl.done) return false;  // nothing yet; the read stays under way
  impl.pending = false;
  if (impl.error) {
    *error = Closed(impl.error) ? "the server closed the connection" : impl.error.message();
    return false;
  }
  out->append(impl.chunk, impl.got);
  return true;
}

std::string EncodeKey(const std::string& key) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace meridian::client
