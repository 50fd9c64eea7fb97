// Deterministic mutation test of the .dlab reader: thousands of corruptions of valid
// files (bit flips, byte overwrites with boundary values, insertions, deletions,
// truncations, section-table edits), each fed to the reader both with checksums fixed
// up (to reach the structural checks) and as is. Every one must be accepted or refused
// with a FormatError; any crash, hang or other exception fails the test. Under the
// asan preset this also proves the reader touches no memory it should not.
#include <gtest/gtest.h>

#include <random>

#include "../support/sample_programs.hpp"
#include "dlab_property.hpp"

using namespace dla;
using namespace dla::testing;

namespace {

constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x40, 0x08, 0x0F};

std::vector<std::uint8_t> mutate(std::vector<std::uint8_t> f, std::mt19937_64& rng) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !f.empty(); ++e) {
    const std::size_t at = rng() % f.size();
    switch (rng() % 7) {
      case 0: f[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
      case 1: f[at] = kInteresting[rng() % sizeof(kInteresting)]; break;
      case 2: f.insert(f.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng())); break;
      case 3: f.erase(f.begin() + static_cast<std::ptrdiff_t>(at)); break;
      case 4: f.resize(at); break;
      case 5: {  // overwrite a 4- or 8-byte little-endian integer with a boundary value
        const std::uint64_t values[] = {0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, ~0ULL, f.size(), f.size() + 1};
        const std::uint64_t v = values[rng() % 8];
        const int n = (rng() & 1) ? 4 : 8;
        for (int i = 0; i < n && at + static_cast<std::size_t>(i) < f.size(); ++i) {
          f[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
        }
        break;
      }
      case 6: {  // an edit inside the section table, where the reader's trust is tested
        if (f.size() > 64 + 32) {
          const std::size_t t = 64 + rng() % 32 * (1 + rng() % 4);
          if (t < f.size()) f[t] = static_cast<std::uint8_t>(rng());
        }
        break;
      }
    }
  }
  return f;
}

}  // namespace

TEST(DlabMutation, ThousandsOfCorruptionsAreAcceptedOrRefusedCleanly) {
  const std::vector<std::vector<std::uint8_t>> seeds = {
      serialize_program(sample_program()), serialize_program(minimal_program()),
      serialize_program(sample_program(HwConfig::preset("small")))};
  std::mt19937_64 rng(0xD1AB);
  int refused = 0, accepted = 0;
  constexpr int kMutations = 20000;
  for (int n = 0; n < kMutations; ++n) {
    auto f = mutate(seeds[static_cast<std::size_t>(n) % seeds.size()], rng);
    if (n % 2 == 0) fix_checksums(f);
    for (const bool verify : {true, false}) {
      const auto outcome = check_dlab_input(f.data(), f.size(), verify);
      (outcome == DlabOutcome::kRefused ? refused : accepted)++;
    }
  }
  // Most corruptions must be caught; some (e.g. a changed constant byte with fixed-up
  // checksums) are legitimately still valid programs.
  EXPECT_GT(refused, kMutations);
  EXPECT_GT(accepted, 0);
  std::printf("mutations: %d, parses refused: %d, accepted: %d\n", kMutations, refused, accepted);
}

TEST(DlabMutation, SeedsAreAccepted) {
  const auto f = serialize_program(sample_program());
  EXPECT_EQ(check_dlab_input(f.data(), f.size(), true), DlabOutcome::kAccepted);
}
