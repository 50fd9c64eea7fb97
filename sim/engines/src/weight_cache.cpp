// The emulator's memory of its WGT SRAM (weight_cache.hpp).
#include "weight_cache.hpp"

#include <algorithm>
#include <tuple>
#include <utility>
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

bool WeightCache::Origin::operator==(const Origin& o) const {
  return key == o.key && transfer(load) == transfer(o.load);
}

void WeightCache::reset() {
  deferring_ = false;
  loads_.clear();
  packed_.clear();
  kept_.clear();
  constants_written_.clear();
}

void WeightCache::begin_run(std::uint64_t constants) {
  loads_.clear();
  packed_.clear();
  constants_written_.clear();
  constants_ = constants;
}

bool WeightCache::from_constants(std::uint64_t dram_begin, std::uint64_t dram_end) const {
  return dram_end <= constants_ && std::none_of(constants_written_.begin(), constants_written_.end(), [&](const auto& w) {
           return overlaps(dram_begin, dram_end, w.first, w.second);
         });
}

bool WeightCache::defer(const isa::Load& insn, MachineState& m) {
  if (static_cast<isa::Buffer>(insn.buffer) != isa::Buffer::WGT || insn.fill_zero) return false;
  const auto dram_begin = static_cast<std::uint64_t>(insn.dram_addr);
  const std::uint64_t dram_end = rows_end(dram_begin, static_cast<std::uint64_t>(insn.row_bytes),
                                          static_cast<std::uint64_t>(insn.rows), static_cast<std::uint64_t>(insn.dram_stride));
  if (!from_constants(dram_begin, dram_end)) return false;
  state_ = &m;
  deferring_ = true;
  return true;
}

void WeightCache::put_in_place(LoadRecord& r, std::uint64_t skip_begin, std::uint64_t skip_end) {
  if (!r.deferred) return;
  r.deferred = false;
  const auto row_bytes = static_cast<std::uint64_t>(r.insn.row_bytes);
  for (std::uint64_t row = 0; row < static_cast<std::uint64_t>(r.insn.rows); ++row) {
    const std::uint64_t s = static_cast<std::uint64_t>(r.insn.sram_addr) + row * static_cast<std::uint64_t>(r.insn.sram_stride);
    const std::uint64_t d = static_cast<std::uint64_t>(r.insn.dram_addr) + row * static_cast<std::uint64_t>(r.insn.dram_stride);
    // The row's bytes below and above the skipped range.
    const std::uint64_t parts[2][2] = {{s, std::min(s + row_bytes, std::max(s, skip_begin))},
                                       {std::max(s, std::min(s + row_bytes, skip_end)), s + row_bytes}};
    for (const auto& p : parts) {
      if (p[0] < p[1]) {
        std::copy_n(state_->dram_bytes().begin() + static_cast<std::ptrdiff_t>(d + (p[0] - s)), p[1] - p[0],
                    state_->wgt.begin() + static_cast<std::ptrdiff_t>(p[0]));
      }
    }
  }
}

void WeightCache::before_write(const Effects& fx) {
  for (const Access& a : fx) {
    if (a.kind != AccessKind::kWrite || (a.region.space != Space::kWgt && a.region.space != Space::kDram)) continue;
    const std::uint64_t lo = a.region.base, hi = a.region.end();
    // A contiguous write into WGT replaces what it covers; around a strided one, keep all.
    const bool contiguous = a.region.rows == 1 || a.region.stride == a.region.row_len;
    for (LoadRecord& r : loads_) {
      if (a.region.space == Space::kWgt && overlaps(lo, hi, r.sram_begin, r.sram_end)) {
        put_in_place(r, contiguous ? lo : 0, contiguous ? hi : 0);
      } else if (a.region.space == Space::kDram && overlaps(lo, hi, r.dram_begin, r.dram_end)) {
        put_in_place(r);
      }
    }
  }
}

