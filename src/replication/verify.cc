#include "replication/verify.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/check.h"
#include "core/digest_tree.h"

namespace meridian::replication {

using core::DigestTree;

std::string_view VerifyStateName(VerifyResult::State state) {
  switch (state) {
    case VerifyResult::State::kIdentical:
      return "identical";
    case VerifyResult::State::kDiffering:
      return "differing";
    case VerifyResult::State::kUnknown:
      break;
  }
  return "unknown";
}

void Verifier::Ready::Join(Ready other) {
  for (auto& key : other.watch) watch.push_back(std::move(key));
  for (auto& request : other.requests) requests.push_back(std::move(request));
  for (auto& repair : other.repairs) repairs.push_back(std::move(repair));
  for (auto& key : other.unwatch) unwatch.push_back(std::move(key));
  for (auto& result : other.finished) finished.push_back(std::move(result));
}

Verifier::Verifier(VerifyOptions options, std::vector<core::RegionId> peers, uint64_t now_ms)
    : options_(options) {
  for (core::RegionId peer : peers) {
    // The first comparisons are spread over one interval, not all at once.
    peers_[peer].due_ms =
        options_.interval_ms == 0 ? 0 : now_ms + options_.interval_ms / (1 + peers_.size());
  }
}

Verifier::Ready Verifier::Start(core::RegionId peer, uint64_t now_ms) {
  Ready ready;
  for (auto& [id, comparison] : peers_) {
    if ((peer == 0 || peer == id) && comparison.phase == Phase::kIdle) {
      Begin(id, comparison, now_ms, &ready);
    }
  }
  return ready;
}

void Verifier::Begin(core::RegionId peer, Comparison& comparison, uint64_t now_ms, Ready* ready) {
  comparison.result = VerifyResult{};
  comparison.result.peer = peer;
  comparison.result.started_ms = now_ms;
  comparison.keys.clear();
  comparison.next_key = 0;
  comparison.page.clear();
  comparison.phase = Phase::kTree;
  comparison.level = 0;
  comparison.nodes = {0};
  AskTree(peer, comparison, ready);
}

void Verifier::AskTree(core::RegionId peer, Comparison& comparison, Ready* ready) {
  Ready::Request request{peer, {}};
  if (comparison.phase == Phase::kTree) {
    request.message.set_level(comparison.level);
    for (uint32_t node : comparison.nodes) request.message.add_nodes(node);
  } else {
    for (uint32_t bucket : comparison.buckets) request.message.add_buckets(bucket);
  }
  comparison.outstanding = true;
  ready->requests.push_back(std::move(request));
}

Verifier::Ready Verifier::Tick(uint64_t now_ms, const core::VersionVector& applied) {
  Ready ready;
  for (auto& [peer, comparison] : peers_) {
    switch (comparison.phase) {
      case Phase::kIdle:
        if (options_.interval_ms != 0 && now_ms >= comparison.due_ms) {
          Begin(peer, comparison, now_ms, &ready);
        }
        break;
      case Phase::kWatching:
        // The page has been watched since the last call: what this region holds of it from now
        // on is noted, and the peer must have applied at least this.
        comparison.asked_at = applied;
        comparison.page_since_ms = now_ms;
        comparison.phase = Phase::kStates;
        AskStates(peer, comparison, &ready);
        break;
      case Phase::kStates:
        if (comparison.outstanding || now_ms < comparison.retry_at_ms) break;
        if (now_ms >= comparison.page_since_ms + options_.align_timeout_ms) {
          Defer(comparison, &ready);
          NextPage(peer, comparison, applied, now_ms, &ready);
        } else {
          AskStates(peer, comparison, &ready);
        }
        break;
      case Phase::kAligning:
        Align(peer, comparison, applied, now_ms, &ready);
        break;
      default:
        break;
    }
  }
  return ready;
}

void Verifier::AskStates(core::RegionId peer, Comparison& comparison, Ready* ready) {
  Ready::Request request{peer, {}};
  for (const std::string& key : comparison.page) request.message.add_keys(key);
  comparison.outstanding = true;
  ready->requests.push_back(std::move(request));
}

void Verifier::Defer(Comparison& comparison, Ready* ready) {
  comparison.result.in_flight += comparison.page.size();
  for (std::string& key : comparison.page) ready->unwatch.push_back(std::move(key));
  comparison.page.clear();
}

void Verifier::NextPage(core::RegionId peer, Comparison& comparison,
                        const core::VersionVector& applied, uint64_t now_ms, Ready* ready) {
  (void)applied;  // the page's frontier is noted at the next Tick, once it is watched
  if (comparison.next_key >= comparison.keys.size()) {
    Finish(peer, comparison, {}, now_ms, ready);
    return;
  }
  const size_t end =
      std::min(comparison.keys.size(), comparison.next_key + options_.keys_per_request);
  comparison.page.assign(comparison.keys.begin() + comparison.next_key,
                         comparison.keys.begin() + end);
  comparison.next_key = end;
  ready->watch.insert(ready->watch.end(), comparison.page.begin(), comparison.page.end());
  comparison.phase = Phase::kWatching;
}

void Verifier::Align(core::RegionId peer, Comparison& comparison,
                     const core::VersionVector& applied, uint64_t now_ms, Ready* ready) {
  if (applied.Dominates(comparison.their_applied)) {
    comparison.phase = Phase::kRepairing;
    ready->repairs.push_back({peer, std::move(comparison.states)});
    comparison.states.Clear();
  } else if (now_ms >= comparison.page_since_ms + options_.align_timeout_ms) {
    Defer(comparison, ready);
    NextPage(peer, comparison, applied, now_ms, ready);
  }
}

Verifier::Ready Verifier::Answered(core::RegionId peer, const wire::VerifyReply& reply,
                                   size_t bytes, VerifyLocal& local,
                                   const core::VersionVector& applied, uint64_t now_ms) {
  Ready ready;
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.outstanding) return ready;
  Comparison& comparison = it->second;
  comparison.outstanding = false;
  comparison.result.round_trips += 1;
  comparison.result.bytes += bytes;
  switch (comparison.phase) {
    case Phase::kTree: {
      const size_t expected = comparison.nodes.size() * DigestTree::kFanout;
      if (static_cast<size_t>(reply.hashes_size()) != expected) {
        Finish(peer, comparison,
               "malformed answer: " + std::to_string(reply.hashes_size()) + " hashes for " +
                   std::to_string(comparison.nodes.size()) + " nodes",
               now_ms, &ready);
        break;
      }
      const std::vector<uint64_t> mine = local.TreeChildren(comparison.level, comparison.nodes);
      MERIDIAN_CHECK(mine.size() == expected);
      std::vector<uint32_t> differing;
      for (size_t i = 0; i < expected; ++i) {
        if (mine[i] != reply.hashes(static_cast<int>(i))) {
          differing.push_back(comparison.nodes[i / DigestTree::kFanout] * DigestTree::kFanout +
                              static_cast<uint32_t>(i % DigestTree::kFanout));
        }
      }
      if (differing.empty()) {
        // The trees agree; documents marked damaged here are compared all the same.
        comparison.keys = local.Damaged(options_.keys_max);
        comparison.result.candidates = comparison.keys.size();
        comparison.next_key = 0;
        NextPage(peer, comparison, applied, now_ms, &ready);
        break;
      }
      ++comparison.level;
      if (comparison.level == DigestTree::kLeafLevel) {
        comparison.result.buckets_differing = differing.size();
        if (differing.size() > options_.buckets_max) {
          differing.resize(options_.buckets_max);
          comparison.result.truncated = true;
        }
        comparison.phase = Phase::kBuckets;
        comparison.buckets = std::move(differing);
      } else {
        comparison.nodes = std::move(differing);
      }
      AskTree(peer, comparison, &ready);
      break;
    }
    case Phase::kBuckets: {
      if (static_cast<size_t>(reply.bucket_sizes_size()) != comparison.buckets.size() ||
          reply.entry_keys_size() != reply.entry_digests_size()) {
        Finish(peer, comparison, "malformed answer: bucket entries", now_ms, &ready);
        break;
      }
      int entry = 0;
      std::vector<std::string> candidates;
      for (size_t b = 0; b < comparison.buckets.size(); ++b) {
        const uint32_t size = reply.bucket_sizes(static_cast<int>(b));
        if (size > static_cast<uint32_t>(reply.entry_keys_size() - entry)) {
          Finish(peer, comparison, "malformed answer: bucket sizes", now_ms, &ready);
          return ready;
        }
        std::map<std::string, uint64_t, std::less<>> theirs;
        for (uint32_t e = 0; e < size; ++e, ++entry) {
          theirs.emplace(reply.entry_keys(entry), reply.entry_digests(entry));
        }
        Status status =
            local.BucketEntries(comparison.buckets[b], [&](std::string_view key, uint64_t digest) {
              auto found = theirs.find(key);
              if (found == theirs.end()) {
                candidates.emplace_back(key);
              } else {
                if (found->second != digest) candidates.emplace_back(key);
                theirs.erase(found);
              }
            });
        if (!status.ok()) {
          Finish(peer, comparison, "reading the digest index: " + status.message(), now_ms, &ready);
          return ready;
        }
        for (auto& [key, digest] : theirs) candidates.push_back(key);
      }
      for (std::string& key : local.Damaged(options_.keys_max)) candidates.push_back(std::move(key));
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
      if (candidates.size() > options_.keys_max) {
        candidates.resize(options_.keys_max);
        comparison.result.truncated = true;
      }
      comparison.result.candidates = candidates.size();
      comparison.keys = std::move(candidates);
      comparison.next_key = 0;
      NextPage(peer, comparison, applied, now_ms, &ready);
      break;
    }
    case Phase::kStates: {
      if (static_cast<size_t>(reply.copies_size()) != comparison.page.size()) {
        Finish(peer, comparison, "malformed answer: states", now_ms, &ready);
        break;
      }
      auto theirs = core::VersionVector::Decode(reply.frontier());
      if (!theirs.ok() || !core::VersionVector::Decode(reply.folded()).ok()) {
        Finish(peer, comparison, "malformed answer: frontier", now_ms, &ready);
        break;
      }
      for (int i = 0; i < reply.copies_size(); ++i) {
        if (reply.copies(i).key() != comparison.page[static_cast<size_t>(i)]) {
          Finish(peer, comparison, "malformed answer: states out of order", now_ms, &ready);
          return ready;
        }
      }
      if (!theirs->Dominates(comparison.asked_at)) {
        // The peer has not applied all this region had when it watched the page: ask again.
        comparison.retry_at_ms = now_ms + options_.retry_ms;
        break;
      }
      comparison.their_applied = std::move(theirs).value();
      comparison.states = reply;
      comparison.phase = Phase::kAligning;
      Align(peer, comparison, applied, now_ms, &ready);
      break;
    }
    default:
      break;
  }
  return ready;
}

