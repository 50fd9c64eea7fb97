// dla_vpool — the window datapath of the vector unit, LANES output elements at a time:
// VMAXPOOL and VAVGPOOL, and VUPSAMPLE and VCOPY as windows of one position.
// A window is one beat per position (first_i on the first, last_i on the last); lane l
// keeps its running value in acc:
//   max (op_i != FUNCT_VAVGPOOL):  acc = max(acc, x) over the positions with take_i
//        (the others lie in the padding), starting from T_in.min, so a window with no
//        input element yields T_in.min (VMAXPOOL); y = acc.
//   avg (op_i == FUNCT_VAVGPOOL):  acc = sum of x over the window (no padding: the input
//        tile holds it as zeros), y = clamp(round_shift(acc * M, shift, mode), lo, hi)
//        with M = mult_i (dla::avgpool).
// Both go through one dla_round_clamp: max with M = 1 and shift 0 (acc is already in T's
// range, so the clamp never changes it). y_o holds the result of the last beat; the
// saturation flags and counter count last beats of enabled lanes only.
// Widths: |acc| <= kernel_h * kernel_w * 2^15 < 2^(VEC_IN_W + WIN_W - 1) with the field
// maxima of VAVGPOOL, and acc * M needs MULT_W + 1 more bits (M is unsigned).
module dla_vpool
#(
  parameter int LANES = dla_pkg::VECTOR_LANES
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic valid_i,
  input  logic [LANES-1:0] lane_en_i,
  input  logic first_i,
  input  logic last_i,
  input  logic [LANES-1:0] take_i,
  input  logic [dla_pkg::FUNCT_W-1:0] op_i,
  input  logic [LANES*dla_core_pkg::VEC_IN_W-1:0] x_i,  // signed values, lane l at [l*VEC_IN_W +: VEC_IN_W]
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] in_type_i,
  input  logic [$clog2(dla_pkg::AVGPOOL_MULT_MAX + 1)-1:0] mult_i,
  input  logic signed [dla_core_pkg::SHIFT_W-1:0] shift_i,
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] out_type_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_lo_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_hi_i,
  input  logic [dla_pkg::ROUND_MODE_CODE_W-1:0] mode_i,
  output logic valid_o,
  output logic [LANES*dla_core_pkg::VALUE_W-1:0] y_o,
  output logic [LANES-1:0] sat_o,
  output logic [31:0] sat_count_o
);
  localparam int IN_W = dla_core_pkg::VEC_IN_W;
  localparam int MULT_W = $clog2(dla_pkg::AVGPOOL_MULT_MAX + 1);
  localparam int WIN_W = $clog2(dla_pkg::VAVGPOOL_KERNEL_H_MAX * dla_pkg::VAVGPOOL_KERNEL_W_MAX + 1);
  localparam int ACC_W = IN_W + WIN_W;
  localparam int PROD_W = ACC_W + MULT_W + 1;
  localparam logic signed [dla_core_pkg::VALUE_W-1:0] VALUE_MIN = {1'b1, {(dla_core_pkg::VALUE_W-1){1'b0}}};
  localparam logic signed [dla_core_pkg::VALUE_W-1:0] VALUE_MAX = {1'b0, {(dla_core_pkg::VALUE_W-1){1'b1}}};

  logic avg;
  assign avg = op_i == dla_pkg::FUNCT_W'(dla_pkg::FUNCT_VAVGPOOL);

  logic signed [dla_core_pkg::VALUE_W-1:0] in_min, in_max_unused, lo, hi;
  dla_out_range u_in (.type_i(in_type_i), .clip_lo_i(VALUE_MIN), .clip_hi_i(VALUE_MAX), .lo_o(in_min), .hi_o(in_max_unused));
  dla_out_range u_out (.type_i(out_type_i), .clip_lo_i, .clip_hi_i, .lo_o(lo), .hi_o(hi));

  logic signed [ACC_W-1:0] acc_q [LANES];
  logic signed [ACC_W-1:0] acc_d [LANES];
  logic [LANES*dla_core_pkg::VALUE_W-1:0] y;
  logic [LANES-1:0] sat;
  for (genvar l = 0; l < LANES; l++) begin : g_lane
    logic signed [ACC_W-1:0] x, base;
    logic signed [PROD_W-1:0] v;
    assign x = ACC_W'($signed(x_i[l*IN_W +: IN_W]));
    always_comb begin
      if (avg) begin
        base = first_i ? '0 : acc_q[l];
        acc_d[l] = take_i[l] ? base + x : base;
      end else begin
        base = first_i ? ACC_W'(in_min) : acc_q[l];
        acc_d[l] = take_i[l] && x > base ? x : base;
      end
    end
    assign v = avg ? PROD_W'(acc_d[l]) * $signed(PROD_W'(mult_i)) : PROD_W'(acc_d[l]);
    dla_round_clamp #(.IN_W(PROD_W)) u_round (
      .v_i(v), .shift_i(avg ? shift_i : '0), .mode_i, .lo_i(lo), .hi_i(hi),
      .y_o(y[l*dla_core_pkg::VALUE_W +: dla_core_pkg::VALUE_W]), .sat_o(sat[l])
    );
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      for (int l = 0; l < LANES; l++) acc_q[l] <= '0;
    end else if (valid_i) begin
      for (int l = 0; l < LANES; l++) acc_q[l] <= acc_d[l];
    end
  end

  dla_lane_stage #(.LANES(LANES)) u_stage (
    .clk_i, .rst_ni, .valid_i, .y_i(y), .flag_i(sat & lane_en_i & {LANES{last_i}}),
    .valid_o, .y_o, .flag_o(sat_o), .count_o(sat_count_o)
  );
endmodule : dla_vpool
