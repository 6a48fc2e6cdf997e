// SseStream: a streaming Server-Sent Events reader on a raw socket for tests (the project's HTTP
// client reads whole answers only): sends the request, reads the response head, then splits the
// stream on blank lines. Every read waits at most until its deadline.
#pragma once

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meridian::testing {

// One SSE event: its id, name ("change", "error") and data.
struct SseEvent {
  std::string id;
  std::string event;
  std::string data;
};

class SseStream {
 public:
  explicit SseStream(uint16_t port);

  // Sends GET target and reads the response head. Returns the HTTP status (0: no answer).
  // receive_buffer > 0 shrinks the socket's receive buffer (a reader that lags behind).
  int Open(const std::string& target, const std::map<std::string, std::string>& headers = {},
           std::chrono::milliseconds timeout = std::chrono::seconds(10), int receive_buffer = 0);

  const std::string& head() const { return head_; }

  // For a rejected watch: the body that follows the head (read until the server closes).
  std::string ReadBody(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The next event (comments skipped); nullopt when none arrives before the timeout or the
  // server closed the stream (then closed() is true).
  std::optional<SseEvent> Next(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Reads until `count` events arrived or the deadline passed.
  std::vector<SseEvent> Collect(size_t count,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // True once the server has closed the stream; waits for that at most `timeout`.
  bool WaitClosed(std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  void Close();

 private:
  bool ReadMore(std::chrono::steady_clock::time_point deadline);

  uint16_t port_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::string buffer_;
  std::string head_;
  bool closed_ = false;
};

}  // namespace meridian::testing
