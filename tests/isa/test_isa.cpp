// ISA table tests: encodings never collide, fields never overlap, encode/decode round
// trips, out-of-range fields are refused, and the bit positions match the documented
// layout written out by hand here.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <utility>

#include "dla/error.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"
#include "../support/random_insn.hpp"

using namespace dla::isa;

namespace {

__extension__ typedef unsigned __int128 u128;  // GCC/Clang; the reference needs 128 bits

std::vector<InsnInfo> all_infos() {
  std::size_t n = 0;
  const InsnInfo* infos = insn_infos(&n);
  return {infos, infos + n};
}

using dla::test_support::random_instruction;

}  // namespace

TEST(IsaTable, EveryVariantAlternativeHasATableEntry) {
  EXPECT_EQ(all_infos().size(), std::variant_size_v<Instruction>);
  std::set<std::string_view> mnemonics;
  for (const auto& info : all_infos()) EXPECT_TRUE(mnemonics.insert(info.mnemonic).second) << info.mnemonic;
}

TEST(IsaTable, NoTwoEncodingsCollide) {
  const auto infos = all_infos();
  for (std::size_t a = 0; a < infos.size(); ++a) {
    for (std::size_t b = a + 1; b < infos.size(); ++b) {
      // Some word matches both iff the matches agree on every bit both masks fix.
      const std::uint64_t common = infos[a].mask & infos[b].mask;
      EXPECT_NE((infos[a].match ^ infos[b].match) & common, 0u)
          << infos[a].mnemonic << " and " << infos[b].mnemonic << " collide";
    }
  }
}

TEST(IsaTable, FieldsFitAndDoNotOverlap) {
  for (const auto& info : all_infos()) {
    std::vector<int> owner(kInstructionBits, -1);
    auto claim = [&](int lsb, int width, int who, const std::string& what) {
      for (int b = lsb; b < lsb + width; ++b) {
        ASSERT_LT(b, kInstructionBits) << info.mnemonic << "." << what << " runs past bit 127";
        EXPECT_EQ(owner[static_cast<std::size_t>(b)], -1) << info.mnemonic << "." << what << " overlaps at bit " << b;
        owner[static_cast<std::size_t>(b)] = who;
      }
    };
    claim(0, 8, 1000, "header");
    if (info.funct != kNoFunct) claim(8, 4, 1001, "funct");
    for (std::size_t i = 0; i < info.num_fields; ++i) {
      const FieldInfo& f = info.fields[i];
      claim(f.lsb, f.width, static_cast<int>(i), std::string(f.name));
      EXPECT_GE(f.min, 0) << info.mnemonic << "." << f.name;
      EXPECT_LE(f.min, f.max) << info.mnemonic << "." << f.name;
      EXPECT_LE(f.width, 63);
      EXPECT_LT(f.max, std::int64_t{1} << f.width) << info.mnemonic << "." << f.name << " max does not fit its bits";
      EXPECT_FALSE(f.doc.empty()) << info.mnemonic << "." << f.name << " is undocumented";
    }
  }
}

TEST(IsaEncode, RandomRoundTripEveryClass) {
  std::mt19937_64 rng(20261123);
  const std::size_t classes = std::variant_size_v<Instruction>;
  std::size_t checked = 0;
  for (std::size_t cls = 0; cls < classes; ++cls) {
    for (int n = 0; n < 2000; ++n) {
      const Instruction insn = random_instruction(cls, rng);
      ASSERT_EQ(insn.index(), cls);
      const Word w = encode(insn);
      std::uint8_t bytes[kInstructionBytes];
      w.to_bytes(bytes);
      const Word back_word = Word::from_bytes(bytes);
      ASSERT_EQ(back_word, w);
      const Instruction back = decode(back_word);
      ASSERT_EQ(back, insn) << disassemble(insn) << "\n vs\n" << disassemble(back);
      ++checked;
    }
  }
  EXPECT_EQ(checked, classes * 2000);
}

