#include "support/sse_stream.h"

#include <poll.h>

#include <regex>
#include <sstream>

namespace meridian::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

SseStream::SseStream(uint16_t port) : port_(port), socket_(io_) {}

int SseStream::Open(const std::string& target, const std::map<std::string, std::string>& headers,
                    milliseconds timeout, int receive_buffer) {
  boost::system::error_code ec;
  socket_.open(tcp::v4(), ec);
  if (ec) return 0;
  if (receive_buffer > 0) {
    socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer), ec);
  }
  socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
  if (ec) return 0;
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!headers.count("Accept")) request += "Accept: text/event-stream\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n";
  asio::write(socket_, asio::buffer(request), ec);
  if (ec) return 0;
  const auto deadline = Clock::now() + timeout;
  size_t end = std::string::npos;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(deadline)) return 0;
  }
  head_ = buffer_.substr(0, end + 4);
  buffer_.erase(0, end + 4);
  std::smatch match;
  static const std::regex kStatus(R"(^HTTP/1\.1 ([0-9]{3}) )");
  if (!std::regex_search(head_, match, kStatus)) return 0;
  return std::stoi(match[1]);
}

std::string SseStream::ReadBody(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (ReadMore(deadline)) {
  }
  return buffer_;
}

std::optional<SseEvent> SseStream::Next(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto end = buffer_.find("\n\n");
    if (end == std::string::npos) {
      if (!ReadMore(deadline)) return std::nullopt;
      continue;
    }
    const std::string block = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    SseEvent event;
    bool any = false;
    std::istringstream lines(block);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == ':') continue;  // a comment: keep-alive
      const auto colon = line.find(':');
      const std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") event.id = value;
      if (field == "event") event.event = value;
      if (field == "data") event.data += (event.data.empty() ? "" : "\n") + value;
      any = true;
    }
    if (any) return event;
  }
}

std::vector<SseEvent> SseStream::Collect(size_t count, milliseconds timeout) {
  std::vector<SseEvent> events;
  const auto deadline = Clock::now() + timeout;
  while (events.size() < count) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    auto event = Next(left);
    if (!event) break;
    events.push_back(std::move(*event));
  }
  return events;
}

bool SseStream::WaitClosed(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_ && ReadMore(deadline)) {
  }
  return closed_;
}

void SseStream::Close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

bool SseStream::ReadMore(Clock::time_point deadline) {
  if (closed_) return false;
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd descriptor{socket_.native_handle(), POLLIN, 0};
  const int ready = ::poll(&descriptor, 1, static_cast<int>(left));
  if (ready <= 0) return false;
  char chunk[16384];
  boost::system::error_code ec;
  const size_t got = socket_.read_some(asio::buffer(chunk), ec);
  buffer_.append(chunk, got);
  if (ec) closed_ = true;
  return got > 0 || !closed_;
}

}  // namespace meridian::testing
