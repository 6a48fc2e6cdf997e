// The node's commit thread and commit signal as Asio awaitables, for the front ends that run
// coroutines (the HTTP server and the Redis port): a write awaited without blocking the I/O
// thread, and a wait for a condition that commits change. One version of each, whatever the
// front end.
#pragma once

// g++ 12 needs <utility> before Asio when coroutines are used.
#include <utility>

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::api {

// Commits `request` through the node's write queue, led by the awaiting coroutine's own thread;
// resumes on its executor with the outcome (kOverloaded when the queue is full). `request` is
// moved from.
template <class Executor>
boost::asio::awaitable<Result<node::Receipt>, Executor> AwaitWrite(node::Node& node,
                                                                   node::WriteRequest& request) {
  namespace asio = boost::asio;
  auto executor = co_await asio::this_coro::executor;
  // Named, not a temporary of the co_await expression (g++ 12 destroys those twice).
  auto initiation = [&node, executor, &request](auto handler) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    // Run to completion: this thread commits the group at the end of its turn, and answers the
    // writes of its own connections without a wake-up (node::WriteQueue).
    const node::WriteQueue::Defer defer = [executor](std::function<void()> lead) {
      asio::post(executor, std::move(lead));
    };
    const bool queued = node.SubmitWrite(
        std::move(request),
        [shared, executor](Result<node::Receipt> outcome) {
          asio::post(executor, [shared, outcome = std::move(outcome)]() mutable {
            (*shared)(std::move(outcome));
          });
        },
        defer);
    if (!queued) {
      asio::post(executor, [shared] {
        (*shared)(Result<node::Receipt>(
            Status(StatusCode::kOverloaded, "the write queue is full; retry later")));
      });
    }
  };
  Result<node::Receipt> outcome =
      co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&,
                                    void(Result<node::Receipt>)>(initiation,
                                                                 asio::use_awaitable_t<Executor>());
  co_return outcome;
}

// Parks the coroutine until `ready()` holds, `stopping()` holds, or `deadline` passes, looking
// again after every commit (and peer acknowledgement: node::CommitSignal) and whenever the
// function stored in *wake while it waits is called (a shutdown's way in; any thread). Returns
// ready().
template <class Executor>
boost::asio::awaitable<bool, Executor> AwaitCondition(
    node::Node& node, std::chrono::steady_clock::time_point deadline,
    const std::function<bool()>& ready, const std::function<bool()>& stopping,
    std::function<void()>* wake) {
  namespace asio = boost::asio;
  using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                           asio::wait_traits<std::chrono::steady_clock>, Executor>;
  if (ready()) co_return true;
  const Executor executor = co_await asio::this_coro::executor;
  auto timer = std::make_shared<Timer>(executor);
  std::weak_ptr<Timer> weak = timer;
  std::function<void()> waker = [weak, executor] {
    asio::post(executor, [weak] {
      if (auto timer = weak.lock()) timer->cancel();
    });
  };
  auto handle = node.commits().Register(waker);
  if (wake != nullptr) *wake = waker;
  bool done = false;
  while (!(done = ready()) && std::chrono::steady_clock::now() < deadline && !stopping()) {
    timer->expires_at(deadline);
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>(), ec));
  }
  if (wake != nullptr) *wake = nullptr;
  node.commits().Unregister(handle);
  co_return done;
}

}  // namespace meridian::api
