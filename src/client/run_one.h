// Runs one asynchronous operation to completion on an io_context that nothing else drives: the
// synchronous clients' way of getting Beast's timeouts (a stream's expiry completes the
// operation with beast::error::timeout).
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>
#include <cstddef>

namespace meridian::client {

// `start(handler)` initiates the operation with a completion handler taking (error_code, size_t);
// the size lands in *transferred when given.
template <typename Start>
boost::beast::error_code RunOne(boost::asio::io_context& io, Start start,
                                std::size_t* transferred = nullptr) {
  boost::beast::error_code result;
  bool done = false;
  start([&](boost::beast::error_code ec, std::size_t bytes) {
    result = ec;
    if (transferred != nullptr) *transferred = bytes;
    done = true;
  });
  io.restart();
  while (!done && io.run_one() > 0) {
  }
  return result;
}

}  // namespace meridian::client
