// dla_vlut — VLUT of the vector unit (dla::lut_lookup): a table register file of
// LUT_ENTRIES_MAX signed entries with LANES read ports, loaded from the PARAM record one
// block of LANES entries per cycle (load_i) before an instruction's lookups.
//   direct (4- and 8-bit inputs): u = x - T_in.min, y = e[u]; LANES elements per beat.
//   interpolated (i16): u = x - T_in.min, j = u >> 8, t = u & 255,
//     y = e[j] + round_shift((e[j+1] - e[j]) * t, 8, mode)
//     The product is rounded on its own (a dla_round_clamp with an open range): folding
//     e[j] * 2^8 into it would change the ties of HALF_AWAY (the sign) and HALF_EVEN (the
//     parity of the quotient). An element reads two knots: element k < LANES/2 reads e[j] on port k and e[j+1] on
//     port k + LANES/2, so an i16 beat takes LANES/2 elements (the cycle model charges two
//     lane-cycles per i16 element).
// The result is clamped to T_out (a clamp that changed it is a saturation). One register
// stage (dla_lane_stage), as dla_vadd.
module dla_vlut
#(
  parameter int LANES = dla_pkg::LUT_LANES
) (
  input  logic clk_i,
  input  logic rst_ni,
  // Table load: entry b * LANES + l from lane l of load_data_i, b = load_block_i.
  input  logic load_i,
  input  logic [$clog2((dla_pkg::LUT_ENTRIES_MAX + LANES - 1) / LANES + 1)-1:0] load_block_i,
  input  logic [LANES*dla_pkg::LUT_ENTRY_BITS-1:0] load_data_i,
  // Lookups.
  input  logic valid_i,
  input  logic [LANES-1:0] lane_en_i,
  input  logic [LANES*dla_core_pkg::VEC_IN_W-1:0] x_i,  // signed values, lane l at [l*VEC_IN_W +: VEC_IN_W]
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] in_type_i,
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] out_type_i,
  input  logic [dla_pkg::ROUND_MODE_CODE_W-1:0] mode_i,
  output logic valid_o,
  output logic [LANES*dla_core_pkg::VALUE_W-1:0] y_o,
  output logic [LANES-1:0] sat_o,
  output logic [31:0] sat_count_o
);
  localparam int ENTRIES = dla_pkg::LUT_ENTRIES_MAX;
  localparam int EW = dla_pkg::LUT_ENTRY_BITS;
  localparam int IB = dla_pkg::LUT_INTERP_BITS;
  localparam int IDX_W = $clog2(ENTRIES);
  localparam int BLK_W = $clog2((ENTRIES + LANES - 1) / LANES + 1);
  localparam int IN_W = dla_core_pkg::VEC_IN_W;
  localparam int HALF = LANES / 2;
  // (e[j+1] - e[j]) * t: |.| < 2^(EW+IB), signed; e[j] + its rounding: EW + 2 bits.
  localparam int P_W = EW + IB + 1;
  localparam int V_W = EW + 2;
  localparam logic signed [dla_core_pkg::VALUE_W-1:0] VALUE_MIN = {1'b1, {(dla_core_pkg::VALUE_W-1){1'b0}}};
  localparam logic signed [dla_core_pkg::VALUE_W-1:0] VALUE_MAX = {1'b0, {(dla_core_pkg::VALUE_W-1){1'b1}}};

  if (LANES % 2 != 0) begin : g_lanes_check
    $error("dla_vlut: an i16 lookup shares two read ports per element, so LANES must be even");
  end

  // The table, packed so that the load writes fixed slices (no memory inference).
  logic [ENTRIES*EW-1:0] table_q;
  always_ff @(posedge clk_i) begin
    if (load_i) begin
      for (int i = 0; i < ENTRIES; i++) begin
        if (load_block_i == BLK_W'(i / LANES)) table_q[i*EW +: EW] <= load_data_i[(i % LANES)*EW +: EW];
      end
    end
  end

  // T_in.min (the table's first input) and the output range T_out.
  logic signed [dla_core_pkg::VALUE_W-1:0] in_min, in_max_unused, lo, hi;
  dla_out_range u_in (.type_i(in_type_i), .clip_lo_i(VALUE_MIN), .clip_hi_i(VALUE_MAX), .lo_o(in_min), .hi_o(in_max_unused));
  dla_out_range u_out (.type_i(out_type_i), .clip_lo_i(VALUE_MIN), .clip_hi_i(VALUE_MAX), .lo_o(lo), .hi_o(hi));

  logic interp;
  assign interp = in_type_i == dla_pkg::DTYPE_I16;

  // u = x - T_in.min in [0, 2^IN_W), per lane.
  logic [IN_W-1:0] u [LANES];
  for (genvar l = 0; l < LANES; l++) begin : g_u
    // x - T_in.min lies in [0, 2^IN_W): the bits above are zero.
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [dla_core_pkg::VALUE_W-1:0] diff;
    /* verilator lint_on UNUSEDSIGNAL */
    assign diff = dla_core_pkg::VALUE_W'($signed(x_i[l*IN_W +: IN_W])) - in_min;
    assign u[l] = diff[IN_W-1:0];
  end

  // Read port p: e[u] (direct), or knot j (p < HALF) / j + 1 (p >= HALF) of element p % HALF.
  logic signed [EW-1:0] rd [LANES];
  for (genvar p = 0; p < LANES; p++) begin : g_port
    logic [IDX_W-1:0] seg, addr;
    assign seg = IDX_W'(u[p % HALF] >> IB) + IDX_W'(p >= HALF);
    assign addr = interp ? seg : IDX_W'(u[p]);
    assign rd[p] = table_q[addr*EW +: EW];
  end

  logic [LANES*dla_core_pkg::VALUE_W-1:0] y;
  logic [LANES-1:0] sat, en;
  for (genvar l = 0; l < LANES; l++) begin : g_lane
    logic signed [V_W-1:0] v;
    if (l < HALF) begin : g_interp
      logic signed [EW:0] d;
      logic signed [IB:0] t;
      logic signed [P_W-1:0] prod;
      // |round_shift(prod, IB)| <= 2^EW: the bits above V_W only repeat the sign.
      /* verilator lint_off UNUSEDSIGNAL */
      logic signed [dla_core_pkg::VALUE_W-1:0] step;
      /* verilator lint_on UNUSEDSIGNAL */
      logic step_sat_unused;
      assign d = (EW+1)'(rd[l + HALF]) - (EW+1)'(rd[l]);
      assign t = $signed({1'b0, u[l][IB-1:0]});
      assign prod = P_W'(d) * P_W'(t);
      dla_round_clamp #(.IN_W(P_W)) u_step (
        .v_i(prod), .shift_i(dla_core_pkg::SHIFT_W'(IB)), .mode_i, .lo_i(VALUE_MIN), .hi_i(VALUE_MAX),
        .y_o(step), .sat_o(step_sat_unused)
      );
      assign v = interp ? V_W'(rd[l]) + V_W'(step) : V_W'(rd[l]);
    end else begin : g_direct
      assign v = V_W'(rd[l]);
    end
    assign en[l] = lane_en_i[l] && (!interp || l < HALF);
    dla_round_clamp #(.IN_W(V_W)) u_round (
      .v_i(v), .shift_i('0), .mode_i, .lo_i(lo), .hi_i(hi),
      .y_o(y[l*dla_core_pkg::VALUE_W +: dla_core_pkg::VALUE_W]), .sat_o(sat[l])
    );
  end

  dla_lane_stage #(.LANES(LANES)) u_stage (
    .clk_i, .rst_ni, .valid_i, .y_i(y), .flag_i(sat & en),
    .valid_o, .y_o, .flag_o(sat_o), .count_o(sat_count_o)
  );
endmodule : dla_vlut
