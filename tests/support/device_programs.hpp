// Small hand-built programs for the device suites (emulator, cycle model, every engine):
// one MAC instruction, and programs that break a rule or deadlock. Built through the
// public builder API; the suites that run them hold the expected messages.
#pragma once

#include <cstdint>
#include <vector>

#include "dla/program.hpp"

namespace dla::testing {

/// `c` with other depths of the instruction queues and the token FIFOs.
inline HwConfig with_depths(HwConfig c, int queue_depth, int token_depth) {
  c.queue_depth = queue_depth;
  c.token_depth = token_depth;
  return c;
}

/// One MAC instruction: a k x k convolution to out_hw x out_hw pixels, no tokens, SRAM
/// addresses 0.
inline isa::Mac conv_mac(isa::MacMode mode, int in_c, int out_c, int out_hw, int k, bool depthwise = false) {
  isa::Mac m;
  m.mode = static_cast<std::int64_t>(mode);
  m.in_c = in_c;
  m.out_c = out_c;
  m.out_h = m.out_w = out_hw;
  m.kernel_h = m.kernel_w = k;
  m.depthwise = depthwise;
  return m;
}

/// A 16-byte LOAD into PARAM [0, 16) from DRAM 0, no tokens.
inline isa::Load param_load() {
  isa::Load l;
  l.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  l.row_bytes = 16;
  return l;
}

/// SYNC, then instruction 1: a MAC reading ACT [8000, 8200), past the activation SRAM
/// of the "small" preset.
inline Program sram_overrun_program(const HwConfig& hw) {
  ProgramBuilder b(hw);
  b.add(isa::Sync{});
  isa::Mac mac;
  mac.act_addr = 8000;
  mac.in_c = 200;
  b.add(mac);
  b.add(isa::End{});
  return b.build();
}

/// Instruction 0: a LOAD of DRAM [at + 50, at + 101) where the program allocates 100
/// bytes at `at` (returned in `*at` if given) and nothing after them.
inline Program dram_overrun_program(const HwConfig& hw, std::uint64_t* at = nullptr) {
  ProgramBuilder b(hw);
  const std::uint64_t t = b.allocate(100);
  isa::Load ld;
  ld.dram_addr = static_cast<std::int64_t>(t) + 50;
  ld.row_bytes = 51;
  b.add(ld);
  b.add(isa::End{});
  if (at != nullptr) *at = t;
  return b.build();
}

/// A PARAM load, then instruction 1: a MAC that pops a token from the load queue that no
/// instruction pushes.
inline Program pop_with_no_pusher_program(const HwConfig& hw) {
  ProgramBuilder b(hw);
  isa::Load ld;
  ld.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  b.add_constant(std::vector<std::uint8_t>(16, 0));
  b.add(ld);
  isa::Mac mac;
  mac.tokens.pop_prev = true;
  b.add(mac);
  b.add(isa::End{});
  return b.build();
}

/// Instruction 0 (vcopy) and instruction 1 (store) each wait for the other's token.
inline Program circular_wait_program(const HwConfig& hw) {
  ProgramBuilder b(hw);
  isa::VCopy c;
  c.tokens.pop_next = true;
  c.tokens.push_next = true;
  c.dst_addr = 64;
  c.bytes = 8;
  b.add(c);
  isa::Store s;
  s.tokens.pop_prev = true;
  s.tokens.push_prev = true;
  s.row_bytes = 8;
  s.dram_addr = static_cast<std::int64_t>(b.allocate(8));
  b.add(s);
  b.add(isa::End{});
  return b.build();
}

/// Load 0 waits for a token that instruction 2 (a MAC) pushes: with queue_depth 1 the
/// dispatcher cannot pass load 1, so the MAC is never dispatched (a deadlock); deeper
/// queues run it.
inline Program full_queue_program(const HwConfig& hw) {
  ProgramBuilder b(hw);
  b.add_constant(std::vector<std::uint8_t>(64, 0));
  isa::Load l0 = param_load();
  l0.tokens.pop_next = true;
  b.add(l0);
  isa::Load l1 = l0;
  l1.tokens.pop_next = false;
  l1.sram_addr = 32;
  b.add(l1);
  isa::Mac mac;
  mac.tokens.push_prev = true;
  b.add(mac);
  b.add(isa::End{});
  return b.build();
}

/// Loads 0 and 1 each push a token to compute before a SYNC (instruction 2) that the two
/// VCOPYs popping them come after: a deadlock with token_depth 1, none with 2.
inline Program full_token_fifo_program(const HwConfig& hw) {
  ProgramBuilder b(hw);
  b.add_constant(std::vector<std::uint8_t>(64, 0));
  isa::Load l = param_load();
  l.tokens.push_next = true;
  b.add(l);
  l.sram_addr = 16;
  b.add(l);
  b.add(isa::Sync{});
  isa::VCopy c;
  c.tokens.pop_prev = true;
  c.dst_addr = 64;
  b.add(c);
  b.add(c);
  b.add(isa::End{});
  return b.build();
}

}  // namespace dla::testing
