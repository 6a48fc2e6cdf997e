// A scripted showcase of the merge engine: three regions (us, eu, asia) write concurrently to the
// same inventory items while partitioned from each other, then exchange their events in different
// orders (with duplicates) and converge. Prints each region's view before and after, the
// conflicts found, and a digest per region that proves they agree.
//
// Runs entirely in memory with simulated clocks: `make demo` (or
// build/default/meridian-merge-demo).
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/document.h"
#include "core/replica.h"

namespace meridian::core {
namespace {

struct SimulatedClock : PhysicalClock {
  explicit SimulatedClock(uint64_t start) : now_ms(start) {}
  uint64_t now_ms;
  uint64_t NowMs() override { return now_ms; }
};

struct Region {
  std::string name;
  std::unique_ptr<SimulatedClock> clock;
  std::unique_ptr<Replica> replica;
  std::vector<Event> outbox;  // events this region wrote, in order
};

const std::map<RegionId, std::string>* g_names = nullptr;

std::string NameOf(const Dot& dot) {
  return g_names->at(dot.origin) + ":" + std::to_string(dot.seq);
}

Operation Set(std::vector<FieldValue> fields) {
  return Operation{OpKind::kSet, std::move(fields), {}};
}
Operation Incr(std::string field, int64_t delta) {
  return Operation{OpKind::kIncrement, {}, {{std::move(field), delta}}};
}

// {us:4, eu:4, asia:3}
std::string FrontierText(const VersionVector& frontier) {
  std::string text = "{";
  for (const VersionVector::Entry& entry : frontier.entries()) {
    if (text.size() > 1) text += ", ";
    text += g_names->at(entry.origin) + ":" + std::to_string(entry.seq);
  }
  return text + "}";
}

void Write(Region& region, const std::string& key, Operation op, const char* what) {
  region.clock->now_ms += 3;
  Result<Event> event = region.replica->Write(key, std::move(op));
  if (!event.ok()) {
    std::printf("  %-5s %-8s %-34s -> rejected: %s\n", region.name.c_str(), key.c_str(), what,
                event.status().ToString().c_str());
    return;
  }
  std::printf("  %-5s %-8s %-34s -> event %s\n", region.name.c_str(), key.c_str(), what,
              NameOf(event->dot).c_str());
  region.outbox.push_back(std::move(event).value());
}

void PrintViews(std::vector<Region>& regions, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    std::printf("  %s\n", key.c_str());
    for (Region& region : regions) {
      std::optional<std::string> doc = region.replica->Render(key);
      std::printf("    %-5s %s\n", region.name.c_str(), doc ? doc->c_str() : "(absent)");
    }
  }
}

int Run() {
  const std::map<RegionId, std::string> names = {{1, "us"}, {2, "eu"}, {3, "asia"}};
  g_names = &names;
  std::vector<Region> regions;
  uint64_t start = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  for (const auto& [id, name] : names) {
    Region region{name, std::make_unique<SimulatedClock>(start + id * 7), nullptr, {}};
    region.replica = std::make_unique<Replica>(id, region.clock.get());
    regions.push_back(std::move(region));
  }
  Region& us = regions[0];
  Region& eu = regions[1];
  Region& asia = regions[2];

  std::printf("Meridian merge engine demo: three regions, one inventory\n\n");
  std::printf("1. Every region creates sku-1 and sku-2 and shares them.\n");
  Write(us, "sku-1", Set({{"name", "\"teapot\""}, {"price", "30"}, {"stock", "10"}}),
        "set name/price/stock");
  Write(us, "sku-2", Set({{"name", "\"kettle\""}, {"stock", "5"}}), "set name/stock");
  for (Region& dst : regions) {
    if (&dst != &us)
      for (const Event& event : us.outbox) dst.replica->Receive(event);
  }

  std::printf("\n2. The regions are cut off from each other and keep taking writes:\n");
  Write(us, "sku-1", Set({{"stock", "100"}}), "restock to 100");
  Write(eu, "sku-1", Incr("stock", -1), "sold 1");
  Write(asia, "sku-1", Incr("stock", -2), "sold 2");
  Write(eu, "sku-1", Set({{"price", "32"}}), "price 32");
  Write(asia, "sku-1", Set({{"price", "29"}}), "price 29");
  Write(us, "sku-2", Operation{OpKind::kDelete, {}, {}}, "delete");
  Write(eu, "sku-2", Set({{"color", "\"red\""}}), "set color");
  Write(asia, "sku-3", Incr("stock", 7), "receive 7");
  Write(eu, "sku-3", Incr("stock", 3), "receive 3");

  const std::vector<std::string> keys = {"sku-1", "sku-2", "sku-3"};
  std::printf("\n   Each region's view while partitioned:\n");
  PrintViews(regions, keys);

  std::printf(
      "\n3. The partition heals. Every region receives the others' events in its own\n"
      "   order, some of them twice.\n");
  std::mt19937 random(42);
  for (Region& dst : regions) {
    std::vector<const Event*> deliveries;
    for (Region& src : regions) {
      if (&src == &dst) continue;
      for (const Event& event : src.outbox) deliveries.push_back(&event);
      deliveries.push_back(&src.outbox.back());  // a duplicate
    }
    // Shuffle everything, even each origin's own order: the replica buffers events that arrive
    // ahead of a gap and applies them once the gap fills.
    std::shuffle(deliveries.begin(), deliveries.end(), random);
    int applied = 0;
    int duplicates = 0;
    int buffered = 0;
    for (const Event* event : deliveries) {
      switch (dst.replica->Receive(*event)) {
        case ReceiveOutcome::kApplied:
          ++applied;
          break;
        case ReceiveOutcome::kDuplicate:
          ++duplicates;
          break;
        case ReceiveOutcome::kBuffered:
          ++buffered;
          break;
      }
    }
    std::printf(
        "   %-5s received %zu deliveries: %d applied at once, %d buffered until their\n"
        "         predecessors came, %d duplicates dropped\n",
        dst.name.c_str(), deliveries.size(), applied, buffered, duplicates);
  }

  std::printf("\n4. Converged views:\n");
  PrintViews(regions, keys);

  std::printf(
      "\n5. Conflicts recorded in us (each region records the conflicts its merges meet):\n");
  for (const Conflict& conflict : us.replica->TakeConflicts()) {
    std::printf("   us: %s.%s %s: winner %s=%s", conflict.key.c_str(), conflict.field.c_str(),
                std::string(ConflictKindName(conflict.kind)).c_str(),
                NameOf(conflict.winner.dot).c_str(), conflict.winner.value.c_str());
    for (const Sibling& loser : conflict.losers) {
      std::printf(", loser %s=%s", NameOf(loser.dot).c_str(), loser.value.c_str());
    }
    std::printf("\n");
  }

  std::printf("\n6. Proof of convergence (xxh3 digest of every rendered document, per region):\n");
  bool identical = true;
  uint64_t first = 0;
  for (Region& region : regions) {
    uint64_t combined = 0;
    for (const std::string& key : keys) {
      combined = combined * 1'000'003 ^ RenderedDigest(key, region.replica->Render(key));
    }
    if (&region == &regions.front()) first = combined;
    identical = identical && combined == first;
    std::printf("   %-5s frontier %-22s digest %016llx\n", region.name.c_str(),
                FrontierText(region.replica->frontier()).c_str(),
                static_cast<unsigned long long>(combined));
  }
  std::printf("\n   %s\n", identical ? "All regions are identical." : "REGIONS DIFFER");
  return identical ? 0 : 1;
}

}  // namespace
}  // namespace meridian::core

int main() {
  return meridian::core::Run();
}