void WeightCache::materialize(std::uint64_t begin, std::uint64_t end) {
  for (LoadRecord& r : loads_) {
    if (overlaps(begin, end, r.sram_begin, r.sram_end)) put_in_place(r);
  }
}

void WeightCache::materialize_all() {
  for (LoadRecord& r : loads_) put_in_place(r);
}

std::vector<std::uint8_t> WeightCache::visible_wgt(const MachineState& m) const {
  MachineState copy;
  copy.wgt = m.wgt;
  copy.dram = m.dram_bytes();
  WeightCache shadow = *this;
  shadow.state_ = &copy;
  shadow.materialize_all();
  return copy.wgt;
}

std::optional<WeightCache::Origin> WeightCache::origin_of(const MacKey& key) const {
  for (const LoadRecord& r : loads_) {
    // One LOAD of constants whose contiguous SRAM rows hold every byte the MAC reads.
    const bool contiguous = r.insn.rows == 1 || r.insn.sram_stride == r.insn.row_bytes;
    if (!r.constants || !contiguous || key.wgt_begin < r.sram_begin || key.wgt_end > r.sram_end) continue;
    Origin o{key, r.insn};
    o.key.wgt_begin = key.wgt_begin - r.sram_begin;
    o.key.wgt_end = key.wgt_end - key.wgt_begin;
    o.load.sram_addr = 0;  // where the rows lie does not change the bytes
    return o;
  }
  return std::nullopt;
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
    if (a.region.space == Space::kDram && lo < constants_) constants_written_.emplace_back(lo, std::min(hi, constants_));
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
    if (loads_.size() == kMaxLoads) {
      put_in_place(loads_.front());  // a record forgotten must not take deferred bytes with it
      loads_.erase(loads_.begin());
    }
    const auto rows = static_cast<std::uint64_t>(load->rows), row_bytes = static_cast<std::uint64_t>(load->row_bytes);
    const auto dram_begin = static_cast<std::uint64_t>(load->dram_addr);
    const std::uint64_t dram_end = rows_end(dram_begin, row_bytes, rows, static_cast<std::uint64_t>(load->dram_stride));
    loads_.push_back({*load, static_cast<std::uint64_t>(load->sram_addr),
                      rows_end(static_cast<std::uint64_t>(load->sram_addr), row_bytes, rows,
                               static_cast<std::uint64_t>(load->sram_stride)),
                      dram_begin, dram_end, from_constants(dram_begin, dram_end), std::exchange(deferring_, false)});
  }
}

std::shared_ptr<WeightCache::Kernels> WeightCache::kernels(const MacKey& key) {
  for (Packed& p : packed_) {
    if (p.key == key) return p.kernels;
  }
  if (packed_.size() == kMaxPacked) packed_.erase(packed_.begin());
  const std::optional<Origin> origin = origin_of(key);
  std::shared_ptr<Kernels> kernels;
  if (origin) {
    const auto kept = kept_.find(*origin);
    if (kept != kept_.end()) kernels = kept->second;
  }
  if (!kernels) {
    kernels = std::make_shared<Kernels>(key.slices);
    if (origin) {
      if (kept_.size() == kMaxKept) kept_.clear();
      kept_.emplace(*origin, kernels);
    }
  }
  packed_.push_back({key, kernels});
  return kernels;
}

std::size_t WeightCache::OriginHash::operator()(const Origin& o) const {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a over the fields
  auto mix = [&](auto v) {
    auto x = static_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i, x >>= 8) {
      h ^= x & 0xFF;
      h *= 1099511628211ULL;
    }
  };
  std::apply([&](auto... f) { (mix(f), ...); }, shape_fields(o.key.shape));
  std::apply([&](auto... f) { (mix(f), ...); }, transfer(o.load));
  mix(o.key.wgt_begin);
  mix(o.key.wgt_end);
  mix(o.key.act);
  mix(o.key.wgt_type);
  mix(o.key.isa);
  mix(o.key.slices);
  return static_cast<std::size_t>(h);
}

}  // namespace dla::sim::detail
