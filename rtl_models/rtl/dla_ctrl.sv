// dla_ctrl — the compute unit's controller: takes the compute queue's 128-bit instruction
// words (valid_i / ready_o), decodes them at dla_pkg's field positions (generated from
// the ISA table, so no position is typed here) and walks the instruction's loops,
// issuing one beat descriptor per clock (beat_valid_o / beat_ready_i) to the sequencer
// that gathers the operands and drives the datapath blocks.
//
// MAC, weight-stationary; s = the mode's speedup (A8W4_SPEEDUP, A4W4_SPEEDUP, else 1),
// passes = PASSES (A16W8_PASSES) for a16w8, else 1:
//   dense:      for oc0 in 0, COLS, .. < out_c           (output-channel block)
//                for kpos in 0 .. kernel_h * kernel_w - 1
//                 for ic0 in 0, ROWS * s, .. < in_c      (input-channel chunk)
//                  for pass, for pixel in 0 .. out_h * out_w - 1: one beat
//   depthwise:  for oc0 in 0, min(ROWS, COLS), .. < out_c  (channels on the diagonal)
//                for kpos in 0, s, .. < kernel_h * kernel_w (s positions per PE lane)
//                 for pass, for pixel: one beat          (ic0_o = oc0_o)
// load_wgt_o marks the first beat of each weight set (the weight lanes change there),
// n_o the active columns (dense) or diagonal lanes (depthwise) of the block, last_o the
// instruction's last beat.
//
// REQUANT, VADD, VLUT, VMAXPOOL, VAVGPOOL, VUPSAMPLE, VCOPY: groups of `lanes` consecutive
// elements (REQUANT_LANES; VECTOR_LANES; LUT_LANES, half for i16 inputs, which read two
// knots each), elem_o the group's first element and elems_o its elements; the pools take
// one beat per window position (pos_o, first_o on 0, wlast_o on the window's last), the
// others windows of one position. VLUT first loads its table, one block of LUT_LANES
// entries per beat (tload_o, tblock_o): 2^bits entries for 4- and 8-bit inputs,
// LUT_ENTRIES_MAX knots for i16. Elements of VUPSAMPLE are its outputs (4 per input).
// A word of another instruction (LOAD, STORE, SYNC, END) is decoded but walks nothing.
// ready_o is high while idle and on the last beat, so back-to-back words take no bubble:
// an instruction takes exactly its beats' clocks.
module dla_ctrl
#(
  parameter int ROWS = dla_pkg::MAC_ROWS,
  parameter int COLS = dla_pkg::MAC_COLS,
  // Parameters (the preset's by default) so the testbench also runs counts no preset has.
  parameter int PASSES = dla_pkg::A16W8_PASSES,
  parameter int REQUANT_LANES = dla_pkg::REQUANT_LANES,
  parameter int VECTOR_LANES = dla_pkg::VECTOR_LANES,
  parameter int LUT_LANES = dla_pkg::LUT_LANES,
  // CW, KW and EW have margin (CW: both fields, both speedups): a bound one off or with a
  // term subtracted changes KW and EW at no legal config and CW only to 13 bits, still
  // enough (its values stay below 6 143). GW has none: a group of 1024 lanes fills it.
  // Channel counters: a field plus one step (ROWS * the largest speedup, or COLS).
  parameter int CW = $clog2(dla_pkg::MAC_IN_C_MAX + dla_pkg::MAC_OUT_C_MAX +
                            ROWS * (dla_pkg::A4W4_SPEEDUP + dla_pkg::A8W4_SPEEDUP) + COLS + 1),
  // Kernel positions plus one step; pixels of a tile; passes; active lanes of a block.
  parameter int KW = $clog2(dla_pkg::MAC_KERNEL_H_MAX * dla_pkg::MAC_KERNEL_W_MAX +
                            dla_pkg::A4W4_SPEEDUP + dla_pkg::A8W4_SPEEDUP + 1),
  parameter int PW = $clog2(dla_pkg::MAC_OUT_H_MAX * dla_pkg::MAC_OUT_W_MAX + 1),
  parameter int PASS_W = PASSES > 1 ? $clog2(PASSES) : 1,
  parameter int NW = $clog2((ROWS > COLS ? ROWS : COLS) + 1),
  // Element counters: the largest count (VUPSAMPLE's outputs) plus one group.
  parameter int EW = $clog2(4 * dla_pkg::VUPSAMPLE_IN_H_MAX * dla_pkg::VUPSAMPLE_IN_W_MAX *
                            dla_pkg::VUPSAMPLE_CHANNELS_MAX + dla_pkg::VECTOR_LANES_MAX + 1),
  // Elements of one group; window positions (the larger pool window); table blocks.
  parameter int GW = $clog2((dla_pkg::REQUANT_LANES_MAX > dla_pkg::VECTOR_LANES_MAX ? dla_pkg::REQUANT_LANES_MAX
                                                                                 : dla_pkg::VECTOR_LANES_MAX) + 1),
  parameter int WW = $clog2(dla_pkg::VAVGPOOL_KERNEL_H_MAX * dla_pkg::VAVGPOOL_KERNEL_W_MAX + 1),
  parameter int TW = $clog2(dla_pkg::LUT_ENTRIES_MAX + 1)
) (
  input  logic clk_i,
  input  logic rst_ni,
  // The instruction word.
  input  logic valid_i,
  output logic ready_o,
  input  logic [dla_pkg::INSN_BITS-1:0] insn_i,
  // The held word, decoded.
  output logic [dla_pkg::OPCLASS_W-1:0] opclass_o,
  output logic [dla_pkg::FUNCT_W-1:0] funct_o,
  output logic [dla_pkg::MAC_MODE_W-1:0] mac_mode_o,
  output logic mac_act_unsigned_o,
  output logic mac_accumulate_o,
  output logic mac_depthwise_o,
  output logic [dla_pkg::MAC_ACT_ADDR_W-1:0] mac_act_addr_o,
  output logic [dla_pkg::MAC_WGT_ADDR_W-1:0] mac_wgt_addr_o,
  output logic [dla_pkg::MAC_ACC_ADDR_W-1:0] mac_acc_addr_o,
  output logic [dla_pkg::MAC_OUT_H_W-1:0] mac_out_h_o,
  output logic [dla_pkg::MAC_OUT_W_W-1:0] mac_out_w_o,
  output logic [dla_pkg::MAC_OUT_C_W-1:0] mac_out_c_o,
  output logic [dla_pkg::MAC_IN_C_W-1:0] mac_in_c_o,
  output logic [dla_pkg::MAC_KERNEL_H_W-1:0] mac_kernel_h_o,
  output logic [dla_pkg::MAC_KERNEL_W_W-1:0] mac_kernel_w_o,
  output logic [dla_pkg::MAC_STRIDE_H_W-1:0] mac_stride_h_o,
  output logic [dla_pkg::MAC_STRIDE_W_W-1:0] mac_stride_w_o,
  output logic [dla_pkg::MAC_DILATION_W-1:0] mac_dilation_o,
  // The beat descriptors.
  output logic beat_valid_o,
  input  logic beat_ready_i,
  output logic last_o,
  output logic load_wgt_o,
  output logic [CW-1:0] oc0_o,
  output logic [CW-1:0] ic0_o,
  output logic [NW-1:0] n_o,
  output logic [KW-1:0] kpos_o,
  output logic [PASS_W-1:0] pass_o,
  output logic [PW-1:0] pixel_o,
  output logic [EW-1:0] elem_o,
  output logic [GW-1:0] elems_o,
  output logic [WW-1:0] pos_o,
  output logic first_o,
  output logic wlast_o,
  output logic tload_o,
  output logic [TW-1:0] tblock_o
);
  logic [dla_pkg::INSN_BITS-1:0] insn_q;

  // ---- decode (dla_pkg's positions) ----
  assign opclass_o = insn_q[dla_pkg::OPCLASS_LSB +: dla_pkg::OPCLASS_W];
  assign funct_o = insn_q[dla_pkg::FUNCT_LSB +: dla_pkg::FUNCT_W];
  assign mac_mode_o = insn_q[dla_pkg::MAC_MODE_LSB +: dla_pkg::MAC_MODE_W];
  assign mac_act_unsigned_o = insn_q[dla_pkg::MAC_ACT_UNSIGNED_LSB];
  assign mac_accumulate_o = insn_q[dla_pkg::MAC_ACCUMULATE_LSB];
  assign mac_depthwise_o = insn_q[dla_pkg::MAC_DEPTHWISE_LSB];
  assign mac_act_addr_o = insn_q[dla_pkg::MAC_ACT_ADDR_LSB +: dla_pkg::MAC_ACT_ADDR_W];
  assign mac_wgt_addr_o = insn_q[dla_pkg::MAC_WGT_ADDR_LSB +: dla_pkg::MAC_WGT_ADDR_W];
  assign mac_acc_addr_o = insn_q[dla_pkg::MAC_ACC_ADDR_LSB +: dla_pkg::MAC_ACC_ADDR_W];
  assign mac_out_h_o = insn_q[dla_pkg::MAC_OUT_H_LSB +: dla_pkg::MAC_OUT_H_W];
  assign mac_out_w_o = insn_q[dla_pkg::MAC_OUT_W_LSB +: dla_pkg::MAC_OUT_W_W];
  assign mac_out_c_o = insn_q[dla_pkg::MAC_OUT_C_LSB +: dla_pkg::MAC_OUT_C_W];
  assign mac_in_c_o = insn_q[dla_pkg::MAC_IN_C_LSB +: dla_pkg::MAC_IN_C_W];
  assign mac_kernel_h_o = insn_q[dla_pkg::MAC_KERNEL_H_LSB +: dla_pkg::MAC_KERNEL_H_W];
  assign mac_kernel_w_o = insn_q[dla_pkg::MAC_KERNEL_W_LSB +: dla_pkg::MAC_KERNEL_W_W];
  assign mac_stride_h_o = insn_q[dla_pkg::MAC_STRIDE_H_LSB +: dla_pkg::MAC_STRIDE_H_W];
  assign mac_stride_w_o = insn_q[dla_pkg::MAC_STRIDE_W_LSB +: dla_pkg::MAC_STRIDE_W_W];
  assign mac_dilation_o = insn_q[dla_pkg::MAC_DILATION_LSB +: dla_pkg::MAC_DILATION_W];

  // ---- the MAC loop nest's bounds and steps ----
  localparam int DIAG = ROWS < COLS ? ROWS : COLS;
  logic dw;
  logic [CW-1:0] speedup, oc_step, ic_step, out_c, in_c;
  logic [KW-1:0] kk, k_step;
  logic [PW-1:0] pixels;
  logic [PASS_W:0] passes;
  assign dw = mac_depthwise_o;
  always_comb begin
    case (mac_mode_o)
      dla_pkg::MAC_MODE_W'(dla_pkg::MAC_A8W4): speedup = CW'(dla_pkg::A8W4_SPEEDUP);
      dla_pkg::MAC_MODE_W'(dla_pkg::MAC_A4W4): speedup = CW'(dla_pkg::A4W4_SPEEDUP);
      default: speedup = CW'(1);
    endcase
  end
  assign passes = mac_mode_o == dla_pkg::MAC_MODE_W'(dla_pkg::MAC_A16W8) ? (PASS_W + 1)'(PASSES)
                                                                         : (PASS_W + 1)'(1);
  assign out_c = CW'(mac_out_c_o);
  assign in_c = CW'(mac_in_c_o);
  assign oc_step = dw ? CW'(DIAG) : CW'(COLS);
  assign ic_step = CW'(ROWS) * speedup;
  assign kk = KW'(mac_kernel_h_o) * KW'(mac_kernel_w_o);
  assign k_step = dw ? KW'(speedup) : KW'(1);
  assign pixels = PW'(mac_out_h_o) * PW'(mac_out_w_o);

  // ---- the lane-group walks' bounds ----
  localparam int LUT_BLOCK = LUT_LANES > 0 ? LUT_LANES : 1;
  localparam int TBL_4 = ((1 << dla_pkg::DTYPE_I4_BITS) + LUT_BLOCK - 1) / LUT_BLOCK;
  localparam int TBL_8 = ((1 << dla_pkg::DTYPE_I8_BITS) + LUT_BLOCK - 1) / LUT_BLOCK;
  localparam int TBL_16 = (dla_pkg::LUT_ENTRIES_MAX + LUT_BLOCK - 1) / LUT_BLOCK;
  logic is_vec;
  logic [EW-1:0] elems, step;
  logic [WW-1:0] positions;
  logic [TW-1:0] tbl;
  logic [dla_pkg::VLUT_IN_TYPE_W-1:0] lut_in;
  assign is_vec = opclass_o == dla_pkg::OPCLASS_W'(dla_pkg::OPC_VADD);
  assign lut_in = insn_q[dla_pkg::VLUT_IN_TYPE_LSB +: dla_pkg::VLUT_IN_TYPE_W];
  always_comb begin
    elems = '0;
    step = EW'(VECTOR_LANES);
    positions = WW'(1);
    tbl = '0;
    if (opclass_o == dla_pkg::OPCLASS_W'(dla_pkg::OPC_REQUANT)) begin
      elems = EW'(insn_q[dla_pkg::REQUANT_PIXELS_LSB +: dla_pkg::REQUANT_PIXELS_W]) *
              EW'(insn_q[dla_pkg::REQUANT_CHANNELS_LSB +: dla_pkg::REQUANT_CHANNELS_W]);
      step = EW'(REQUANT_LANES);
    end else if (is_vec) begin
      case (funct_o)
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VADD):
          elems = EW'(insn_q[dla_pkg::VADD_COUNT_LSB +: dla_pkg::VADD_COUNT_W]);
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VMAXPOOL): begin
          elems = EW'(insn_q[dla_pkg::VMAXPOOL_OUT_H_LSB +: dla_pkg::VMAXPOOL_OUT_H_W]) *
                  EW'(insn_q[dla_pkg::VMAXPOOL_OUT_W_LSB +: dla_pkg::VMAXPOOL_OUT_W_W]) *
                  EW'(insn_q[dla_pkg::VMAXPOOL_CHANNELS_LSB +: dla_pkg::VMAXPOOL_CHANNELS_W]);
          positions = WW'(insn_q[dla_pkg::VMAXPOOL_KERNEL_H_LSB +: dla_pkg::VMAXPOOL_KERNEL_H_W]) *
                      WW'(insn_q[dla_pkg::VMAXPOOL_KERNEL_W_LSB +: dla_pkg::VMAXPOOL_KERNEL_W_W]);
        end
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VAVGPOOL): begin
          elems = EW'(insn_q[dla_pkg::VAVGPOOL_OUT_H_LSB +: dla_pkg::VAVGPOOL_OUT_H_W]) *
                  EW'(insn_q[dla_pkg::VAVGPOOL_OUT_W_LSB +: dla_pkg::VAVGPOOL_OUT_W_W]) *
                  EW'(insn_q[dla_pkg::VAVGPOOL_CHANNELS_LSB +: dla_pkg::VAVGPOOL_CHANNELS_W]);
          positions = WW'(insn_q[dla_pkg::VAVGPOOL_KERNEL_H_LSB +: dla_pkg::VAVGPOOL_KERNEL_H_W]) *
                      WW'(insn_q[dla_pkg::VAVGPOOL_KERNEL_W_LSB +: dla_pkg::VAVGPOOL_KERNEL_W_W]);
        end
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VUPSAMPLE):
          elems = EW'(4) * EW'(insn_q[dla_pkg::VUPSAMPLE_IN_H_LSB +: dla_pkg::VUPSAMPLE_IN_H_W]) *
                  EW'(insn_q[dla_pkg::VUPSAMPLE_IN_W_LSB +: dla_pkg::VUPSAMPLE_IN_W_W]) *
                  EW'(insn_q[dla_pkg::VUPSAMPLE_CHANNELS_LSB +: dla_pkg::VUPSAMPLE_CHANNELS_W]);
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VCOPY):
          elems = EW'(insn_q[dla_pkg::VCOPY_BYTES_LSB +: dla_pkg::VCOPY_BYTES_W]);
        dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VLUT): begin
          elems = EW'(insn_q[dla_pkg::VLUT_COUNT_LSB +: dla_pkg::VLUT_COUNT_W]);
          case (lut_in)
            dla_pkg::VLUT_IN_TYPE_W'(dla_pkg::DTYPE_I4), dla_pkg::VLUT_IN_TYPE_W'(dla_pkg::DTYPE_U4): tbl = TW'(TBL_4);
            dla_pkg::VLUT_IN_TYPE_W'(dla_pkg::DTYPE_I16): tbl = TW'(TBL_16);
            default: tbl = TW'(TBL_8);
          endcase
          step = lut_in == dla_pkg::VLUT_IN_TYPE_W'(dla_pkg::DTYPE_I16) ? EW'(LUT_LANES / 2)
                                                                        : EW'(LUT_LANES);
        end
        default: ;
      endcase
    end
  end

  // ---- the walks ----
  logic busy_q;
  logic [CW-1:0] oc0_q, ic0_q;
  logic [KW-1:0] k_q;
  logic [PASS_W-1:0] pass_q;
  logic [PW-1:0] pix_q;
  logic pix_last, pass_last, ic_last, k_last, oc_last, fire, accept;
  logic [CW-1:0] left;
  assign pix_last = pix_q == pixels - PW'(1);
  assign pass_last = (PASS_W + 1)'(pass_q) == passes - (PASS_W + 1)'(1);
  assign ic_last = dw || ic0_q + ic_step >= in_c;
  assign k_last = k_q + k_step >= kk;
  assign oc_last = oc0_q + oc_step >= out_c;
  assign left = out_c - oc0_q;

  logic vbusy_q, tload_q;
  logic [EW-1:0] e0_q, e_left;
  logic [WW-1:0] pos_q;
  logic [TW-1:0] tb_q;
  logic mac_last, vec_last, pos_last, e_last, t_last;
  assign mac_last = pix_last && pass_last && ic_last && k_last && oc_last;
  assign pos_last = pos_q == positions - WW'(1);
  assign e_left = elems - e0_q;
  assign e_last = e_left <= step;
  assign t_last = tb_q == tbl - TW'(1);
  assign vec_last = !tload_q && pos_last && e_last;

  assign beat_valid_o = busy_q || vbusy_q;
  assign last_o = busy_q ? mac_last : vec_last;
  assign load_wgt_o = pix_q == '0 && pass_q == '0;
  assign oc0_o = oc0_q;
  assign ic0_o = dw ? oc0_q : ic0_q;
  assign n_o = NW'(left < oc_step ? left : oc_step);
  assign kpos_o = k_q;
  assign pass_o = pass_q;
  assign pixel_o = pix_q;
  assign elem_o = e0_q;
  assign elems_o = GW'(e_last ? e_left : step);
  assign pos_o = pos_q;
  assign first_o = pos_q == '0;
  assign wlast_o = pos_last;
  assign tload_o = tload_q;
  assign tblock_o = tb_q;

  assign fire = beat_valid_o && beat_ready_i;
  assign ready_o = !beat_valid_o || (beat_ready_i && last_o);
  // What the word being accepted walks.
  logic [dla_pkg::OPCLASS_W-1:0] opclass_i;
  assign opclass_i = insn_i[dla_pkg::OPCLASS_LSB +: dla_pkg::OPCLASS_W];
  assign accept = valid_i && ready_o;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      insn_q <= '0;
      busy_q <= 1'b0;
      oc0_q <= '0;
      ic0_q <= '0;
      k_q <= '0;
      pass_q <= '0;
      pix_q <= '0;
      vbusy_q <= 1'b0;
      tload_q <= 1'b0;
      e0_q <= '0;
      pos_q <= '0;
      tb_q <= '0;
    end else if (accept) begin
      insn_q <= insn_i;
      busy_q <= opclass_i == dla_pkg::OPCLASS_W'(dla_pkg::OPC_MAC);
      vbusy_q <= opclass_i == dla_pkg::OPCLASS_W'(dla_pkg::OPC_REQUANT) ||
                 opclass_i == dla_pkg::OPCLASS_W'(dla_pkg::OPC_VADD);
      tload_q <= opclass_i == dla_pkg::OPCLASS_W'(dla_pkg::OPC_VADD) &&
                 insn_i[dla_pkg::FUNCT_LSB +: dla_pkg::FUNCT_W] == dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VLUT);
      e0_q <= '0;
      pos_q <= '0;
      tb_q <= '0;
      oc0_q <= '0;
      ic0_q <= '0;
      k_q <= '0;
      pass_q <= '0;
      pix_q <= '0;
    end else if (fire && vbusy_q) begin
      if (tload_q) begin
        tb_q <= t_last ? '0 : tb_q + TW'(1);
        if (t_last) tload_q <= 1'b0;
      end else begin
        pos_q <= pos_last ? '0 : pos_q + WW'(1);
        if (pos_last) begin
          e0_q <= e_last ? '0 : e0_q + step;
          if (e_last) vbusy_q <= 1'b0;
        end
      end
    end else if (fire) begin
      // The innermost counter that has not reached its end steps; those inside it restart.
      pix_q <= pix_last ? '0 : pix_q + PW'(1);
      if (pix_last) begin
        pass_q <= pass_last ? '0 : pass_q + PASS_W'(1);
        if (pass_last) begin
          ic0_q <= ic_last ? '0 : ic0_q + ic_step;
          if (ic_last) begin
            k_q <= k_last ? '0 : k_q + k_step;
            if (k_last) begin
              oc0_q <= oc_last ? '0 : oc0_q + oc_step;
              if (oc_last) busy_q <= 1'b0;
            end
          end
        end
      end
    end
  end
endmodule : dla_ctrl
