// Crash test with an oracle, in the spirit of RocksDB's db_stress: client threads write
// concurrently to a real node (fsync on) while the test kills it at a random moment, then restarts
// it on the same data directory and checks the recovered state against a record of every request.
//
// Each request ends acknowledged (200 with a receipt), unknown (no answer: it may or may not have
// been applied, but never half) or rejected (an error answer: not applied). The workload makes
// the check exact:
//   - counter keys only ever receive increments {"n": d, "m": -d}: n == -m always (no half-applied
//     increment), and n = previous + acknowledged deltas + the deltas of some of the unknown
//     increments — exactly as many as the log holds unexplained events for that key;
//   - every other key belongs to one client, which writes it sequentially (PUT, PATCH, DELETE) with
//     a per-client rising "version"; a client stops at its first unknown answer, so the document
//     must be exactly the model after its acknowledged writes, or after those plus the unknown one;
//   - the log, read back through the watch replay, holds events us:1..frontier without a gap, each
//     acknowledged event at the sequence number its receipt named, for the key it wrote.
// After the last round a clean SIGTERM restart must keep the frontier, digest and every document.
//
// Two of the clients speak the Redis protocol to the node's Redis port (docs/redis.md): SET, HSET,
// DEL and HINCRBY on keys of their own and on counters of their own ("rctr/", one field "n").
// Their acknowledgements name no event, so their events are counted per key in the log instead:
// every acknowledged Redis write must be there (a DEL that answered 0 wrote none).
//
// MERIDIAN_CRASH_SEED replays a run (the seed is printed); MERIDIAN_CRASH_ROUNDS changes the
// number of rounds (20 by default).
#include <gtest/gtest.h>
#include <poll.h>

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/node_process.h"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using meridian::testing::EncodeKey;
using meridian::testing::HttpClient;
using meridian::testing::HttpResponse;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kDefaultRounds = 20;
constexpr int kHttpClients = 6;
constexpr int kRespClients = 2;  // clients kHttpClients.. speak the Redis protocol
constexpr int kClients = kHttpClients + kRespClients;
constexpr int kCounterKeys = 8;
constexpr int kRespCounterKeys = 4;
constexpr int kOwnedKeysPerClient = 2;  // 8 + 4 + 8 * 2 = 28 keys
constexpr int kMaxOpsPerClientPerRound = 4000;
constexpr int kKillDelayMinMs = 10;
constexpr int kKillDelayMaxMs = 500;
constexpr int kGracefulEvery = 5;  // every 5th round stops with SIGTERM instead of SIGKILL

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string CounterKey(int i) {
  return "ctr/" + std::to_string(i);
}
std::string RespCounterKey(int i) {
  return "rctr/" + std::to_string(i);
}
std::string OwnedKey(int client, int i) {
  return "own/" + std::to_string(client) + "/" + std::to_string(i);
}
std::string DocPath(const std::string& key) {
  return "/v1/docs/" + EncodeKey(key);
}

enum class Kind { kPut, kPatch, kIncr, kDelete };
enum class Outcome { kAcked, kUnknown, kRejected };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kPut:
      return "PUT";
    case Kind::kPatch:
      return "PATCH";
    case Kind::kIncr:
      return "INCR";
    case Kind::kDelete:
      return "DELETE";
  }
  return "?";
}

struct Op {
  int client = 0;
  Kind kind = Kind::kPut;
  std::string key;
  json body;          // PUT, PATCH, INCR
  int64_t delta = 0;  // INCR
  Outcome outcome = Outcome::kUnknown;
  uint64_t seq = 0;   // acknowledged over HTTP: N of the receipt's "us:N"
  bool resp = false;  // sent over the Redis protocol (no event id in its answer)
  bool wrote = true;  // acknowledged over RESP: whether it wrote an event (DEL answers 0 when not)
  std::string session;
  std::string detail;  // what the answer (or the failure) was
};

std::string Describe(const Op& op) {
  std::string out =
      std::string(KindName(op.kind)) + " " + op.key + " by client " + std::to_string(op.client);
  if (!op.body.is_null()) out += " " + op.body.dump().substr(0, 120);
  switch (op.outcome) {
    case Outcome::kAcked:
      out +=
          op.resp ? std::string(" -> acknowledged over RESP") : " -> us:" + std::to_string(op.seq);
      break;
    case Outcome::kUnknown:
      out += " -> unknown (" + op.detail + ")";
      break;
    case Outcome::kRejected:
      out += " -> rejected (" + op.detail + ")";
      break;
  }
  return out;
}

