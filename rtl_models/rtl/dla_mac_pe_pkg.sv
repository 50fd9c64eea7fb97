// dla_mac_pe_pkg — one processing element of the MAC array as a function: the sum of the
// products one PE forms in one cycle, in every MAC mode of the ISA. Four multiplier slots
// are shared by the modes (slot 0 is 9 x 8 bits, slot 1 9 x 5, slots 2 and 3 5 x 5 bits);
// activations are sign- or zero-extended by one bit (act_unsigned), weights are always
// signed.
//
// A function rather than a module so that dla_mac_array can call it inside procedural
// loops over rows and columns: Verilator keeps such loops as loops (--unroll-count), so
// the Verilated array is the same few kilobytes of C++ at any mac_rows x mac_cols, where
// a generate loop of PE instances gave 16 x 16 copies (8 MB of C++ for `default`).
// Synthesis unrolls both alike.
//
// Operand lanes, in the memory order of packed tensors (element 2k in the low nibble):
//   A8W8   act[7:0] x wgt[7:0]                                   1 MAC
//   A8W4   act[8j+7:8j] x wgt[4j+3:4j], j = 0, 1                 2 MACs (A8W4_SPEEDUP)
//   A4W4   act[4j+3:4j] x wgt[4j+3:4j], j = 0..3                 4 MACs (A4W4_SPEEDUP)
//   A16W8  i16 act x wgt[7:0] in two passes (A16W8_PASSES):
//          pass 0 (hi_pass = 0): unsigned act[7:0] x wgt[7:0]
//          pass 1 (hi_pass = 1): signed act[15:8] x wgt[7:0], times 2^8
//          whose sum is the exact i16 x i8 product.
// Largest |product sum|: 2^22 (a16w8 pass 1: -128 * -128 * 2^8), so PROD_W = 24.
package dla_mac_pe_pkg;
  localparam int PROD_W = 24;

  function automatic logic signed [4:0] ext4(input logic [3:0] v, input logic is_unsigned);
    ext4 = {is_unsigned ? 1'b0 : v[3], v};
  endfunction
  function automatic logic signed [8:0] ext8(input logic [7:0] v, input logic is_unsigned);
    ext8 = {is_unsigned ? 1'b0 : v[7], v};
  endfunction

  function automatic logic signed [PROD_W-1:0] pe_prod(
    input logic [dla_pkg::MAC_MODE_CODE_W-1:0] mode,
    input logic act_unsigned,
    input logic hi_pass,
    input logic [dla_core_pkg::PE_ACT_W-1:0] act,
    input logic [dla_core_pkg::PE_WGT_W-1:0] wgt
  );
    logic signed [8:0] a0, a1;
    logic signed [4:0] a2, a3;
    logic signed [7:0] w0;
    logic signed [4:0] w1, w2, w3;
    logic signed [16:0] p0;
    logic signed [13:0] p1;
    logic signed [9:0] p2, p3;
    logic signed [PROD_W-1:0] p0_scaled;
    a0 = '0; a1 = '0; a2 = '0; a3 = '0;
    w0 = '0; w1 = '0; w2 = '0; w3 = '0;
    unique case (mode)
      dla_pkg::MAC_A8W8: begin
        a0 = ext8(act[7:0], act_unsigned);
        w0 = wgt[7:0];
      end
      dla_pkg::MAC_A8W4: begin
        a0 = ext8(act[7:0], act_unsigned);
        w0 = 8'(ext4(wgt[3:0], 1'b0));
        a1 = ext8(act[15:8], act_unsigned);
        w1 = ext4(wgt[7:4], 1'b0);
      end
      dla_pkg::MAC_A4W4: begin
        a0 = 9'(ext4(act[3:0], act_unsigned));
        w0 = 8'(ext4(wgt[3:0], 1'b0));
        a1 = 9'(ext4(act[7:4], act_unsigned));
        w1 = ext4(wgt[7:4], 1'b0);
        a2 = ext4(act[11:8], act_unsigned);
        w2 = ext4(wgt[11:8], 1'b0);
        a3 = ext4(act[15:12], act_unsigned);
        w3 = ext4(wgt[15:12], 1'b0);
      end
      default: begin  // MAC_A16W8: one byte of the i16 activation per pass
        a0 = hi_pass ? ext8(act[15:8], 1'b0) : ext8(act[7:0], 1'b1);
        w0 = wgt[7:0];
      end
    endcase
    p0 = a0 * w0;
    p1 = a1 * w1;
    p2 = a2 * w2;
    p3 = a3 * w3;
    p0_scaled = (mode == dla_pkg::MAC_A16W8 && hi_pass) ? PROD_W'(p0) <<< 8 : PROD_W'(p0);
    pe_prod = p0_scaled + PROD_W'(p1) + PROD_W'(p2) + PROD_W'(p3);
  endfunction
endpackage : dla_mac_pe_pkg