TEST(IsaEncode, OutOfRangeFieldIsRefusedNamingInstructionAndField) {
  const auto infos = all_infos();
  for (std::size_t cls = 0; cls < infos.size(); ++cls) {
    for (std::size_t fi = 0; fi < infos[cls].num_fields; ++fi) {
      const FieldInfo& field = infos[cls].fields[fi];
      for (const std::int64_t bad : {field.max + 1, field.min - 1}) {
        std::mt19937_64 rng(cls * 100 + fi);
        Instruction insn = random_instruction(cls, rng);
        std::visit(
            [&](auto& i) {
              std::size_t k = 0;
              i.visit_fields([&](const FieldInfo&, std::int64_t& v) {
                if (k++ == fi) v = bad;
              });
            },
            insn);
        try {
          encode(insn);
          ADD_FAILURE() << infos[cls].mnemonic << "." << field.name << " = " << bad << " was accepted";
        } catch (const dla::EncodeError& e) {
          const std::string msg = e.what();
          EXPECT_NE(msg.find(std::string(infos[cls].mnemonic)), std::string::npos) << msg;
          EXPECT_NE(msg.find(std::string(field.name)), std::string::npos) << msg;
          EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;
        }
      }
    }
  }
}

TEST(IsaEncode, TokenFlagsWithoutANeighbourQueueAreRefused) {
  Load load;
  load.tokens.pop_prev = true;
  EXPECT_THROW(encode(load), dla::EncodeError);
  Store store;
  store.tokens.push_next = true;
  EXPECT_THROW(encode(store), dla::EncodeError);
  End end;
  end.tokens.pop_next = true;
  EXPECT_THROW(encode(end), dla::EncodeError);
  Mac mac;
  mac.tokens = {true, true, true, true};
  EXPECT_NO_THROW(encode(mac));
}

// The documented layout of LOAD, assembled by hand from the comment in isa.hpp.
TEST(IsaEncode, LoadBitPositionsMatchTheDocumentedLayout) {
  Load load;
  load.tokens.push_next = true;  // bit 7
  load.buffer = 2;               // [8, 10)
  load.fill_zero = 1;            // [10, 11)
  load.sram_addr = 0x12345;      // [11, 31)
  load.dram_addr = 0xDEADBEEF;   // [31, 63)
  load.row_bytes = 100;          // [63, 77)
  load.rows = 7;                 // [77, 89)
  load.dram_stride = 0x2ABCD;    // [89, 111)
  load.sram_stride = 25;         // [111, 125)
  u128 expect = 1;  // opclass 1
  expect |= static_cast<u128>(1) << 7;
  expect |= static_cast<u128>(2) << 8;
  expect |= static_cast<u128>(1) << 10;
  expect |= static_cast<u128>(0x12345) << 11;
  expect |= static_cast<u128>(0xDEADBEEFu) << 31;
  expect |= static_cast<u128>(100) << 63;
  expect |= static_cast<u128>(7) << 77;
  expect |= static_cast<u128>(0x2ABCD) << 89;
  expect |= static_cast<u128>(25) << 111;
  const Word w = encode(load);
  EXPECT_EQ(w.words[0], static_cast<std::uint64_t>(expect));
  EXPECT_EQ(w.words[1], static_cast<std::uint64_t>(expect >> 64));
  std::uint8_t bytes[16];
  w.to_bytes(bytes);
  EXPECT_EQ(bytes[0], 0x81);  // opclass 1 | push_next
}

TEST(IsaEncode, VectorFunctSelectsTheOperation) {
  VAdd add;
  VCopy copy;
  EXPECT_EQ(encode(add).bits(0, 4), 5u);
  EXPECT_EQ(encode(add).bits(8, 4), 0u);
  EXPECT_EQ(encode(copy).bits(0, 4), 5u);
  EXPECT_EQ(encode(copy).bits(8, 4), 4u);
}

