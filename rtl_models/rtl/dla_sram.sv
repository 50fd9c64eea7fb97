// dla_sram — one on-chip SRAM buffer (ACT, WGT, PARAM: bytes; ACC: accumulator words) as
// BANKS banks of WORD-element bank words, word-interleaved: element a lies in bank word
// a / WORD, in bank (a / WORD) % BANKS, row a / (WORD * BANKS), lane a % WORD. Each bank is
// a two-port macro: one read and one write a clock (the g_bank memories), so the read and
// the write port below never wait for each other.
//
// Each port moves up to PORT contiguous elements from any address. An access that touches
// bank words w0..w1 takes ceil((w1 - w0 + 1) / BANKS) clocks (HwConfig::sram_access_clocks):
// chunk k serves words w0 + k*BANKS .. w0 + k*BANKS + BANKS - 1, consecutive words in
// consecutive banks, so every bank serves one word a clock. The bank holding w0 (sb) is
// the same for every chunk of an access; only the rows advance.
//   read:  accepted while rd_ready_o; the data of an n-chunk access accepted in cycle t is
//          on rd_data_o (element i at [i*ELEM_W +: ELEM_W], zero past rd_len) with
//          rd_valid_o in cycle t + n. A read of an element written in the same clock
//          returns the old value (the macros read before they write).
//   write: accepted while wr_ready_o; an n-chunk access writes its last chunk at the edge
//          ending cycle t + n - 1, with wr_done_o in that cycle.
// BANKS and WORD are powers of two (HwConfig::validate), so the divisions are bit selects.
//
// ACT_GEOMETRY, WGT_GEOMETRY, PARAM_GEOMETRY or ACC_GEOMETRY take the other parameters' defaults from the
// generated package, so the rtl engine's SRAMs get the config's geometry by one flag (-G...=1):
//   ACT_GEOMETRY  the activation SRAM: ACT_SRAM_BYTES bytes, a port of ACT_PORT_BYTES (the
//                 widest run a compute beat reads or writes);
//   WGT_GEOMETRY  the weight SRAM: WGT_SRAM_BYTES bytes, a port of WGT_PORT_BYTES (one
//                 column's weights of a weight set);
//   PARAM_GEOMETRY the parameter SRAM: PARAM_SRAM_BYTES bytes, a port of PARAM_PORT_BYTES
//                 (a record, a requantizer beat's shifts or a block of table entries);
//   ACC_GEOMETRY  the accumulator SRAM: ACC_SRAM_WORDS words of dla_core_pkg::
//                 ACC_WORD_BITS, ACC_BANK_WORDS to a bank word, a port of ACC_PORT_WORDS
//                 (HwConfig::acc_bank_words: such an access at any address takes one clock);
//   neither       a byte buffer of 4096 bytes in the config's banks (the block testbench).
module dla_sram
#(
  parameter int ACT_GEOMETRY = 0,
  parameter int WGT_GEOMETRY = 0,
  parameter int PARAM_GEOMETRY = 0,
  parameter int ACC_GEOMETRY = 0,
  parameter int BANKS = dla_pkg::SRAM_BANKS,
  parameter int WORD = ACC_GEOMETRY != 0 ? dla_pkg::ACC_BANK_WORDS : dla_pkg::SRAM_BANK_BYTES,  // elements per bank word
  // capacity: a multiple of WORD * BANKS (the ACC words rounded up to whole lines)
  parameter int ELEMS = ACT_GEOMETRY != 0 ? dla_pkg::ACT_SRAM_BYTES
                      : WGT_GEOMETRY != 0 ? dla_pkg::WGT_SRAM_BYTES
                      : PARAM_GEOMETRY != 0 ? dla_pkg::PARAM_SRAM_BYTES
                      : ACC_GEOMETRY != 0 ? (dla_pkg::ACC_SRAM_WORDS + WORD * BANKS - 1) / (WORD * BANKS) * (WORD * BANKS)
                      : 4096,
  parameter int ELEM_W = ACC_GEOMETRY != 0 ? dla_core_pkg::ACC_WORD_BITS : 8,
  // widest access, elements
  parameter int PORT = ACT_GEOMETRY != 0 ? dla_pkg::ACT_PORT_BYTES
                     : WGT_GEOMETRY != 0 ? dla_pkg::WGT_PORT_BYTES
                     : PARAM_GEOMETRY != 0 ? dla_pkg::PARAM_PORT_BYTES
                     : ACC_GEOMETRY != 0 ? dla_pkg::ACC_PORT_WORDS : BANKS * WORD,
  localparam int AW = $clog2(ELEMS),
  localparam int LW = $clog2(PORT + 1)
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic rd_req_i,
  input  logic [AW-1:0] rd_addr_i,
  input  logic [LW-1:0] rd_len_i,                    // 1..PORT
  output logic rd_ready_o,
  output logic rd_valid_o,
  output logic [PORT*ELEM_W-1:0] rd_data_o,
  input  logic wr_req_i,
  input  logic [AW-1:0] wr_addr_i,
  input  logic [LW-1:0] wr_len_i,                    // 1..PORT
  input  logic [PORT*ELEM_W-1:0] wr_data_i,
  output logic wr_ready_o,
  output logic wr_done_o,
  // The geometry the module was elaborated with (constants, no logic), so that its user
  // can refuse a build that is not the hardware config's.
  output logic [31:0] geom_elems_o,
  output logic [31:0] geom_port_o,
  output logic [31:0] geom_banks_o,
  output logic [31:0] geom_word_o
);
  localparam int ROWS = ELEMS / (WORD * BANKS);
  localparam int RW = ROWS > 1 ? $clog2(ROWS) : 1;
  localparam int LINE = BANKS * WORD;                // elements one chunk serves
  localparam int WORD_BITS = WORD * ELEM_W;
  localparam int IW = $clog2(PORT + 1) + 1;  // chunk counts: n <= (PORT + 2*WORD - 2) / LINE + 1

  // Chunks of an access: bank words touched, BANKS a clock.
  function automatic integer chunks(input integer a, input integer len);
    chunks = ((a + len - 1) / WORD - a / WORD + BANKS) / BANKS;
  endfunction

  // ---------------------------------------------------------------------------------------
  // The ports' sequencers: the access being served (its inputs on its first clock,
  // registers after) and its chunk index k of n.
  // ---------------------------------------------------------------------------------------
  logic r_busy_q, w_busy_q;
  logic [AW-1:0] r_addr_q, w_addr_q;
  logic [LW-1:0] r_len_q, w_len_q;
  logic [IW-1:0] r_k_q, w_k_q, r_n_q, w_n_q;
  logic [PORT*ELEM_W-1:0] w_data_q;

  assign geom_elems_o = 32'(ELEMS);
  assign geom_port_o = 32'(PORT);
  assign geom_banks_o = 32'(BANKS);
  assign geom_word_o = 32'(WORD);
  assign rd_ready_o = !r_busy_q;
  assign wr_ready_o = !w_busy_q;
  logic r_go, w_go;
  assign r_go = r_busy_q || rd_req_i;
  assign w_go = w_busy_q || wr_req_i;

  integer r_addr, w_addr, r_len, w_len, r_k, w_k, r_n, w_n;
  logic [PORT*ELEM_W-1:0] w_data;
  always_comb begin
    r_addr = r_busy_q ? 32'(r_addr_q) : 32'(rd_addr_i);
    r_len  = r_busy_q ? 32'(r_len_q) : 32'(rd_len_i);
    r_k    = r_busy_q ? 32'(r_k_q) : 0;
    r_n    = r_busy_q ? 32'(r_n_q) : chunks(r_addr, r_len);
    w_addr = w_busy_q ? 32'(w_addr_q) : 32'(wr_addr_i);
    w_len  = w_busy_q ? 32'(w_len_q) : 32'(wr_len_i);
    w_k    = w_busy_q ? 32'(w_k_q) : 0;
    w_n    = w_busy_q ? 32'(w_n_q) : chunks(w_addr, w_len);
    w_data = w_busy_q ? w_data_q : wr_data_i;
  end
  assign wr_done_o = w_go && w_k + 1 == w_n;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      r_busy_q <= 1'b0;
      w_busy_q <= 1'b0;
      r_addr_q <= '0;
      r_len_q <= '0;
      r_k_q <= '0;
      r_n_q <= '0;
      w_addr_q <= '0;
      w_len_q <= '0;
      w_k_q <= '0;
      w_n_q <= '0;
      w_data_q <= '0;
    end else begin
      if (r_go) begin
        r_busy_q <= r_k + 1 < r_n;
        r_addr_q <= AW'(r_addr);
        r_len_q <= LW'(r_len);
        r_k_q <= IW'(r_k + 1);
        r_n_q <= IW'(r_n);
      end
      if (w_go) begin
        w_busy_q <= w_k + 1 < w_n;
        w_addr_q <= AW'(w_addr);
        w_len_q <= LW'(w_len);
        w_k_q <= IW'(w_k + 1);
        w_n_q <= IW'(w_n);
        w_data_q <= w_data;
      end
    end
  end

  // Chunk geometry: the chunk's first word ws = w0 + k*BANKS lies in bank sb = w0 % BANKS
  // for every k; bank b holds the chunk's word ws + m, m = (b - sb) mod BANKS.
  integer r_sb, w_sb, r_ws, w_ws;
  always_comb begin
    r_sb = (r_addr / WORD) % BANKS;
    w_sb = (w_addr / WORD) % BANKS;
    r_ws = r_addr / WORD + r_k * BANKS;
    w_ws = w_addr / WORD + w_k * BANKS;
  end

  // The write chunk as LINE elements in word order from ws, with enables: line element i
  // is access element i + k*LINE - off (off = addr % WORD). Access element x sits at
  // padded element LINE + x; k*LINE < off + len keeps 0 < sh < LINE + PORT.
  logic [LINE*ELEM_W-1:0] w_line;
  logic [LINE-1:0] w_line_en;
  always_comb begin
    logic [(2*LINE+PORT)*ELEM_W-1:0] padded;
    logic [2*LINE+PORT-1:0] en_padded;
    integer sh;
    padded = {{(LINE*ELEM_W){1'b0}}, w_data, {(LINE*ELEM_W){1'b0}}};
    en_padded = '0;
    for (int e = 0; e < PORT; e++) en_padded[LINE + e] = e < w_len;
    sh = LINE + w_k * LINE - w_addr % WORD;
    w_line = padded[sh*ELEM_W +: LINE*ELEM_W];
    w_line_en = en_padded[sh +: LINE];
  end

  // ---------------------------------------------------------------------------------------
  // The banks.
  // ---------------------------------------------------------------------------------------
  logic [BANKS*WORD_BITS-1:0] q;  // bank b's read word at [b*WORD_BITS +: WORD_BITS]
  for (genvar b = 0; b < BANKS; b++) begin : g_bank
    logic [WORD_BITS-1:0] mem [ROWS];
    logic [WORD_BITS-1:0] q_word;
    integer r_m, w_m;
    logic [RW-1:0] r_row, w_row;
    always_comb begin
      r_m = (b + BANKS - r_sb) % BANKS;
      w_m = (b + BANKS - w_sb) % BANKS;
      r_row = RW'((r_ws + r_m) / BANKS);
      w_row = RW'((w_ws + w_m) / BANKS);
    end
    always_ff @(posedge clk_i) begin
      if (r_go) q_word <= mem[r_row];
      if (w_go) begin
        for (int j = 0; j < WORD; j++) begin
          if (w_line_en[w_m * WORD + j]) mem[w_row][j*ELEM_W +: ELEM_W] <= w_line[(w_m * WORD + j)*ELEM_W +: ELEM_W];
        end
      end
    end
    assign q[b*WORD_BITS +: WORD_BITS] = q_word;
  end

  // ---------------------------------------------------------------------------------------
  // Read assembly, the clock after each chunk: the banks' words in chunk order (from sb)
  // form line element i = access element i + k*LINE - off; the chunks merge in r_data_q.
  // ---------------------------------------------------------------------------------------
  logic q_valid_q, q_last_q;
  logic [IW-1:0] q_k_q;
  logic [IW-1:0] q_sb_q;
  logic [IW-1:0] q_off_q;
  logic [LW-1:0] q_len_q;
  logic [PORT*ELEM_W-1:0] r_data_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      q_valid_q <= 1'b0;
      q_last_q <= 1'b0;
      q_k_q <= '0;
      q_sb_q <= '0;
      q_off_q <= '0;
      q_len_q <= '0;
    end else begin
      q_valid_q <= r_go;
      q_last_q <= r_go && r_k + 1 == r_n;
      q_k_q <= IW'(r_k);
      q_sb_q <= IW'(r_sb);
      q_off_q <= IW'(r_addr % WORD);
      q_len_q <= LW'(r_len);
    end
  end

  // Access element e is line element e + off - k*LINE, i.e. padded element PORT + that;
  // 0 < sh <= PORT + off.
  logic [PORT*ELEM_W-1:0] r_merged;
  always_comb begin
    logic [(2*PORT+LINE)*ELEM_W-1:0] padded;
    integer sh;
    padded = '0;
    for (int m = 0; m < BANKS; m++) begin
      padded[(PORT + m*WORD)*ELEM_W +: WORD_BITS] = q[((32'(q_sb_q) + m) % BANKS)*WORD_BITS +: WORD_BITS];
    end
    sh = PORT + 32'(q_off_q) - 32'(q_k_q) * LINE;
    r_merged = (q_k_q == '0 ? '0 : r_data_q) | padded[sh*ELEM_W +: PORT*ELEM_W];
    for (int e = 0; e < PORT; e++) begin
      if (e >= 32'(q_len_q)) r_merged[e*ELEM_W +: ELEM_W] = '0;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) r_data_q <= '0;
    else if (q_valid_q) r_data_q <= r_merged;
  end
  assign rd_valid_o = q_valid_q && q_last_q;
  assign rd_data_o = r_merged;
endmodule : dla_sram