using DocState = std::optional<json>;  // nullopt: the document does not exist

std::string Show(const DocState& state) {
  return state ? state->dump().substr(0, 200) : std::string("<absent>");
}

DocState Apply(const DocState& state, const Op& op) {
  switch (op.kind) {
    case Kind::kPut:
      return op.body;
    case Kind::kPatch: {
      if (!state) return op.body;
      json merged = *state;
      for (const auto& [name, value] : op.body.items()) merged[name] = value;
      return merged;
    }
    case Kind::kDelete:
      return std::nullopt;
    case Kind::kIncr:
      break;
  }
  return state;
}

// One client thread's round: sequential requests until the node stops answering, `stop` is set,
// or the op bound is reached. The first unknown answer ends the round for this client, so that an
// unknown write is always its last.
std::vector<Op> RunClient(uint16_t port, int client, uint64_t seed, int64_t* version,
                          const std::atomic<bool>* stop) {
  std::mt19937_64 rng(seed);
  HttpClient http("127.0.0.1", port, seconds(5));
  std::vector<Op> ops;
  static const std::regex kEvent(R"(^us:([1-9][0-9]*)$)");
  for (int i = 0; i < kMaxOpsPerClientPerRound && !stop->load(); ++i) {
    Op op;
    op.client = client;
    const int dice = static_cast<int>(rng() % 100);
    if (dice < 40) {
      op.kind = Kind::kIncr;
      op.key = CounterKey(static_cast<int>(rng() % kCounterKeys));
      op.delta = 1 + static_cast<int64_t>(rng() % 9);
      op.body = {{"n", op.delta}, {"m", -op.delta}};
    } else {
      op.key = OwnedKey(client, static_cast<int>(rng() % kOwnedKeysPerClient));
      if (dice < 65) {
        op.kind = Kind::kPut;
        ++*version;
        op.body = {{"version", *version},
                   {"client", client},
                   {"a", *version},
                   {"pad", std::string(rng() % 300, static_cast<char>('a' + client))}};
      } else if (dice < 85) {
        op.kind = Kind::kPatch;
        ++*version;
        op.body = {{"version", *version}, {"b", *version}};
      } else {
        op.kind = Kind::kDelete;
      }
    }
    HttpResponse response;
    switch (op.kind) {
      case Kind::kPut:
        response = http.Send("PUT", DocPath(op.key), op.body.dump());
        break;
      case Kind::kPatch:
        response = http.Send("PATCH", DocPath(op.key), op.body.dump());
        break;
      case Kind::kIncr:
        response = http.Send("POST", DocPath(op.key) + "/incr", op.body.dump());
        break;
      case Kind::kDelete:
        response = http.Request("DELETE", DocPath(op.key));
        break;
    }
    if (response.status == 0) {
      op.outcome = Outcome::kUnknown;
      op.detail = response.error;
      ops.push_back(std::move(op));
      break;
    }
    const json receipt = Parse(response.body);
    std::smatch match;
    std::string event = receipt.is_object() ? receipt.value("event", "") : "";
    if (response.status == 200 && std::regex_match(event, match, kEvent)) {
      op.outcome = Outcome::kAcked;
      op.seq = std::stoull(match[1]);
      op.session = receipt.value("session", "");
    } else {
      op.outcome = Outcome::kRejected;
      op.detail = std::to_string(response.status) + " " + response.body.substr(0, 200);
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

// A blocking Redis-protocol connection with a deadline per answer: enough for the crash clients.
class RespConnection {
 public:
  RespConnection(uint16_t port, milliseconds timeout) : socket_(io_), timeout_(timeout) {
    boost::system::error_code ec;
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) error_ = "connect: " + ec.message();
  }
  // Sends a command and reads its answer: "+OK", ":1", "$value", "-ERR ..."; nullopt (with the
  // reason in error()) when the connection failed or no answer came in time.
  std::optional<std::string> Call(const std::vector<std::string>& args) {
    if (!error_.empty()) return std::nullopt;
    std::string wire = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& arg : args) {
      wire += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
    }
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(wire), ec);
    if (ec) {
      error_ = "write: " + ec.message();
      return std::nullopt;
    }
    const auto deadline = Clock::now() + timeout_;
    for (;;) {
      const size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        if (line.empty() || line[0] != '$') {
          buffer_.erase(0, end + 2);
          return line;
        }
        const size_t length = std::stoul(line.substr(1));
        if (buffer_.size() >= end + 2 + length + 2) {
          std::string value = "$" + buffer_.substr(end + 2, length);
          buffer_.erase(0, end + 2 + length + 2);
          return value;
        }
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        error_ = "no answer in time";
        return std::nullopt;
      }
      pollfd descriptor{socket_.native_handle(), POLLIN, 0};
      if (::poll(&descriptor, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[4096];
      const size_t got = socket_.read_some(asio::buffer(chunk), ec);
      if (ec) {
        error_ = "read: " + ec.message();
        return std::nullopt;
      }
      buffer_.append(chunk, got);
    }
  }
  const std::string& error() const { return error_; }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  milliseconds timeout_;
  std::string buffer_;
  std::string error_;
};

// A Redis-protocol client's round, as RunClient: HINCRBY of its counters, SET (a document
// {"value": version}), HSET (the fields version and b) and DEL of its own keys.
std::vector<Op> RunRespClient(uint16_t port, int client, uint64_t seed, int64_t* version,
                              const std::atomic<bool>* stop) {
  std::mt19937_64 rng(seed);
  RespConnection connection(port, seconds(5));
  std::vector<Op> ops;
  for (int i = 0; i < kMaxOpsPerClientPerRound && !stop->load(); ++i) {
    Op op;
    op.client = client;
    op.resp = true;
    std::vector<std::string> command;
    const int dice = static_cast<int>(rng() % 100);
    if (dice < 40) {
      op.kind = Kind::kIncr;
      op.key = RespCounterKey(static_cast<int>(rng() % kRespCounterKeys));
      op.delta = 1 + static_cast<int64_t>(rng() % 9);
      op.body = {{"n", op.delta}};
      command = {"HINCRBY", op.key, "n", std::to_string(op.delta)};
    } else {
      op.key = OwnedKey(client, static_cast<int>(rng() % kOwnedKeysPerClient));
      if (dice < 65) {
        op.kind = Kind::kPut;
        ++*version;
        op.body = {{"value", *version}};
        command = {"SET", op.key, std::to_string(*version)};
      } else if (dice < 85) {
        op.kind = Kind::kPatch;
        ++*version;
        op.body = {{"version", *version}, {"b", *version}};
        command = {
            "HSET", op.key, "version", std::to_string(*version), "b", std::to_string(*version)};
      } else {
        op.kind = Kind::kDelete;
        command = {"DEL", op.key};
      }
    }
    const std::optional<std::string> answer = connection.Call(command);
    if (!answer) {
      op.outcome = Outcome::kUnknown;
      op.detail = connection.error();
      ops.push_back(std::move(op));
      break;
    }
    if (answer->empty() || (*answer)[0] == '-') {
      op.outcome = Outcome::kRejected;
      op.detail = *answer;
    } else {
      op.outcome = Outcome::kAcked;
      op.wrote = !(op.kind == Kind::kDelete && *answer == ":0");
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

// The keys of the logged events us:after+1 .. us:last, read through the watch replay
// (GET /v1/watch?from=us:<after>, SSE) on a raw socket with a deadline. Stops at the first
// inconsistency and says why in *error.
std::vector<std::string> ReadLog(uint16_t port, uint64_t after, uint64_t last, milliseconds timeout,
                                 std::string* error) {
  std::vector<std::string> keys;
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) {
    *error = "connect: " + ec.message();
    return keys;
  }
  const std::string request = "GET /v1/watch?from=us:" + std::to_string(after) +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
  asio::write(socket, asio::buffer(request), ec);
  const auto deadline = Clock::now() + timeout;
  std::string buffer;
  bool head = true;
  while (keys.size() < last - after) {
    // Consume what is buffered.
    if (head) {
      const auto end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        if (buffer.rfind("HTTP/1.1 200", 0) != 0) {
          *error = "the replay was refused: " + buffer.substr(0, 300);
          return keys;
        }
        buffer.erase(0, end + 4);
        head = false;
        continue;
      }
    } else {
      const auto end = buffer.find("\n\n");
      if (end != std::string::npos) {
        const std::string block = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        std::string id;
        std::string data;
        std::istringstream lines(block);
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("id: ", 0) == 0) id = line.substr(4);
          if (line.rfind("data: ", 0) == 0) data = line.substr(6);
        }
        if (data.empty()) continue;  // a keep-alive comment
        const std::string expected_id = "us:" + std::to_string(after + keys.size() + 1);
        if (id != expected_id) {
          *error = "the log has '" + id + "' where " + expected_id + " belongs";
          return keys;
        }
        const json change = Parse(data);
        if (!change.is_object() || !change["key"].is_string()) {
          *error = "a change that is not JSON: " + data;
          return keys;
        }
        keys.push_back(change["key"]);
        continue;
      }
    }
    // Read more, bounded.
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      *error = "timed out after " + std::to_string(keys.size()) + " of " +
               std::to_string(last - after) + " events";
      return keys;
    }
    pollfd descriptor{socket.native_handle(), POLLIN, 0};
    if (::poll(&descriptor, 1, static_cast<int>(left)) <= 0) continue;
    char chunk[16384];
    const size_t got = socket.read_some(asio::buffer(chunk), ec);
    buffer.append(chunk, got);
    if (ec) {
      *error = "the replay ended after " + std::to_string(keys.size()) + " events: " + ec.message();
      return keys;
    }
  }
  return keys;
}