TEST(IsaDecode, UnknownOpclassesAndFunctsAreRefused) {
  for (std::uint64_t opclass : {0u, 8u, 9u, 12u, 15u}) {
    Word w;
    w.set_bits(0, 4, opclass);
    EXPECT_THROW(decode(w), dla::EncodeError) << "opclass " << opclass;
  }
  for (std::uint64_t funct = 5; funct < 16; ++funct) {
    Word w;
    w.set_bits(0, 4, 5);
    w.set_bits(8, 4, funct);
    EXPECT_THROW(decode(w), dla::EncodeError) << "funct " << funct;
  }
}

TEST(IsaDecode, ReservedBitsAreRefused) {
  Word w = encode(End{});
  w.set_bits(100, 1, 1);
  try {
    decode(w);
    FAIL() << "reserved bit accepted";
  } catch (const dla::EncodeError& e) {
    EXPECT_NE(std::string(e.what()).find("reserved"), std::string::npos);
  }
  Word store = encode(Store{});
  store.set_bits(8, 1, 1);  // STORE leaves [8, 11) unused
  EXPECT_THROW(decode(store), dla::EncodeError);
}

// Every word decodes to nothing or to exactly one instruction that encodes back to the
// same word: the encoding is canonical, so no two words mean the same thing.
TEST(IsaDecode, RandomWordsAreRefusedOrCanonical) {
  std::mt19937_64 rng(7);
  int decoded = 0;
  for (int n = 0; n < 200000; ++n) {
    Word w;
    w.words = {rng(), rng()};
    // Bias towards valid headers and sparse high bits so that some words decode.
    if (n % 2) {
      w.words[1] &= rng() & rng() & rng();
      w.words[0] &= ~std::uint64_t{0xF0};
      w.set_bits(0, 4, 1 + rng() % 7);
      w.set_bits(8, 4, rng() % 5);
    }
    try {
      const Instruction insn = decode(w);
      ASSERT_EQ(encode(insn), w) << disassemble(insn);
      ++decoded;
    } catch (const dla::EncodeError&) {
    }
  }
  EXPECT_GT(decoded, 0);
}

TEST(IsaDisassemble, NamesEveryFieldWithReadableValues) {
  Mac mac;
  mac.tokens.pop_prev = true;
  mac.mode = static_cast<std::int64_t>(MacMode::A8W4);
  mac.act_addr = 0x40;
  mac.out_c = 32;
  const std::string text = disassemble(mac);
  EXPECT_EQ(text.rfind("mac +pop_prev ", 0), 0u) << text;
  EXPECT_NE(text.find("mode=a8w4"), std::string::npos) << text;
  EXPECT_NE(text.find("act_addr=0x40"), std::string::npos) << text;
  EXPECT_NE(text.find("out_c=32"), std::string::npos) << text;
  for (const auto& f : Mac::kFields) EXPECT_NE(text.find(std::string(f.name) + "="), std::string::npos) << f.name;

  Requant rq;
  rq.out_type = static_cast<std::int64_t>(dla::DType::U4);
  EXPECT_NE(disassemble(rq).find("out_type=u4"), std::string::npos);
  Load ld;
  ld.buffer = static_cast<std::int64_t>(Buffer::PARAM);
  EXPECT_NE(disassemble(ld).find("buffer=param"), std::string::npos);
}

TEST(IsaQueues, ClassesGoToTheirQueues) {
  EXPECT_EQ(queue_of(Load{}), Queue::kLoad);
  EXPECT_EQ(queue_of(Store{}), Queue::kStore);
  EXPECT_EQ(queue_of(Mac{}), Queue::kCompute);
  EXPECT_EQ(queue_of(Requant{}), Queue::kCompute);
  EXPECT_EQ(queue_of(VMaxPool{}), Queue::kCompute);
  EXPECT_EQ(queue_of(Sync{}), Queue::kAll);
  EXPECT_EQ(info_of(VAvgPool{}).mnemonic, "vavgpool");
}
