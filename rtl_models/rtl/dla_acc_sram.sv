// dla_acc_sram — the accumulator SRAM the rtl engine's MAC array and requantizer read and
// write: dla_sram with the ACC geometry the hardware config derives (dla_pkg): words of
// dla_core_pkg::ACC_WORD_BITS, ACC_BANK_WORDS of them per bank word, SRAM_BANKS banks, and
// a port of ACC_PORT_WORDS words, so a partial-sum row of MAC_COLS words or a group of
// REQUANT_LANES words is one access of one clock at any word address.
module dla_acc_sram
#(
  // The capacity rounded up to whole lines of SRAM_BANKS bank words (dla_sram's ELEMS).
  localparam int LINE = dla_pkg::SRAM_BANKS * dla_pkg::ACC_BANK_WORDS,
  localparam int ELEMS = (dla_pkg::ACC_SRAM_WORDS + LINE - 1) / LINE * LINE,
  localparam int PORT = dla_pkg::ACC_PORT_WORDS,
  localparam int W = dla_core_pkg::ACC_WORD_BITS,
  localparam int AW = $clog2(ELEMS),
  localparam int LW = $clog2(PORT + 1)
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic rd_req_i,
  input  logic [AW-1:0] rd_addr_i,
  input  logic [LW-1:0] rd_len_i,
  output logic rd_ready_o,
  output logic rd_valid_o,
  output logic [PORT*W-1:0] rd_data_o,
  input  logic wr_req_i,
  input  logic [AW-1:0] wr_addr_i,
  input  logic [LW-1:0] wr_len_i,
  input  logic [PORT*W-1:0] wr_data_i,
  output logic wr_ready_o,
  output logic wr_done_o
);
  dla_sram #(
    .ELEMS(ELEMS),
    .ELEM_W(W),
    .BANKS(dla_pkg::SRAM_BANKS),
    .WORD(dla_pkg::ACC_BANK_WORDS),
    .PORT(PORT)
  ) u_sram (.*);
endmodule : dla_acc_sram
