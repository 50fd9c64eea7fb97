// dla/param_records.hpp — the parameter records of the requantizing instructions,
// declared once (isa/README.md section 3).
//
// A record lies in PARAM, little endian, at the instruction's param_addr:
//   REQUANT:  int32 clip_lo, int32 clip_hi, int8 shift[channels]
//   VADD:     int32 clip_lo, int32 clip_hi, int8 shift_a, int8 shift_b, int8 shift_y
//   VAVGPOOL: int32 clip_lo, int32 clip_hi, int8 shift
//   VLUT:     int16 entry[lut_entries(in_type)]
// Each record type carries its layout as a table (kLayout: field, byte offset, bytes),
// which its encode and decode follow and a generator of hardware sources iterates. The
// compiler encodes the records; the engines decode them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dla/numerics.hpp"

namespace dla::isa {

/// One field of a parameter record. A per-channel field repeats for every channel.
struct RecordField {
  std::string_view name;
  std::size_t offset;  ///< byte offset in the record
  std::size_t bytes;   ///< bytes of one value (signed, little endian)
  bool per_channel;  ///< repeats for every channel (for VLUT: every table entry)
};

namespace detail {
inline void put_le(std::uint8_t* out, std::int64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i));
}
inline std::int32_t get_le_i32(const std::uint8_t* p) {
  return static_cast<std::int32_t>(std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
                                   std::uint32_t{p[3]} << 24);
}
inline std::int8_t get_i8(const std::uint8_t* p) { return static_cast<std::int8_t>(*p); }
}  // namespace detail

/// The clip pair every record starts with.
inline constexpr RecordField kClipLo{"clip_lo", 0, 4, false};
inline constexpr RecordField kClipHi{"clip_hi", 4, 4, false};

/// REQUANT: the clips, then one shift per channel.
struct RequantRecord {
  static constexpr std::array<RecordField, 3> kLayout{{kClipLo, kClipHi, {"shift", 8, 1, true}}};
  static constexpr std::size_t size(std::size_t channels) { return kLayout[2].offset + channels; }

  std::int32_t clip_lo = 0;
  std::int32_t clip_hi = 0;
  std::vector<std::int8_t> shift;

  std::vector<std::uint8_t> encode() const {
    std::vector<std::uint8_t> out(size(shift.size()));
    detail::put_le(out.data() + kLayout[0].offset, clip_lo, kLayout[0].bytes);
    detail::put_le(out.data() + kLayout[1].offset, clip_hi, kLayout[1].bytes);
    for (std::size_t c = 0; c < shift.size(); ++c) out[kLayout[2].offset + c] = static_cast<std::uint8_t>(shift[c]);
    return out;
  }
  static RequantRecord decode(const std::uint8_t* p, std::size_t channels) {
    RequantRecord r;
    r.clip_lo = detail::get_le_i32(p + kLayout[0].offset);
    r.clip_hi = detail::get_le_i32(p + kLayout[1].offset);
    const std::int8_t* s = shifts_at(p);
    r.shift.assign(s, s + channels);
    return r;
  }
  /// The shift array where it lies (the engines' hot path reads it without a copy).
  static const std::int8_t* shifts_at(const std::uint8_t* p) {
    return reinterpret_cast<const std::int8_t*>(p + kLayout[2].offset);
  }
};

/// VADD: the clips, then the alignment shifts of dla::AddShifts.
struct AddRecord {
  static constexpr std::array<RecordField, 5> kLayout{
      {kClipLo, kClipHi, {"shift_a", 8, 1, false}, {"shift_b", 9, 1, false}, {"shift_y", 10, 1, false}}};
  static constexpr std::size_t kSize = 11;

  std::int32_t clip_lo = 0;
  std::int32_t clip_hi = 0;
  std::int8_t shift_a = 0;
  std::int8_t shift_b = 0;
  std::int8_t shift_y = 0;

  std::vector<std::uint8_t> encode() const {
    std::vector<std::uint8_t> out(kSize);
    const std::int64_t values[] = {clip_lo, clip_hi, shift_a, shift_b, shift_y};
    for (std::size_t i = 0; i < kLayout.size(); ++i) detail::put_le(out.data() + kLayout[i].offset, values[i], kLayout[i].bytes);
    return out;
  }
  static AddRecord decode(const std::uint8_t* p) {
    return {detail::get_le_i32(p + kLayout[0].offset), detail::get_le_i32(p + kLayout[1].offset),
            detail::get_i8(p + kLayout[2].offset), detail::get_i8(p + kLayout[3].offset),
            detail::get_i8(p + kLayout[4].offset)};
  }
};

/// VAVGPOOL: the clips, then the shift S + f_x - f_y.
struct AvgPoolRecord {
  static constexpr std::array<RecordField, 3> kLayout{{kClipLo, kClipHi, {"shift", 8, 1, false}}};
  static constexpr std::size_t kSize = 9;

  std::int32_t clip_lo = 0;
  std::int32_t clip_hi = 0;
  std::int8_t shift = 0;

  std::vector<std::uint8_t> encode() const {
    std::vector<std::uint8_t> out(kSize);
    const std::int64_t values[] = {clip_lo, clip_hi, shift};
    for (std::size_t i = 0; i < kLayout.size(); ++i) detail::put_le(out.data() + kLayout[i].offset, values[i], kLayout[i].bytes);
    return out;
  }
  static AvgPoolRecord decode(const std::uint8_t* p) {
    return {detail::get_le_i32(p + kLayout[0].offset), detail::get_le_i32(p + kLayout[1].offset),
            detail::get_i8(p + kLayout[2].offset)};
  }
};

/// VLUT: the table of dla::lut_apply, one signed 16-bit entry per position.
struct LutRecord {
  static constexpr std::array<RecordField, 1> kLayout{{{"entry", 0, 2, true}}};
  /// Bytes of the record for inputs of type `in` (0 for a type no table covers).
  static constexpr std::size_t size(DType in) {
    return static_cast<std::size_t>(lut_entries(in)) * kLayout[0].bytes;
  }

  std::vector<std::int16_t> entry;

  std::vector<std::uint8_t> encode() const {
    std::vector<std::uint8_t> out(entry.size() * kLayout[0].bytes);
    for (std::size_t j = 0; j < entry.size(); ++j) detail::put_le(out.data() + j * kLayout[0].bytes, entry[j], kLayout[0].bytes);
    return out;
  }
  static LutRecord decode(const std::uint8_t* p, DType in) {
    LutRecord r;
    r.entry.resize(static_cast<std::size_t>(lut_entries(in)));
    for (std::size_t j = 0; j < r.entry.size(); ++j) r.entry[j] = entry_at(p, j);
    return r;
  }
  /// Entry j of the table at p (the rtl engine reads the table a block at a time).
  static std::int16_t entry_at(const std::uint8_t* p, std::size_t j) {
    const std::uint8_t* e = p + j * kLayout[0].bytes;
    return static_cast<std::int16_t>(static_cast<std::uint16_t>(e[0] | (e[1] << 8)));
  }
};

}  // namespace dla::isa
