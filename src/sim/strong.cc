#include "sim/strong.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/document.h"

namespace meridian::sim {
namespace {

// timeout_ms (its default): a forwarded request unanswered this long is given up (503
// home_unavailable: the client does not know whether it was applied), and so is a durability
// wait (504 durability_timeout).
constexpr uint64_t kTimeoutMs = 5000;
constexpr uint64_t kDurabilityPollMs = 10;
// Refused with nothing applied (the home moved, is rebuilding, is down): the client retries
// after a short pause, this many times in all.
constexpr int kAttempts = 10;
constexpr uint64_t kRetryMs = 50;

uint64_t Exponential(Simulation& sim, double mean_ms) {
  return 1 + static_cast<uint64_t>(-mean_ms * std::log(1.0 - sim.Unit()));
}

std::string VersionOf(const std::string& key, const std::string& rendered) {
  return core::DocumentVersion(core::RenderedDigest(key, rendered));
}

}  // namespace

std::vector<node::Home> PickHomes(const std::vector<std::string>& names, uint64_t seed) {
  std::mt19937_64 pick(seed ^ 0x40e5a40e5a40e5aull);
  const size_t n = names.size();
  const size_t first = pick() % n;
  const size_t second = (first + 1 + pick() % (n - 1)) % n;
  const auto id = [&](size_t index) {
    const auto& all = RegionNames();
    return static_cast<core::RegionId>(std::find(all.begin(), all.end(), names[index]) -
                                       all.begin() + 1);
  };
  return {node::Home{"h/", id(first), 0, false}, node::Home{"g/", id(second), 0, false}};
}

// --- strong operations ------------------------------------------------------------------------

StrongClients::StrongClients(Simulation& sim, const Options& options)
    : sim_(sim), options_(options), seen_(static_cast<size_t>(sim.size())) {
  for (const node::Home& home : options.homes) {
    for (int i = 0; i < 2; ++i) keys_.push_back(home.prefix + std::to_string(i));
  }
}

void StrongClients::Start(uint64_t end) {
  end_ = end;
  if (keys_.empty()) return;
  if (options_.strong_per_s > 0) {
    for (int client = 0; client < sim_.size(); ++client) Next(client);
  }
  Moves();
}

void StrongClients::Next(int client) {
  const uint64_t at = sim_.now() + Exponential(sim_, 1000.0 / options_.strong_per_s);
  if (at >= end_) return;
  sim_.At(at, [this, client] { Invoke(client); });
}

void StrongClients::Invoke(int client) {
  if (!sim_.up(client)) {  // its region is down: the client waits
    Next(client);
    return;
  }
  const auto pick = [this](uint64_t n) { return sim_.random()() % n; };
  Op op;
  op.client = client;
  op.key = keys_[pick(keys_.size())];
  op.invoked = static_cast<int64_t>(sim_.now());
  const auto known = seen_[client].find(op.key);
  const std::optional<std::string> version =
      known == seen_[client].end() ? std::nullopt : std::optional<std::string>(known->second);
  const double r = sim_.Unit();
  if (r < 0.4) {
    op.read = true;
    op.input = DocumentModel::Read();
  } else if (r < 0.86) {
    // A PUT of a value no other write has: versions are the documents' digests.
    const std::string tag = sim_.NameAt(client) + "-" + std::to_string(++next_value_);
    const std::string n = std::to_string(pick(100));
    core::Operation put;
    put.kind = core::OpKind::kReplace;
    put.fields.push_back({"n", n});
    put.fields.push_back({"w", "\"" + tag + "\""});
    op.expected = "{\"n\":" + n + ",\"w\":\"" + tag + "\"}";
    op.write = node::WriteRequest{op.key, std::move(put)};
    if (r < 0.65 && version) {
      op.write.condition = core::Condition{op.key, *version, std::nullopt};
      op.input = DocumentModel::WriteIfMatch(op.expected, *version);
    } else if (r >= 0.78 && !version) {
      op.write.condition = core::Condition{op.key, std::nullopt, false};
      op.input = DocumentModel::WriteIfNoneMatch(op.expected);
    } else {
      op.input = DocumentModel::Write(op.expected);
    }
  } else {
    core::Operation del;
    del.kind = core::OpKind::kDelete;
    op.write = node::WriteRequest{op.key, std::move(del)};
    if (r < 0.94 && version) {
      op.write.condition = core::Condition{op.key, *version, std::nullopt};
      op.input = DocumentModel::DeleteIfMatch(*version);
    } else {
      op.input = DocumentModel::Delete();
    }
  }
  op.write.strong = true;
  ops_.push_back(std::move(op));
  Attempt(ops_.size() - 1);
}

void StrongClients::Attempt(size_t id) {
  ++ops_[id].attempts;
  // The client's own region is a millisecond away.
  sim_.At(sim_.now() + 1, [this, id] { Route(id); });
}

bool StrongClients::HomeUp(const Op& op) const {
  return sim_.up(op.h) && sim_.incarnation(op.h) == op.h_incarnation;
}

// In the client's region: routed by its home table (api::RouteStrong).
void StrongClients::Route(size_t id) {
  Op& op = ops_[id];
  const int x = op.client;
  node::HomeTable* table = sim_.homes(x);
  if (table == nullptr) {  // the region is down: the connection is refused
    Finish(id, Reply{Reply::Kind::kRetry, {}, sim_.NameAt(x) + " is down"});
    return;
  }
  const std::optional<node::Home> home = table->HomeOf(op.key);
  op.h = home ? sim_.IndexOf(table->NameOf(home->region)) : -1;
  if (op.h < 0) {
    Finish(id, Reply{Reply::Kind::kFailed, {}, "no home"});
    return;
  }
  op.x_incarnation = sim_.incarnation(x);
  op.replied = false;
  const int h = op.h;
  sim_.Trace(sim_.NameAt(x) + ": strong " + Describe(op) + ", to " + sim_.NameAt(h));
  if (h == x) {
    op.h_incarnation = op.x_incarnation;
    Serve(id);
    return;
  }
  // Forwarded (api::ForwardStrong), which gives up after its timeout: the client then does not
  // know whether a write was applied.
  const int attempt = op.attempts;
  sim_.At(sim_.now() + kTimeoutMs, [this, id, attempt] {
    if (ops_[id].attempts == attempt && !ops_[id].replied) {
      AtRegion(id, Reply{Reply::Kind::kUnknown, {}, "home_unavailable: no answer"});
    }
  });
  const auto lost = [this, id] {
    Op& lost_op = ops_[id];
    if (!lost_op.resolved) lost_op.resolved = static_cast<int64_t>(sim_.now());  // never there
  };
  if (sim_.Partitioned(x, h)) {
    lost();
    return;
  }
  sim_.At(sim_.now() + sim_.MessageLatencyMs(x, h), [this, id, x, h, lost] {
    Op& at = ops_[id];
    if (sim_.Partitioned(x, h)) {
      lost();
    } else if (!sim_.up(h)) {
      // Nothing listens there: the connection is refused and nothing was sent.
      at.resolved = static_cast<int64_t>(sim_.now());
      AtRegion(id, Reply{Reply::Kind::kRetry, {}, "home " + sim_.NameAt(h) + " is down"});
    } else {
      at.h_incarnation = sim_.incarnation(h);
      Serve(id);
    }
  });
}

// At the home, as the HTTP layer runs a strong request.
void StrongClients::Serve(size_t id) {
  Op& op = ops_[id];
  const int h = op.h;
  if (op.read) {
    // The home's rule for strong reads (the HTTP and gRPC front ends ask it too).
    op.resolved = static_cast<int64_t>(sim_.now());
    if (Status readable = sim_.region(h)->CheckStrongRead(op.key); !readable.ok()) {
      Back(id, Reply{Reply::Kind::kRetry, {}, readable.message()});
      return;
    }
    const std::optional<std::string> view = sim_.Get(h, op.key);
    Reply reply{Reply::Kind::kAnswer, DocumentModel::NotFound(), {}};
    if (view) reply.output = DocumentModel::Found(*view, VersionOf(op.key, *view));
    Back(id, std::move(reply));
    return;
  }
  // A write: still the home by its table (api::RouteStrong; a forwarded request is not
  // forwarded again), then the commit path, which checks again atomically with the write.
  node::HomeTable* table = sim_.homes(h);
  const std::optional<node::Home> home = table->HomeOf(op.key);
  if (!home || sim_.IndexOf(table->NameOf(home->region)) != h) {
    op.resolved = static_cast<int64_t>(sim_.now());
    Back(id, Reply{Reply::Kind::kRetry, {}, "not the home"});
    return;
  }
  sim_.Request(h, op.write,
               [this, id](const Result<node::Receipt>& receipt, std::vector<node::Change> changes) {
                 Committed(id, receipt, changes);
               });
}

void StrongClients::Committed(size_t id, const Result<node::Receipt>& receipt,
                              const std::vector<node::Change>& changes) {
  Op& op = ops_[id];
  op.resolved = static_cast<int64_t>(sim_.now());
  if (!receipt.ok()) {
    switch (receipt.status().code()) {
      case StatusCode::kPreconditionFailed:
        Back(id, Reply{Reply::Kind::kAnswer, DocumentModel::PreconditionFailed(), {}});
        return;
      case StatusCode::kNotHome:
      case StatusCode::kRebuilding:
        Back(id, Reply{Reply::Kind::kRetry, {}, receipt.status().message()});
        return;
      default:
        if (!HomeUp(op)) {
          // The home crashed with the write queued: the connection resets.
          AtRegion(id, Reply{Reply::Kind::kUnknown, {}, "the home crashed before answering"});
          return;
        }
        // 503 (the home's copy is marked damaged): nothing applied, the client retries.
        Back(id, Reply{receipt.status().code() == StatusCode::kUnavailable ? Reply::Kind::kRetry
                                                                           : Reply::Kind::kFailed,
                       {},
                       receipt.status().message()});
        return;
    }
  }
  Reply reply{Reply::Kind::kAnswer, DocumentModel::Done(), {}};
  if (!receipt->version.empty()) reply.output.version = receipt->version;
  for (const node::Change& change : changes) {
    if (!op.expected.empty() && change.dot == receipt->dot && change.doc != op.expected) {
      // A PUT renders its own fields only, unless the home lacked a write it should have seen.
      sim_.Trace(sim_.NameAt(op.h) + ": strong PUT " + op.key + " renders " +
                 change.doc.value_or("(absent)") + ", not " + op.expected);
    }
  }
  if (options_.strong_durability > 0) {
    WaitDurable(id, receipt->dot, std::move(reply), sim_.now() + kTimeoutMs);
    return;
  }
  Back(id, std::move(reply));
}

void StrongClients::WaitDurable(size_t id, core::Dot dot, Reply reply, uint64_t until) {
  Op& op = ops_[id];
  if (!HomeUp(op)) {
    AtRegion(id, Reply{Reply::Kind::kUnknown, {}, "the home crashed before answering"});
  } else if (sim_.RegionsHolding(op.h, dot) >= static_cast<size_t>(options_.strong_durability)) {
    Back(id, std::move(reply));
  } else if (sim_.now() >= until) {
    // 504 durability_timeout: applied at the home, but it may yet be lost with its store.
    Back(id, Reply{Reply::Kind::kUnknown, {}, "durability_timeout"});
  } else {
    sim_.At(sim_.now() + kDurabilityPollMs,
            [this, id, dot, reply, until] { WaitDurable(id, dot, reply, until); });
  }
}

void StrongClients::Back(size_t id, Reply reply) {
  const Op& op = ops_[id];
  const int x = op.client;
  const int h = op.h;
  if (h == x) {
    AtRegion(id, std::move(reply));
    return;
  }
  if (sim_.Partitioned(h, x)) return;  // lost: the forward times out
  sim_.At(sim_.now() + sim_.MessageLatencyMs(h, x), [this, id, x, h, reply = std::move(reply)] {
    if (!sim_.Partitioned(h, x)) AtRegion(id, reply);
  });
}

// In the client's region, which answers the client a millisecond away, unless it crashed since
// the client asked: the client's connection reset then, and it does not know the outcome.
void StrongClients::AtRegion(size_t id, Reply reply) {
  Op& op = ops_[id];
  if (op.replied) return;  // gave up on the home already
  op.replied = true;
  if (!sim_.up(op.client) || sim_.incarnation(op.client) != op.x_incarnation) {
    reply = Reply{Reply::Kind::kUnknown, {}, sim_.NameAt(op.client) + " crashed before answering"};
  }
  sim_.At(sim_.now() + 1, [this, id, reply = std::move(reply)] { Finish(id, reply); });
}

void StrongClients::Finish(size_t id, const Reply& reply) {
  Op& op = ops_[id];
  const std::string& name = sim_.NameAt(op.client);
  switch (reply.kind) {
    case Reply::Kind::kAnswer: {
      op.state = State::kAnswered;
      op.output = reply.output;
      op.completed = static_cast<int64_t>(sim_.now());
      std::map<std::string, std::string>& seen = seen_[op.client];
      if (op.read) {
        if (op.output.exists) {
          seen[op.key] = *op.output.version;
        } else {
          seen.erase(op.key);
        }
      } else if (!op.output.precondition_failed) {
        if (op.output.version) {
          seen[op.key] = *op.output.version;
        } else {
          seen.erase(op.key);
        }
      }
      sim_.Trace(name + ": strong " + Describe(op) + " answered");
      break;
    }
    case Reply::Kind::kRetry:
      if (op.attempts < kAttempts) {
        sim_.Trace(name + ": strong " + Describe(op) + " refused (" + reply.why + "): retry");
        sim_.At(sim_.now() + kRetryMs + sim_.random()() % (3 * kRetryMs),
                [this, id] { Attempt(id); });
        return;
      }
      op.state = State::kFailed;
      sim_.Trace(name + ": strong " + Describe(op) + " refused (" + reply.why + "): gave up");
      break;
    case Reply::Kind::kUnknown:
      op.state = op.read ? State::kFailed : State::kPending;
      sim_.Trace(name + ": strong " + Describe(op) + ": " + reply.why);
      break;
    case Reply::Kind::kFailed:
      op.state = State::kFailed;
      sim_.Trace(name + ": strong " + Describe(op) + " failed: " + reply.why);
      break;
  }
  Next(op.client);
}

// "h/0 write "{...}" if-match V", and its answer once it has one ("-> ok @W").
std::string StrongClients::Describe(const Op& op) const {
  const DocumentModel model;
  if (op.state == State::kAnswered) {
    return op.key + " " + model.DescribeOperation(op.input, &op.output);
  }
  std::string text = model.DescribeOperation(op.input, nullptr);
  text.resize(text.rfind(" -> "));
  return op.key + " " + text;
}

// --- planned home moves -----------------------------------------------------------------------

void StrongClients::Moves() {
  if (options_.home_moves_per_min <= 0) return;
  const uint64_t at = sim_.now() + Exponential(sim_, 60'000.0 / options_.home_moves_per_min);
  if (at >= end_) return;
  sim_.At(at, [this] {
    Move();
    Moves();
  });
}

// POST /v1/homes/move at a random region: forwarded to the prefix's home as that region knows it,
// which writes the record (api::PlanHomeMove, node::HomeMoveWrite) if it is still the home.
void StrongClients::Move() {
  const auto pick = [this](uint64_t n) { return sim_.random()() % n; };
  const std::string prefix = options_.homes[pick(options_.homes.size())].prefix;
  const int x = static_cast<int>(pick(static_cast<uint64_t>(sim_.size())));
  node::HomeTable* table = sim_.homes(x);
  if (table == nullptr) return;
  const std::optional<node::Home> home = table->Find(prefix);
  const int h = home ? sim_.IndexOf(table->NameOf(home->region)) : -1;
  if (h < 0) return;
  int to = static_cast<int>(pick(static_cast<uint64_t>(sim_.size() - 1)));
  if (to >= h) ++to;
  if (!sim_.member(to)) return;
  const std::string target = sim_.NameAt(to);
  sim_.Trace(sim_.NameAt(x) + ": move the home of " + prefix + " to " + target + " (at " +
             sim_.NameAt(h) + ")");
  if (sim_.Partitioned(x, h)) return;
  sim_.At(sim_.now() + sim_.MessageLatencyMs(x, h),
          [this, prefix, h, target] { MoveAt(h, prefix, target); });
}

void StrongClients::MoveAt(int h, const std::string& prefix, const std::string& target) {
  node::HomeTable* homes = sim_.homes(h);
  if (homes == nullptr) return;
  const std::optional<node::Home> current = homes->Find(prefix);
  if (!current || homes->NameOf(current->region) != sim_.NameAt(h)) {
    sim_.Trace(sim_.NameAt(h) + ": not the home of " + prefix + ": no move");
    return;
  }
  const node::Home next{prefix, *homes->IdOf(target), current->epoch + 1, false};
  sim_.Request(
      h, node::HomeMoveWrite(*homes, next),
      [this, h, prefix, target](const Result<node::Receipt>& receipt, std::vector<node::Change>) {
        if (receipt.ok()) ++moves_;
        sim_.Trace(sim_.NameAt(h) + ": home of " + prefix + " to " + target + ": " +
                   (receipt.ok() ? "moved" : receipt.status().message()));
      });
}

bool StrongClients::MoveHomesFrom(int index) {
  node::HomeTable* table = sim_.homes(index);
  if (table == nullptr) return false;
  bool moved = false;
  for (const node::Home& home : options_.homes) {
    const std::optional<node::Home> current = table->Find(home.prefix);
    if (!current || table->NameOf(current->region) != sim_.NameAt(index)) continue;
    const int to = (index + 1) % sim_.size();
    sim_.Trace("the operator moves the home of " + home.prefix + " off " + sim_.NameAt(index));
    MoveAt(index, home.prefix, sim_.NameAt(to));
    moved = true;
  }
  return moved;
}

// --- the check --------------------------------------------------------------------------------

uint64_t StrongClients::answered() const {
  return static_cast<uint64_t>(std::count_if(
      ops_.begin(), ops_.end(), [](const Op& op) { return op.state == State::kAnswered; }));
}

uint64_t StrongClients::pending() const {
  return static_cast<uint64_t>(std::count_if(
      ops_.begin(), ops_.end(), [](const Op& op) { return op.state == State::kPending; }));
}

std::vector<std::string> StrongClients::Check() {
  std::map<std::string, std::vector<DocumentOperation>> histories;
  for (const Op& op : ops_) {
    DocumentOperation recorded;
    recorded.client = op.client;
    recorded.invoked = op.invoked;
    recorded.input = op.input;
    if (op.state == State::kAnswered) {
      recorded.completed = op.completed;
      recorded.output = op.output;
    } else if (!op.read && (op.state == State::kPending || op.state == State::kInFlight)) {
      recorded.completed = op.invoked;
      // In flight still (a retry after the end): it may take effect at any time.
      if (op.state == State::kPending) recorded.deadline = op.resolved;
    } else {
      continue;  // no answer to a read, or refused with nothing applied
    }
    histories[op.key].push_back(std::move(recorded));
  }
  std::vector<std::string> failures;
  std::string clients;
  for (int i = 0; i < sim_.size(); ++i) {
    clients += (i == 0 ? "" : ", ") + std::to_string(i) + " in " + sim_.NameAt(i);
  }
  for (const auto& [key, history] : histories) {
    CheckOptions options;
    options.max_steps = 2'000'000;
    const CheckResult result = CheckLinearizability(MakeDocumentModel(history), history, options);
    sim_.Trace("strong operations on " + key + ": " + std::to_string(history.size()) + " ops, " +
               LinearizabilityName(result.verdict) + " (" + std::to_string(result.steps) +
               " steps)");
    if (result.verdict == Linearizability::kUnknown) ++unknown_;
    if (result.verdict != Linearizability::kNotLinearizable) continue;
    std::string explanation;
    for (size_t start = 0; start < result.explanation.size();) {
      size_t end = result.explanation.find('\n', start);
      if (end == std::string::npos) end = result.explanation.size();
      explanation += "\n    " + result.explanation.substr(start, end - start);
      start = end + 1;
    }
    failures.push_back("the strong operations on " + key +
                       " are not linearizable (clients: " + clients + "):" + explanation);
  }
  return failures;
}

// --- transactions -----------------------------------------------------------------------------

TransactionClients::TransactionClients(Simulation& sim, const Options& options)
    : sim_(sim), options_(options) {}

void TransactionClients::Start(uint64_t end) {
  end_ = end;
  if (options_.txns_per_s <= 0) return;
  for (int client = 0; client < sim_.size(); ++client) Next(client);
}

void TransactionClients::Next(int client) {
  const uint64_t at = sim_.now() + Exponential(sim_, 1000.0 / options_.txns_per_s);
  if (at >= end_) return;
  sim_.At(at, [this, client] {
    if (!sim_.up(client)) {
      Next(client);
      return;
    }
    node::WriteRequest write;
    write.txn = std::make_shared<const core::Transaction>(Random(client));
    sim_.Request(
        client, std::move(write),
        [this, client](const Result<node::Receipt>&, std::vector<node::Change>) { Next(client); });
  });
}

// Over the "k/" documents the other writes use too, and two of their own.
core::Transaction TransactionClients::Random(int client) {
  constexpr int kKeys = 6;
  const auto pick = [this](uint64_t n) { return sim_.random()() % n; };
  const auto key = [&](uint64_t i) { return std::string(kWatchPrefix) + std::to_string(i); };
  core::Transaction txn;
  const uint64_t conditions = pick(3);
  for (uint64_t i = 0; i < conditions; ++i) {
    core::Condition condition;
    condition.key = key(pick(kKeys));
    const double r = sim_.Unit();
    const std::optional<std::string> view = sim_.Get(client, condition.key);
    if (r < 0.5 && view) {
      // The version this region shows: it holds unless a write commits first.
      condition.version = VersionOf(condition.key, *view);
    } else if (r < 0.6) {
      condition.version = "0123456789abcdef";  // a version no document has
    } else {
      condition.exists = sim_.Unit() < 0.5;
    }
    txn.conditions.push_back(std::move(condition));
  }
  const auto branch = [&](uint64_t count) {
    std::vector<core::KeyedOperation> ops;
    std::vector<uint64_t> chosen;
    while (chosen.size() < count) {
      const uint64_t k = pick(kKeys);
      if (std::find(chosen.begin(), chosen.end(), k) == chosen.end()) chosen.push_back(k);
    }
    for (uint64_t k : chosen) {
      core::KeyedOperation op;
      op.key = key(k);
      const std::string tag =
          "\"" + sim_.NameAt(client) + "-t" + std::to_string(++next_value_) + "\"";
      const double r = sim_.Unit();
      if (r < 0.4) {
        op.op.kind = core::OpKind::kSet;
        op.op.fields.push_back({"t", tag});
      } else if (r < 0.6) {
        op.op.kind = core::OpKind::kReplace;
        op.op.fields.push_back({"a", std::to_string(pick(1000))});
        op.op.fields.push_back({"t", tag});
      } else if (r < 0.9) {
        op.op.kind = core::OpKind::kIncrement;
        op.op.counters.push_back({"b", static_cast<int64_t>(pick(9)) - 2});
      } else {
        op.op.kind = core::OpKind::kDelete;
      }
      ops.push_back(std::move(op));
    }
    return ops;
  };
  txn.then_ops = branch(2 + pick(3));
  txn.else_ops = branch(pick(4));
  return txn;
}

}  // namespace meridian::sim
