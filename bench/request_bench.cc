// Micro-benchmarks of a write request's body (Google Benchmark): the flat 200-byte document
// http_load PUTs, read by ParseWriteBody (simdjson's On-Demand parser, no DOM) and by
// ParseWriteBodyWithDom (nlohmann::json, value by value canonicalized), and a body with a nested
// value, which the fast path hands to the DOM.
#include <benchmark/benchmark.h>

#include <string>

#include "api/request.h"

namespace {

using meridian::api::ParseWriteBody;
using meridian::api::ParseWriteBodyWithDom;
using meridian::api::Route;

const std::string kFlat = R"({"v":")" + std::string(192, 'x') + R"("})";
const std::string kFields =
    R"({"name":"ada","age":36,"active":true,"city":"London","score":-12,"note":null})";
const std::string kNested = R"({"name":"ada","tags":["a","b"],"address":{"city":"London"}})";

void Run(benchmark::State& state, bool fast, const std::string& body) {
  for (auto _ : state) {
    meridian::core::Operation op;
    auto error = fast ? ParseWriteBody(Route::kPutDocument, body, meridian::core::Limits{}, &op)
                      : ParseWriteBodyWithDom(Route::kPutDocument, body, meridian::core::Limits{},
                                              &op);
    benchmark::DoNotOptimize(error);
    benchmark::DoNotOptimize(op);
  }
}

BENCHMARK_CAPTURE(Run, flat_200B_fast, true, kFlat);
BENCHMARK_CAPTURE(Run, flat_200B_dom, false, kFlat);
BENCHMARK_CAPTURE(Run, six_fields_fast, true, kFields);
BENCHMARK_CAPTURE(Run, six_fields_dom, false, kFields);
BENCHMARK_CAPTURE(Run, nested_fast_falls_back, true, kNested);
BENCHMARK_CAPTURE(Run, nested_dom, false, kNested);

}  // namespace

BENCHMARK_MAIN();
