// Program file (.dlab) tests: round trip, the documented byte layout, and a clear
// refusal, naming what and where, for every kind of malformed file.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdio>
#include <fstream>

#include "../support/sample_programs.hpp"
#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"

using namespace dla;
using dla::testing::fix_checksums;
using dla::testing::sample_program;

namespace {

void expect_same(const Program& a, const Program& b) {
  EXPECT_EQ(a.hw_config_hash, b.hw_config_hash);
  EXPECT_EQ(a.dram_size, b.dram_size);
  EXPECT_EQ(a.instructions, b.instructions);
  EXPECT_EQ(a.constants, b.constants);
  EXPECT_EQ(a.tensors, b.tensors);
  EXPECT_EQ(a.debug, b.debug);
}

std::uint64_t get(const std::vector<std::uint8_t>& f, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | f[at + static_cast<std::size_t>(i)];
  return v;
}
void put(std::vector<std::uint8_t>& f, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) f[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// Offset of the section entry of `kind` in the table.
std::size_t entry_of(const std::vector<std::uint8_t>& f, SectionKind kind) {
  for (std::size_t i = 0; i < get(f, 32, 4); ++i) {
    const std::size_t e = 64 + i * 32;
    if (get(f, e, 4) == static_cast<std::uint32_t>(kind)) return e;
  }
  ADD_FAILURE() << "section not found";
  return 0;
}

/// Parses and expects a FormatError whose message contains `needle`; returns its offset.
std::uint64_t expect_refused(const std::vector<std::uint8_t>& f, const std::string& needle, ReadOptions o = {}) {
  try {
    parse_program(f.data(), f.size(), o);
    ADD_FAILURE() << "accepted a file that should fail with '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    return e.offset();
  }
  return 0;
}

}  // namespace

TEST(Crc32, MatchesTheStandardCheckValue) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()), 0xCBF43926u);
  EXPECT_EQ(crc32(nullptr, 0), 0u);
}

TEST(ProgramFile, RoundTripsEveryPart) {
  const Program p = sample_program();
  const auto bytes = serialize_program(p);
  const Program back = parse_program(bytes.data(), bytes.size());
  expect_same(p, back);
  EXPECT_EQ(back.sections.size(), 4u);
  ASSERT_NE(back.find_tensor("image"), nullptr);
  EXPECT_EQ(back.find_tensor("image")->shape, (std::vector<std::uint64_t>{1, 3, 8, 8}));
  EXPECT_EQ(back.find_tensor("nope"), nullptr);
}

TEST(ProgramFile, HeaderMatchesTheDocumentedLayout) {
  const Program p = sample_program(0x1122334455667788ULL);
  const auto f = serialize_program(p);
  const std::uint8_t magic[8] = {0x89, 'D', 'L', 'A', 'B', 0x0D, 0x0A, 0x1A};
  EXPECT_TRUE(std::equal(magic, magic + 8, f.begin()));
  EXPECT_EQ(get(f, 8, 4), 1u);                        // version
  EXPECT_EQ(get(f, 12, 4), 64u);                      // header size
  EXPECT_EQ(get(f, 16, 8), 0x1122334455667788ULL);    // config hash
  EXPECT_EQ(get(f, 24, 8), p.dram_size);
  EXPECT_EQ(get(f, 32, 4), 4u);                       // sections
  const std::size_t e = entry_of(f, SectionKind::kInstructions);
  EXPECT_EQ(get(f, e + 4, 4), p.instructions.size());
  EXPECT_EQ(get(f, e + 16, 8), p.instructions.size() * 16);
  // The first instruction's bytes are its encoding.
  std::uint8_t expect[16];
  isa::encode(p.instructions[0]).to_bytes(expect);
  EXPECT_TRUE(std::equal(expect, expect + 16, f.begin() + static_cast<std::ptrdiff_t>(get(f, e + 8, 8))));
}