// Does some subset of exactly `count` of `deltas` sum to `target`?
bool SubsetSum(const std::vector<int64_t>& deltas, size_t count, int64_t target) {
  const size_t n = deltas.size();
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (static_cast<size_t>(__builtin_popcount(mask)) != count) continue;
    int64_t sum = 0;
    for (size_t i = 0; i < n; ++i) {
      if (mask & (1u << i)) sum += deltas[i];
    }
    if (sum == target) return true;
  }
  return false;
}

// What the recovered node must hold: resolved after every round (an unknown write either made it
// or not, and after the restart that is settled).
struct Model {
  std::map<std::string, int64_t> counters;  // n of each counter key
  std::map<std::string, DocState> owned;
  uint64_t frontier = 0;
};

struct RoundStats {
  size_t acked = 0;
  size_t unknown = 0;
  size_t unknown_applied = 0;
};

class CrashTest : public ::testing::Test {
 protected:
  // Reads a document: 200 -> the object, 404 -> absent; anything else fails the test.
  DocState Read(HttpClient& client, const std::string& key) {
    const HttpResponse response = client.Get(DocPath(key));
    if (response.status == 404) return std::nullopt;
    EXPECT_EQ(response.status, 200) << key << ": " << response.body << response.error;
    const json doc = Parse(response.body);
    EXPECT_TRUE(doc.is_object()) << key << ": " << response.body;
    return doc;
  }

