// dla/isa.hpp — the DLA instruction set, declared once (isa/README.md section 3).
//
// Every instruction is 128 bits. This file is the single table of instruction classes
// and their fields; the instruction structs, the field metadata, the encoder, the
// decoder, the disassembler and every engine's dispatch are generated from it.
//
// Common header, present in every instruction:
//   bits [0, 4)   opclass   1 LOAD, 2 STORE, 3 MAC, 4 REQUANT, 5 VECTOR, 6 SYNC, 7 END
//                           (0 and 8..15 are invalid, so an all-zero word never decodes)
//   bit  4        pop_prev  wait for, and consume, a token from the previous queue
//   bit  5        pop_next  wait for, and consume, a token from the next queue
//   bit  6        push_prev after executing, push a token to the previous queue
//   bit  7        push_next after executing, push a token to the next queue
//   bits [8, 12)  funct     VECTOR only: which vector operation
// Bits that no field of an instruction covers are reserved and must be zero.
//
// Queues and dependency tokens. Instructions are dispatched in program order to three
// queues that run concurrently: LOAD (LOAD instructions), COMPUTE (MAC, REQUANT and
// VECTOR) and STORE (STORE instructions). The queues form a chain
// LOAD -> COMPUTE -> STORE; "previous" and "next" refer to that chain. Each adjacent
// pair is joined by two token FIFOs, one in each direction. A producer pushes a token
// when the data it wrote may be read (RAW), a consumer pushes one back when the buffer
// it read may be overwritten (WAR). LOAD has no previous queue and STORE no next queue;
// setting those flags is an encoding error. SYNC waits until every queue is idle; END
// waits likewise and stops the program; tokens still in FIFOs at END are dropped.
// An instruction at the head of its queue first pops its tokens (waiting while a FIFO is
// empty), then executes, then pushes its tokens (staying at the head while a FIFO of
// depth token_depth is full). Dispatch is in program order and stalls while the target
// queue (depth queue_depth) is full. Every instruction reads all its operands before it
// writes any result. SRAM starts zeroed on every run.
//
// Buffers (SRAM): ACT (activations, byte-addressed), WGT (weights, byte-addressed),
// ACC (accumulators, word-addressed, one word per accumulator holding the exact sum:
// acc_bits and the overflow policy are applied when REQUANT reads it) and PARAM
// (parameter records, byte-addressed). DRAM is one byte-addressed space; a program's
// constant section is placed at DRAM address 0.
//
// 4-bit tensors are packed two per byte (element 2k in the low nibble); an operand
// address of a 4-bit tensor is the byte address of its element 0.
//
// Parameter records (little endian, in PARAM) are read by the requantizing instructions
// (REQUANT, VADD, VAVGPOOL) and by VLUT (its table); their layouts are declared once in
// dla/param_records.hpp.
// The output range is lo = max(T.min, clip_lo), hi = min(T.max, clip_hi); the rounding
// mode is the hardware config's. The MAC precisions (mode -> operand types -> config
// flag) are declared once in dla/mac_modes.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

