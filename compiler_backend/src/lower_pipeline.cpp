// Lowering, the pipeline: DMA instructions, SRAM slots and the dependency tokens of the
// double-buffered schedule (dla/compiler/lower.hpp).
#include <algorithm>

#include "lowering.hpp"

namespace dla::compiler::lowering {
namespace {

/// Rows of a long contiguous copy, so that many rows go in one instruction.
constexpr i64 kContiguousChunk = 8192;

}  // namespace

Instruction dma(bool store, Buffer buf, i64 sram, i64 dram, i64 row_bytes, i64 rows, i64 dram_stride, i64 sram_stride,
                bool fill_zero) {
  if (store) {
    isa::Store s;
    s.sram_addr = sram;
    s.dram_addr = dram;
    s.row_bytes = row_bytes;
    s.rows = rows;
    s.dram_stride = rows > 1 ? dram_stride : 0;
    s.sram_stride = rows > 1 ? sram_stride : 0;
    return s;
  }
  isa::Load l;
  l.buffer = static_cast<i64>(buf);
  l.fill_zero = fill_zero ? 1 : 0;
  l.sram_addr = sram;
  l.dram_addr = fill_zero ? 0 : dram;
  l.row_bytes = row_bytes;
  l.rows = rows;
  l.dram_stride = rows > 1 && !fill_zero ? dram_stride : 0;
  l.sram_stride = rows > 1 ? sram_stride : 0;
  return l;
}

void copy_contiguous(std::vector<Instruction>& out, bool store, Buffer buf, i64 sram, i64 dram, i64 bytes,
                     bool fill_zero) {
  if (bytes <= kMaxRowBytes) {
    out.push_back(dma(store, buf, sram, dram, bytes, 1, 0, 0, fill_zero));
    return;
  }
  const i64 rows = bytes / kContiguousChunk;
  for (i64 r0 = 0; r0 < rows; r0 += kMaxRows) {
    const i64 n = std::min(kMaxRows, rows - r0);
    out.push_back(dma(store, buf, sram + r0 * kContiguousChunk, dram + r0 * kContiguousChunk, kContiguousChunk, n,
                      kContiguousChunk, kContiguousChunk, fill_zero));
  }
  const i64 rem = bytes - rows * kContiguousChunk;
  if (rem > 0) {
    out.push_back(dma(store, buf, sram + rows * kContiguousChunk, dram + rows * kContiguousChunk, rem, 1, 0, 0, fill_zero));
  }
}

void copy_box(std::vector<Instruction>& out, bool store, i64 sram, i64 sram_row, i64 dram, i64 dram_row,
              i64 dram_pixel, i64 rows, i64 pixels, i64 chunk) {
  if (rows <= 0 || pixels <= 0) return;
  if (chunk == dram_pixel) {  // the pixels of a row are one contiguous run
    const i64 run = pixels * chunk;
    if (run <= kMaxRowBytes && sram_row <= kMaxSramStride && dram_row <= kMaxDramStride) {
      for (i64 r0 = 0; r0 < rows; r0 += kMaxRows) {
        out.push_back(dma(store, Buffer::ACT, sram + r0 * sram_row, dram + r0 * dram_row, run,
                          std::min(kMaxRows, rows - r0), dram_row, sram_row));
      }
      return;
    }
    for (i64 r = 0; r < rows; ++r) copy_contiguous(out, store, Buffer::ACT, sram + r * sram_row, dram + r * dram_row, run);
    return;
  }
  for (i64 r = 0; r < rows; ++r) {
    out.push_back(dma(store, Buffer::ACT, sram + r * sram_row, dram + r * dram_row, chunk, pixels, dram_pixel, chunk));
  }
}

ActSlots act_slots(i64 in_bytes, i64 out_bytes) {
  ActSlots s;
  s.in.a[0] = 0;
  s.in.a[1] = align4(in_bytes);
  s.out.a[0] = 2 * align4(in_bytes);
  s.out.a[1] = s.out.a[0] + align4(out_bytes);
  return s;
}

/// Every pop's matching push comes earlier in program order, so the program cannot
/// deadlock whatever the queue depths.
void emit_pipeline(ProgramBuilder& b, std::vector<Step>& steps) {
  std::size_t tiles = 0;
  for (const auto& s : steps) tiles += s.finish.empty() ? 0 : 1;
  std::size_t t = 0;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    Step& s = steps[k];
    isa::tokens_of(s.loads.front()).pop_next = k >= 2;
    isa::tokens_of(s.loads.back()).push_next = true;
    for (const auto& i : s.loads) b.add(i);

    std::vector<Instruction> compute = s.computes;
    compute.insert(compute.end(), s.finish.begin(), s.finish.end());
    isa::tokens_of(compute.front()).pop_prev = true;
    if (!s.finish.empty()) {
      isa::tokens_of(compute[s.computes.size()]).pop_next = t >= 2;
      isa::tokens_of(compute.back()).push_next = true;
    }
    isa::tokens_of(compute.back()).push_prev = k + 2 < steps.size();
    for (const auto& i : compute) b.add(i);

    if (!s.finish.empty()) {
      isa::tokens_of(s.stores.front()).pop_prev = true;
      isa::tokens_of(s.stores.back()).push_prev = t + 2 < tiles;
      for (const auto& i : s.stores) b.add(i);
      ++t;
    }
  }
}

}  // namespace dla::compiler::lowering
