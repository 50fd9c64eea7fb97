// dla_round_clamp — clamp(round_shift(v, s, mode), lo, hi) and the saturation flag, the
// output stage of REQUANT, VADD and VAVGPOOL (dla::requantize).
//
// round_shift for s > 0 divides by 2^s with q = floor(v / 2^s), r = v - q * 2^s and
// half = 2^(s-1): FLOOR q; HALF_UP q + (r >= half); HALF_AWAY q + (r > half || r == half
// && v >= 0); HALF_EVEN q + (r > half || r == half && q odd). For s < 0 it is v * 2^-s.
// The shift amounts are capped where the result no longer changes, which keeps the
// shifters IN_W + 34 bits wide for any int8 shift:
//   right: for s >= IN_W + 1, |v| / 2^s <= 1/4, so q is 0 or -1 and no tie exists;
//   left:  for s <= -33 and v != 0, |v * 2^-s| >= 2^33 lies outside every int32 [lo, hi],
//          so the clamp gives the same value and flags the saturation (the contract
//          saturates to int64 and clamps to the same bound).
module dla_round_clamp
#(
  parameter int IN_W = 32
) (
  input  logic signed [IN_W-1:0] v_i,
  input  logic signed [dla_core_pkg::SHIFT_W-1:0] shift_i,
  input  logic [dla_pkg::ROUND_MODE_CODE_W-1:0] mode_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] lo_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] hi_i,
  output logic signed [dla_core_pkg::VALUE_W-1:0] y_o,
  output logic sat_o
);
  localparam int MAX_RIGHT = IN_W + 1;
  localparam int MAX_LEFT = 33;
  localparam int EXT_W = IN_W + 2;          // v with room for the remainder mask 2^MAX_RIGHT
  localparam int RES_W = IN_W + MAX_LEFT + 1;
  localparam int CNT_W = dla_core_pkg::SHIFT_W + 1;       // -(-128) needs 9 bits

  logic signed [CNT_W-1:0] s_wide;
  logic [CNT_W-1:0] right_n, left_n;
  assign s_wide = CNT_W'(shift_i);
  assign right_n = s_wide > $signed(CNT_W'(MAX_RIGHT)) ? CNT_W'(MAX_RIGHT)
                 : (s_wide > 0 ? $unsigned(s_wide) : '0);
  assign left_n = s_wide < -$signed(CNT_W'(MAX_LEFT)) ? CNT_W'(MAX_LEFT)
                : (s_wide < 0 ? $unsigned(-s_wide) : '0);

  // Right shift with rounding.
  logic signed [EXT_W-1:0] v_ext, q;
  logic [EXT_W-1:0] r, half, mask;
  logic round_up;
  assign v_ext = EXT_W'(v_i);
  assign q = v_ext >>> right_n;
  assign mask = (EXT_W'(1) << right_n) - EXT_W'(1);
  assign half = EXT_W'(1) << (right_n - CNT_W'(1));
  assign r = $unsigned(v_ext) & mask;

  always_comb begin
    unique case (mode_i)
      dla_pkg::ROUND_HALF_UP:   round_up = r >= half;
      dla_pkg::ROUND_HALF_AWAY: round_up = r > half || (r == half && !v_i[IN_W-1]);
      dla_pkg::ROUND_HALF_EVEN: round_up = r > half || (r == half && q[0]);
      default:         round_up = 1'b0;  // ROUND_FLOOR
    endcase
  end

  logic signed [RES_W-1:0] shifted;
  always_comb begin
    if (right_n != '0) shifted = RES_W'(q) + RES_W'({1'b0, round_up});
    else shifted = RES_W'(v_i) <<< left_n;  // left_n == 0 when s == 0
  end

  logic below, above;
  assign below = shifted < RES_W'(lo_i);
  assign above = shifted > RES_W'(hi_i);
  assign y_o = below ? lo_i : (above ? hi_i : shifted[dla_core_pkg::VALUE_W-1:0]);
  assign sat_o = below || above;
endmodule : dla_round_clamp
