// dla_lane_stage — the register stage of the vector unit's lane blocks (dla_vadd, dla_vlut,
// dla_vpool) and of the requantizer: on a beat (valid_i) it takes the lanes' results and
// FLAGS vectors of per-lane flags (already masked by the caller) and adds the number of set
// flags of each vector to its running 32-bit counter (the engines' saturation count; the
// requantizer's second vector counts accumulator overflows); valid_o follows valid_i one
// clock later, and the outputs hold between beats. Asynchronous active-low reset.
module dla_lane_stage
#(
  parameter int LANES = 1,
  parameter int FLAGS = 1  // flag vector f: flag_i[f*LANES +: LANES], its count count_o[f*32 +: 32]
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic valid_i,
  input  logic [LANES*dla_core_pkg::VALUE_W-1:0] y_i,
  input  logic [FLAGS*LANES-1:0] flag_i,
  output logic valid_o,
  output logic [LANES*dla_core_pkg::VALUE_W-1:0] y_o,
  output logic [FLAGS*LANES-1:0] flag_o,
  output logic [FLAGS*32-1:0] count_o
);
  localparam int CNT_W = $clog2(LANES + 1);

  function automatic logic [CNT_W-1:0] popcount(input logic [LANES-1:0] bits);
    popcount = '0;
    for (int i = 0; i < LANES; i++) popcount = popcount + CNT_W'(bits[i]);
  endfunction

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_o <= 1'b0;
      y_o <= '0;
      flag_o <= '0;
      count_o <= '0;
    end else begin
      valid_o <= valid_i;
      if (valid_i) begin
        y_o <= y_i;
        flag_o <= flag_i;
        for (int f = 0; f < FLAGS; f++) begin
          count_o[f*32 +: 32] <= count_o[f*32 +: 32] + 32'(popcount(flag_i[f*LANES +: LANES]));
        end
      end
    end
  end
endmodule : dla_lane_stage
