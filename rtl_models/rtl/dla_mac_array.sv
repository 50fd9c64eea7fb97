// dla_mac_array — the MAC array datapath: ROWS x COLS PEs (mac_rows x mac_cols of the
// hardware config). Row r carries one activation lane, broadcast along the row; PE (r, c)
// holds the weight lane of row r for output column c. Each column reduces its ROWS PE
// products and adds the partial sum read from ACC (the bias, or the previous chunk of a
// MAC with accumulate, or pass 0 of A16W8):
//   psum_o[c] = psum_i[c] + sum_r prod(act[r], wgt[r][c])      (exact, ACC_WORD_BITS wide)
// acc_bits and the overflow policy are not applied here: ACC keeps the exact sum and the
// requantizer finalizes it (dla_requant). Depthwise MACs use the diagonal: the controller
// puts channel c on row c and zero weights off the diagonal.
// One register stage: a beat with valid_i appears on the outputs the next cycle.
//
// Weights are stationary, in two registers of ROWS x COLS lanes: the beats use wgt_q, and
// the next weight set is written into the load register wnext_q one column a clock
// (wload_i: wcol_i's ROWS lanes from wlanes_i, in any clock, also during beats), so the
// WGT SRAM's reads of the next set overlap the current set's beats. The first beat of a
// set raises wswap_i: it computes with wnext_q and wgt_q takes wnext_q at its edge. A
// column written in the clock of a swap reaches wnext_q after the swap.
module dla_mac_array
#(
  parameter int ROWS = dla_pkg::MAC_ROWS,
  parameter int COLS = dla_pkg::MAC_COLS,
  localparam int CW = COLS > 1 ? $clog2(COLS) : 1
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic valid_i,
  input  logic [dla_pkg::MAC_MODE_CODE_W-1:0] mode_i,
  input  logic act_unsigned_i,
  input  logic hi_pass_i,  // A16W8: second pass (high byte)
  input  logic [ROWS*dla_core_pkg::PE_ACT_W-1:0] act_i,  // row r: bits [r*PE_ACT_W +: PE_ACT_W]
  input  logic wload_i,
  input  logic [CW-1:0] wcol_i,
  input  logic [ROWS*dla_core_pkg::PE_WGT_W-1:0] wlanes_i,  // column wcol_i's lane of row r at [r*PE_WGT_W +: PE_WGT_W]
  input  logic wswap_i,  // with valid_i: the first beat of a weight set
  input  logic [COLS*dla_core_pkg::ACC_WORD_BITS-1:0] psum_i,
  output logic valid_o,
  output logic [COLS*dla_core_pkg::ACC_WORD_BITS-1:0] psum_o
);
  // The PE implements these throughputs; a config asking for others is not this RTL.
  if (dla_pkg::A8W4_SPEEDUP != 2 || dla_pkg::A4W4_SPEEDUP != 4 || dla_pkg::A16W8_PASSES != 2) begin : g_unsupported_config
    $error("dla_mac_array implements a8w4_speedup 2, a4w4_speedup 4, a16w8_passes 2");
  end

  localparam int W = dla_core_pkg::PE_WGT_W;
  // PE (r, c)'s lane at [(r*COLS + c)*W +: W] of each register.
  logic [ROWS*COLS*W-1:0] wgt_q, wnext_q;

  // Procedural loops over the PEs (not generate loops): see dla_mac_pe_pkg. The sums are
  // computed inside the clocked block, under valid_i: the same hardware as a combinational
  // block feeding psum_o, but the simulation evaluates the PEs only in a beat's clock, not
  // whenever a weight register or an operand port changes (weight writes, idle clocks).
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_o <= 1'b0;
      psum_o <= '0;
      // Lane by lane: the registers of the large arrays exceed what a '0 fill may be.
      for (int l = 0; l < ROWS*COLS; l++) begin
        wgt_q[l*W +: W] <= '0;
        wnext_q[l*W +: W] <= '0;
      end
    end else begin
      valid_o <= valid_i;
      if (valid_i) begin
        for (int c = 0; c < COLS; c++) begin
          logic signed [dla_core_pkg::ACC_WORD_BITS-1:0] s;
          s = psum_i[c*dla_core_pkg::ACC_WORD_BITS +: dla_core_pkg::ACC_WORD_BITS];
          for (int r = 0; r < ROWS; r++) begin
            s = s + dla_core_pkg::ACC_WORD_BITS'(dla_mac_pe_pkg::pe_prod(
                      mode_i, act_unsigned_i, hi_pass_i,
                      act_i[r*dla_core_pkg::PE_ACT_W +: dla_core_pkg::PE_ACT_W],
                      // a swap beat computes with the load register (lane by lane: a
                      // mux of the whole registers would be copied per PE in simulation)
                      wswap_i ? wnext_q[(r*COLS + c)*W +: W] : wgt_q[(r*COLS + c)*W +: W]));
          end
          psum_o[c*dla_core_pkg::ACC_WORD_BITS +: dla_core_pkg::ACC_WORD_BITS] <= s;
        end
      end
      if (valid_i && wswap_i) wgt_q <= wnext_q;
      if (wload_i) begin
        for (int r = 0; r < ROWS; r++) begin
          wnext_q[(r*COLS + 32'(wcol_i))*W +: W] <= wlanes_i[r*W +: W];
        end
      end
    end
  end
endmodule : dla_mac_array