TEST(ProgramFile, EveryTruncationIsRefused) {
  const auto f = serialize_program(sample_program());
  for (std::size_t len = 0; len < f.size(); ++len) {
    std::vector<std::uint8_t> cut(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_THROW(parse_program(cut.data(), cut.size()), FormatError) << "length " << len;
  }
}

TEST(ProgramFile, EverySingleByteCorruptionIsRefused) {
  const auto f = serialize_program(sample_program());
  for (std::size_t at = 0; at < f.size(); ++at) {
    auto bad = f;
    bad[at] ^= 0x5A;
    EXPECT_THROW(parse_program(bad.data(), bad.size()), FormatError) << "byte " << at;
  }
}

TEST(ProgramFile, CorruptedPayloadNamesTheChecksumAndSection) {
  auto f = serialize_program(sample_program());
  const std::size_t e = entry_of(f, SectionKind::kConstants);
  const std::size_t at = static_cast<std::size_t>(get(f, e + 8, 8)) + 3;
  f[at] ^= 1;
  const std::uint64_t offset = expect_refused(f, "section constants checksum mismatch");
  EXPECT_EQ(offset, get(f, e + 8, 8));
}

TEST(ProgramFile, BadMagicAndWrongVersionAreRefused) {
  auto f = serialize_program(sample_program());
  auto bad = f;
  bad[1] = 'X';
  expect_refused(bad, "bad magic");
  bad = f;
  put(bad, 8, 7, 4);
  fix_checksums(bad);
  EXPECT_EQ(expect_refused(bad, "unsupported format version 7"), 8u);
}

TEST(ProgramFile, WrongHardwareConfigIsRefusedNamingBothHashes) {
  const HwConfig small = HwConfig::preset("small");
  const HwConfig large = HwConfig::preset("large");
  const auto f = serialize_program(sample_program(small.identity_hash()));
  ReadOptions o;
  o.expected_config_hash = large.identity_hash();
  try {
    parse_program(f.data(), f.size(), o);
    FAIL();
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(hash_hex(small.identity_hash())), std::string::npos) << msg;
    EXPECT_NE(msg.find(hash_hex(large.identity_hash())), std::string::npos) << msg;
    EXPECT_EQ(e.offset(), 16u);
  }
  o.expected_config_hash = small.identity_hash();
  EXPECT_NO_THROW(parse_program(f.data(), f.size(), o));
}

TEST(ProgramFile, StructuralErrorsBehindValidChecksumsAreRefused) {
  const auto f = serialize_program(sample_program());
  auto mutate = [&](auto&& change) {
    auto g = f;
    change(g);
    fix_checksums(g);
    return g;
  };
  expect_refused(mutate([](auto& g) { put(g, 32, 0, 4); }), "section count 0");
  expect_refused(mutate([](auto& g) { put(g, 32, 1000, 4); }), "section count 1000");
  expect_refused(mutate([](auto& g) { put(g, 24, std::uint64_t{1} << 40, 8); }), "exceeds the limit");
  expect_refused(mutate([](auto& g) { put(g, 36, 1, 4); }), "unknown flags");
  expect_refused(mutate([](auto& g) { put(g, 50, 9, 1); }), "reserved header bytes");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kDebug), 9, 4); }), "unknown kind 9");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kDebug), 1, 4); }), "appears twice");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kTensors) + 8, 1u << 30, 8); }),
                 "outside the file");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kTensors) + 8, 0, 8); }), "outside the file");
  expect_refused(mutate([&](auto& g) {
                   const std::size_t c = entry_of(g, SectionKind::kConstants);
                   put(g, entry_of(g, SectionKind::kTensors) + 8, get(g, c + 8, 8) + 1, 8);
                 }),
                 "overlaps");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kTensors) + 4, 0xFFFFFFFF, 4); }),
                 "cannot fit");
  expect_refused(mutate([&](auto& g) { put(g, entry_of(g, SectionKind::kInstructions) + 4, 3, 4); }),
                 "is not 16 x item count");
  // A DRAM size smaller than a tensor's range.
  expect_refused(mutate([](auto& g) { put(g, 24, 100, 8); }), "exceeds the program's DRAM size");
}

TEST(ProgramFile, BadInstructionIsRefusedAtItsOffset) {
  auto f = serialize_program(sample_program());
  const std::size_t e = entry_of(f, SectionKind::kInstructions);
  const std::size_t third = static_cast<std::size_t>(get(f, e + 8, 8)) + 2 * 16;
  f[third] = 0x0E;  // opclass 14
  fix_checksums(f);
  EXPECT_EQ(expect_refused(f, "instruction 2: unknown instruction: opclass 14"), third);
}

