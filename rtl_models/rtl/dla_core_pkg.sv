// dla_core_pkg — micro-architecture choices of the RTL that the hardware config does not
// fix. Everything the config or the ISA declares comes from the generated dla_pkg.
// The blocks name package constants in full (dla_pkg::MAC_ROWS) rather than importing:
// Debian's yosys 0.23 (scripts/rtl_synth) reads neither `import` nor package-typed ports.
/* verilator lint_off UNUSEDPARAM */
package dla_core_pkg;

  // Width of one ACC SRAM word and of the MAC array's partial sums.
  //
  // The ISA keeps the exact sum in ACC and applies acc_bits and the overflow policy when
  // REQUANT reads it (finalize_acc). WRAP only needs the sum modulo 2^acc_bits, but the
  // overflow count and SATURATE_FINAL need the exact value, so the word needs guard bits
  // above acc_bits. Bound on |exact sum| for what the compiler emits (lower.cpp: one
  // int32 bias loaded into ACC, then one MAC per input-channel chunk, all accumulating):
  //   |bias|    <= 2^31                                   (acc_bits <= 32)
  //   |product| <= 2^22                                   (a16w8: -32768 * -128; a8w8 u8:
  //                                                        255 * 128 < 2^15)
  //   products per accumulator = in_c * kernel_h * kernel_w of the layer (K)
  // A 48-bit word holds every sum with |sum| < 2^47, i.e. 2^31 + K * 2^22 < 2^47 for every
  // K < 2^24 (16.7 M products: in_c < 74 565 with a 15x15 kernel, in_c < 16.7 M with 1x1).
  // Inside that bound the RTL equals the contract bit for bit; a chain longer than that
  // wraps at 48 bits, which still gives the right WRAP value but may miss the overflow.
  localparam int ACC_WORD_BITS = 48;

  // Shifts in the parameter records are int8.
  localparam int SHIFT_W = 8;
  // Requantized and vector results: every output type fits in int32.
  localparam int VALUE_W = 32;
  // Per-PE operand ports of the MAC array (see dla_mac_pe for the lane layouts).
  localparam int PE_ACT_W = 16;
  localparam int PE_WGT_W = 16;
  // Vector-unit operands: activations are at most i16.
  localparam int VEC_IN_W = 16;
endpackage : dla_core_pkg
/* verilator lint_on UNUSEDPARAM */
