#include "api/two_phase.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "api/session_token.h"
#include "auth/secret_file.h"
#include "auth/token.h"
#include "core/document.h"

namespace meridian::api {
namespace {

using Clock = std::chrono::steady_clock;

ApiError Error(int status, std::string code, std::string message) {
  return ApiError{status, std::move(code), std::move(message), {}};
}

uint64_t WallMs() {
  return node::SystemClock().NowMs();
}

core::Operation Delete() {
  core::Operation op;
  op.kind = core::OpKind::kDelete;
  return op;
}

// The guard of a decision: no decision yet.
core::Condition Undecided(const std::string& id) {
  return core::Condition{node::DecisionKeyOf(id), std::nullopt, false};
}

// Waits until `ready` holds, checked after every commit of this region.
bool WaitFor(node::Node& node, const std::function<bool()>& ready, Clock::time_point until) {
  std::mutex mutex;
  std::condition_variable changed;
  node::CommitSignal::Handle handle = node.commits().Register([&] {
    std::lock_guard lock(mutex);
    changed.notify_all();
  });
  std::unique_lock lock(mutex);
  const bool done = changed.wait_until(lock, until, ready);
  lock.unlock();  // before Unregister: a listener running now takes it
  node.commits().Unregister(handle);
  return done;
}

// The prepare's write: a strong system transaction of lock records (Region::CheckWriteKeys checks
// each as the key it locks).
node::WriteRequest PrepareWrite(const std::string& id, const std::string& coordinator,
                                const std::vector<std::string>& keys, uint64_t lock_ms) {
  auto txn = std::make_shared<core::Transaction>();
  const core::Operation record =
      node::LockTable::RecordOp(node::Lock{id, coordinator, WallMs() + lock_ms});
  for (const std::string& key : keys) {
    txn->then_ops.push_back(core::KeyedOperation{node::LockTable::KeyOf(key), record});
  }
  node::WriteRequest write;
  write.txn = std::move(txn);
  write.system = true;
  write.strong = true;
  write.lock_txn = id;
  return write;
}

// The coordinator's commit: `txn` with, in either branch, the release of each of `locked` and the
// decision record "committed", guarded by the absence of a decision.
node::WriteRequest CommitWrite(const std::string& id, const std::string& coordinator,
                               const core::Transaction& txn,
                               const std::vector<std::string>& locked) {
  auto decided = std::make_shared<core::Transaction>(txn);
  for (auto* ops : {&decided->then_ops, &decided->else_ops}) {
    for (const std::string& key : locked) {
      ops->push_back(core::KeyedOperation{node::LockTable::KeyOf(key), Delete()});
    }
    ops->push_back(core::KeyedOperation{node::DecisionKeyOf(id),
                                        node::DecisionOp(node::Decision::kCommitted, coordinator)});
  }
  node::WriteRequest write;
  write.txn = std::move(decided);
  write.condition = Undecided(id);
  write.system = true;
  return write;
}

// The decision record "aborted", guarded the same way.
node::WriteRequest AbortWrite(const std::string& id, const std::string& coordinator) {
  node::WriteRequest write{node::DecisionKeyOf(id),
                           node::DecisionOp(node::Decision::kAborted, coordinator)};
  write.condition = Undecided(id);
  write.system = true;
  return write;
}

// One home's prepare, from the coordinator: here directly, elsewhere over the home's HTTP API.
std::variant<Prepared, ApiError> PrepareAt(node::Node& node, core::RegionId home,
                                           const std::string& id, const CoordinateRequest& request,
                                           uint64_t lock_ms, Clock::time_point until) {
  if (home == node.config().self().id) {
    return PrepareHere(node, id, node.config().region, *request.txn, lock_ms);
  }
  const std::string name = node.homes().NameOf(home);
  ForwardRequest forward;
  forward.method = "POST";
  forward.target = "/v1/txn?prepare=" + id + "&lock_ms=" + std::to_string(lock_ms);
  forward.body = request.body;
  AddForwardHeaders(node,
                    {.content_type = "application/json", .authorization = request.authorization},
                    /*write=*/false, &forward);
  const auto left = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count());
  const Forwarded answer = Forward(node, home, forward, std::chrono::milliseconds(left));
  StrongRoute route;
  route.here = false;
  route.home = home;
  route.home_name = name;
  if (std::optional<ApiError> error =
          ForwardedError(route, answer, /*write=*/false, /*idempotency_key=*/{})) {
    return *std::move(error);
  }
  const nlohmann::json body = nlohmann::json::parse(answer.body, nullptr, false);
  Result<core::VersionVector> frontier = Status(StatusCode::kCorruption, "no session");
  if (body.is_object() && body.contains("session") && body["session"].is_string()) {
    frontier = DecodeSessionToken(body["session"].get<std::string>());
  }
  if (!frontier.ok() || !body.contains("locked") || !body["locked"].is_array()) {
    return Error(502, "bad_home_answer",
                 "region " + name + " answered a prepare without its locks and session");
  }
  Prepared out;
  out.frontier = *frontier;
  for (const nlohmann::json& key : body["locked"]) {
    if (key.is_string()) out.locked.push_back(key.get<std::string>());
  }
  return out;
}

std::atomic<uint64_t> g_committed{0};
std::atomic<uint64_t> g_aborted{0};

// Records the abort of `id` here; the homes that locked release when they see it.
void Abort(node::Node& node, const std::string& id) {
  g_aborted.fetch_add(1, std::memory_order_relaxed);
  Result<node::Receipt> aborted = node.Write(AbortWrite(id, node.config().region));
  if (!aborted.ok() && aborted.status().code() != StatusCode::kPreconditionFailed) {
    // The homes' locks outlive their deadline and they ask again (LockKeeper).
    spdlog::warn("transaction {}: recording its abort failed: {}", id, aborted.status().ToString());
  }
}

}  // namespace

