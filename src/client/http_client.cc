#include "client/http_client.h"

#include "client/run_one.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <cctype>
#include <optional>

namespace meridian::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  bool Connect(std::string* error) {
    stream.emplace(io);
    beast::error_code ec;
    stream->expires_after(timeout);
    stream->connect(tcp::endpoint(asio::ip::make_address(host), port), ec);
    if (ec) {
      *error = "connect: " + ec.message();
      stream.reset();
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

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResponse HttpClient::Request(const std::string& method, const std::string& target,
                                 const std::string& body,
                                 const std::map<std::string, std::string>& headers) {
  HttpResponse out;
  http::request<http::string_body> request(http::string_to_verb(method), target, 11);
  if (request.method() == http::verb::unknown) request.method_string(method);
  request.set(http::field::host, impl_->host);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || method == "PUT" || method == "POST" || method == "PATCH")
    request.prepare_payload();
  request.keep_alive(true);

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->stream && !impl_->Connect(&out.error)) return out;
    impl_->stream->expires_after(impl_->timeout);
    beast::error_code ec =
        impl_->Run([&](auto handler) { http::async_write(*impl_->stream, request, handler); });
    if (!ec) out.sent = true;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    parser.skip(method == "HEAD");  // an answer to HEAD has headers only
    if (!ec) {
      ec = impl_->Run(
          [&](auto handler) { http::async_read(*impl_->stream, impl_->buffer, parser, handler); });
    }
    if (ec) {
      impl_->stream.reset();
      out.error = ec.message();
      // A kept-alive connection the server closed meanwhile: retry once on a fresh one. Only for
      // the first attempt and only when nothing was answered.
      if (attempt == 0 &&
          (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::eof)) {
        continue;
      }
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
    if (!response.keep_alive()) impl_->stream.reset();
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
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.expires_after(impl_->timeout);
  stream.connect(tcp::endpoint(asio::ip::make_address(impl_->host), impl_->port), ec);
  if (ec) return "";
  asio::write(stream.socket(), asio::buffer(bytes), ec);
  std::string answer;
  char chunk[4096];
  for (int i = 0; i < 1000 && !ec; ++i) {
    stream.expires_after(impl_->timeout);
    size_t got = 0;
    ec = RunOne(
        io, [&](auto handler) { stream.async_read_some(asio::buffer(chunk), handler); }, &got);
    answer.append(chunk, got);
  }
  return answer;
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
