// Lowering, the driver: checks every node against the hardware, plans it (tiles and
// constants), allocates DRAM and emits each op as one pipeline (see lowering.hpp for
// the phases and their files).
#include "dla/compiler/lower.hpp"

#include <algorithm>

#include "dla/error.hpp"
#include "dla/mac_modes.hpp"
#include "lowering.hpp"

namespace dla::compiler {
namespace lowering {

[[noreturn]] void refuse(const Node& n, const std::string& why) {
  throw Error(std::string(op_kind_name(n.kind)) + " '" + n.name + "': " + why);
}

ConvDims conv_dims(const Node& n, const Node& x) {
  if (n.kind == OpKind::kLinear) return {1, x.shape[1], 1, x.shape[0], 1, x.shape[0]};
  return {x.shape[0], x.shape[1], x.shape[2], x.shape[3], n.shape[2], n.shape[3]};
}

Lowering::Lowering(const Graph& graph, const HwConfig& config, const CompileOptions& options)
    : g(graph), hw(config), b(options.embed_config ? ProgramBuilder(config) : ProgramBuilder(config.identity_hash())) {}

View Lowering::view(int id) const {
  const Node& n = node(id);
  if (n.kind == OpKind::kFlatten) {
    View v = view(n.inputs[0]);
    return {v.dram, 1, 1, v.N, v.H * v.W * v.C, v.dtype, v.frac};
  }
  View v;
  v.dram = dram[static_cast<std::size_t>(id)];
  v.dtype = n.dtype;
  v.frac = n.frac;
  if (n.shape.size() == 4) {
    v.N = n.shape[0];
    v.C = n.shape[1];
    v.H = n.shape[2];
    v.W = n.shape[3];
  } else {
    v.W = n.shape[0];
    v.C = n.shape[1];
  }
  return v;
}

TensorDesc Lowering::desc(int id, TensorRole role) const {
  const Node& n = node(id);
  TensorDesc d;
  d.name = n.name;
  d.role = role;
  d.dtype = n.dtype;
  d.frac = n.frac;
  if (n.kind == OpKind::kFlatten) {
    // The bytes are the NHWC bytes of the flattened tensor.
    TensorDesc src = desc(n.inputs[0], role);
    src.name = n.name;
    src.dram_offset = static_cast<std::uint64_t>(dram[static_cast<std::size_t>(id)]);
    return src;
  }
  d.layout = n.shape.size() == 4 ? Layout::kNHWC : Layout::kRowMajor;
  d.shape.assign(n.shape.begin(), n.shape.end());
  d.dram_offset = static_cast<std::uint64_t>(dram[static_cast<std::size_t>(id)]);
  return d;
}

namespace {

void check_even_channels(const Node& n, DType t, i64 channels, const char* what) {
  if (is4(t) && channels % 2 != 0) {
    refuse(n, std::string(what) + " has " + std::to_string(channels) + " channels of a 4-bit type; the hardware packs "
              "two per byte, so 4-bit tensors need an even channel count");
  }
}

/// The MAC mode of a layer reading `act` activations, from the table of dla/mac_modes.hpp.
isa::MacMode mac_mode(const Node& n, DType act, const HwConfig& hw) {
  const DType w = n.weight_dtype;
  const std::optional<isa::MacMode> mode = isa::mac_mode_for(act, w);
  if (!mode) {
    refuse(n, std::string("activation ") + std::string(dtype_info(act).name) + " x weight " +
                  std::string(dtype_info(w).name) + " is not a precision of the MAC array (" + isa::mac_modes_text() +
                  ")");
  }
  if (!isa::mac_mode_supported(*mode, hw)) {
    refuse(n, "the hardware config does not support " + isa::mac_mode_types_text(*mode) + " MACs");
  }
  return *mode;
}

void plan_conv(Lowering& L, int id) {
  const Node& n = L.node(id);
  const Node& x = L.node(n.inputs[0]);
  ConvPlan& p = L.plan_of(id).conv;
  const auto& a = n.conv;
  const i64 C = conv_dims(n, x).C;
  const i64 OC = n.out_channels();
  const i64 G = a.groups;
  const i64 cg = C / G, og = OC / G;
  p.mode = mac_mode(n, x.dtype, L.hw);
  p.act_unsigned = x.dtype == DType::U8 || x.dtype == DType::U4;
  p.depthwise = G > 1 && cg == 1 && og == 1;
  if (a.kernel_h > L.hw.max_kernel || a.kernel_w > L.hw.max_kernel) {
    refuse(n, "kernel " + std::to_string(a.kernel_h) + "x" + std::to_string(a.kernel_w) + " exceeds max_kernel " +
                  std::to_string(L.hw.max_kernel) + " of the hardware config");
  }
  if (a.stride_h > kMaxMacStride || a.stride_w > kMaxMacStride) {
    refuse(n, "stride above " + std::to_string(kMaxMacStride) + " is not supported by the MAC array");
  }
  if (a.dilation_h != a.dilation_w) refuse(n, "the MAC array has one dilation for both axes");
  if (a.dilation_h > kMaxDilation) {
    refuse(n, "dilation above " + std::to_string(kMaxDilation) + " is not supported by the MAC array");
  }
  if (x.dtype == DType::I32) refuse(n, "i32 activations are not supported");
  check_even_channels(n, x.dtype, C, "the input");
  check_even_channels(n, n.dtype, OC, "the output");
  if (G > 1 && !p.depthwise) {
    check_even_channels(n, x.dtype, cg, "each input group");
    check_even_channels(n, n.dtype, og, "each output group");
  }
  p.weights = conv_weights(L, n, x);
  p.tiles = choose_conv_tiles(L, n, x, p);
  add_conv_constants(L, n, x, p);
}

void plan(Lowering& L, int id) {
  const Node& n = L.node(id);
  switch (n.kind) {
    case OpKind::kInput:
    case OpKind::kFlatten:
      if (n.shape.size() == 4) check_even_channels(n, n.dtype, n.shape[1], "the tensor");
      if (n.shape.size() == 2 && n.kind == OpKind::kInput) check_even_channels(n, n.dtype, n.shape[1], "the tensor");
      return;
    case OpKind::kConv2d:
    case OpKind::kLinear: plan_conv(L, id); return;
    case OpKind::kAdd:
      check_even_channels(n, n.dtype, n.shape[1], "the output");
      L.plan_of(id).param = add_add_record(L, n);
      return;
    case OpKind::kAvgPool:
    case OpKind::kGlobalAvgPool: {
      const Node& x = L.node(n.inputs[0]);
      if (n.conv.kernel_h > kMaxAvgPoolWindow || n.conv.kernel_w > kMaxAvgPoolWindow) {
        refuse(n, "window " + std::to_string(n.conv.kernel_h) + "x" + std::to_string(n.conv.kernel_w) +
                      " exceeds the vector unit's " + std::to_string(kMaxAvgPoolWindow) + "x" +
                      std::to_string(kMaxAvgPoolWindow));
      }
      if (n.conv.stride_h > kMaxPoolStride || n.conv.stride_w > kMaxPoolStride) {
        refuse(n, "stride above " + std::to_string(kMaxPoolStride));
      }
      const i64 window = i64{n.conv.kernel_h} * n.conv.kernel_w;
      if (!avgpool_multiplier(window, static_cast<int>(L.hw.avgpool_shift))) {
        refuse(n, "the multiplier round(2^" + std::to_string(L.hw.avgpool_shift) + " / " + std::to_string(window) +
                      ") does not fit 16 bits");
      }
      if (x.dtype == DType::I32 || n.dtype == DType::I32) refuse(n, "i32 tensors are not supported");
      check_even_channels(n, x.dtype, x.shape[1], "the input");
      check_even_channels(n, n.dtype, n.shape[1], "the output");
      L.plan_of(id).param = add_avgpool_record(L, n, x);
      return;
    }
    case OpKind::kMaxPool:
      if (n.conv.kernel_h > kMaxPoolKernel || n.conv.kernel_w > kMaxPoolKernel || n.conv.kernel_h > L.hw.max_kernel ||
          n.conv.kernel_w > L.hw.max_kernel) {
        refuse(n, "window " + std::to_string(n.conv.kernel_h) + "x" + std::to_string(n.conv.kernel_w) +
                      " exceeds max_kernel " + std::to_string(std::min<i64>(kMaxPoolKernel, L.hw.max_kernel)));
      }
      if (n.conv.stride_h > kMaxPoolStride || n.conv.stride_w > kMaxPoolStride) {
        refuse(n, "stride above " + std::to_string(kMaxPoolStride));
      }
      if (n.conv.pad_top > kMaxPoolPad || n.conv.pad_left > kMaxPoolPad) {
        refuse(n, "padding above " + std::to_string(kMaxPoolPad));
      }
      check_even_channels(n, n.dtype, n.shape[1], "the tensor");
      return;
    case OpKind::kConcat:
      for (int in : n.inputs) check_even_channels(n, n.dtype, L.node(in).shape[1], "an input");
      return;
    case OpKind::kUpsample2x: check_even_channels(n, n.dtype, n.shape[1], "the tensor"); return;
    case OpKind::kLut: {
      if (L.hw.lut_lanes == 0) {
        refuse(n, "the hardware config has no lookup-table unit (lut_lanes = 0); leave this activation in float "
                  "(float_layers in the precision plan) or compile for a config with lut_lanes > 0");
      }
      const Node& x = L.node(n.inputs[0]);
      if (n.shape.size() == 4 || n.shape.size() == 2) check_even_channels(n, n.dtype, n.shape[1], "the tensor");
      L.plan_of(id).param = add_lut_record(L, n, x);
      return;
    }
  }
}

void allocate(Lowering& L) {
  const auto count = L.g.nodes().size();
  L.dram.assign(count, 0);
  std::vector<bool> is_output(count, false);
  for (int o : L.g.outputs()) is_output[static_cast<std::size_t>(o)] = true;
  for (std::size_t id = 0; id < count; ++id) {
    const Node& n = L.g.nodes()[id];
    if (n.kind == OpKind::kFlatten) {
      L.dram[id] = L.dram[static_cast<std::size_t>(n.inputs[0])];
      if (is_output[id]) L.b.add_tensor_at(L.desc(static_cast<int>(id), TensorRole::kOutput));
      continue;
    }
    const TensorRole role = n.kind == OpKind::kInput ? TensorRole::kInput
                            : is_output[id]          ? TensorRole::kOutput
                                                     : TensorRole::kIntermediate;
    TensorDesc d = L.desc(static_cast<int>(id), role);
    if (role == TensorRole::kIntermediate) {
      L.dram[id] = static_cast<i64>(L.b.allocate(d.byte_size()));
    } else {
      L.dram[id] = static_cast<i64>(L.b.add_tensor(d).dram_offset);
    }
  }
}

void emit(Lowering& L, int id) {
  const Node& n = L.node(id);
  if (n.kind == OpKind::kInput) return;
  const std::uint32_t first = L.b.instruction_count();
  std::vector<Step> steps;
  switch (n.kind) {
    case OpKind::kConv2d:
    case OpKind::kLinear: steps = conv_steps(L, id); break;
    case OpKind::kAdd: steps = add_steps(L, id); break;
    case OpKind::kMaxPool:
    case OpKind::kAvgPool:
    case OpKind::kGlobalAvgPool: steps = pool_steps(L, id); break;
    case OpKind::kUpsample2x: steps = upsample_steps(L, id); break;
    case OpKind::kConcat: steps = concat_steps(L, id); break;
    case OpKind::kLut: steps = lut_steps(L, id); break;
    case OpKind::kInput:
    case OpKind::kFlatten: break;
  }
  if (!steps.empty()) {
    emit_pipeline(L.b, steps);
    L.b.add(isa::Sync{});
  }
  DebugRecord r;
  r.layer = n.name;
  r.insn_begin = first;
  r.insn_end = L.b.instruction_count();
  r.output = L.desc(id, TensorRole::kIntermediate);
  L.b.add_debug(r);
}

}  // namespace
}  // namespace lowering

Program compile(const Graph& graph, const HwConfig& hw, const CompileOptions& options) {
  hw.validate();
  if (graph.outputs().empty()) throw Error("the graph has no outputs");
  lowering::Lowering L(graph, hw, options);
  const int count = static_cast<int>(graph.nodes().size());
  L.plans.resize(graph.nodes().size());
  for (int id = 0; id < count; ++id) lowering::plan(L, id);
  lowering::allocate(L);
  for (int id = 0; id < count; ++id) lowering::emit(L, id);
  L.b.add(isa::End{});
  return L.b.build();
}

}  // namespace dla::compiler
