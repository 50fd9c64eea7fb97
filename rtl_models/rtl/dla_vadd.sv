// dla_vadd — VADD of the vector unit, LANES elements per cycle (vector_lanes):
//   y = clamp(round_shift((a << shift_a) + (b << shift_b), shift_y, mode), lo, hi)
// (dla::eltwise_add). a and b are at most 16-bit values and shift_a, shift_b lie in
// [0, 31] (the program validator rejects other records), so the aligned sum is exact in
// VEC_IN_W + 32 = 48 bits. One register stage (dla_lane_stage), as dla_requant.
module dla_vadd
#(
  parameter int LANES = dla_pkg::VECTOR_LANES
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic valid_i,
  input  logic [LANES-1:0] lane_en_i,
  input  logic [LANES*dla_core_pkg::VEC_IN_W-1:0] a_i,  // signed values, lane l at [l*VEC_IN_W +: VEC_IN_W]
  input  logic [LANES*dla_core_pkg::VEC_IN_W-1:0] b_i,
  input  logic [4:0] shift_a_i,
  input  logic [4:0] shift_b_i,
  input  logic signed [dla_core_pkg::SHIFT_W-1:0] shift_y_i,
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] y_type_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_lo_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_hi_i,
  input  logic [dla_pkg::ROUND_MODE_CODE_W-1:0] mode_i,
  output logic valid_o,
  output logic [LANES*dla_core_pkg::VALUE_W-1:0] y_o,
  output logic [LANES-1:0] sat_o,
  output logic [31:0] sat_count_o
);
  localparam int SUM_W = dla_core_pkg::VEC_IN_W + 32;

  logic signed [dla_core_pkg::VALUE_W-1:0] lo, hi;
  dla_out_range u_range (.type_i(y_type_i), .clip_lo_i, .clip_hi_i, .lo_o(lo), .hi_o(hi));

  logic [LANES*dla_core_pkg::VALUE_W-1:0] y;
  logic [LANES-1:0] sat;
  for (genvar l = 0; l < LANES; l++) begin : g_lane
    logic signed [SUM_W-1:0] sum;
    assign sum = (SUM_W'($signed(a_i[l*dla_core_pkg::VEC_IN_W +: dla_core_pkg::VEC_IN_W])) <<< shift_a_i)
               + (SUM_W'($signed(b_i[l*dla_core_pkg::VEC_IN_W +: dla_core_pkg::VEC_IN_W])) <<< shift_b_i);
    dla_round_clamp #(.IN_W(SUM_W)) u_round (
      .v_i(sum), .shift_i(shift_y_i), .mode_i, .lo_i(lo), .hi_i(hi),
      .y_o(y[l*dla_core_pkg::VALUE_W +: dla_core_pkg::VALUE_W]), .sat_o(sat[l])
    );
  end

  dla_lane_stage #(.LANES(LANES)) u_stage (
    .clk_i, .rst_ni, .valid_i, .y_i(y), .flag_i(sat & lane_en_i),
    .valid_o, .y_o, .flag_o(sat_o), .count_o(sat_count_o)
  );
endmodule : dla_vadd
