// The emulator's memory of its WGT SRAM (weight_cache.hpp).
#include "weight_cache.hpp"

#include <algorithm>
#include <tuple>
#include <variant>

namespace dla::sim::detail {
namespace {

bool overlaps(std::uint64_t a0, std::uint64_t a1, std::uint64_t b0, std::uint64_t b1) { return a0 < b1 && b0 < a1; }

/// The fields that decide which bytes a LOAD moves where (not its tokens).
auto transfer(const isa::Load& l) {
  return std::make_tuple(l.buffer, l.fill_zero, l.sram_addr, l.dram_addr, l.row_bytes, l.rows, l.dram_stride,
                         l.sram_stride);
}

auto shape_fields(const gemm::ConvShape& s) {
  return std::make_tuple(s.in_h, s.in_w, s.in_c, s.out_h, s.out_w, s.out_c, s.kernel_h, s.kernel_w, s.stride_h,
                         s.stride_w, s.dilation_h, s.dilation_w);
}

/// The bounding range of rows of `row_len` units, `stride` apart.
std::uint64_t rows_end(std::uint64_t base, std::uint64_t row_len, std::uint64_t rows, std::uint64_t stride) {
  return base + (rows - 1) * stride + row_len;
}

}  // namespace

bool WeightCache::MacKey::operator==(const MacKey& o) const {
  return wgt_begin == o.wgt_begin && wgt_end == o.wgt_end && shape_fields(shape) == shape_fields(o.shape) &&
         act == o.act && wgt_type == o.wgt_type && isa == o.isa && slices == o.slices;
}

void WeightCache::reset() {
  loads_.clear();
  packed_.clear();
}

bool WeightCache::holds(const isa::Load& insn) const {
  if (static_cast<isa::Buffer>(insn.buffer) != isa::Buffer::WGT || insn.fill_zero) return false;
  return std::any_of(loads_.begin(), loads_.end(), [&](const LoadRecord& r) { return transfer(r.insn) == transfer(insn); });
}

void WeightCache::written(const isa::Instruction& insn, const Effects& fx) {
  const auto* load = std::get_if<isa::Load>(&insn);
  if (load != nullptr && holds(*load)) return;  // it wrote nothing new
  for (const Access& a : fx) {
    if (a.kind != AccessKind::kWrite) continue;
    const std::uint64_t lo = a.region.base, hi = a.region.end();
    if (a.region.space == Space::kWgt) {
      loads_.erase(std::remove_if(loads_.begin(), loads_.end(),
                                  [&](const LoadRecord& r) { return overlaps(lo, hi, r.sram_begin, r.sram_end); }),
                   loads_.end());
      packed_.erase(std::remove_if(packed_.begin(), packed_.end(),
                                   [&](const Packed& p) { return overlaps(lo, hi, p.key.wgt_begin, p.key.wgt_end); }),
                    packed_.end());
    } else if (a.region.space == Space::kDram) {
      loads_.erase(std::remove_if(loads_.begin(), loads_.end(),
                                  [&](const LoadRecord& r) { return overlaps(lo, hi, r.dram_begin, r.dram_end); }),
                   loads_.end());
    }
  }
  if (load != nullptr && static_cast<isa::Buffer>(load->buffer) == isa::Buffer::WGT && !load->fill_zero) {
    if (loads_.size() == kMaxLoads) loads_.erase(loads_.begin());
    const auto rows = static_cast<std::uint64_t>(load->rows), row_bytes = static_cast<std::uint64_t>(load->row_bytes);
    loads_.push_back({*load, static_cast<std::uint64_t>(load->sram_addr),
                      rows_end(static_cast<std::uint64_t>(load->sram_addr), row_bytes, rows,
                               static_cast<std::uint64_t>(load->sram_stride)),
                      static_cast<std::uint64_t>(load->dram_addr),
                      rows_end(static_cast<std::uint64_t>(load->dram_addr), row_bytes, rows,
                               static_cast<std::uint64_t>(load->dram_stride))});
  }
}

WeightCache::Kernels& WeightCache::kernels(const MacKey& key) {
  for (Packed& p : packed_) {
    if (p.key == key) return p.kernels;
  }
  if (packed_.size() == kMaxPacked) packed_.erase(packed_.begin());
  packed_.push_back({key, Kernels(key.slices)});
  return packed_.back().kernels;
}

}  // namespace dla::sim::detail