std::string NewTransactionId(const node::Node& node) {
  thread_local std::mt19937_64 random(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = node.config().region + "-";
  for (int i = 0; i < 2; ++i) {
    uint64_t bits = random();
    for (int d = 0; d < 16; ++d, bits >>= 4) id.push_back(kHex[bits & 0xf]);
  }
  return id;
}

bool HeldByTransaction(const node::Region& region, const std::string& key,
                       const core::Transaction* txn) {
  if (txn == nullptr) return region.locks().LockOf(key).has_value();
  return !txn->VisitKeys(
      [&](const std::string& each, bool) { return !region.locks().LockOf(each).has_value(); });
}

std::variant<Prepared, ApiError> PrepareHere(node::Node& node, const std::string& id,
                                             const std::string& coordinator,
                                             const core::Transaction& txn, uint64_t lock_ms) {
  std::vector<std::string> keys;
  for (std::string& key : txn.Keys()) {
    std::optional<node::Home> home = node.homes().HomeOf(key);
    if (home && home->region == node.config().self().id) keys.push_back(std::move(key));
  }
  if (keys.empty()) {
    return Error(
        421, "not_home",
        "region " + node.config().region + " is the home of none of this transaction's keys");
  }
  // A key another transaction holds: that one commits or aborts within about a round trip.
  // Waiting longer would only hold up two transactions that wait on each other.
  const node::Region& region = node.region();
  WaitFor(
      node,
      [&] {
        return std::none_of(keys.begin(), keys.end(), [&](const std::string& key) {
          std::optional<node::Lock> lock = region.locks().LockOf(key);
          return lock && lock->txn != id;
        });
      },
      Clock::now() + std::chrono::milliseconds(std::min(lock_ms, kPrepareWaitMs)));
  Result<node::Receipt> receipt = node.Write(PrepareWrite(id, coordinator, keys, lock_ms));
  if (!receipt.ok()) return ErrorFromStatus(receipt.status());
  return Prepared{std::move(keys), receipt->dot, receipt->frontier};
}

Result<node::Decision> Resolve(node::Node& node, const std::string& id) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<std::optional<std::string>> record = node.ReadView(node::DecisionKeyOf(id));
    if (!record.ok()) return record.status();
    if (node::Decision decision = node::ParseDecision(*record); decision != node::Decision::kNone) {
      return decision;
    }
    Result<node::Receipt> aborted = node.Write(AbortWrite(id, node.config().region));
    if (aborted.ok()) {
      spdlog::info("transaction {}: aborted when a home asked after its lock expired", id);
      return node::Decision::kAborted;
    }
    // Decided in between (the guard failed): read it.
    if (aborted.status().code() != StatusCode::kPreconditionFailed) return aborted.status();
  }
  return Status(StatusCode::kInternal, "transaction " + id + ": no decision after two reads");
}

