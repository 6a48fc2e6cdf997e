// Reseeding: what each chunk of a snapshot means to the receiving region — the key range of a
// page, the snapshot's frontier, fold bound and clock — and the refusal of a snapshot from a peer
// that sends neither fold bound nor clock.
#include "replication/reseed.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

wire::SnapshotChunk ChunkOf(uint64_t snapshot, const core::VersionVector& frontier,
                            const core::VersionVector& folded, uint64_t hlc, StatePage page,
                            bool done) {
  wire::SnapshotChunk chunk;
  chunk.set_snapshot_id(snapshot);
  chunk.set_frontier(frontier.Encode());
  chunk.set_folded(folded.Encode());
  chunk.set_hlc(hlc);
  chunk.set_documents(3);
  if (!page.empty()) {
    chunk.set_states(EncodeStatePage(page).bytes);
    chunk.set_count(static_cast<uint32_t>(page.size()));
    chunk.set_last_key(page.back().first);
  }
  chunk.set_done(done);
  return chunk;
}

TEST(Reseeding, EachPageCoversTheKeysAfterThePreviousAndTheLastGoesToTheEnd) {
  Reseeding reseed({2, 3}, 0, 0.0);
  core::RegionId peer = 0;
  (void)reseed.Ask(wire::SnapshotRequest(), &peer);
  EXPECT_EQ(peer, 2u);
  const core::VersionVector frontier{{2, 9}, {3, 4}};
  const core::VersionVector folded{{2, 5}};
  Reseeding::Step step =
      reseed.Chunk(ChunkOf(7, frontier, folded, 1234, {{"a", "x"}, {"b", "y"}}, false));
  ASSERT_TRUE(step.error.empty()) << step.error;
  EXPECT_TRUE(step.fresh);
  EXPECT_EQ(step.after, "");
  EXPECT_EQ(step.through, "b");
  EXPECT_EQ(step.applied, frontier);
  EXPECT_EQ(step.folded, folded);
  EXPECT_EQ(step.hlc, 1234u);
  reseed.Installed(step);
  EXPECT_FALSE(reseed.done());
  step = reseed.Chunk(ChunkOf(7, frontier, folded, 1234, {{"c", "z"}}, true));
  ASSERT_TRUE(step.error.empty()) << step.error;
  EXPECT_FALSE(step.fresh);
  EXPECT_EQ(step.after, "b");
  EXPECT_FALSE(step.through.has_value());
  reseed.Installed(step);
  EXPECT_TRUE(reseed.done());
  EXPECT_EQ(reseed.installed(), 3u);
}

// A peer of an older version sends neither its fold bound nor its clock: merging its states
// into a region that holds data could bring back what it folded away, and order a later write
// before what was merged. Its snapshot is refused; an empty deployment's (nothing covered) is not.
TEST(Reseeding, ASnapshotWithoutTheSendersClockIsRefused) {
  Reseeding reseed({2}, 0, 0.0);
  core::RegionId peer = 0;
  (void)reseed.Ask(wire::SnapshotRequest(), &peer);
  const Reseeding::Step old =
      reseed.Chunk(ChunkOf(7, core::VersionVector{{2, 9}}, {}, 0, {{"a", "x"}}, true));
  EXPECT_NE(old.error.find("older version"), std::string::npos) << old.error;
  (void)reseed.Failed(old.error);
  (void)reseed.Ask(wire::SnapshotRequest(), &peer);
  EXPECT_TRUE(reseed.Chunk(ChunkOf(8, {}, {}, 0, {}, true)).error.empty());
  // A fold bound beyond the frontier is refused too.
  (void)reseed.Ask(wire::SnapshotRequest(), &peer);
  const Reseeding::Step bad = reseed.Chunk(
      ChunkOf(9, core::VersionVector{{2, 3}}, core::VersionVector{{2, 4}}, 5, {}, true));
  EXPECT_FALSE(bad.error.empty());
}

}  // namespace
}  // namespace meridian::replication
