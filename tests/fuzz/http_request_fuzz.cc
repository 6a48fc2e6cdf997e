// Fuzz target for the HTTP request path: arbitrary bytes go through Beast's HTTP/1.1 parser
// (with the node's limits), the API's request parsing and validation, and — for writes and
// reads that parse — the region's durable command path on an in-memory store. Whatever the
// bytes, the outcome is an answer or an error, never a crash, a refused write changes nothing, and
// a write body reads the same through the fast path and through the DOM.
#include <utility>

#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "api/request.h"
#include "core/check.h"
#include "node/region.h"
#include "storage/memory_store.h"

namespace {

namespace http = boost::beast::http;
using namespace meridian;

struct FixedClock : core::PhysicalClock {
  uint64_t NowMs() override { return 1'700'000'000'000; }
};

std::string_view Header(const http::request<http::string_body>& request, std::string_view name) {
  auto it = request.find(boost::beast::string_view(name.data(), name.size()));
  return it == request.end() ? std::string_view()
                             : std::string_view(it->value().data(), it->value().size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A fresh region per input: every input replays alone, and memory stays bounded however long
  // the campaign runs.
  FixedClock clock;
  std::unique_ptr<storage::Store> store = storage::NewMemoryStore();
  node::Region region(1, {{1, "us"}, {2, "eu"}}, store.get(), &clock, core::Limits{}, 500);

  http::request_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  parser.header_limit(16 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;
  const auto& request = parser.get();
  const api::RequestView view{
      std::string_view(request.method_string().data(), request.method_string().size()),
      std::string_view(request.target().data(), request.target().size()),
      Header(request, "Content-Type"),
      Header(request, "Meridian-Session"),
      Header(request, "Last-Event-ID"),
      request.body(),
      Header(request, "Idempotency-Key")};
  // A write body reads the same through simdjson's fast path and through the DOM.
  for (const api::Route route :
       {api::Route::kPutDocument, api::Route::kPatchDocument, api::Route::kIncrementDocument}) {
    core::Operation fast;
    core::Operation dom;
    const auto fast_error = api::ParseWriteBody(route, request.body(), core::Limits{}, &fast);
    const auto dom_error = api::ParseWriteBodyWithDom(route, request.body(), core::Limits{}, &dom);
    MERIDIAN_CHECK(fast_error.has_value() == dom_error.has_value());
    if (fast_error) {
      MERIDIAN_CHECK(fast_error->status == dom_error->status &&
                     fast_error->code == dom_error->code);
    } else {
      MERIDIAN_CHECK(fast == dom);
    }
  }
  auto parsed = api::ParseRequest(view, core::Limits{});
  if (auto* error = std::get_if<api::ApiError>(&parsed)) {
    MERIDIAN_CHECK(error->status >= 400 && error->status < 600 && !error->code.empty());
    (void)api::ErrorBody(*error);
    return 0;
  }
  api::ApiCall& call = std::get<api::ApiCall>(parsed);
  switch (call.route) {
    case api::Route::kPutDocument:
    case api::Route::kPatchDocument:
    case api::Route::kIncrementDocument:
    case api::Route::kDeleteDocument: {
      const core::VersionVector before = region.frontier();
      std::vector<node::WriteRequest> writes = {{call.key, std::move(call.op)}};
      std::vector<Result<node::Receipt>> outcomes;
      std::vector<node::Change> changes;
      region.CommitLocalWrites(writes, &outcomes, &changes);
      MERIDIAN_CHECK(outcomes.size() == 1);
      if (!outcomes[0].ok()) MERIDIAN_CHECK(region.frontier() == before);
      break;
    }
    case api::Route::kGetDocument:
      (void)store->GetView(call.key);
      break;
    case api::Route::kScan:
      (void)store->ScanViews(call.prefix, call.after, call.limit,
                             [](std::string_view, std::string_view) {});
      break;
    default:
      break;
  }
  return 0;
}