std::variant<Coordinated, ApiError> Coordinate(node::Node& node, const StrongRoute& route,
                                               const CoordinateRequest& request) {
  const core::Transaction& txn = *request.txn;
  const std::vector<std::string> keys = txn.Keys();
  const size_t branch = std::max(txn.then_ops.size(), txn.else_ops.size());
  if (branch + keys.size() + 1 > core::kTransactionOpsMax) {
    return Error(400, "bad_transaction",
                 "a transaction across homes commits its operations, one release per key and its "
                 "decision in one: at most " +
                     std::to_string(core::kTransactionOpsMax) + " together (here " +
                     std::to_string(branch + keys.size() + 1) + ")");
  }
  const std::string id = NewTransactionId(node);
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(request.timeout_ms);
  const uint64_t lock_ms = request.timeout_ms + kLockGraceMs;

  // Phase one: every home locks its keys, all at once.
  std::vector<std::variant<Prepared, ApiError>> prepared(route.keys.size());
  {
    std::vector<std::thread> others;
    size_t i = 0;
    for (const auto& [home, home_keys] : route.keys) {
      auto run = [&node, &prepared, &id, &request, lock_ms, until, i, home = home] {
        prepared[i] = PrepareAt(node, home, id, request, lock_ms, until);
      };
      if (i + 1 < route.keys.size()) {
        others.emplace_back(std::move(run));
      } else {
        run();  // the last on this thread, with its kept connection
      }
      ++i;
    }
    for (std::thread& thread : others) thread.join();
  }
  const auto aborted = [&](ApiError error) {
    Abort(node, id);
    error.message += " (transaction " + id + " aborted: nothing was applied)";
    return error;
  };
  std::set<std::string, std::less<>> locked_set;
  std::vector<std::string> locked;
  core::VersionVector homes_held;
  for (const auto& home : prepared) {
    if (const auto* error = std::get_if<ApiError>(&home)) return aborted(*error);
    for (const std::string& key : std::get<Prepared>(home).locked) {
      if (locked_set.insert(key).second) locked.push_back(key);
    }
    homes_held.Merge(std::get<Prepared>(home).frontier);
  }
  for (const std::string& key : keys) {
    if (!locked_set.contains(key)) {
      return aborted(Error(503, "home_unavailable",
                           "no home locked '" + key + "': its home is moving; retry"));
    }
  }
  // What each home held when it locked, here too: the conditions see every strong write before.
  const node::Region& region = node.region();
  if (!WaitFor(
          node, [&] { return region.frontier().Dominates(homes_held); }, until)) {
    return aborted(Error(504, "timeout",
                         "region " + node.config().region +
                             " did not receive the homes' writes before the deadline (" +
                             std::to_string(request.timeout_ms) + " ms)"));
  }
  // Phase two: the decision, with the writes and the releases, in one local transaction.
  node::WriteRequest commit = CommitWrite(id, node.config().region, txn, locked);
  commit.idempotency_key = request.idempotency_key;
  Result<node::Receipt> receipt = node.Write(std::move(commit));
  if (!receipt.ok()) {
    if (receipt.status().code() == StatusCode::kPreconditionFailed) {
      g_aborted.fetch_add(1, std::memory_order_relaxed);
      return Error(409, "transaction_aborted",
                   "transaction " + id +
                       " was aborted before it could commit (a home's lock outlived its deadline "
                       "and the home asked): nothing was applied; retry");
    }
    return aborted(ErrorFromStatus(receipt.status()));
  }
  if (receipt->replayed) {
    Abort(node, id);  // a retry: the first attempt's outcome stands
  } else {
    g_committed.fetch_add(1, std::memory_order_relaxed);
  }
  return Coordinated{id, *std::move(receipt)};
}

CoordinatedCounts CoordinatedSoFar() {
  return {g_committed.load(std::memory_order_relaxed), g_aborted.load(std::memory_order_relaxed)};
}

uint64_t LocksHeldHere(node::Node& node) {
  uint64_t held = 0;
  for (const auto& [key, lock] : node.region().locks().All()) {
    std::optional<node::Home> home = node.homes().HomeOf(key);
    if (home && home->region == node.config().self().id) ++held;
  }
  return held;
}

