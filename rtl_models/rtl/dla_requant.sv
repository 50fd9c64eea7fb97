// dla_requant — the requantizer: LANES accumulators per cycle to output values
// (REQUANT, dla/isa.hpp):
//   a = finalize_acc(acc, acc_bits, policy)        (WRAP or SATURATE_FINAL, overflow flagged)
//   y = clamp(round_shift(a, shift[c], mode), lo, hi)
// One register stage: inputs of a beat with valid_i appear on the outputs the next cycle,
// and the overflow and saturation counters add that beat's enabled lanes. The compute
// controller feeds the shift of each lane's channel from the PARAM record and the
// accumulator width, rounding mode and overflow policy from the hardware config.
// acc_bits is an input (a configuration register), not a parameter: one requantizer
// serves every acc_bits up to ACC_W, the widest the hardware config allows, so a core
// built once runs programs for any acc_bits.
module dla_requant
#(
  parameter int LANES = dla_pkg::REQUANT_LANES,
  parameter int ACC_W = dla_pkg::ACC_BITS_MAX  // the widest acc_bits a config may ask for
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic valid_i,
  input  logic [LANES-1:0] lane_en_i,
  input  logic [LANES*dla_core_pkg::ACC_WORD_BITS-1:0] acc_i,  // lane l: bits [l*ACC_WORD_BITS +: ACC_WORD_BITS]
  input  logic [LANES*dla_core_pkg::SHIFT_W-1:0] shift_i,  // int8 per lane
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] out_type_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_lo_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_hi_i,
  input  logic [5:0] acc_bits_i,  // in [2, ACC_W] (6 bits: ACC_WORD_BITS - acc_bits below too)
  input  logic [dla_pkg::ROUND_MODE_CODE_W-1:0] mode_i,
  input  logic [dla_pkg::OVERFLOW_POLICY_CODE_W-1:0] policy_i,
  output logic valid_o,
  output logic [LANES*dla_core_pkg::VALUE_W-1:0] y_o,
  output logic [LANES-1:0] sat_o,  // the clamp changed the value
  output logic [LANES-1:0] ovf_o,  // the exact sum left the acc_bits range
  output logic [31:0] sat_count_o,
  output logic [31:0] ovf_count_o
);
  if (dla_core_pkg::ACC_WORD_BITS < ACC_W + 2) begin : g_acc_word_too_narrow
    $error("dla_core_pkg::ACC_WORD_BITS must exceed acc_bits by the guard bits (dla_core_pkg)");
  end

  logic signed [dla_core_pkg::VALUE_W-1:0] lo, hi;
  dla_out_range u_range (
    .type_i(out_type_i), .clip_lo_i, .clip_hi_i, .lo_o(lo), .hi_o(hi)
  );

  logic [LANES*dla_core_pkg::VALUE_W-1:0] y;
  logic [LANES-1:0] sat, ovf;

  // The acc_bits range as ACC_W-bit values, and the shift that sign-extends a word from
  // acc_bits (WRAP): shared by every lane.
  localparam int WORD_W = dla_core_pkg::ACC_WORD_BITS;
  logic [5:0] ext_n;
  logic signed [ACC_W-1:0] acc_max, acc_min;
  assign ext_n = 6'(WORD_W) - acc_bits_i;
  assign acc_max = ACC_W'((ACC_W + 1)'(1) << (acc_bits_i - 6'd1)) - ACC_W'(1);
  assign acc_min = ~acc_max;

  for (genvar l = 0; l < LANES; l++) begin : g_lane
    logic signed [WORD_W-1:0] word, top;
    logic signed [ACC_W-1:0] fin;
    logic fits;
    assign word = acc_i[l*WORD_W +: WORD_W];
    // Inside the acc_bits range exactly when the bits above acc_bits - 1 all equal the sign.
    assign top = word >>> (acc_bits_i - 6'd1);
    assign fits = top == '0 || top == '1;
    // WRAP keeps the low acc_bits, sign-extended (the word itself when it fits);
    // SATURATE_FINAL clamps.
    assign fin = (fits || policy_i == dla_pkg::OVF_WRAP) ? ACC_W'((word <<< ext_n) >>> ext_n)
               : (word[WORD_W-1] ? acc_min : acc_max);
    assign ovf[l] = !fits;

    dla_round_clamp #(.IN_W(ACC_W)) u_round (
      .v_i(fin), .shift_i(shift_i[l*dla_core_pkg::SHIFT_W +: dla_core_pkg::SHIFT_W]), .mode_i, .lo_i(lo), .hi_i(hi),
      .y_o(y[l*dla_core_pkg::VALUE_W +: dla_core_pkg::VALUE_W]), .sat_o(sat[l])
    );
  end

  // The register stage and the saturation and overflow counters (flag vectors 0 and 1).
  dla_lane_stage #(.LANES(LANES), .FLAGS(2)) u_stage (
    .clk_i, .rst_ni, .valid_i, .y_i(y), .flag_i({ovf & lane_en_i, sat & lane_en_i}),
    .valid_o, .y_o, .flag_o({ovf_o, sat_o}), .count_o({ovf_count_o, sat_count_o})
  );
endmodule : dla_requant
