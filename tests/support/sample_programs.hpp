// Small valid programs for the program-file tests, the mutation test and the fuzz
// corpus. Built through the public builder API, so they are what the compiler could emit.
#pragma once

#include <cstdint>
#include <vector>

#include "dla/program.hpp"

namespace dla::testing {

inline Program sample_program_with(ProgramBuilder b);

/// A conv layer's worth of program: IO tensors, constants, a debug record per layer and
/// one instruction of every class.
inline Program sample_program(std::uint64_t hw_hash = 0x0123456789abcdefULL) {
  return sample_program_with(ProgramBuilder(hw_hash));
}

/// The same program with the hardware config embedded.
inline Program sample_program(const HwConfig& config) { return sample_program_with(ProgramBuilder(config)); }

inline Program sample_program_with(ProgramBuilder b) {
  const std::uint64_t weights = b.add_constant(std::vector<std::uint8_t>(3 * 3 * 3 * 8, 0x11));
  const std::uint64_t record = b.add_constant({0x80, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3});
  TensorDesc in{"image", TensorRole::kInput, DType::U8, 0, Layout::kNHWC, {1, 3, 8, 8}, 0};
  TensorDesc out{"logits", TensorRole::kOutput, DType::I8, 4, Layout::kNHWC, {1, 8, 6, 6}, 0};
  in = b.add_tensor(in);
  out = b.add_tensor(out);

  const std::uint32_t first = b.instruction_count();
  isa::Load lw;
  lw.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
  lw.dram_addr = static_cast<std::int64_t>(weights);
  lw.row_bytes = 216;
  lw.rows = 1;
  b.add(lw);
  isa::Load lp;
  lp.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  lp.dram_addr = static_cast<std::int64_t>(record);
  lp.row_bytes = 16;
  lp.rows = 1;
  b.add(lp);
  isa::Load la;
  la.tokens.push_next = true;
  la.dram_addr = static_cast<std::int64_t>(in.dram_offset);
  la.row_bytes = 3;
  la.rows = 64;
  la.dram_stride = 3;
  la.sram_stride = 3;
  b.add(la);
  isa::Mac mac;
  mac.tokens.pop_prev = true;
  mac.act_unsigned = 1;
  mac.out_h = 6;
  mac.out_w = 6;
  mac.out_c = 8;
  mac.in_c = 3;
  mac.kernel_h = 3;
  mac.kernel_w = 3;
  b.add(mac);
  isa::Requant rq;
  rq.tokens.push_next = true;
  rq.pixels = 36;
  rq.channels = 8;
  rq.act_addr = 0x400;
  b.add(rq);
  b.add(isa::VAdd{});
  b.add(isa::VMaxPool{});
  b.add(isa::VAvgPool{});
  b.add(isa::VUpsample{});
  b.add(isa::VCopy{});
  b.add(isa::VLut{});
  isa::Store st;
  st.tokens.pop_prev = true;
  st.sram_addr = 0x400;
  st.dram_addr = static_cast<std::int64_t>(out.dram_offset);
  st.row_bytes = 8;
  st.rows = 36;
  st.dram_stride = 8;
  st.sram_stride = 8;
  b.add(st);
  b.add(isa::Sync{});
  b.add(isa::End{});
  DebugRecord rec;
  rec.layer = "logits";
  rec.insn_begin = first;
  rec.insn_end = b.instruction_count();
  rec.output = out;
  rec.output.role = TensorRole::kIntermediate;
  b.add_debug(rec);
  return b.build();
}

/// The smallest valid program: one END.
inline Program minimal_program() {
  ProgramBuilder b(42);
  b.add(isa::End{});
  return b.build();
}

/// Recomputes the header and section checksums of a (possibly mutated) file so that a
/// mutation reaches the structural checks behind them. Leaves unparseable parts alone.
inline void fix_checksums(std::vector<std::uint8_t>& f) {
  auto rd = [&](std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | f[at + static_cast<std::size_t>(i)];
    return v;
  };
  auto wr = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) f[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  if (f.size() < kDlabHeaderSize) return;
  const std::uint64_t count = rd(32, 4);
  for (std::uint64_t i = 0; i < count && i < kMaxSections; ++i) {
    const std::size_t e = kDlabHeaderSize + static_cast<std::size_t>(i) * kDlabSectionEntrySize;
    if (e + kDlabSectionEntrySize > f.size()) break;
    const std::uint64_t off = rd(e + 8, 8), size = rd(e + 16, 8);
    if (off <= f.size() && size <= f.size() - off) wr(e + 24, crc32(f.data() + off, static_cast<std::size_t>(size)));
  }
  wr(40, 0);
  wr(40, crc32(f.data(), kDlabHeaderSize));
}

}  // namespace dla::testing
