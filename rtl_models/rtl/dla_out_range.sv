// dla_out_range — the output range of a requantizing operation (isa/README.md section 1,
// dla::OutputSpec): lo = max(T.min, clip_lo), hi = min(T.max, clip_hi). Computed once
// per instruction and shared by every lane.
module dla_out_range
(
  input  logic [dla_pkg::DTYPE_CODE_W-1:0] type_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_lo_i,
  input  logic signed [dla_core_pkg::VALUE_W-1:0] clip_hi_i,
  output logic signed [dla_core_pkg::VALUE_W-1:0] lo_o,
  output logic signed [dla_core_pkg::VALUE_W-1:0] hi_o
);
  logic signed [dla_core_pkg::VALUE_W-1:0] type_min, type_max;

  always_comb begin
    unique case (type_i)
      dla_pkg::DTYPE_I4:  begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I4_MIN);  type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I4_MAX);  end
      dla_pkg::DTYPE_U4:  begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_U4_MIN);  type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_U4_MAX);  end
      dla_pkg::DTYPE_I8:  begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I8_MIN);  type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I8_MAX);  end
      dla_pkg::DTYPE_U8:  begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_U8_MIN);  type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_U8_MAX);  end
      dla_pkg::DTYPE_I16: begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I16_MIN); type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I16_MAX); end
      default:   begin type_min = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I32_MIN); type_max = dla_core_pkg::VALUE_W'(dla_pkg::DTYPE_I32_MAX); end
    endcase
  end

  assign lo_o = clip_lo_i > type_min ? clip_lo_i : type_min;
  assign hi_o = clip_hi_i < type_max ? clip_hi_i : type_max;
endmodule : dla_out_range