namespace dla::isa {

inline constexpr int kInstructionBits = 128;
inline constexpr int kInstructionBytes = 16;

enum class Queue : std::uint8_t { kLoad = 0, kCompute = 1, kStore = 2, kAll = 3 };
enum class Buffer : std::uint8_t { ACT = 0, WGT = 1, ACC = 2, PARAM = 3 };
/// MAC precision: activation type x weight type.
enum class MacMode : std::uint8_t { A8W8 = 0, A4W4 = 1, A8W4 = 2, A16W8 = 3 };

std::string_view queue_name(Queue q);
std::string_view buffer_name(Buffer b);
std::string_view mac_mode_name(MacMode m);

/// How the disassembler prints a field.
enum class FieldKind : std::uint8_t { kNum, kAddr, kBool, kBuffer, kDType, kMacMode };

/// One field of an instruction: bits [lsb, lsb + width), valid values [min, max].
struct FieldInfo {
  std::string_view name;
  int lsb;
  int width;
  std::int64_t min;
  std::int64_t max;
  FieldKind kind;
  std::string_view doc;
};

// FIELD(name, lsb, width, min, max, kind, doc)

// LOAD: DMA from DRAM into an SRAM buffer, a 2D strided block.
//   for r in [0, rows):
//     for b in [0, row_bytes):
//       SRAM[buffer][sram_addr + r * sram_stride + b] = fill_zero ? 0 : DRAM[dram_addr + r * dram_stride + b]
//   For ACC, DRAM holds int32 little-endian words: row_bytes is a multiple of 4, each
//   4 bytes become one sign-extended accumulator word, and sram_addr and sram_stride
//   count words. dram_stride 0 repeats one row (broadcast of a bias row). fill_zero
//   writes zeros without reading DRAM (padding halos).
#define DLA_FIELDS_LOAD(FIELD)                                                                  \
  FIELD(buffer, 8, 2, 0, 3, FieldKind::kBuffer, "Target SRAM buffer: act, wgt, acc or param.")  \
  FIELD(fill_zero, 10, 1, 0, 1, FieldKind::kBool, "Write zeros instead of reading DRAM.")       \
  FIELD(sram_addr, 11, 20, 0, 1048575, FieldKind::kAddr, "First SRAM byte (word for acc).")     \
  FIELD(dram_addr, 31, 32, 0, 4294967295, FieldKind::kAddr, "First DRAM byte.")                 \
  FIELD(row_bytes, 63, 14, 1, 16383, FieldKind::kNum, "Bytes per row, as read from DRAM.")      \
  FIELD(rows, 77, 12, 1, 4095, FieldKind::kNum, "Number of rows.")                              \
  FIELD(dram_stride, 89, 22, 0, 4194303, FieldKind::kNum, "DRAM bytes between row starts.")     \
  FIELD(sram_stride, 111, 14, 0, 16383, FieldKind::kNum,                                       \
        "SRAM bytes (words for acc) between row starts.")

// STORE: DMA from the ACT buffer to DRAM, a 2D strided block.
//   for r in [0, rows):
//     for b in [0, row_bytes):
//       DRAM[dram_addr + r * dram_stride + b] = ACT[sram_addr + r * sram_stride + b]
#define DLA_FIELDS_STORE(FIELD)                                                                 \
  FIELD(sram_addr, 11, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte.")                     \
  FIELD(dram_addr, 31, 32, 0, 4294967295, FieldKind::kAddr, "First DRAM byte.")                 \
  FIELD(row_bytes, 63, 14, 1, 16383, FieldKind::kNum, "Bytes per row.")                         \
  FIELD(rows, 77, 12, 1, 4095, FieldKind::kNum, "Number of rows.")                              \
  FIELD(dram_stride, 89, 22, 0, 4194303, FieldKind::kNum, "DRAM bytes between row starts.")     \
  FIELD(sram_stride, 111, 14, 0, 16383, FieldKind::kNum, "ACT bytes between row starts.")

// MAC: a convolution (or matmul: 1x1 kernel) tile on the MAC array.
//   in_h = (out_h - 1) * stride_h + (kernel_h - 1) * dilation + 1   (likewise in_w)
//   A = ACT[act_addr] as [in_h][in_w][in_c] of the mode's activation type
//       (u8/u4 when act_unsigned, i16 for A16W8)
//   W = WGT[wgt_addr] as [out_c][kernel_h][kernel_w][in_c]  ([out_c][kernel_h][kernel_w]
//       when depthwise, which requires in_c == out_c)
//   for oh in [0, out_h), ow in [0, out_w), oc in [0, out_c):
//     s = accumulate ? ACC[acc_addr + (oh * out_w + ow) * out_c + oc] : 0
//     for kh in [0, kernel_h), kw in [0, kernel_w), ic in [0, in_c) (ic = oc when depthwise):
//       s += A[oh * stride_h + kh * dilation][ow * stride_w + kw * dilation][ic] * W[oc][kh][kw][ic]
//     ACC[acc_addr + (oh * out_w + ow) * out_c + oc] = s      (exact)
#define DLA_FIELDS_MAC(FIELD)                                                                   \
  FIELD(mode, 8, 2, 0, 3, FieldKind::kMacMode, "Precision: a8w8, a4w4, a8w4 or a16w8.")         \
  FIELD(act_unsigned, 10, 1, 0, 1, FieldKind::kBool, "Activations are u8/u4 (not for a16w8).") \
  FIELD(accumulate, 11, 1, 0, 1, FieldKind::kBool, "Add onto ACC instead of starting at 0.")   \
  FIELD(depthwise, 12, 1, 0, 1, FieldKind::kBool, "Each output channel reads only its input.") \
  FIELD(act_addr, 13, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the input tile.")    \
  FIELD(wgt_addr, 33, 20, 0, 1048575, FieldKind::kAddr, "First WGT byte of the weights.")       \
  FIELD(acc_addr, 53, 16, 0, 65535, FieldKind::kAddr, "First ACC word of the output tile.")     \
  FIELD(out_h, 69, 8, 1, 255, FieldKind::kNum, "Output tile height.")                           \
  FIELD(out_w, 77, 8, 1, 255, FieldKind::kNum, "Output tile width.")                            \
  FIELD(out_c, 85, 12, 1, 4095, FieldKind::kNum, "Output channels of the tile.")                \
  FIELD(in_c, 97, 12, 1, 4095, FieldKind::kNum, "Input channels of the tile.")                  \
  FIELD(kernel_h, 109, 4, 1, 15, FieldKind::kNum, "Kernel height.")                             \
  FIELD(kernel_w, 113, 4, 1, 15, FieldKind::kNum, "Kernel width.")                              \
  FIELD(stride_h, 117, 3, 1, 7, FieldKind::kNum, "Vertical stride.")                            \
  FIELD(stride_w, 120, 3, 1, 7, FieldKind::kNum, "Horizontal stride.")                          \
  FIELD(dilation, 123, 3, 1, 7, FieldKind::kNum, "Kernel dilation (both axes).")

// REQUANT: accumulators to activations (fused after every MAC op).
//   rec = PARAM[param_addr] (int32 clip_lo, int32 clip_hi, int8 shift[channels])
//   for p in [0, pixels), c in [0, channels):
//     a = finalize_acc(ACC[acc_addr + p * channels + c], acc_bits, overflow_policy)
//     y = clamp(round_shift(a, rec.shift[c], rounding_mode), lo, hi)
//     ACT[act_addr] element (p * channels + c) of out_type = y
#define DLA_FIELDS_REQUANT(FIELD)                                                               \
  FIELD(out_type, 8, 3, 0, 5, FieldKind::kDType, "Output type: i4, u4, i8, u8, i16 or i32.")    \
  FIELD(acc_addr, 11, 16, 0, 65535, FieldKind::kAddr, "First ACC word.")                        \
  FIELD(act_addr, 27, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the output.")        \
  FIELD(param_addr, 47, 16, 0, 65535, FieldKind::kAddr, "PARAM byte of the requant record.")    \
  FIELD(pixels, 63, 16, 1, 65535, FieldKind::kNum, "Pixels of the tile.")                       \
  FIELD(channels, 79, 12, 1, 4095, FieldKind::kNum, "Channels per pixel.")

// VADD (VECTOR funct 0): residual add with frac alignment.
//   rec = PARAM[param_addr] (int32 clip_lo, int32 clip_hi, int8 shift_a, shift_b, shift_y)
//   for i in [0, count):
//     y = clamp(round_shift((a[i] << shift_a) + (b[i] << shift_b), shift_y, rounding_mode), lo, hi)
//   with a = ACT[a_addr] of a_type, b = ACT[b_addr] of b_type, y to ACT[y_addr] of y_type.
#define DLA_FIELDS_VADD(FIELD)                                                                  \
  FIELD(a_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of operand a.")           \
  FIELD(b_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of operand b.")           \
  FIELD(y_addr, 52, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the result.")          \
  FIELD(count, 72, 16, 1, 65535, FieldKind::kNum, "Elements.")                                  \
  FIELD(a_type, 88, 3, 0, 4, FieldKind::kDType, "Type of a.")                                   \
  FIELD(b_type, 91, 3, 0, 4, FieldKind::kDType, "Type of b.")                                   \
  FIELD(y_type, 94, 3, 0, 4, FieldKind::kDType, "Type of y.")                                   \
  FIELD(param_addr, 97, 16, 0, 65535, FieldKind::kAddr, "PARAM byte of the add record.")

// VMAXPOOL (VECTOR funct 1): max over windows; window positions outside the input
// (padding) are skipped. Input [in_h][in_w][channels], output [out_h][out_w][channels].
//   for oh, ow, c:
//     y = max { X[ih][iw][c] : ih = oh * stride_h + kh - pad_top, iw = ow * stride_w + kw - pad_left,
//                              kh < kernel_h, kw < kernel_w, 0 <= ih < in_h, 0 <= iw < in_w }
//     (a window with no input element yields type.min)
#define DLA_FIELDS_VMAXPOOL(FIELD)                                                              \
  FIELD(in_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the input.")          \
  FIELD(out_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the output.")        \
  FIELD(in_h, 52, 8, 1, 255, FieldKind::kNum, "Input height.")                                  \
  FIELD(in_w, 60, 8, 1, 255, FieldKind::kNum, "Input width.")                                   \
  FIELD(out_h, 68, 8, 1, 255, FieldKind::kNum, "Output height.")                                \
  FIELD(out_w, 76, 8, 1, 255, FieldKind::kNum, "Output width.")                                 \
  FIELD(channels, 84, 10, 1, 1023, FieldKind::kNum, "Channels.")                                \
  FIELD(kernel_h, 94, 4, 1, 15, FieldKind::kNum, "Window height.")                              \
  FIELD(kernel_w, 98, 4, 1, 15, FieldKind::kNum, "Window width.")                               \
  FIELD(stride_h, 102, 3, 1, 7, FieldKind::kNum, "Vertical stride.")                            \
  FIELD(stride_w, 105, 3, 1, 7, FieldKind::kNum, "Horizontal stride.")                          \
  FIELD(pad_top, 108, 3, 0, 7, FieldKind::kNum, "Rows of padding above the input.")             \
  FIELD(pad_left, 111, 3, 0, 7, FieldKind::kNum, "Columns of padding left of the input.")       \
  FIELD(type, 114, 3, 0, 4, FieldKind::kDType, "Element type of input and output.")

// VAVGPOOL (VECTOR funct 2): average over windows, with the hardware's 1/N.
//   in_h = (out_h - 1) * stride_h + kernel_h (likewise in_w); padding, if any, is already
//   in the input tile as zeros. N = kernel_h * kernel_w, M = round(2^S / N) with
//   S = avgpool_shift of the hardware config; rec = PARAM[param_addr] (int32 clip_lo,
//   int32 clip_hi, int8 shift) where shift = S + f_x - f_y.
//   for oh, ow, c:
//     sum = sum over kh, kw of X[oh * stride_h + kh][ow * stride_w + kw][c]
//     Y[oh][ow][c] = clamp(round_shift(sum * M, rec.shift, rounding_mode), lo, hi)
#define DLA_FIELDS_VAVGPOOL(FIELD)                                                              \
  FIELD(in_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the input.")          \
  FIELD(out_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the output.")        \
  FIELD(out_h, 52, 8, 1, 255, FieldKind::kNum, "Output height.")                                \
  FIELD(out_w, 60, 8, 1, 255, FieldKind::kNum, "Output width.")                                 \
  FIELD(channels, 68, 10, 1, 1023, FieldKind::kNum, "Channels.")                                \
  FIELD(kernel_h, 78, 8, 1, 255, FieldKind::kNum, "Window height.")                             \
  FIELD(kernel_w, 86, 8, 1, 255, FieldKind::kNum, "Window width.")                              \
  FIELD(stride_h, 94, 3, 1, 7, FieldKind::kNum, "Vertical stride.")                             \
  FIELD(stride_w, 97, 3, 1, 7, FieldKind::kNum, "Horizontal stride.")                           \
  FIELD(in_type, 100, 3, 0, 4, FieldKind::kDType, "Input element type.")                        \
  FIELD(out_type, 103, 3, 0, 4, FieldKind::kDType, "Output element type.")                      \
  FIELD(param_addr, 106, 16, 0, 65535, FieldKind::kAddr, "PARAM byte of the avgpool record.")

// VUPSAMPLE (VECTOR funct 3): nearest-neighbour upsampling by 2.
//   for h, w, c, i in {0,1}, j in {0,1}: Y[2h + i][2w + j][c] = X[h][w][c]
#define DLA_FIELDS_VUPSAMPLE(FIELD)                                                             \
  FIELD(in_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the input.")          \
  FIELD(out_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the output.")        \
  FIELD(in_h, 52, 8, 1, 255, FieldKind::kNum, "Input height.")                                  \
  FIELD(in_w, 60, 8, 1, 255, FieldKind::kNum, "Input width.")                                   \
  FIELD(channels, 68, 12, 1, 4095, FieldKind::kNum, "Channels.")                                \
  FIELD(type, 80, 3, 0, 4, FieldKind::kDType, "Element type.")

// VCOPY (VECTOR funct 4): copy within ACT.
//   for i in [0, bytes): ACT[dst_addr + i] = ACT[src_addr + i]    (regions must not overlap)
#define DLA_FIELDS_VCOPY(FIELD)                                                                 \
  FIELD(src_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First source byte.")                   \
  FIELD(dst_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First destination byte.")              \
  FIELD(bytes, 52, 20, 1, 1048575, FieldKind::kNum, "Bytes to copy.")

// VLUT (VECTOR funct 5): a nonlinear function (SiLU, sigmoid, tanh, hardswish, GELU, ...)
// as a lookup table, applied after the op that produced x (dla::lut_apply in numerics.hpp).
//   rec = PARAM[param_addr] (int16 entry[lut_entries(in_type)]: 2^bits entries for 4- and
//         8-bit inputs, 257 interpolation knots for i16)
//   for i in [0, count):
//     y[i] = clamp(lut_apply(rec.entry, x[i], in_type, rounding_mode), out_type.min, out_type.max)
//   with x = ACT[in_addr] of in_type, y to ACT[out_addr] of out_type (regions may coincide:
//   every element is read before it is written).
// A vector instruction rather than a mode of REQUANT: the function follows a convolution,
// a residual add or a pool alike (YOLOv5 and MobileNetV3 apply it after each), so one
// instruction serves every producer, and REQUANT, VADD and VAVGPOOL keep their records
// and datapaths. The price is a second pass over the tile, count / vector_lanes cycles
// (twice that for i16, which reads two knots per element), which the cycle model charges.
#define DLA_FIELDS_VLUT(FIELD)                                                                  \
  FIELD(in_addr, 12, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the input.")          \
  FIELD(out_addr, 32, 20, 0, 1048575, FieldKind::kAddr, "First ACT byte of the output.")        \
  FIELD(count, 52, 20, 1, 1048575, FieldKind::kNum, "Elements.")                                \
  FIELD(in_type, 72, 3, 0, 4, FieldKind::kDType, "Input element type (selects the table size).") \
  FIELD(out_type, 75, 3, 0, 4, FieldKind::kDType, "Output element type.")                       \
  FIELD(param_addr, 78, 16, 0, 65535, FieldKind::kAddr, "PARAM byte of the table record.")

// SYNC: barrier; waits until every queue has finished the instructions before it.
#define DLA_FIELDS_SYNC(FIELD)
// END: waits like SYNC, then stops the program.
#define DLA_FIELDS_END(FIELD)

inline constexpr int kNoFunct = -1;

// INSN(Name, mnemonic, opclass, funct, queue, FIELDS)
#define DLA_ISA_TABLE(INSN)                                                 \
  INSN(Load, "load", 1, kNoFunct, Queue::kLoad, DLA_FIELDS_LOAD)            \
  INSN(Store, "store", 2, kNoFunct, Queue::kStore, DLA_FIELDS_STORE)        \
  INSN(Mac, "mac", 3, kNoFunct, Queue::kCompute, DLA_FIELDS_MAC)            \
  INSN(Requant, "requant", 4, kNoFunct, Queue::kCompute, DLA_FIELDS_REQUANT) \
  INSN(VAdd, "vadd", 5, 0, Queue::kCompute, DLA_FIELDS_VADD)                \
  INSN(VMaxPool, "vmaxpool", 5, 1, Queue::kCompute, DLA_FIELDS_VMAXPOOL)    \
  INSN(VAvgPool, "vavgpool", 5, 2, Queue::kCompute, DLA_FIELDS_VAVGPOOL)    \
  INSN(VUpsample, "vupsample", 5, 3, Queue::kCompute, DLA_FIELDS_VUPSAMPLE) \
  INSN(VCopy, "vcopy", 5, 4, Queue::kCompute, DLA_FIELDS_VCOPY)             \
  INSN(VLut, "vlut", 5, 5, Queue::kCompute, DLA_FIELDS_VLUT)                \
  INSN(Sync, "sync", 6, kNoFunct, Queue::kAll, DLA_FIELDS_SYNC)             \
  INSN(End, "end", 7, kNoFunct, Queue::kAll, DLA_FIELDS_END)

/// Dependency-token flags of the common header.
struct Tokens {
  bool pop_prev = false;
  bool pop_next = false;
  bool push_prev = false;
  bool push_next = false;
  bool operator==(const Tokens& o) const {
    return pop_prev == o.pop_prev && pop_next == o.pop_next && push_prev == o.push_prev &&
           push_next == o.push_next;
  }
  bool operator!=(const Tokens& o) const { return !(*this == o); }
};

namespace detail {
/// The row of `name` in a field table; evaluated at compile time, an unknown name is an
/// error (the throw is not a constant expression).
template <std::size_t N>
constexpr const FieldInfo& find_field(const std::array<FieldInfo, N>& fields, std::string_view name) {
  for (const FieldInfo& f : fields) {
    if (f.name == name) return f;
  }
  throw std::invalid_argument("no such ISA field");
}
}  // namespace detail

#define DLA_ISA_FIELD_MEMBER(name, lsb, width, lo, hi, kind, doc) std::int64_t name = lo;
#define DLA_ISA_FIELD_INFO(name, lsb, width, lo, hi, kind, doc) \
  FieldInfo{#name, lsb, width, lo, hi, kind, doc},
#define DLA_ISA_FIELD_COUNT(...) +1
#define DLA_ISA_FIELD_VISIT(name, ...) fn(kFields[index++], name);
#define DLA_ISA_FIELD_EQUAL(name, ...) &&name == other.name

#define DLA_ISA_DECLARE_STRUCT(Name, mnem, opclass_, funct_, queue_, FIELDS)             \
  struct Name {                                                                          \
    static constexpr std::string_view kMnemonic = mnem;                                  \
    static constexpr int kOpclass = opclass_;                                            \
    static constexpr int kFunct = funct_;                                                \
    static constexpr Queue kQueue = queue_;                                              \
    static constexpr std::array<FieldInfo, 0 FIELDS(DLA_ISA_FIELD_COUNT)> kFields{       \
        {FIELDS(DLA_ISA_FIELD_INFO)}};                                                   \
    /* The table row of one field, e.g. Mac::field("stride_h").max. */                  \
    static constexpr const FieldInfo& field(std::string_view field_name) {               \
      return detail::find_field(kFields, field_name);                                    \
    }                                                                                    \
    Tokens tokens;                                                                       \
    FIELDS(DLA_ISA_FIELD_MEMBER)                                                         \
    /* Calls fn(const FieldInfo&, field) for every field, in table order. */             \
    template <typename Fn>                                                               \
    void visit_fields([[maybe_unused]] Fn&& fn) {                                      \
      [[maybe_unused]] std::size_t index = 0;                                            \
      FIELDS(DLA_ISA_FIELD_VISIT)                                                        \
    }                                                                                    \
    template <typename Fn>                                                               \
    void visit_fields([[maybe_unused]] Fn&& fn) const {                                \
      [[maybe_unused]] std::size_t index = 0;                                            \
      FIELDS(DLA_ISA_FIELD_VISIT)                                                        \
    }                                                                                    \
    bool operator==(const Name& other) const {                                           \
      return tokens == other.tokens FIELDS(DLA_ISA_FIELD_EQUAL);                         \
    }                                                                                    \
    bool operator!=(const Name& other) const { return !(*this == other); }               \
  };

DLA_ISA_TABLE(DLA_ISA_DECLARE_STRUCT)

namespace detail {
template <typename Ignored, typename... Alternatives>
struct VariantOfRest {
  using type = std::variant<Alternatives...>;
};
}  // namespace detail

#define DLA_ISA_VARIANT_ALTERNATIVE(Name, ...) , Name
/// Any decoded instruction.
using Instruction = detail::VariantOfRest<void DLA_ISA_TABLE(DLA_ISA_VARIANT_ALTERNATIVE)>::type;
#undef DLA_ISA_VARIANT_ALTERNATIVE

/// Static description of one instruction, for tables, tests and documentation.
struct InsnInfo {
  std::string_view mnemonic;
  int opclass;
  int funct;  ///< kNoFunct when the class has no funct field
  Queue queue;
  const FieldInfo* fields;
  std::size_t num_fields;
  /// match/mask over the low 64 bits: a word is this instruction iff (word & mask) == match.
  std::uint64_t match;
  std::uint64_t mask;
};

/// Every instruction of the table, in table order.
const InsnInfo* insn_infos(std::size_t* count);

/// Static description of the alternative held by `insn`.
const InsnInfo& info_of(const Instruction& insn);

/// The 128-bit encoded form: bit i is bit (i % 64) of words[i / 64].
struct Word {
  std::array<std::uint64_t, 2> words{};
  bool operator==(const Word& o) const { return words == o.words; }
  bool operator!=(const Word& o) const { return !(*this == o); }

  std::uint64_t bits(int lsb, int width) const;
  void set_bits(int lsb, int width, std::uint64_t value);

  /// Little-endian bytes: byte i holds bits [8i, 8i + 8).
  void to_bytes(std::uint8_t* out) const;
  static Word from_bytes(const std::uint8_t* in);
};

/// Empty when an instruction of queue `q` may carry the token flags `t`; otherwise what
/// is wrong ("token flag pop_prev is invalid on the load queue (it has no previous
/// queue)"). LOAD has no previous queue, STORE no next queue, SYNC and END neither.
std::string token_flag_error(Queue q, const Tokens& t);

/// Encodes an instruction. Throws EncodeError naming the instruction and the field when
/// a field is out of its range or a token flag is invalid for the instruction's queue.
Word encode(const Instruction& insn);

/// Decodes a word. Throws EncodeError for an unknown opclass or funct, a field value out
/// of range, reserved bits set or an invalid token flag.
Instruction decode(const Word& word);

/// One line of text: mnemonic, token flags, then name=value for every field.
std::string disassemble(const Instruction& insn);

/// The queue an instruction executes on.
Queue queue_of(const Instruction& insn);
const Tokens& tokens_of(const Instruction& insn);
Tokens& tokens_of(Instruction& insn);

}  // namespace dla::isa