  // Checks the restarted node against the model and this round's requests; updates the model.
  void Verify(int round, const std::vector<std::vector<Op>>& ops, Model* model, HttpClient& client,
              uint16_t port, RoundStats* stats) {
    SCOPED_TRACE("round " + std::to_string(round));
    const HttpResponse status_response = client.Get("/v1/status");
    ASSERT_EQ(status_response.status, 200) << status_response.error;
    const json status = Parse(status_response.body);
    ASSERT_TRUE(status.is_object());
    const json& frontier_json = status["frontier"];
    ASSERT_TRUE(frontier_json.is_object()) << status.dump();
    EXPECT_EQ(frontier_json.size(), 1u) << "only region us has written: " << status.dump();
    const uint64_t frontier = frontier_json.value("us", uint64_t{0});
    const uint64_t before = model->frontier;

    // Classify this round's requests.
    std::vector<const Op*> acked;
    std::vector<const Op*> unknown;
    for (const auto& mine : ops) {
      uint64_t last_seq = 0;
      for (const Op& op : mine) {
        if (op.outcome == Outcome::kAcked) {
          acked.push_back(&op);
          if (op.resp) continue;  // no event id to check
          EXPECT_GT(op.seq, last_seq)
              << "one client's acknowledged writes have rising event ids: " << Describe(op);
          last_seq = op.seq;
        } else if (op.outcome == Outcome::kUnknown) {
          unknown.push_back(&op);
        } else {
          ADD_FAILURE() << "a well-formed write was rejected: " << Describe(op);
        }
      }
    }
    stats->acked += acked.size();
    stats->unknown += unknown.size();

    // The frontier covers every acknowledged write, each at its own sequence number.
    std::map<uint64_t, const Op*> by_seq;
    std::map<std::string, size_t> resp_logged;  // key -> events of acknowledged RESP writes
    for (const Op* op : acked) {
      if (op->resp) {
        resp_logged[op->key] += op->wrote;
        continue;
      }
      EXPECT_GT(op->seq, before) << Describe(*op);
      EXPECT_LE(op->seq, frontier)
          << "an acknowledged write is missing after the restart: " << Describe(*op);
      EXPECT_TRUE(by_seq.emplace(op->seq, op).second)
          << "two writes acknowledged as the same event: " << Describe(*op);
    }
    ASSERT_GE(frontier, before) << "the frontier went back";
    ASSERT_LE(frontier - before, acked.size() + unknown.size())
        << "more events than requests: " << frontier - before << " events, " << acked.size()
        << " acknowledged, " << unknown.size() << " unknown";

    // The log: us:before+1 .. us:frontier, gap-free, acknowledged events where their receipts said.
    std::map<std::string, size_t> unexplained;  // key -> logged events not acknowledged
    if (frontier > before) {
      std::string error;
      const std::vector<std::string> keys = ReadLog(port, before, frontier, seconds(20), &error);
      ASSERT_EQ(keys.size(), frontier - before)
          << "the log does not hold us:" << before + 1 << "..us:" << frontier << ": " << error;
      for (size_t i = 0; i < keys.size(); ++i) {
        const uint64_t seq = before + 1 + i;
        auto it = by_seq.find(seq);
        if (it != by_seq.end()) {
          EXPECT_EQ(keys[i], it->second->key)
              << "event us:" << seq
              << " is not the write acknowledged as it: " << Describe(*it->second);
        } else {
          ++unexplained[keys[i]];
        }
      }
    }
    // Acknowledged RESP writes are logged events too, wherever in the log.
    for (const auto& [key, count] : resp_logged) {
      size_t& logged = unexplained[key];
      EXPECT_GE(logged, count) << "the log holds " << logged << " events for " << key << " where "
                               << count << " acknowledged Redis-protocol writes made some";
      logged -= std::min(logged, count);
    }
    std::erase_if(unexplained, [](const auto& entry) { return entry.second == 0; });
    std::map<std::string, size_t> unknown_by_key;
    for (const Op* op : unknown) ++unknown_by_key[op->key];
    for (const auto& [key, count] : unexplained) {
      EXPECT_LE(count, unknown_by_key[key]) << "the log holds " << count << " events for " << key
                                            << " that no unanswered request explains";
      stats->unknown_applied += count;
    }

    std::map<std::string, DocState> actual;
    // Keys owned by one client: exactly the acknowledged state, or that plus the unknown write.
    for (int c = 0; c < kClients; ++c) {
      for (int k = 0; k < kOwnedKeysPerClient; ++k) {
        const std::string key = OwnedKey(c, k);
        DocState expected = model->owned[key];
        const Op* pending = nullptr;
        int64_t last_version = -1;
        for (const Op& op : ops[c]) {
          if (op.key != key) continue;
          if (op.outcome == Outcome::kAcked) {
            expected = Apply(expected, op);
            if (op.body.contains("version")) last_version = op.body["version"];
          } else if (op.outcome == Outcome::kUnknown) {
            pending = &op;
          }
        }
        const DocState got = Read(client, key);
        actual[key] = got;
        const DocState with_pending = pending ? Apply(expected, *pending) : expected;
        const size_t logged = unexplained.count(key) ? unexplained.at(key) : 0;
        const std::string pending_text = pending ? Describe(*pending) : std::string("(none)");
        if (got == expected && (!pending || got != with_pending)) {
          EXPECT_EQ(logged, 0u) << key << ": the unknown write is logged but not applied: "
                                << pending_text;
        } else if (pending && got == with_pending && got != expected) {
          EXPECT_EQ(logged, 1u) << key << ": the unknown write is applied but not logged: "
                                << pending_text;
        } else if (!(got == expected)) {
          ADD_FAILURE() << key << " holds " << Show(got)
                        << "\n  after the acknowledged writes it must be " << Show(expected)
                        << (pending ? "\n  or, with the unknown write " + Describe(*pending) +
                                          ", " + Show(with_pending)
                                    : std::string())
                        << "\n  last acknowledged version " << last_version;
        }
        if (got && got->contains("version") && last_version >= 0 && expected &&
            expected->contains("version")) {
          EXPECT_GE(got->value("version", int64_t{-1}), (*expected)["version"].get<int64_t>())
              << key;
        }
        model->owned[key] = got;
      }
    }

    // Counters: n is the previous value plus the acknowledged deltas plus exactly `unexplained`
    // of the unknown ones; over HTTP, where one increment writes n and m, also n == -m.
    std::vector<std::string> counter_keys;
    for (int k = 0; k < kCounterKeys; ++k) counter_keys.push_back(CounterKey(k));
    for (int k = 0; k < kRespCounterKeys; ++k) counter_keys.push_back(RespCounterKey(k));
    for (const std::string& key : counter_keys) {
      int64_t acked_sum = 0;
      std::vector<int64_t> unknown_deltas;
      for (const auto& mine : ops) {
        for (const Op& op : mine) {
          if (op.key != key) continue;
          if (op.outcome == Outcome::kAcked) acked_sum += op.delta;
          if (op.outcome == Outcome::kUnknown) unknown_deltas.push_back(op.delta);
        }
      }
      const DocState got = Read(client, key);
      actual[key] = got;
      const int64_t n = got ? got->value("n", int64_t{0}) : 0;
      if (key.starts_with("ctr/")) {
        const int64_t m = got ? got->value("m", int64_t{0}) : 0;
        EXPECT_EQ(n, -m) << key << " " << Show(got)
                         << ": an increment of two counters was applied by half";
      }
      const int64_t base = model->counters[key];
      const size_t logged = unexplained.count(key) ? unexplained.at(key) : 0;
      EXPECT_TRUE(SubsetSum(unknown_deltas, logged, n - base - acked_sum))
          << key << " is " << n << "; before the round " << base << ", acknowledged +" << acked_sum
          << ", " << unknown_deltas.size() << " unknown increments of which the log holds "
          << logged
          << ": every acknowledged increment must count once, and an unknown one once or not at "
             "all";
      EXPECT_GE(n, base + acked_sum) << key << ": acknowledged increments were lost";
      model->counters[key] = n;
    }

    // The read model agrees: the scan lists exactly the existing documents and the count matches.
    size_t existing = 0;
    for (const auto& [key, doc] : actual) existing += doc.has_value();
    const HttpResponse scan_response = client.Get("/v1/docs?limit=1000");
    ASSERT_EQ(scan_response.status, 200);
    const json scan = Parse(scan_response.body);
    ASSERT_TRUE(scan.is_object() && scan["items"].is_array()) << scan_response.body;
    size_t listed = 0;
    for (const json& item : scan["items"]) {
      const std::string key = item["key"];
      if (key == "meta") continue;
      ++listed;
      auto it = actual.find(key);
      ASSERT_NE(it, actual.end()) << "the scan lists an unknown key " << key;
      EXPECT_TRUE(it->second.has_value() && *it->second == item["doc"])
          << key << ": the scan shows " << item["doc"].dump() << ", a read " << Show(it->second);
    }
    EXPECT_EQ(listed, existing) << scan_response.body.substr(0, 500);
    EXPECT_EQ(status["documents"], existing + 1)
        << "the document count (with 'meta') after recovery";

    // A session token of the last acknowledged write is covered at once.
    if (!by_seq.empty()) {
      const std::string& token = by_seq.rbegin()->second->session;
      const HttpResponse read = client.Get("/v1/status?wait_ms=200&session=" + token);
      EXPECT_EQ(read.status, 200)
          << "the session of an acknowledged write is not covered after the restart";
    }
    model->frontier = frontier;
  }
};

