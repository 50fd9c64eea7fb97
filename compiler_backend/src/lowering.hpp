// lowering.hpp (private to the compiler) — the state the lowering phases share and the
// entry points of each phase, one file per phase:
//   lower.cpp            the driver: checks, DRAM allocation, per-op dispatch
//   lower_tiling.cpp     tile sizes: the convolution tile search, pool / upsample tiles,
//                        add / concat chunks
//   lower_constants.cpp  constants: weight blocks, biases and parameter records
//   lower_pipeline.cpp   DMA instructions, SRAM slots and the token pipeline
//   emit_conv.cpp        the steps of a convolution (MAC + REQUANT)
//   emit_vector.cpp      the steps of the vector ops (pools, add, upsample, concat, lut)
// Adding an op means a planning case in lower.cpp, its tiling, and one emit function.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dla/compiler/lower.hpp"
#include "dla/isa.hpp"

namespace dla::compiler::lowering {

using isa::Buffer;
using isa::Instruction;
using i64 = std::int64_t;

// ISA limits the tiler respects, read from the field table (dla/isa.hpp). LOAD and STORE
// share their DMA field ranges.
inline constexpr i64 kMaxRowBytes = isa::Load::field("row_bytes").max;
inline constexpr i64 kMaxRows = isa::Load::field("rows").max;
inline constexpr i64 kMaxDramStride = isa::Load::field("dram_stride").max;
inline constexpr i64 kMaxSramStride = isa::Load::field("sram_stride").max;
inline constexpr i64 kMaxTileSide = isa::Mac::field("out_h").max;
inline constexpr i64 kMaxChannels = isa::Mac::field("out_c").max;
inline constexpr i64 kMaxMacStride = isa::Mac::field("stride_h").max;
inline constexpr i64 kMaxDilation = isa::Mac::field("dilation").max;
inline constexpr i64 kMaxPoolChannels = isa::VMaxPool::field("channels").max;
inline constexpr i64 kMaxPoolKernel = isa::VMaxPool::field("kernel_h").max;
inline constexpr i64 kMaxPoolStride = isa::VMaxPool::field("stride_h").max;
inline constexpr i64 kMaxPoolPad = isa::VMaxPool::field("pad_top").max;
inline constexpr i64 kMaxAvgPoolWindow = isa::VAvgPool::field("kernel_h").max;
inline constexpr i64 kMaxVectorCount = isa::VAdd::field("count").max;
static_assert(kMaxRowBytes == isa::Store::field("row_bytes").max && kMaxRows == isa::Store::field("rows").max &&
              kMaxDramStride == isa::Store::field("dram_stride").max &&
              kMaxSramStride == isa::Store::field("sram_stride").max);
static_assert(kMaxPoolStride == isa::VAvgPool::field("stride_h").max);

[[noreturn]] void refuse(const Node& n, const std::string& why);

inline i64 nbytes(DType t, i64 count) { return static_cast<i64>(storage_bytes(t, static_cast<std::uint64_t>(count))); }
inline bool is4(DType t) { return dtype_info(t).bits == 4; }
inline i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 align4(i64 v) { return (v + 3) / 4 * 4; }
inline std::size_t idx(i64 v) { return static_cast<std::size_t>(v); }

/// An activation tensor in DRAM: [N][H][W][C], channels innermost.
struct View {
  i64 dram = 0;
  i64 N = 1, H = 1, W = 1, C = 1;
  DType dtype = DType::I8;
  int frac = 0;
  /// Byte address of element (n, h, w, c); the element index is even for 4-bit types.
  i64 addr(i64 n, i64 h, i64 w, i64 c) const { return dram + nbytes(dtype, ((n * H + h) * W + w) * C + c); }
  i64 elements() const { return N * H * W * C; }
};

/// Dimensions of a conv as the MAC sees them; a linear layer is a 1x1 convolution over
/// one row of N pixels with K channels.
struct ConvDims {
  i64 N, C, H, W, OH, OW;
};
ConvDims conv_dims(const Node& n, const Node& x);

/// A convolution's tile sizes: th x tw output pixels, toc output channels and cc input
/// channels (cc == toc when depthwise).
struct ConvTiles {
  i64 th = 1, tw = 1, toc = 1, cc = 1;
};

struct ConvPlan {
  ConvTiles tiles;
  bool depthwise = false;
  isa::MacMode mode = isa::MacMode::A8W8;
  bool act_unsigned = false;
  std::vector<std::int32_t> weights;  ///< [OC][C/groups][KH][KW], permuted for flatten inputs
  // Constant offsets, indexed [group][oc tile] (and [chunk] for weights).
  std::vector<std::vector<std::vector<i64>>> weight_blocks;
  std::vector<std::vector<i64>> bias_blocks, param_blocks;
};

struct LayerPlan {
  ConvPlan conv;
  i64 param = 0;  ///< constant offset of the record of add / avg pool / lut
};

/// The state every phase reads: the graph, the config, the program being built, the
/// per-node plans and DRAM addresses.
struct Lowering {
  Lowering(const Graph& g, const HwConfig& hw, const CompileOptions& options);