TEST(ProgramFile, BadTensorRecordsAreRefused) {
  auto base = sample_program();
  auto bytes_of = [](Program p) { return serialize_program(p); };
  auto f = bytes_of(base);
  const std::size_t tensors = static_cast<std::size_t>(get(f, entry_of(f, SectionKind::kTensors) + 8, 8));
  auto g = f;
  g[tensors + 1] = 17;  // dtype
  fix_checksums(g);
  EXPECT_EQ(expect_refused(g, "unknown tensor dtype 17"), tensors + 1);
  g = f;
  g[tensors + 4] = 9;  // rank
  fix_checksums(g);
  expect_refused(g, "rank 9 exceeds 8");
  g = f;
  put(g, tensors + 16 + 4 * 8, 0, 2);  // name length of "image"
  fix_checksums(g);
  expect_refused(g, "name length 0");
  g = f;
  g[tensors + 16 + 4 * 8 + 2] = 0x07;  // a control character in the name
  fix_checksums(g);
  expect_refused(g, "printable");
  g = f;
  put(g, tensors + 16, 0, 8);  // dimension 0
  fix_checksums(g);
  expect_refused(g, "dimension is zero");
}

TEST(ProgramWriter, RefusesInvalidPrograms) {
  Program p = sample_program();
  p.instructions.pop_back();  // no END
  EXPECT_THROW(serialize_program(p), Error);
  p = sample_program();
  p.tensors.push_back(p.tensors.front());
  EXPECT_THROW(serialize_program(p), Error);
  p = sample_program();
  p.tensors.front().dram_offset = p.dram_size;
  EXPECT_THROW(serialize_program(p), Error);
  p = sample_program();
  p.debug.front().insn_end = 1000;
  EXPECT_THROW(serialize_program(p), Error);
  p = sample_program();
  std::get<isa::Mac>(p.instructions[3]).stride_h = 0;
  EXPECT_THROW(serialize_program(p), EncodeError);
}

TEST(ProgramFile, FileReadAndWrite) {
  const std::string path = ::testing::TempDir() + "/sample.dlab";
  write_program_file(path, sample_program());
  expect_same(read_program_file(path), sample_program());
  try {
    read_program_file(path + ".missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sample.dlab.missing"), std::string::npos);
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "DLAB but not really";
  }
  try {
    read_program_file(path);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(ProgramBuilder, PlacesConstantsFirstAndAllocatesAfter) {
  ProgramBuilder b(1);
  EXPECT_EQ(b.add_constant({1, 2, 3}), 0u);
  EXPECT_EQ(b.add_constant({4}, 16), 16u);
  const std::uint64_t t = b.allocate(100);
  EXPECT_EQ(t, 64u);
  EXPECT_THROW(b.add_constant({5}), std::logic_error);
  b.add(isa::End{});
  const Program p = b.build();
  EXPECT_EQ(p.dram_size, 164u);
  EXPECT_EQ(p.constants.size(), 17u);
}

TEST(ProgramDescribe, ListsSectionsTensorsAndInstructions) {
  const auto f = serialize_program(sample_program());
  const std::string text = describe_program(parse_program(f.data(), f.size()));
  for (const char* needle : {"dlab version 1", "instructions", "constants", "input  image  u8 frac 0  shape [1,3,8,8] nhwc",
                             "output logits  i8 frac 4", "insns [0, 14)", "mac +pop_prev", "    13  end"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
}

TEST(ProgramFile, EmbeddedConfigRoundTripsAndMustMatchTheHeaderHash) {
  const HwConfig small = HwConfig::preset("small");
  const auto f = serialize_program(sample_program(small));
  const Program back = parse_program(f.data(), f.size());
  ASSERT_TRUE(back.hw_config.has_value());
  EXPECT_EQ(*back.hw_config, small);
  EXPECT_EQ(back.hw_config_hash, small.identity_hash());
  EXPECT_EQ(back.sections.size(), 5u);
  // A header hash that disagrees with the embedded config is refused.
  auto g = f;
  put(g, 16, small.identity_hash() ^ 1, 8);
  fix_checksums(g);
  expect_refused(g, "embedded config has identity hash");
  // A config without a field this build has (an older dlasim's): the message says so.
  {
    auto h = f;
    const std::string field = "\"sram_bank_bytes\": 4,";
    const auto at = std::search(h.begin(), h.end(), field.begin(), field.end());
    ASSERT_NE(at, h.end());
    std::fill(at, at + static_cast<std::ptrdiff_t>(field.size()), ' ');  // blanks: the JSON without the field
    fix_checksums(h);
    expect_refused(h, "(it has no sram_bank_bytes: the program was compiled by an older dlasim; compile it again)");
  }
  // So is an embedded config that is not valid.
  Program p = sample_program(small);
  p.hw_config->acc_bits = 7;
  p.hw_config_hash = p.hw_config->identity_hash();
  const auto h = serialize_program(p);
  expect_refused(h, "acc_bits");
}