LockKeeper::LockKeeper(node::Node* node, std::chrono::milliseconds interval)
    : node_(node), interval_(interval) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, interval_, [this] { return stopping_.load(); });
      if (stopping_) break;
      lock.unlock();
      RunOnce();
      lock.lock();
    }
  });
}

LockKeeper::~LockKeeper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

size_t LockKeeper::RunOnce() {
  std::lock_guard run(run_mutex_);
  node::Node& node = *node_;
  const core::RegionId self = node.config().self().id;
  size_t released = 0;
  // Forget the transactions whose locks are gone.
  const std::map<std::string, node::Lock> locks = node.region().locks().All();
  std::erase_if(asked_, [&](const auto& entry) {
    return std::none_of(locks.begin(), locks.end(),
                        [&](const auto& held) { return held.second.txn == entry.first; });
  });
  for (const auto& [key, lock] : locks) {
    std::optional<node::Home> home = node.homes().HomeOf(key);
    if (!home || home->region != self) continue;  // its home releases it
    Result<std::optional<std::string>> record = node.ReadView(node::DecisionKeyOf(lock.txn));
    node::Decision decision = record.ok() ? node::ParseDecision(*record) : node::Decision::kNone;
    if (decision == node::Decision::kNone && WallMs() >= lock.expires_ms &&
        Clock::now() >= asked_[lock.txn]) {
      asked_[lock.txn] = Clock::now() + std::chrono::seconds(1);  // at most once a second
      // Past its deadline, undecided here: the coordinator says (and aborts it if undecided).
      std::optional<core::RegionId> coordinator = node.homes().IdOf(lock.coordinator);
      if (coordinator == self) {
        Result<node::Decision> resolved = Resolve(node, lock.txn);
        if (resolved.ok()) decision = *resolved;
      } else if (coordinator) {
        ForwardRequest ask;
        ask.method = "POST";
        ask.target = "/v1/txn/resolve?id=" + lock.txn;
        std::string authorization;
        if (auth::SecretFile* secrets = node.secrets()) {
          auth::Claims claims;
          claims.admin = true;
          claims.sub = "region:" + node.config().region;
          claims.exp = static_cast<int64_t>(WallMs() / 1000 + 60);
          if (auto token = auth::MintToken(claims, secrets->Current()->front()); token.ok()) {
            authorization = "Bearer " + *token;
          }
        }
        AddForwardHeaders(node, {.authorization = authorization}, /*write=*/false, &ask);
        const Forwarded answer = Forward(node, *coordinator, ask, std::chrono::seconds(5));
        const nlohmann::json body = nlohmann::json::parse(answer.body, nullptr, false);
        if (answer.status == 200 && body.is_object()) {
          const std::string said = body.value("decision", "");
          if (said == "aborted") decision = node::Decision::kAborted;
          if (said == "committed") decision = node::Decision::kCommitted;
        } else {
          spdlog::warn(
              "lock on '{}' of transaction {}: its coordinator, region {}, did not say "
              "what became of it ({}); asking again",
              key, lock.txn, lock.coordinator,
              answer.status == 0 ? answer.error : "HTTP " + std::to_string(answer.status));
        }
      } else {
        spdlog::error(
            "lock on '{}' of transaction {}: its coordinator '{}' is no configured "
            "region; release it by hand (docs/operations.md)",
            key, lock.txn, lock.coordinator);
      }
    }
    if (decision != node::Decision::kAborted) continue;  // committed: its events release it
    // The release: this lock's record, as it is now (a newer lock is not touched).
    const std::string record_key = node::LockTable::KeyOf(key);
    Result<std::optional<std::string>> held = node.ReadView(record_key);
    if (!held.ok() || !held->has_value()) continue;
    node::WriteRequest release{record_key, Delete()};
    release.condition = core::Condition{
        record_key, core::DocumentVersion(core::RenderedDigest(record_key, **held)), std::nullopt};
    release.system = true;
    Result<node::Receipt> done = node.Write(std::move(release));
    if (done.ok()) {
      ++released;
      spdlog::info("released the lock on '{}' of aborted transaction {}", key, lock.txn);
    }
  }
  return released;
}

}  // namespace meridian::api