  const Graph& g;
  const HwConfig& hw;
  ProgramBuilder b;
  std::vector<LayerPlan> plans;
  std::vector<i64> dram;
  /// Constants already placed, by content: identical blocks (the weights of a module
  /// called twice, equal parameter records) share one DRAM address; constants are read-only.
  std::map<std::vector<std::uint8_t>, i64> constant_at;

  const Node& node(int id) const { return g.node(id); }
  LayerPlan& plan_of(int id) { return plans[static_cast<std::size_t>(id)]; }
  const LayerPlan& plan_of(int id) const { return plans[static_cast<std::size_t>(id)]; }
  /// The DRAM view of node `id`'s output (flatten and 2-D tensors as one row of pixels).
  View view(int id) const;
  /// The descriptor of node `id`'s output as it lies in DRAM.
  TensorDesc desc(int id, TensorRole role) const;
};

// --- pipeline (lower_pipeline.cpp) -------------------------------------------------------

/// One load -> compute hand-off. `finish` (when not empty) completes a tile into an
/// output slot and `stores` write it back.
struct Step {
  std::vector<Instruction> loads, computes, finish, stores;
};

/// Two slots per buffer region, for double buffering.
struct Slots {
  i64 a[2] = {0, 0};
  i64 operator[](std::size_t k) const { return a[k % 2]; }
};

/// The input and output slots of a pipeline in the activation SRAM.
struct ActSlots {
  Slots in, out;
};

/// A LOAD (or STORE) of a 2D strided block.
Instruction dma(bool store, Buffer buf, i64 sram, i64 dram, i64 row_bytes, i64 rows, i64 dram_stride, i64 sram_stride,
                bool fill_zero = false);
/// Moves `bytes` contiguous bytes between DRAM and a byte-addressed SRAM buffer
/// (or zero-fills the SRAM range).
void copy_contiguous(std::vector<Instruction>& out, bool store, Buffer buf, i64 sram, i64 dram, i64 bytes,
                     bool fill_zero = false);
/// Moves a box of rows x pixels x `chunk` bytes between DRAM (rows `dram_row` bytes
/// apart, pixels `dram_pixel` apart) and SRAM (rows `sram_row` apart, pixels dense).
void copy_box(std::vector<Instruction>& out, bool store, i64 sram, i64 sram_row, i64 dram, i64 dram_row,
              i64 dram_pixel, i64 rows, i64 pixels, i64 chunk);
/// Activation-SRAM layout of a pipeline: two input slots, then two output slots.
ActSlots act_slots(i64 in_bytes, i64 out_bytes);
/// Emits steps with the dependency tokens of the double-buffered schedule described in
/// lower.hpp.
void emit_pipeline(ProgramBuilder& b, std::vector<Step>& steps);

// --- tiling (lower_tiling.cpp) -------------------------------------------------------------

/// The tiles of a convolution: the halving search, then refine_conv_tiles.
ConvTiles choose_conv_tiles(const Lowering& L, const Node& n, const Node& x, const ConvPlan& p);

/// Output rows, columns and channels of a pooling tile.
struct PoolTile {
  i64 th, tw, tc;
};
PoolTile pool_tile(const Lowering& L, const Node& n, const View& X, const View& Y);
/// Input rows, columns and channels of an upsampling tile.
PoolTile upsample_tile(const Lowering& L, const Node& n, const View& X);
/// Elements per step of an elementwise op (add, lut) reading `inputs` and writing Y; a
/// record of `param_bytes` must fit PARAM.
i64 elementwise_chunk(const Lowering& L, const Node& n, const std::vector<View>& inputs, const View& Y,
                      i64 param_bytes = 0);
/// Pixels per step of a concat whose widest input has `widest` channels.
i64 concat_chunk(const Lowering& L, const Node& n, const View& Y, i64 widest);

// --- constants (lower_constants.cpp) -------------------------------------------------------

/// The weights as [OC][cg][KH][KW], permuted when a linear layer reads a flatten.
std::vector<std::int32_t> conv_weights(const Lowering& L, const Node& n, const Node& x);
/// Adds the weight blocks, biases and requantize records of a planned convolution.
void add_conv_constants(Lowering& L, const Node& n, const Node& x, ConvPlan& p);
/// Adds the parameter record of an add / average pool; returns its constant offset.
i64 add_add_record(Lowering& L, const Node& n);
i64 add_avgpool_record(Lowering& L, const Node& n, const Node& x);
/// Adds the VLUT table of a lut node (its input `x`); returns its constant offset.
i64 add_lut_record(Lowering& L, const Node& n, const Node& x);

// --- emission (emit_conv.cpp, emit_vector.cpp) ---------------------------------------------

std::vector<Step> conv_steps(const Lowering& L, int id);
std::vector<Step> pool_steps(const Lowering& L, int id);
std::vector<Step> upsample_steps(const Lowering& L, int id);
std::vector<Step> add_steps(const Lowering& L, int id);
std::vector<Step> concat_steps(const Lowering& L, int id);
std::vector<Step> lut_steps(const Lowering& L, int id);

}  // namespace dla::compiler::lowering
