// The node's commit thread and commit signal as Asio awaitables, for the front ends that run
// coroutines (the HTTP server and the Redis port): a write awaited without blocking the I/O
// thread, and a wait for a condition that commits change. One version of each, whatever the
// front end.
#pragma once

// g++ 12 needs <utility> before Asio when coroutines are used.
#include <utility>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::api {

// A timer on `executor` and a thread-safe function that wakes whoever waits on it (cancels its
// wait; nothing once the timer is gone): how commits, notifications and shutdown reach a parked
// coroutine.
template <class Executor>
std::pair<
    std::shared_ptr<boost::asio::basic_waitable_timer<
        std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>>,
    std::function<void()>>
MakeWaker(const Executor& executor) {
  namespace asio = boost::asio;
  using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                           asio::wait_traits<std::chrono::steady_clock>, Executor>;
  auto timer = std::make_shared<Timer>(executor);
  std::weak_ptr<Timer> weak = timer;
  std::function<void()> wake = [weak, executor] {
    asio::post(executor, [weak] {
      if (auto timer = weak.lock()) timer->cancel();
    });
  };
  return {std::move(timer), std::move(wake)};
}

// Commits `request` through the node's write queue, led by the awaiting coroutine's own thread
// when the queue is quiet (node::WriteQueue); resumes on its executor with the outcome
// (kOverloaded when the queue is full). `request` is moved from.
template <class Executor>
boost::asio::awaitable<Result<node::Receipt>, Executor> AwaitWrite(node::Node& node,
                                                                   node::WriteRequest& request);

// Commits `requests` (moved from) through the node's write queue as one submission — so that
// they commit in order, in as few groups as the queue makes of them (a pipeline's writes share
// an fsync) — and resumes once every one has its outcome, in the requests' order.
template <class Executor>
boost::asio::awaitable<std::vector<Result<node::Receipt>>, Executor> AwaitWrites(
    node::Node& node, std::vector<node::WriteRequest>& requests) {
  namespace asio = boost::asio;
  using Outcomes = std::vector<Result<node::Receipt>>;
  auto executor = co_await asio::this_coro::executor;
  auto initiation = [&node, executor, &requests](auto handler) {
    using Handler = decltype(handler);
    struct State {
      State(size_t n, Handler h)
          : outcomes(n, Result<node::Receipt>(Status(StatusCode::kInternal, "not answered"))),
            left(n),
            answer(std::move(h)) {}
      Outcomes outcomes;
      std::atomic<size_t> left;
      Handler answer;
    };
    auto state = std::make_shared<State>(requests.size(), std::move(handler));
    const auto done = [state, executor] {
      asio::post(executor, [state] { state->answer(std::move(state->outcomes)); });
    };
    if (requests.empty()) {
      done();
      return;
    }
    const node::WriteQueue::Defer defer = [executor](std::function<void()> lead) {
      asio::post(executor, std::move(lead));
    };
    for (size_t i = 0; i < requests.size(); ++i) {
      const bool queued = node.SubmitWrite(
          std::move(requests[i]),
          [state, i, done](Result<node::Receipt> outcome) {
            state->outcomes[i] = std::move(outcome);
            if (state->left.fetch_sub(1) == 1) done();
          },
          defer);
      if (!queued) {
        state->outcomes[i] = Result<node::Receipt>(
            Status(StatusCode::kOverloaded, "the write queue is full; retry later"));
        if (state->left.fetch_sub(1) == 1) done();
      }
    }
  };
  Outcomes outcomes =
      co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, void(Outcomes)>(
          initiation, asio::use_awaitable_t<Executor>());
  co_return outcomes;
}

template <class Executor>
boost::asio::awaitable<Result<node::Receipt>, Executor> AwaitWrite(node::Node& node,
                                                                   node::WriteRequest& request) {
  std::vector<node::WriteRequest> one;
  one.push_back(std::move(request));
  std::vector<Result<node::Receipt>> outcomes = co_await AwaitWrites<Executor>(node, one);
  co_return std::move(outcomes.front());
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
  if (ready()) co_return true;
  const Executor executor = co_await asio::this_coro::executor;
  auto [timer, waker] = MakeWaker(executor);
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