Verifier::Ready Verifier::Failed(core::RegionId peer, const std::string& why, uint64_t now_ms) {
  Ready ready;
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.outstanding) return ready;
  it->second.outstanding = false;
  Finish(peer, it->second, why.empty() ? "the peer did not answer" : why, now_ms, &ready);
  return ready;
}

Verifier::Ready Verifier::Repaired(core::RegionId peer, const Result<RepairCounts>& counts,
                                   const core::VersionVector& applied, uint64_t now_ms) {
  Ready ready;
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second.phase != Phase::kRepairing) return ready;
  Comparison& comparison = it->second;
  for (std::string& key : comparison.page) ready.unwatch.push_back(std::move(key));
  comparison.page.clear();
  if (!counts.ok()) {
    Finish(peer, comparison, "repair: " + counts.status().message(), now_ms, &ready);
    return ready;
  }
  comparison.result.in_flight += counts->equal + counts->deferred;
  comparison.result.repaired += counts->repaired;
  comparison.result.theirs += counts->theirs;
  NextPage(peer, comparison, applied, now_ms, &ready);
  return ready;
}

void Verifier::Finish(core::RegionId peer, Comparison& comparison, std::string error,
                      uint64_t now_ms, Ready* ready) {
  // A page still watched is released (not counted: it was not compared).
  for (std::string& key : comparison.page) ready->unwatch.push_back(std::move(key));
  comparison.page.clear();
  VerifyResult& result = comparison.result;
  result.peer = peer;
  result.finished_ms = now_ms;
  result.error = std::move(error);
  if (!result.error.empty()) {
    result.state = VerifyResult::State::kUnknown;
  } else if (result.repaired + result.theirs > 0 || result.truncated) {
    result.state = VerifyResult::State::kDiffering;
  } else {
    result.state = VerifyResult::State::kIdentical;
  }
  comparison.latest = result;
  ready->finished.push_back(result);
  comparison.phase = Phase::kIdle;
  comparison.outstanding = false;
  comparison.keys.clear();
  comparison.due_ms = options_.interval_ms == 0 ? UINT64_MAX : now_ms + options_.interval_ms;
}

bool Verifier::Busy(core::RegionId peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.phase != Phase::kIdle;
}

std::vector<VerifyResult> Verifier::Latest() const {
  std::vector<VerifyResult> latest;
  for (const auto& [peer, comparison] : peers_) {
    if (comparison.latest) latest.push_back(*comparison.latest);
  }
  return latest;
}

std::optional<VerifyResult> Verifier::Current(core::RegionId peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second.phase == Phase::kIdle) return std::nullopt;
  return it->second.result;
}

}  // namespace meridian::replication