uint64_t SeedFromEnvironment() {
  if (const char* text = std::getenv("MERIDIAN_CRASH_SEED"))
    return std::strtoull(text, nullptr, 10);
  return std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
}

int RoundsFromEnvironment() {
  if (const char* text = std::getenv("MERIDIAN_CRASH_ROUNDS")) return std::max(1, std::atoi(text));
  return kDefaultRounds;
}

TEST_F(CrashTest, AcknowledgedWritesSurviveKillsAtRandomMoments) {
  const uint64_t seed = SeedFromEnvironment();
  const int rounds = RoundsFromEnvironment();
  std::printf("crash test: seed %" PRIu64 ", %d rounds (replay with MERIDIAN_CRASH_SEED=%" PRIu64
              ")\n",
              seed, rounds, seed);
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("MERIDIAN_CRASH_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  NodeOptions options;
  options.resp = true;
  // Three HTTP threads (each with its own connections), where the other tests run the default of
  // one on a 2-core machine: SIGTERM under load must end every thread's connections cleanly.
  options.extra_toml = "[storage]\nsync = true\n[http]\nthreads = 3\n";
  NodeProcess node(options);
  ASSERT_TRUE(node.Start()) << node.log();
  HttpClient admin = node.Client(seconds(10));
  // Event us:1, so that every round's log can be replayed from the event before it.
  ASSERT_EQ(admin.Send("PUT", "/v1/docs/meta", R"({"crash_test": true})").status, 200);
  Model model;
  model.frontier = 1;
  std::vector<int64_t> versions(kClients, 0);
  RoundStats total;

  for (int round = 0; round < rounds; ++round) {
    const bool graceful = round % kGracefulEvery == kGracefulEvery - 1;
    const int delay_ms = std::uniform_int_distribution<int>(kKillDelayMinMs, kKillDelayMaxMs)(rng);
    std::atomic<bool> stop{false};
    std::vector<std::vector<Op>> ops(kClients);
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
      threads.emplace_back([&, c, client_seed = rng()] {
        ops[c] = c < kHttpClients
                     ? RunClient(node.http_port(), c, client_seed, &versions[c], &stop)
                     : RunRespClient(node.resp_port(), c, client_seed, &versions[c], &stop);
      });
    }
    // The crash moment: a seeded random delay into the workload (this is the fault injection,
    // not a wait for a condition).
    std::this_thread::sleep_for(milliseconds(delay_ms));
    int exit_code = 0;
    if (graceful) {
      exit_code = node.Terminate(seconds(20));
    } else {
      node.Kill();
    }
    stop = true;
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(exit_code, 0) << "round " << round << ": SIGTERM under load must exit 0\n"
                            << node.log();
    ASSERT_TRUE(node.Start()) << "round " << round << ": no restart after the crash\n"
                              << node.log();

    RoundStats stats;
    Verify(round, ops, &model, admin, node.http_port(), &stats);
    std::printf(
        "round %2d: %s after %3d ms: %4zu acknowledged, %zu unknown (%zu applied), frontier "
        "us:%" PRIu64 "\n",
        round, graceful ? "SIGTERM" : "SIGKILL", delay_ms, stats.acked, stats.unknown,
        stats.unknown_applied, model.frontier);
    std::fflush(stdout);
    total.acked += stats.acked;
    total.unknown += stats.unknown;
    total.unknown_applied += stats.unknown_applied;
    if (HasFailure()) break;  // the first round that breaks is the one to look at
  }
  EXPECT_GT(total.acked, static_cast<size_t>(rounds))
      << "the workload hardly ran: the test proves little";

  // A clean stop and restart changes nothing: frontier, digest, document count and every document.
  const HttpResponse before_response = admin.Get("/v1/status");
  ASSERT_EQ(before_response.status, 200);
  const json before = Parse(before_response.body);
  const std::string scan_before = admin.Get("/v1/docs?limit=1000").body;
  ASSERT_EQ(node.Terminate(seconds(20)), 0) << node.log();
  ASSERT_TRUE(node.Start()) << node.log();
  const HttpResponse after_response = admin.Get("/v1/status");
  ASSERT_EQ(after_response.status, 200);
  const json after = Parse(after_response.body);
  EXPECT_EQ(after["frontier"], before["frontier"]);
  EXPECT_EQ(after["digest"], before["digest"])
      << "the digest must be stable across a clean restart";
  EXPECT_EQ(after["documents"], before["documents"]);
  EXPECT_EQ(admin.Get("/v1/docs?limit=1000").body, scan_before);
  std::printf("total: %zu acknowledged, %zu unknown (%zu applied); digest %s\n", total.acked,
              total.unknown, total.unknown_applied, after["digest"].dump().c_str());
}

}  // namespace
