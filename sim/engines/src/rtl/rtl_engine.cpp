// The rtl engine (dla/rtl.hpp): the cycle model with a ComputeUnit that runs every compute
// instruction on the Verilated cores of rtl_models/, checked in lockstep against perform().
//
// The controller (dla_ctrl) takes each compute instruction's 128-bit word, decodes it and
// walks its loops, one beat descriptor per clock; this file's sequencer gathers the
// operands a descriptor names from the SRAMs, drives the block's beat and writes the
// results back. The accumulator SRAM is RTL (dla_sram with ACC_GEOMETRY) and so is the
// activation SRAM (ACT_GEOMETRY) for the MAC's activation runs, VADD's and VLUT's inputs,
// the window units' inputs and every unit's outputs (two copies, for two reads a clock),
// and so are the weight SRAM (WGT_GEOMETRY) and the parameter SRAM (PARAM_GEOMETRY, two
// copies as ACT): every operand comes from an RTL SRAM.
//   MAC      weight-stationary: for each output-channel block of mac_cols, kernel position
//            and input-channel chunk of mac_rows * speedup (a8w4: 2, a4w4: 4 channels per
//            PE lane), the weights are read from the WGT SRAM, one read per column, into
//            the array's load register while the previous weight set computes, and the
//            set's first beat (load_wgt) swaps them in: a set starts when the previous
//            set's beats and its own reads are done. Every output pixel (and a16w8 pass)
//            is one beat; the partial sums of a pixel are read from the ACC SRAM (zero
//            for a tile's first contribution without `accumulate`), go through the
//            array's psum_i, come back on psum_o and are written to the ACC SRAM: its
//            read-modify-write, one read and one write of at most mac_cols words a beat
//            on its two ports. Depthwise: channel c on row c, weights on the diagonal,
//            a8w4 / a4w4 pack 2 / 4 kernel positions per lane (one WGT read per lane);
//            a beat reads one ACT run per kernel position, alternating between the two
//            ACT copies' ports (a4w4: two clocks a beat). The
//            array's mode inputs are the controller's decoded fields. Clocks: the cycle
//            model's formula without the pipeline fill (timing.hpp).
//   REQUANT  requant_lanes consecutive accumulators per beat, read from the ACC SRAM, each
//            with its channel's shift: the record is read from PARAM with the word (all its
//            shifts where the channels fit the lanes), else each beat reads its group's
//            shifts (two runs where the group wraps to channel 0, one per copy).
//   VADD     vector_lanes elements per beat.
//   VLUT     the table is loaded from the PARAM SRAM, lut_lanes entries per clock,
//            then lut_lanes elements per beat (lut_lanes / 2 for i16: two knots each).
//   VMAXPOOL, VAVGPOOL  vector_lanes consecutive output elements (pixel-major, channel
//            minor) at a time, one beat per window position (max pool: positions in the
//            padding are not taken); a beat reads each run of consecutive input elements
//            its lanes need once, the runs alternating between the two ACT copies' ports.
//   VUPSAMPLE, VCOPY  windows of one position on the same block: vector_lanes output
//            elements (VCOPY: bytes) per beat.
// A descriptor outside the instruction (an element, pixel or channel past its end) stops
// the run naming the beat, before any SRAM read; a wrong one inside it is a lockstep
// mismatch. The controller's accept clock is not counted: in hardware it takes the next
// word on the previous instruction's last beat.
// The blocks have one register stage: a beat's result appears after its clock edge.
//
// The SRAMs. In hardware a beat's read is issued a clock ahead and its write lands while
// the next beat reads (the two ports; a bypass serves a read of the words being written);
// here each SRAM runs on its own clock, each access to completion in turn, and a beat's
// cycles grow by the clocks its slowest access takes beyond one (ACC: none with the
// config's geometry, HwConfig::acc_bank_words; ACT: the cycle model counts the same,
// cycle::group_stalls). What others write (the DMA's loads, instructions not run on
// the RTL) is written into an SRAM through its write port before an instruction reads it,
// where it differs from what the core last wrote or read there; what an instruction wrote
// is read back through the read port for the commit and the lockstep comparison. Those
// clocks are not the instruction's.
#include <verilated.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../cycle/compute_unit.hpp"
#include "../pack.hpp"
#include "dla/mac_modes.hpp"
#include "dla/param_records.hpp"
#include "dla/rtl.hpp"
#include "ports.hpp"
#include "rtl_trace.hpp"

// The Verilated cores, one set per preset of DLA_RTL_ENGINE_PRESETS (rtl_models/CMakeLists.txt).
#include "dla_rtl_cores_headers.inc"

namespace dla::sim {
namespace {

constexpr int kAccWordBits = 48;  // dla_core_pkg::ACC_WORD_BITS
constexpr int kPeLaneBits = 16;   // dla_core_pkg::PE_ACT_W, PE_WGT_W
constexpr int kValueBits = 32;    // dla_core_pkg::VALUE_W
constexpr int kShiftBits = 8;     // dla_core_pkg::SHIFT_W
constexpr int kVecInBits = 16;    // dla_core_pkg::VEC_IN_W
constexpr int kLutEntryBits = 8 * isa::LutRecord::kLayout[0].bytes;  // dla_pkg::LUT_ENTRY_BITS
/// Cycles a block may take beyond its one register stage before the engine calls it hung.
constexpr std::uint64_t kHangMargin = 8;

std::uint64_t u(std::int64_t v) { return static_cast<std::uint64_t>(v); }

template <class M, class = void>
struct HasValid : std::false_type {};
template <class M>
struct HasValid<M, std::void_t<decltype(std::declval<M&>().valid_i)>> : std::true_type {};

/// A Verilated block with its clock and asynchronous reset; `name` is its scope in traces.
template <class M>
class Clocked {
 public:
  Clocked(VerilatedContext* ctx, const char* name) : m_(std::make_unique<M>(ctx, name)) {
    m_->clk_i = 0;
    if constexpr (HasValid<M>::value) m_->valid_i = 0;
    m_->rst_ni = 1;
    m_->eval();
    m_->rst_ni = 0;
    m_->eval();
    m_->rst_ni = 1;
    m_->eval();
  }
  M* operator->() { return m_.get(); }
  /// A clock the block shares with the beats of others (the MAC array's weight writes,
  /// which overlap the previous weight set's beats): neither counted nor traced, so the
  /// trace shows its effect at the next counted edge.
  void tick_shared() {
    m_->clk_i = 1;
    m_->eval();
    m_->clk_i = 0;
    m_->eval();
  }
  /// One clock: the rising edge (registers take the beat), then the falling edge.
  void tick() {
    m_->clk_i = 1;
    m_->eval();
    if (trace_ != nullptr) trace_->edge(true);
    m_->clk_i = 0;
    m_->eval();
    if (trace_ != nullptr) trace_->edge(false);
    ++cycles_;
  }
  /// --trace: the block's signals go to `t` from now on (before t.open()). A block that
  /// does not `count` its clocks shares the clock of the blocks that do (the controller
  /// steps once per beat of a unit): its values are dumped at their edges.
  void trace(rtl::RtlTrace& t, bool count = true) {
    m_->trace(t.vcd(), 99);
    if (count) trace_ = &t;
  }
  std::uint64_t cycles() const { return cycles_; }
  /// Issues one beat (valid_i unless `drop`) and waits for its valid_o; false when none
  /// came within kHangMargin cycles.
  bool beat(bool drop) {
    m_->valid_i = drop ? 0 : 1;
    tick();
    m_->valid_i = 0;
    for (std::uint64_t waited = 0; !m_->valid_o; ++waited) {
      if (waited == kHangMargin) return false;
      tick();
    }
    return true;
  }

 private:
  std::unique_ptr<M> m_;
  std::uint64_t cycles_ = 0;
  rtl::RtlTrace* trace_ = nullptr;
};

/// An SRAM access that did not complete within its bound (a hung dla_sram).
struct SramHang : Error {
  using Error::Error;
};

/// An SRAM of the core (dla_sram; ACC_GEOMETRY: E = int64_t accumulators of kAccWordBits,
/// ACT_GEOMETRY: E = uint8_t bytes) through its ports, and what the core last wrote or
/// read at each element (so the elements others wrote since are found by comparison).
template <class M, class E, int kBits>
class SramPort {
 public:
  /// The SRAM of `elems` elements (rounded up to whole lines of banks x word), a port of
  /// `port`, `banks` banks of `word` elements. Throws Error where the Verilated block was
  /// elaborated with another geometry (its geom_*_o outputs): the engine's accesses and
  /// the cycle model's clocks assume the config's.
  SramPort(VerilatedContext* ctx, const char* name, const char* unit, std::int64_t elems, std::int64_t port,
           std::int64_t banks, std::int64_t word)
      : m_(ctx, name),
        unit_(unit),
        port_(static_cast<int>(port)),
        bound_(u(port) + kHangMargin),
        mirror_(u(elems), 0),
        known_(u(elems), 0) {
    const std::uint64_t line = u(banks) * u(word), lines = (u(elems) + line - 1) / line;
    const std::uint64_t want[4] = {lines * line, u(port), u(banks), u(word)};
    const std::uint64_t built[4] = {m_->geom_elems_o, m_->geom_port_o, m_->geom_banks_o, m_->geom_word_o};
    if (!std::equal(want, want + 4, built)) {
      auto text = [](const std::uint64_t* g) {
        return std::to_string(g[0]) + " elements, a port of " + std::to_string(g[1]) + ", " + std::to_string(g[2]) +
               " banks of " + std::to_string(g[3]);
      };
      throw Error(std::string("the rtl core's ") + unit + " was built with " + text(built) + "; the config needs " +
                  text(want) + " (rebuild the cores: cmake --build)");
    }
  }

  void trace(rtl::RtlTrace& t) { m_.trace(t, false); }

  /// Reads n <= the port's width elements from `addr` into out; returns the clocks it took.
  std::uint64_t read(std::uint64_t addr, int n, E* out) {
    m_->rd_req_i = 1;
    set(m_->rd_addr_i, addr);
    set(m_->rd_len_i, n);
    const std::uint64_t clocks = serve("a read", addr, n, m_->rd_req_i, [this] { return m_->rd_valid_o != 0; });
    for (int i = 0; i < n; ++i) {
      out[i] = static_cast<E>(kBits == 8 ? static_cast<std::int64_t>(rtl::get_field(m_->rd_data_o, i * kBits, kBits))
                                         : rtl::get_signed_field(m_->rd_data_o, i * kBits, kBits));
      mirror_[addr + u(i)] = out[i];
      known_[addr + u(i)] = 1;
    }
    return clocks;
  }

  /// Writes n <= the port's width elements from `in` at `addr`; returns the clocks it took.
  std::uint64_t write(std::uint64_t addr, int n, const E* in) {
    m_->wr_req_i = 1;
    set(m_->wr_addr_i, addr);
    set(m_->wr_len_i, n);
    for (int i = 0; i < port_; ++i) {
      rtl::put_field(m_->wr_data_i, i * kBits, kBits, i < n ? static_cast<std::uint64_t>(in[i]) : 0);
    }
    const std::uint64_t clocks = serve("a write", addr, n, m_->wr_req_i, [this] { return m_->wr_ready_o != 0; });
    std::copy_n(in, n, mirror_.begin() + static_cast<std::ptrdiff_t>(addr));
    std::fill_n(known_.begin() + static_cast<std::ptrdiff_t>(addr), n, 1);
    return clocks;
  }

  /// Elements [base, base + n) of the machine state's buffer into the SRAM where they
  /// differ from what the core last wrote or read there.
  void sync_in(const std::vector<E>& state, std::uint64_t base, std::uint64_t n) {
    auto same = [&](std::uint64_t a) { return known_[a] != 0 && mirror_[a] == state[a]; };
    for (std::uint64_t a = base; a < base + n;) {
      if (same(a)) {
        ++a;
        continue;
      }
      std::uint64_t e = a + 1;
      while (e < base + n && e - a < u(port_) && !same(e)) ++e;
      write(a, static_cast<int>(e - a), state.data() + a);
      a = e;
    }
  }

  /// Elements [base, base + n) of the SRAM, read a port's width at a time.
  std::vector<E> read_back(std::uint64_t base, std::uint64_t n) {
    std::vector<E> v(n);
    for (std::uint64_t a = 0; a < n; a += u(port_)) {
      read(base + a, static_cast<int>(std::min<std::uint64_t>(u(port_), n - a)), v.data() + a);
    }
    return v;
  }

  /// What the core last wrote or read at `addr` (after sync_in of it: the state's value).
  E held(std::uint64_t addr) const { return mirror_[addr]; }

 private:
  template <class Port, class V>
  static void set(Port& port, V v) {
    port = static_cast<Port>(v);
  }

  /// Clocks the SRAM with the request `req` up for the first clock until done(): the
  /// access's clocks, or SramHang past the bound.
  template <class Req, class Done>
  std::uint64_t serve(const char* what, std::uint64_t addr, int n, Req& req, Done&& done) {
    std::uint64_t clocks = 0;
    do {
      if (clocks == bound_) {
        throw SramHang(std::string("the ") + unit_ + ": " + what + " of " + std::to_string(n) + " elements at " +
                       std::to_string(addr) + " did not complete within " + std::to_string(bound_) + " clocks");
      }
      m_.tick();
      req = 0;
      ++clocks;
    } while (!done());
    return clocks;
  }

  Clocked<M> m_;
  const char* unit_;
  int port_;
  std::uint64_t bound_;  ///< clocks an access may take: one chunk per element at most, and the margin
  std::vector<E> mirror_;
  std::vector<std::uint8_t> known_;
};

/// What a core run produced (held until commit).
struct CoreResult {
  bool completed = true;        ///< false: the core hung at beat `hung_beat`
  std::uint64_t hung_beat = 0;
  std::uint64_t beats = 0;      ///< beats the instruction needs
  std::uint64_t cycles = 0;     ///< clocks the core took
  std::string bad_beat;         ///< non-empty: the controller issued a beat outside the instruction
  std::uint64_t stalls = 0;     ///< SRAM clocks beyond one a beat (in `cycles`)
  std::vector<std::int64_t> acc;   ///< MAC: the ACC words of the tile, read back from the ACC SRAM
  std::vector<std::int32_t> values;  ///< the other units: the output elements, as the block gave them
  std::vector<std::uint8_t> bytes;   ///< and the output region, read back from the ACT SRAM
  std::uint64_t overflows = 0;
  std::uint64_t saturations = 0;
};

/// A MAC's geometry and operand types (its operands are read from the ACT and WGT SRAMs).
struct MacJob {
  const isa::Mac* insn = nullptr;
  std::int64_t in_h = 0, in_w = 0;
  int speedup = 1;
  int act_bits = 8, wgt_bits = 8;  ///< width of one slot in a PE lane
  int act_storage_bits = 8;        ///< of one activation in ACT (a16w8: 16), read from the ACT SRAM
  DType wgt_type = DType::I8;      ///< the weights in the WGT SRAM: [out_c][kh][kw][in_c] or [out_c][kh][kw]
};

struct RequantJob {
  const isa::Requant* insn = nullptr;  ///< its record is read from the PARAM SRAM
  HwConfig hw;
};

struct VAddJob {
  const isa::VAdd* insn = nullptr;  ///< its operands are read from the ACT SRAM, its record from PARAM
  HwConfig hw;
};

struct LutJob {
  DType in = DType::I8, out = DType::I8;
  std::uint64_t in_addr = 0, count = 0;  ///< the inputs: `count` elements of `in` in ACT
  std::uint64_t param_addr = 0;          ///< the table record in PARAM, read block by block
  RoundMode mode = RoundMode::HALF_UP;
};

/// A window job of dla_vpool: `outputs` elements, `positions` beats per group of lanes,
/// reading `in` elements from ACT byte in_addr. input(e, k, &i) sets the input element i of
/// output element e at window position k and returns false where that position lies in the
/// padding (VCOPY: output byte e is input byte e).
struct PoolJob {
  int op = 0;  ///< the instruction's funct (FUNCT_VAVGPOOL averages, the others take the maximum)
  std::uint64_t outputs = 0;
  std::int64_t positions = 1;
  DType in = DType::I8, out = DType::I8;
  std::uint64_t in_addr = 0;
  std::int64_t mult = 1;
  int shift = 0;
  std::int32_t clip_lo = INT32_MIN, clip_hi = INT32_MAX;
  RoundMode mode = RoundMode::HALF_UP;
  std::function<bool(std::uint64_t, std::int64_t, std::uint64_t*)> input;
};

/// The blocks of one preset's core.
class Core {
 public:
  virtual ~Core() = default;
  /// The controller takes the instruction's word; the next call walks its beats.
  virtual void accept(const isa::Word& word) = 0;
  /// The ACC words [base, base + n) of the machine state into the ACC SRAM (uncounted).
  virtual void acc_sync_in(const std::vector<std::int64_t>& acc, std::uint64_t base, std::uint64_t n) = 0;
  /// The same for ACT bytes.
  virtual void act_sync_in(const std::vector<std::uint8_t>& act, std::uint64_t base, std::uint64_t n) = 0;
  /// The same for WGT bytes.
  virtual void wgt_sync_in(const std::vector<std::uint8_t>& wgt, std::uint64_t base, std::uint64_t n) = 0;
  /// The same for PARAM bytes.
  virtual void param_sync_in(const std::vector<std::uint8_t>& param, std::uint64_t base, std::uint64_t n) = 0;
  /// A record of n <= param_port_bytes() bytes from PARAM byte `addr`, read when its
  /// instruction is accepted (in the clock the controller takes the word, which overlaps
  /// the previous instruction's last beat: not counted).
  virtual std::vector<std::uint8_t> param_record(std::uint64_t addr, std::uint64_t n) = 0;
  /// Where the next vector-side instruction writes its `type` elements in ACT.
  virtual void output(std::uint64_t base, DType type) = 0;
  virtual CoreResult mac(const MacJob& job, bool drop) = 0;
  virtual CoreResult requant(const RequantJob& job, bool drop) = 0;
  virtual CoreResult vadd(const VAddJob& job, bool drop) = 0;
  virtual CoreResult lut(const LutJob& job, bool drop) = 0;
  virtual CoreResult pool(const PoolJob& job, bool drop) = 0;
  /// Traces every block into `t` (before t.open()).
  virtual void trace(rtl::RtlTrace& t) = 0;
};

template <class Ctrl, class Mac, class Rq, class Va, class Lut, class Pool, class Acc, class Act, class Wgt, class Param>
class CoreOf final : public Core {
 public:
  explicit CoreOf(const HwConfig& hw)
      : hw_(hw),
        ctx_(std::make_unique<VerilatedContext>()),
        ctrl_(ctx_.get(), "ctrl"),
        mac_(ctx_.get(), "mac_array"),
        rq_(ctx_.get(), "requant"),
        va_(ctx_.get(), "vadd"),
        lut_(ctx_.get(), "vlut"),
        pool_(ctx_.get(), "vpool"),
        acc_(ctx_.get(), "acc_sram", "accumulator SRAM (dla_sram, ACC_GEOMETRY)", hw.acc_sram_words(), hw.acc_port_words(),
             hw.sram_banks, hw.acc_bank_words()),
        act_(ctx_.get(), "act_sram", "activation SRAM (dla_sram, ACT_GEOMETRY)", hw.act_sram_bytes(), hw.act_port_bytes(),
             hw.sram_banks, hw.sram_bank_bytes),
        act_b_(ctx_.get(), "act_sram_b", "activation SRAM's second copy (dla_sram, ACT_GEOMETRY)", hw.act_sram_bytes(),
               hw.act_port_bytes(), hw.sram_banks, hw.sram_bank_bytes),
        wgt_(ctx_.get(), "wgt_sram", "weight SRAM (dla_sram, WGT_GEOMETRY)", hw.wgt_sram_bytes(), hw.wgt_port_bytes(),
             hw.sram_banks, hw.sram_bank_bytes),
        param_(ctx_.get(), "param_sram", "parameter SRAM (dla_sram, PARAM_GEOMETRY)", hw.param_sram_bytes(),
               hw.param_port_bytes(), hw.sram_banks, hw.sram_bank_bytes),
        param_b_(ctx_.get(), "param_sram_b", "parameter SRAM's second copy (dla_sram, PARAM_GEOMETRY)",
                 hw.param_sram_bytes(), hw.param_port_bytes(), hw.sram_banks, hw.sram_bank_bytes) {}

  void acc_sync_in(const std::vector<std::int64_t>& acc, std::uint64_t base, std::uint64_t n) override {
    acc_.sync_in(acc, base, n);
  }
  void act_sync_in(const std::vector<std::uint8_t>& act, std::uint64_t base, std::uint64_t n) override {
    act_.sync_in(act, base, n);
    act_b_.sync_in(act, base, n);
  }
  void wgt_sync_in(const std::vector<std::uint8_t>& wgt, std::uint64_t base, std::uint64_t n) override {
    wgt_.sync_in(wgt, base, n);
  }
  void param_sync_in(const std::vector<std::uint8_t>& param, std::uint64_t base, std::uint64_t n) override {
    param_.sync_in(param, base, n);
    param_b_.sync_in(param, base, n);
  }
  std::vector<std::uint8_t> param_record(std::uint64_t addr, std::uint64_t n) override { return param_.read_back(addr, n); }
  void output(std::uint64_t base, DType type) override {
    out_base_ = base;
    out_type_ = type;
  }

  void trace(rtl::RtlTrace& t) override {
    ctx_->traceEverOn(true);
    ctrl_.trace(t, false);
    mac_.trace(t);
    rq_.trace(t);
    va_.trace(t);
    lut_.trace(t);
    pool_.trace(t);
    acc_.trace(t);
    act_.trace(t);
    act_b_.trace(t);
    wgt_.trace(t);
    param_.trace(t);
    param_b_.trace(t);
  }

  void accept(const isa::Word& word) override {
    // In hardware ready_o takes the next word on the previous instruction's last beat, so
    // the accept clock is not counted (the block testbench checks there is no bubble).
    rtl::put_field(ctrl_->insn_i, 0, 64, word.words[0]);
    rtl::put_field(ctrl_->insn_i, 64, 64, word.words[1]);
    ctrl_->valid_i = 1;
    ctrl_->beat_ready_i = 0;
    ctrl_.tick();
    ctrl_->valid_i = 0;
    ctrl_->beat_ready_i = 1;
  }

  CoreResult mac(const MacJob& job, bool drop) override {
    const isa::Mac& in = *job.insn;  // the tile's geometry, for the SRAM gathers
    const auto rows = static_cast<int>(hw_.mac_rows), cols = static_cast<int>(hw_.mac_cols);
    const std::int64_t oc_n = in.out_c, ic_n = in.in_c, kk = in.kernel_h * in.kernel_w;
    const int s = job.speedup;
    CoreResult r;
    mac_->mode_i = ctrl_->mac_mode_o;
    mac_->act_unsigned_i = ctrl_->mac_act_unsigned_o;
    const bool dw = ctrl_->mac_depthwise_o != 0;
    // Per pixel: the activation offset of the kernel's top-left element.
    std::vector<std::int64_t> origin(u(in.out_h * in.out_w));
    for (std::size_t p = 0; p < origin.size(); ++p) {
      const std::int64_t oh = static_cast<std::int64_t>(p) / in.out_w, ow = static_cast<std::int64_t>(p) % in.out_w;
      origin[p] = (oh * in.stride_h * job.in_w + ow * in.stride_w) * ic_n;
    }
    auto act_offset = [&](std::int64_t p, std::int64_t kpos, std::int64_t ic) {
      const std::int64_t kh = kpos / in.kernel_w, kw = kpos % in.kernel_w;
      return origin[static_cast<std::size_t>(p)] + (kh * in.dilation * job.in_w + kw * in.dilation) * ic_n + ic;
    };
    // A beat's activations are runs of channels read from the ACT SRAM (runs[j]: its bytes
    // from byte run_b0[j] of the tile): dense, one run of the chunk's channels at the beat's
    // pixel and kernel position; depthwise, one run of the block's channels per kernel
    // position of the beat (a8w4 / a4w4: 2 / 4), alternating between the two copies' read
    // ports, so a4w4's four runs take two clocks.
    const int sbits = job.act_storage_bits;
    std::vector<std::vector<std::uint8_t>> runs(u(dw ? s : 1), std::vector<std::uint8_t>(u(hw_.act_port_bytes())));
    std::vector<std::int64_t> run_b0(runs.size());
    auto act_at = [&](std::int64_t p, std::int64_t kfirst, std::int64_t kp, std::int64_t ic) -> std::int32_t {
      const auto j = static_cast<std::size_t>(kp - kfirst);
      const std::int64_t bit = act_offset(p, kp, ic) * sbits - run_b0[j] * 8;  // the raw bits: the lanes mask them
      std::uint32_t v = runs[j][u(bit / 8)];
      if (sbits == 16) v |= static_cast<std::uint32_t>(runs[j][u(bit / 8 + 1)]) << 8;
      if (sbits == 4) v = (v >> (bit % 8)) & 0xFu;
      return static_cast<std::int32_t>(v);
    };
    const std::uint64_t amask = (std::uint64_t{1} << job.act_bits) - 1;
    const std::uint64_t start = mac_.cycles();
    std::uint64_t stalls = 0;  // SRAM clocks beyond one a beat, and waits for weights
    std::uint64_t set_start = 0;  // when the current weight set's beats began (its successor's reads then)
    std::vector<std::int64_t> psum(u(cols));
    while (ctrl_->beat_valid_o) {
      // The beat descriptor: which block, kernel position(s), channel chunk, pass and pixel.
      const std::int64_t oc0 = ctrl_->oc0_o, ic0 = ctrl_->ic0_o, kpos = ctrl_->kpos_o, pixel = ctrl_->pixel_o;
      const int n = ctrl_->n_o;
      if (pixel >= in.out_h * in.out_w || n < 1 || n > (dw ? std::min(rows, cols) : cols) || oc0 + n > oc_n ||
          kpos >= kk || ic0 >= (dw ? oc_n : ic_n)) {
        r.bad_beat = "oc0 " + std::to_string(oc0) + ", columns " + std::to_string(n) + ", kpos " +
                     std::to_string(kpos) + ", ic0 " + std::to_string(ic0) + ", pixel " + std::to_string(pixel);
        break;
      }
      // The (kernel position, input channel) slot j of row `row` carries; false: idle.
      // Dense: one position, rows * s consecutive channels; depthwise: channel ic0 + row
      // on row `row`, s consecutive positions.
      auto slot = [&](int row, int j, std::int64_t* kp, std::int64_t* ic) {
        if (!dw) {
          *kp = kpos;
          *ic = ic0 + row * s + j;
          return *ic < ic_n;
        }
        *kp = kpos + j;
        *ic = ic0 + row;
        return row < n && *kp < kk;
      };
      if (ctrl_->load_wgt_o) {
        // A new weight set: read from the WGT SRAM into the array's load register while
        // the previous set computes; its first beat swaps it in (wswap_i). The set starts
        // when both the previous set's beats and its own reads are done.
        // The clocks of the wait are the array's, idle (no beat): counted and traced.
        const std::uint64_t load = load_weights(job, oc0, n, kpos, ic0, dw);
        const std::uint64_t ready = set_start + load;
        while (mac_.cycles() - start + stalls < ready) mac_.tick();
        set_start = mac_.cycles() - start + stalls;
      }
      mac_->wswap_i = ctrl_->load_wgt_o;
      mac_->hi_pass_i = ctrl_->pass_o != 0 ? 1 : 0;
      // Dense: the chunk's channels at kpos; depthwise: the block's n channels at each of
      // the beat's kernel positions, run j on copy j % 2.
      const std::int64_t run_count = dw ? std::min<std::int64_t>(s, kk - kpos) : 1;
      const std::int64_t run_len = dw ? n : std::min<std::int64_t>(rows * s, ic_n - ic0);
      std::uint64_t port_clocks[2] = {0, 0};
      for (std::int64_t j = 0; j < run_count; ++j) {
        const std::int64_t e0 = act_offset(pixel, kpos + j, ic0);
        run_b0[u(j)] = e0 * sbits / 8;
        const std::int64_t b1 = ((e0 + run_len) * sbits + 7) / 8;
        auto& port = j % 2 == 0 ? act_ : act_b_;
        port_clocks[j % 2] += port.read(u(in.act_addr + run_b0[u(j)]), static_cast<int>(b1 - run_b0[u(j)]), runs[u(j)].data());
      }
      const std::uint64_t act_clocks = std::max(port_clocks[0], port_clocks[1]);
      for (int row = 0; row < rows; ++row) {
        std::uint64_t lane = 0;
        for (int j = 0; j < s; ++j) {
          std::int64_t kp = 0, ic = 0;
          if (slot(row, j, &kp, &ic)) lane |= (static_cast<std::uint64_t>(act_at(pixel, kpos, kp, ic)) & amask) << (j * job.act_bits);
        }
        rtl::put_field(mac_->act_i, row * kPeLaneBits, kPeLaneBits, lane);
      }
      // The pixel's partial sums: the tile's first contribution starts from zero unless
      // the instruction accumulates onto ACC (a bias, an earlier chunk).
      const std::uint64_t row = u(in.acc_addr) + u(pixel * oc_n + oc0);
      const bool first = kpos == 0 && ctrl_->pass_o == 0 && (dw || ic0 == 0);
      std::uint64_t clocks = act_clocks;
      if (first && !in.accumulate) {
        std::fill_n(psum.begin(), n, 0);
      } else {
        clocks = std::max(clocks, acc_.read(row, n, psum.data()));
      }
      for (int c = 0; c < cols; ++c) {
        rtl::put_field(mac_->psum_i, c * kAccWordBits, kAccWordBits, c < n ? static_cast<std::uint64_t>(psum[u(c)]) : 0);
      }
      ++r.beats;
      if (!mac_.beat(drop && r.beats == 1)) {
        r.completed = false;
        r.hung_beat = r.beats;
        break;
      }
      mac_->wswap_i = 0;
      for (int c = 0; c < n; ++c) psum[u(c)] = rtl::get_signed_field(mac_->psum_o, c * kAccWordBits, kAccWordBits);
      stalls += std::max(clocks, acc_.write(row, n, psum.data())) - 1;
      ctrl_.tick();
    }
    r.cycles = mac_.cycles() - start + stalls;
    if (r.completed && r.bad_beat.empty()) r.acc = acc_.read_back(u(in.acc_addr), u(in.out_h * in.out_w * oc_n));
    return r;
  }

  CoreResult requant(const RequantJob& job, bool drop) override {
    const isa::Requant& in = *job.insn;
    const auto lanes = static_cast<int>(hw_.requant_lanes);
    const std::uint64_t n = u(in.pixels) * u(in.channels), channels = u(in.channels);
    // The record when the word is accepted: its clips, and all its shifts when they fit
    // in the lanes (then each beat picks its channels' from them); more channels than
    // lanes: each beat reads its group's shifts, channels c0.. on the first copy's port
    // and, where the group wraps to channel 0, the rest on the second copy's (a group of
    // at most `lanes` <= channels wraps at most once).
    const bool held = channels <= u(lanes);
    const std::uint64_t shifts_at = u(in.param_addr) + isa::RequantRecord::size(0);
    const std::vector<std::uint8_t> rec = param_record(u(in.param_addr), isa::RequantRecord::size(held ? channels : 0));
    const isa::RequantRecord clips = isa::RequantRecord::decode(rec.data(), held ? channels : 0);
    rq_->out_type_i = static_cast<std::uint8_t>(in.out_type);
    rq_->clip_lo_i = static_cast<std::uint32_t>(clips.clip_lo);
    rq_->clip_hi_i = static_cast<std::uint32_t>(clips.clip_hi);
    rq_->mode_i = static_cast<std::uint8_t>(job.hw.rounding_mode);
    rq_->policy_i = static_cast<std::uint8_t>(job.hw.overflow_policy);
    rq_->acc_bits_i = static_cast<std::uint8_t>(job.hw.acc_bits);
    const std::uint32_t sat0 = rq_->sat_count_o, ovf0 = rq_->ovf_count_o;
    CoreResult r;
    r.values.resize(n);
    const std::uint64_t start = rq_.cycles();
    std::vector<std::int64_t> acc(u(lanes));
    std::vector<std::uint8_t> shift(u(lanes));
    walk_groups(rq_, lanes, n, drop, r, [&](std::uint64_t e0, int k, std::int64_t) {
      beat_clocks_ = std::max(beat_clocks_, acc_.read(u(in.acc_addr) + e0, k, acc.data()));
      const std::uint64_t c0 = e0 % channels;
      if (!held) {
        const auto first = static_cast<int>(std::min<std::uint64_t>(u(k), channels - c0));
        beat_clocks_ = std::max(beat_clocks_, param_.read(shifts_at + c0, first, shift.data()));
        if (first < k) beat_clocks_ = std::max(beat_clocks_, param_b_.read(shifts_at, k - first, shift.data() + first));
      }
      for (int l = 0; l < lanes; ++l) {
        const bool en = l < k;
        const std::uint64_t c = (c0 + u(l)) % channels;
        const std::uint64_t sh = !en ? 0 : held ? static_cast<std::uint8_t>(clips.shift[c]) : shift[u(l)];
        rtl::put_field(rq_->acc_i, l * kAccWordBits, kAccWordBits, en ? static_cast<std::uint64_t>(acc[u(l)]) : 0);
        rtl::put_field(rq_->shift_i, l * kShiftBits, kShiftBits, sh);
        rtl::put_field(rq_->lane_en_i, l, 1, en ? 1 : 0);
      }
      return true;
    });
    r.cycles = rq_.cycles() - start;
    finish(r);
    r.saturations = static_cast<std::uint32_t>(rq_->sat_count_o - sat0);
    r.overflows = static_cast<std::uint32_t>(rq_->ovf_count_o - ovf0);
    return r;
  }

  CoreResult vadd(const VAddJob& job, bool drop) override {
    const isa::VAdd& in = *job.insn;
    const auto lanes = static_cast<int>(hw_.vector_lanes);
    const std::uint64_t n = u(in.count);
    const isa::AddRecord rec = isa::AddRecord::decode(param_record(u(in.param_addr), isa::AddRecord::kSize).data());
    va_->shift_a_i = static_cast<std::uint8_t>(rec.shift_a);
    va_->shift_b_i = static_cast<std::uint8_t>(rec.shift_b);
    va_->shift_y_i = static_cast<std::uint8_t>(rec.shift_y);
    va_->y_type_i = static_cast<std::uint8_t>(in.y_type);
    va_->clip_lo_i = static_cast<std::uint32_t>(rec.clip_lo);
    va_->clip_hi_i = static_cast<std::uint32_t>(rec.clip_hi);
    va_->mode_i = static_cast<std::uint8_t>(job.hw.rounding_mode);
    const std::uint32_t sat0 = va_->sat_count_o;
    CoreResult r;
    r.values.resize(n);
    const std::uint64_t start = va_.cycles();
    std::vector<std::int32_t> a(u(lanes)), b(u(lanes));
    walk_groups(va_, lanes, n, drop, r, [&](std::uint64_t e0, int k, std::int64_t) {
      // The two operands on the two copies' read ports, in parallel.
      beat_clocks_ = std::max({beat_clocks_, read_elements(act_, u(in.a_addr), static_cast<DType>(in.a_type), e0, k, a.data()),
                               read_elements(act_b_, u(in.b_addr), static_cast<DType>(in.b_type), e0, k, b.data())});
      for (int l = 0; l < lanes; ++l) {
        const bool en = l < k;
        rtl::put_field(va_->a_i, l * kVecInBits, kVecInBits, en ? static_cast<std::uint64_t>(a[u(l)]) : 0);
        rtl::put_field(va_->b_i, l * kVecInBits, kVecInBits, en ? static_cast<std::uint64_t>(b[u(l)]) : 0);
        rtl::put_field(va_->lane_en_i, l, 1, en ? 1 : 0);
      }
      return true;
    });
    r.cycles = va_.cycles() - start;
    finish(r);
    r.saturations = static_cast<std::uint32_t>(va_->sat_count_o - sat0);
    return r;
  }

  CoreResult lut(const LutJob& job, bool drop) override {
    const auto lanes = static_cast<int>(hw_.lut_lanes);
    const std::uint64_t start = lut_.cycles();
    lut_->in_type_i = static_cast<std::uint8_t>(job.in);
    lut_->out_type_i = static_cast<std::uint8_t>(job.out);
    lut_->mode_i = static_cast<std::uint8_t>(job.mode);
    const std::uint32_t sat0 = lut_->sat_count_o;
    const std::uint64_t n = job.count;
    CoreResult r;
    r.values.resize(n);
    // The table first, one block of lanes entries per clock, each one read of the PARAM
    // SRAM (a beat of more clocks where the block's bytes take more).
    const auto entries = static_cast<std::size_t>(lut_entries(job.in));
    constexpr std::size_t kEntryBytes = isa::LutRecord::kLayout[0].bytes;
    std::vector<std::uint8_t> block(u(lanes) * kEntryBytes);
    while (ctrl_->tload_o) {
      const std::size_t b = ctrl_->tblock_o;
      if (b * u(lanes) >= entries) {
        r.bad_beat = "table block " + std::to_string(b) + " of a " + std::to_string(entries) + "-entry table";
        return r;
      }
      const std::size_t k = std::min(u(lanes), entries - b * u(lanes));
      r.stalls += param_.read(job.param_addr + b * u(lanes) * kEntryBytes, static_cast<int>(k * kEntryBytes), block.data()) - 1;
      lut_->load_i = 1;
      lut_->load_block_i = static_cast<std::remove_reference_t<decltype(lut_->load_block_i)>>(b);
      for (std::size_t l = 0; l < u(lanes); ++l) {
        const std::int16_t entry = l < k ? isa::LutRecord::entry_at(block.data(), l) : std::int16_t{0};
        rtl::put_field(lut_->load_data_i, static_cast<int>(l) * kLutEntryBits, kLutEntryBits,
                       static_cast<std::uint16_t>(entry));
      }
      lut_.tick();
      ctrl_.tick();
    }
    lut_->load_i = 0;
    // An i16 element reads two knots: the controller gives half the lanes per beat.
    std::vector<std::int32_t> x(u(lanes));
    walk_groups(lut_, lut_interpolates(job.in) ? lanes / 2 : lanes, n, drop, r, [&](std::uint64_t e0, int k, std::int64_t) {
      beat_clocks_ = std::max(beat_clocks_, read_elements(act_, job.in_addr, job.in, e0, k, x.data()));
      for (int l = 0; l < lanes; ++l) {
        const bool en = l < k;
        rtl::put_field(lut_->x_i, l * kVecInBits, kVecInBits, en ? static_cast<std::uint64_t>(x[u(l)]) : 0);
        rtl::put_field(lut_->lane_en_i, l, 1, en ? 1 : 0);
      }
      return true;
    });
    r.cycles = lut_.cycles() - start;
    finish(r);
    r.saturations = static_cast<std::uint32_t>(lut_->sat_count_o - sat0);
    return r;
  }

  CoreResult pool(const PoolJob& job, bool drop) override {
    const auto lanes = static_cast<int>(hw_.vector_lanes);
    pool_->op_i = static_cast<std::uint8_t>(job.op);
    pool_->in_type_i = static_cast<std::uint8_t>(job.in);
    pool_->out_type_i = static_cast<std::uint8_t>(job.out);
    pool_->mult_i = static_cast<std::uint16_t>(job.mult);
    pool_->shift_i = static_cast<std::uint8_t>(job.shift);
    pool_->clip_lo_i = static_cast<std::uint32_t>(job.clip_lo);
    pool_->clip_hi_i = static_cast<std::uint32_t>(job.clip_hi);
    pool_->mode_i = static_cast<std::uint8_t>(job.mode);
    const std::uint32_t sat0 = pool_->sat_count_o;
    CoreResult r;
    r.values.resize(job.outputs);
    const std::uint64_t start = pool_.cycles();
    std::vector<std::int32_t> xs(u(lanes));
    std::vector<std::uint64_t> lane_in(u(lanes));
    std::vector<char> take(u(lanes));
    walk_groups(pool_, lanes, job.outputs, drop, r, [&](std::uint64_t e0, int k, std::int64_t pos) {
      if (pos >= job.positions) {
        r.bad_beat = "window position " + std::to_string(pos) + " of " + std::to_string(job.positions);
        return false;
      }
      pool_->first_i = ctrl_->first_o;
      pool_->last_i = ctrl_->wlast_o;
      // The lanes' input elements at this window position. The beat reads each run of
      // consecutive elements among them once (a stride-1 window's neighbouring pixels,
      // an upsampled pixel's copies share a run), the runs alternating between the two
      // copies' read ports.
      needed_.clear();
      for (int l = 0; l < k; ++l) {
        take[u(l)] = job.input(e0 + u(l), pos, &lane_in[u(l)]);
        if (take[u(l)]) needed_.push_back(lane_in[u(l)]);
      }
      std::sort(needed_.begin(), needed_.end());
      needed_.erase(std::unique(needed_.begin(), needed_.end()), needed_.end());
      std::uint64_t port_clocks[2] = {0, 0};
      int reads = 0;
      for (std::size_t i = 0, j = 0; i < needed_.size(); i = j, ++reads) {
        for (j = i + 1; j < needed_.size() && needed_[j] == needed_[j - 1] + 1;) ++j;
        auto& port = reads % 2 == 0 ? act_ : act_b_;
        port_clocks[reads % 2] += read_elements(port, job.in_addr, job.in, needed_[i], static_cast<int>(j - i), xs.data() + i);
      }
      beat_clocks_ = std::max({beat_clocks_, port_clocks[0], port_clocks[1]});
      for (int l = 0; l < lanes; ++l) {
        const bool en = l < k, use = en && take[u(l)];
        const std::int32_t x =
            use ? xs[u(std::lower_bound(needed_.begin(), needed_.end(), lane_in[u(l)]) - needed_.begin())] : 0;
        rtl::put_field(pool_->x_i, l * kVecInBits, kVecInBits, static_cast<std::uint64_t>(x));
        rtl::put_field(pool_->take_i, l, 1, use ? 1 : 0);
        rtl::put_field(pool_->lane_en_i, l, 1, en ? 1 : 0);
      }
      return true;
    });
    r.cycles = pool_.cycles() - start;
    finish(r);
    r.saturations = static_cast<std::uint32_t>(pool_->sat_count_o - sat0);
    return r;
  }

 private:
  /// Writes the weight set at (oc0, n columns or diagonal lanes, kpos, ic0) into the MAC
  /// array's load register, one column a clock, each column's weights one read of the WGT
  /// SRAM (dense: the chunk's channels at kpos for output channel oc0 + k; depthwise: the
  /// speedup's kernel positions from kpos for channel ic0 + k, on row k of column k);
  /// returns the clocks the reads took on the one port. In hardware these clocks overlap
  /// the previous set's beats, so the array's clocks here are not counted (tick_shared):
  /// mac() accounts for the overlap.
  std::uint64_t load_weights(const MacJob& job, std::int64_t oc0, int n, std::int64_t kpos, std::int64_t ic0, bool dw) {
    const isa::Mac& in = *job.insn;
    const auto rows = static_cast<int>(hw_.mac_rows);
    const std::int64_t kk = in.kernel_h * in.kernel_w, ic_n = in.in_c;
    const int s = job.speedup;
    const auto bits = static_cast<std::uint64_t>(job.wgt_bits);
    const std::uint64_t wmask = (std::uint64_t{1} << bits) - 1;
    std::uint64_t clocks = 0;
    for (int k = 0; k < n; ++k) {
      // Run k: `count` weights from element e0; slot j of lane i goes to row i (dense) or k.
      const std::int64_t e0 = dw ? (ic0 + k) * kk + kpos : ((oc0 + k) * kk + kpos) * ic_n + ic0;
      const std::int64_t count = dw ? std::min<std::int64_t>(s, kk - kpos) : std::min<std::int64_t>(rows * s, ic_n - ic0);
      const std::uint64_t b0 = u(e0) * bits / 8, b1 = (u(e0 + count) * bits + 7) / 8;
      wgt_bytes_.resize(b1 - b0);
      clocks += wgt_.read(u(in.wgt_addr) + b0, static_cast<int>(b1 - b0), wgt_bytes_.data());
      const std::uint64_t first = b0 * 8 / bits;  // the element at wgt_bytes_[0]
      for (int r = 0; r < rows; ++r) rtl::put_field(mac_->wlanes_i, r * kPeLaneBits, kPeLaneBits, 0);
      const int lanes = dw ? 1 : static_cast<int>((count + s - 1) / s);
      for (int i = 0; i < lanes; ++i) {
        std::uint64_t lane = 0;
        for (int j = 0; j < s && i * s + j < count; ++j) {
          const auto w = static_cast<std::uint64_t>(dla::load_element(wgt_bytes_.data(), job.wgt_type, u(e0) - first + u(i * s + j)));
          lane |= (w & wmask) << (u(j) * bits);
        }
        rtl::put_field(mac_->wlanes_i, (dw ? k : i) * kPeLaneBits, kPeLaneBits, lane);
      }
      mac_->wcol_i = static_cast<std::remove_reference_t<decltype(mac_->wcol_i)>>(k);
      mac_->wload_i = 1;
      mac_.tick_shared();
      mac_->wload_i = 0;
    }
    return clocks;
  }

  /// The lane-group beats of a vector instruction on block `blk` (at most `lanes` elements
  /// per beat, n in all): fill(e0, k, pos) sets the lanes of the beat (false: a bad
  /// descriptor, recorded in r); after a window's last beat (every beat but a pool's
  /// inner ones) the k results are read from y_o.
  template <class B, class Fill>
  void walk_groups(Clocked<B>& blk, int lanes, std::uint64_t n, bool drop, CoreResult& r, Fill&& fill) {
    while (ctrl_->beat_valid_o) {
      const std::uint64_t e0 = ctrl_->elem_o;
      const int k = ctrl_->elems_o;
      beat_clocks_ = 1;  // fill() raises it to its SRAM reads' clocks
      if (!group_inside(e0, k, lanes, n, &r) || !fill(e0, k, static_cast<std::int64_t>(ctrl_->pos_o))) break;
      ++r.beats;
      if (!blk.beat(drop && r.beats == 1)) {
        r.completed = false;
        r.hung_beat = r.beats;
        break;
      }
      if (ctrl_->wlast_o) {
        for (int l = 0; l < k; ++l) {
          r.values[e0 + u(l)] = static_cast<std::int32_t>(rtl::get_signed_field(blk->y_o, l * kValueBits, kValueBits));
        }
        beat_clocks_ = std::max(beat_clocks_, write_outputs(e0, k, r.values));
      }
      r.stalls += beat_clocks_ - 1;  // the beat's accesses run on their own ports, in parallel
      ctrl_.tick();
    }
  }

  /// Elements [e0, e0 + k) of `type` elements from ACT byte `base` into out, one read of
  /// the bytes they occupy; returns its clocks.
  template <class Port>
  std::uint64_t read_elements(Port& port, std::uint64_t base, DType type, std::uint64_t e0, int k, std::int32_t* out) {
    const auto bits = static_cast<std::uint64_t>(dtype_info(type).bits);
    const std::uint64_t b0 = e0 * bits / 8, b1 = ((e0 + u(k)) * bits + 7) / 8;
    in_bytes_.resize(b1 - b0);
    const std::uint64_t clocks = port.read(base + b0, static_cast<int>(b1 - b0), in_bytes_.data());
    const std::uint64_t first = b0 * 8 / bits;  // the element at in_bytes_[0]
    for (int i = 0; i < k; ++i) out[i] = static_cast<std::int32_t>(dla::load_element(in_bytes_.data(), type, e0 + u(i) - first));
    return clocks;
  }

  /// Elements [e0, e0 + k) of the output into the ACT SRAM, one write of the bytes they
  /// occupy; returns its clocks. A byte the run shares with 4-bit elements outside it
  /// keeps their nibble (the core's copy: the first and last byte of the output region
  /// are synced in before the instruction, the others it wrote itself).
  std::uint64_t write_outputs(std::uint64_t e0, int k, const std::vector<std::int32_t>& values) {
    const auto bits = static_cast<std::uint64_t>(dtype_info(out_type_).bits);
    const std::uint64_t b0 = e0 * bits / 8, b1 = ((e0 + u(k)) * bits + 7) / 8;
    out_bytes_.resize(b1 - b0);
    if (bits == 4) {
      out_bytes_.front() = act_.held(out_base_ + b0);
      out_bytes_.back() = act_.held(out_base_ + b1 - 1);
      for (std::uint64_t e = e0; e < e0 + u(k); ++e) dla::pack4(out_bytes_.data(), e - 2 * b0, values[e]);
    } else {
      detail::pack(out_bytes_.data(), out_type_, u(k), values.data() + e0);
    }
    // Both copies take every write (in parallel, on their own write ports).
    return std::max(act_.write(out_base_ + b0, static_cast<int>(b1 - b0), out_bytes_.data()),
                    act_b_.write(out_base_ + b0, static_cast<int>(b1 - b0), out_bytes_.data()));
  }

  /// After a vector-side instruction: its stalls into its cycles, and its output region
  /// read back from the ACT SRAM.
  void finish(CoreResult& r) {
    r.cycles += r.stalls;
    if (r.completed && r.bad_beat.empty()) r.bytes = act_.read_back(out_base_, storage_bytes(out_type_, r.values.size()));
  }

  /// Whether the controller's group of k elements from e0 fits the block's `lanes` and
  /// lies inside the instruction's n elements (else the beat is recorded in r as bad,
  /// before any SRAM read).
  static bool group_inside(std::uint64_t e0, int k, int lanes, std::uint64_t n, CoreResult* r) {
    if (k >= 1 && k <= lanes && e0 + u(k) <= n) return true;
    r->bad_beat = "elements " + std::to_string(e0) + " to " + std::to_string(e0 + u(k)) + " of " + std::to_string(n) +
                  " on " + std::to_string(lanes) + " lanes";
    return false;
  }

  HwConfig hw_;
  std::unique_ptr<VerilatedContext> ctx_;
  Clocked<Ctrl> ctrl_;
  Clocked<Mac> mac_;
  Clocked<Rq> rq_;
  Clocked<Va> va_;
  Clocked<Lut> lut_;
  Clocked<Pool> pool_;
  SramPort<Acc, std::int64_t, kAccWordBits> acc_;
  // ACT: two copies, each written by every write, so that two operands are read a clock
  // (VADD's a on act_, b on act_b_); the other reads use act_.
  SramPort<Act, std::uint8_t, 8> act_;
  SramPort<Act, std::uint8_t, 8> act_b_;
  SramPort<Wgt, std::uint8_t, 8> wgt_;
  // PARAM: two copies, as ACT, so that a requantizer beat reads a group of shifts that
  // wraps to channel 0 in one clock (the rest of the group on param_b_).
  SramPort<Param, std::uint8_t, 8> param_;
  SramPort<Param, std::uint8_t, 8> param_b_;
  std::uint64_t out_base_ = 0;  ///< output(): where the vector-side instruction writes
  DType out_type_ = DType::I8;
  std::vector<std::uint8_t> out_bytes_, in_bytes_, wgt_bytes_;
  std::vector<std::uint64_t> needed_;  ///< a pool beat's input elements, ascending
  std::uint64_t beat_clocks_ = 1;  ///< the current beat's slowest SRAM access
};

// ---------------------------------------------------------------------------
// The built cores
// ---------------------------------------------------------------------------

struct CoreEntry {
  const char* preset;
  std::unique_ptr<Core> (*make)(const HwConfig& hw);
};

template <class Ctrl, class Mac, class Rq, class Va, class Lut, class Pool, class Acc, class Act, class Wgt, class Param>
std::unique_ptr<Core> make_core(const HwConfig& hw) {
  return std::make_unique<CoreOf<Ctrl, Mac, Rq, Va, Lut, Pool, Acc, Act, Wgt, Param>>(hw);
}

#define DLA_RTL_CORE(p)                                                                                         \
  {#p, &make_core<Vcore_##p##_ctrl, Vcore_##p##_mac_array, Vcore_##p##_requant, Vcore_##p##_vadd, Vcore_##p##_vlut, \
                  Vcore_##p##_vpool, Vcore_##p##_acc_sram, Vcore_##p##_act_sram, Vcore_##p##_wgt_sram, \
                  Vcore_##p##_param_sram>},
const CoreEntry kCores[] = {
#include "dla_rtl_cores.inc"
};
#undef DLA_RTL_CORE

/// The config fields the RTL is generated with (the rest are inputs of the core or the
/// cycle model's).
bool same_core(const HwConfig& a, const HwConfig& b) {
  return a.mac_rows == b.mac_rows && a.mac_cols == b.mac_cols && a.requant_lanes == b.requant_lanes &&
         a.vector_lanes == b.vector_lanes && a.lut_lanes == b.lut_lanes && a.a4w4_speedup == b.a4w4_speedup && a.a8w4_speedup == b.a8w4_speedup &&
         a.a16w8_passes == b.a16w8_passes && a.acc_sram_kib == b.acc_sram_kib && a.act_sram_kib == b.act_sram_kib && a.wgt_sram_kib == b.wgt_sram_kib && a.param_sram_kib == b.param_sram_kib &&
         a.sram_banks == b.sram_banks && a.sram_bank_bytes == b.sram_bank_bytes && a.acc_bank_words() == b.acc_bank_words();
}

std::string core_text(const HwConfig& c) {
  return "MAC " + std::to_string(c.mac_rows) + "x" + std::to_string(c.mac_cols) + ", " +
         std::to_string(c.requant_lanes) + " requant lanes, " + std::to_string(c.vector_lanes) + " vector lanes, " +
         std::to_string(c.lut_lanes) + " table lanes, a4w4_speedup " +
         std::to_string(c.a4w4_speedup) + ", a8w4_speedup " + std::to_string(c.a8w4_speedup) + ", a16w8_passes " +
         std::to_string(c.a16w8_passes) + ", " + std::to_string(c.act_sram_kib) + " KiB ACT SRAM in " +
         std::to_string(c.sram_banks) + " banks of " + std::to_string(c.sram_bank_bytes) + " bytes, " +
         std::to_string(c.wgt_sram_kib) + " KiB WGT SRAM, " + std::to_string(c.param_sram_kib) + " KiB PARAM SRAM, " + std::to_string(c.acc_sram_kib) + " KiB ACC SRAM in " + std::to_string(c.sram_banks) + " banks of " +
         std::to_string(c.acc_bank_words()) + " words";
}

const CoreEntry& core_for(const HwConfig& hw) {
  for (const CoreEntry& e : kCores) {
    if (same_core(HwConfig::preset(e.preset), hw)) return e;
  }
  std::string built;
  for (const CoreEntry& e : kCores) {
    built += std::string(built.empty() ? "" : "; ") + e.preset + " (" + core_text(HwConfig::preset(e.preset)) + ")";
  }
  throw Error("the rtl engine has no RTL core for this hardware config (" + core_text(hw) + "); cores built: " + built +
              ". Build another by adding its preset to the CMake cache variable DLA_RTL_ENGINE_PRESETS "
              "(cmake -DDLA_RTL_ENGINE_PRESETS='small;default;large' ...) and rebuilding");
}

// ---------------------------------------------------------------------------
// The compute unit: sequencing, shadow state, lockstep
// ---------------------------------------------------------------------------

void copy_region(const MachineState& from, MachineState& to, const Region& r) {
  for (std::uint64_t row = 0; row < r.rows; ++row) {
    const std::uint64_t at = r.base + row * r.stride;
    switch (r.space) {
      case Space::kAct: std::copy_n(from.act.begin() + static_cast<std::ptrdiff_t>(at), r.row_len, to.act.begin() + static_cast<std::ptrdiff_t>(at)); break;
      case Space::kWgt: std::copy_n(from.wgt.begin() + static_cast<std::ptrdiff_t>(at), r.row_len, to.wgt.begin() + static_cast<std::ptrdiff_t>(at)); break;
      case Space::kParam: std::copy_n(from.param.begin() + static_cast<std::ptrdiff_t>(at), r.row_len, to.param.begin() + static_cast<std::ptrdiff_t>(at)); break;
      case Space::kAcc: std::copy_n(from.acc.begin() + static_cast<std::ptrdiff_t>(at), r.row_len, to.acc.begin() + static_cast<std::ptrdiff_t>(at)); break;
      case Space::kDram: break;  // compute instructions do not touch DRAM
    }
  }
}

class RtlUnit final : public cycle::ComputeUnit {
 public:
  RtlUnit(const HwConfig& hw, const RtlOptions& options)
      : hw_(hw), options_(options), entry_(core_for(hw)) {}

  void begin_run(const Program& program, MachineState& state) override {
    prog_ = &program;
    state_ = &state;
    shadow_ = MachineState(hw_, 0);
    core_ = entry_.make(hw_);  // on the simulation's thread, which drives it
    if (!trace_path_.empty()) {
      if (replay_) pre_ = MachineState(hw_, 0);
      trace_ = std::make_unique<rtl::RtlTrace>(trace_path_, period_ps_, window_);
      core_->trace(*trace_);
      trace_->open();
    }
  }

  std::optional<std::string> trace(const TraceOptions& options, const DebugRecord* layer,
                                   std::uint64_t period_ps) override {
    trace_path_ = options.path;
    period_ps_ = period_ps;
    window_ = layer != nullptr ? rtl::TraceWindow{0, UINT64_MAX, layer->insn_begin, layer->insn_end}
                               : rtl::TraceWindow{options.window_begin, options.window_end};
    replay_ = layer == nullptr && options.window_begin == 0 && options.window_end == UINT64_MAX;
    return "RTL signals";
  }

  void end_run() override {
    if (trace_ != nullptr) trace_->close();
  }

  std::optional<std::uint64_t> start(const isa::Instruction& insn, std::uint32_t index, const Effects& fx,
                                     std::uint64_t now) override {
    if (!output_type(insn)) {
      ++fallbacks_[std::string(isa::info_of(insn).mnemonic)];
      return std::nullopt;
    }
    // The contract first, on the shadow: the same errors as every engine for bad records.
    for (const Access& a : fx) {
      copy_region(*state_, shadow_, a.region);
      if (a.kind == AccessKind::kWrite) out_ = a.region;  // one written region per compute instruction
    }
    expected_ = perform(insn, shadow_, index, fx, ExecOptions{1, ExecOptions{}.parallel_min_macs});
    drop_ = options_.fault.kind == RtlFault::Kind::kDropBeat && options_.fault.instruction == index;
    if (trace_ != nullptr) {
      trace_->begin(index, now);
      started_ = now;
      if (replay_) {
        for (const Access& a : fx) copy_region(*state_, pre_, a.region);
      }
    }
    try {
      result_ = run_on_core(insn, drop_);
    } catch (const SramHang& h) {
      throw traced(ExecutionError("rtl: an SRAM hung on " + isa::disassemble(insn) + layer_text(index) + ": " +
                                      h.what() + ", at cycle " + std::to_string(now),
                                  index),
                   insn, index);
    }
    if (!result_.bad_beat.empty()) {
      throw ExecutionError("rtl: the controller (dla_ctrl) issued a beat outside " + isa::disassemble(insn) +
                               layer_text(index) + " after " + std::to_string(result_.beats) + " beats: " +
                               result_.bad_beat,
                           index);
    }
    if (!result_.completed) {
      throw traced(ExecutionError("rtl: the " + unit_name(insn) + " hung on " + isa::disassemble(insn) +
                                      layer_text(index) + ": beat " + std::to_string(result_.hung_beat) + " of " +
                                      std::to_string(result_.beats) + " got no valid result within " +
                                      std::to_string(kHangMargin) +
                                      " cycles (the block has one register stage), at cycle " +
                                      std::to_string(now + result_.cycles),
                                  index),
                   insn, index);
    }
    if (options_.fault.kind == RtlFault::Kind::kCorruptResult && options_.fault.instruction == index) {
      if (!result_.acc.empty()) result_.acc[0] += 1;
      if (!result_.bytes.empty()) result_.bytes[0] ^= 1;
    }
    ++on_rtl_;
    return result_.cycles;
  }

  Effects commit(const isa::Instruction& insn, std::uint32_t index, const Effects& fx, std::uint64_t now) override {
    try {
      return checked_commit(insn, index, fx, now);
    } catch (const ExecutionError& e) {
      throw traced(e, insn, index);
    }
  }

  /// commit(): the results into the machine state, then the lockstep comparison.
  Effects checked_commit(const isa::Instruction& insn, std::uint32_t index, const Effects& fx, std::uint64_t now) {
    MachineState& m = *state_;
    if (const auto* mac = std::get_if<isa::Mac>(&insn)) {
      std::copy(result_.acc.begin(), result_.acc.end(), m.acc.begin() + mac->acc_addr);
    } else {
      // Every other instruction writes its elements of one output type to one ACT region.
      std::copy(result_.bytes.begin(), result_.bytes.end(), m.act.begin() + static_cast<std::ptrdiff_t>(out_.base));
    }
    ++checks_;
    for (const Access& a : fx) {
      if (a.kind == AccessKind::kWrite) compare(insn, index, a.region, now);
    }
    Effects out = fx;
    out.acc_overflows = result_.overflows;
    out.saturations = result_.saturations;
    if (out.acc_overflows != expected_.acc_overflows || out.saturations != expected_.saturations) {
      throw ExecutionError(mismatch_head(insn, index, now) + ": the RTL counted " + std::to_string(out.acc_overflows) +
                               " accumulator overflows and " + std::to_string(out.saturations) +
                               " saturations, the shared semantics " + std::to_string(expected_.acc_overflows) +
                               " and " + std::to_string(expected_.saturations),
                           index);
    }
    return out;
  }

  void summarize(CycleReport& report) const override {
    report.rtl.core = std::string(entry_.preset) + " (" + core_text(hw_) + ")";
    report.rtl.instructions = on_rtl_;
    report.rtl.lockstep_checks = checks_;
    report.rtl.fallbacks.assign(fallbacks_.begin(), fallbacks_.end());
  }

 private:
  /// Hands the instruction's word to the controller and runs its beats on the blocks.
  CoreResult run_on_core(const isa::Instruction& insn, bool drop) {
    if (const std::optional<DType> type = output_type(insn); type && !std::holds_alternative<isa::Mac>(insn)) {
      // The output's first and last byte may hold 4-bit elements of others.
      core_->output(out_.base, *type);
      core_->act_sync_in(state_->act, out_.base, 1);
      core_->act_sync_in(state_->act, out_.base + out_.row_len - 1, 1);
    }
    core_->accept(isa::encode(insn));
    return std::visit(
        [&](const auto& in) -> CoreResult {
          using T = std::decay_t<decltype(in)>;
          if constexpr (std::is_same_v<T, isa::Mac>) return run_mac(in, drop);
          else if constexpr (std::is_same_v<T, isa::Requant>) return run_requant(in, drop);
          else if constexpr (std::is_same_v<T, isa::VAdd>) return run_vadd(in, drop);
          else if constexpr (std::is_same_v<T, isa::VLut>) return run_lut(in, drop);
          else if constexpr (std::is_same_v<T, isa::VMaxPool>) return run_maxpool(in, drop);
          else if constexpr (std::is_same_v<T, isa::VAvgPool>) return run_avgpool(in, drop);
          else if constexpr (std::is_same_v<T, isa::VUpsample>) return run_upsample(in, drop);
          else if constexpr (std::is_same_v<T, isa::VCopy>) return run_copy(in, drop);
          else return {};
        },
        insn);
  }

  /// The error `e` of instruction `index` (a lockstep mismatch or a hang), naming the RTL
  /// trace when the run is traced. Without a window the file then holds this instruction
  /// alone: it runs again, from its operands as they were when it started (pre_), on a
  /// fresh core with the trace open (the blocks' counters start from reset there).
  ExecutionError traced(const ExecutionError& e, const isa::Instruction& insn, std::uint32_t index) {
    if (trace_ == nullptr) return e;
    std::string note;
    try {
      if (replay_) {
        trace_.reset();  // the whole run's file, written again below
        core_ = entry_.make(hw_);
        trace_ = std::make_unique<rtl::RtlTrace>(trace_path_, period_ps_, rtl::TraceWindow{0, UINT64_MAX, index, index + 1});
        core_->trace(*trace_);
        trace_->open();
        trace_->begin(index, started_);
        MachineState* live = std::exchange(state_, &pre_);
        try {
          run_on_core(insn, drop_);
        } catch (...) {
          state_ = live;
          throw;
        }
        state_ = live;
        trace_->close();
        note = "the RTL trace of this instruction alone";
        if (trace_->dumped()) {
          note += " (cycles " + std::to_string(trace_->first_cycle()) + " to " + std::to_string(trace_->last_cycle()) + ")";
        }
      } else {
        trace_->close();
        note = "the RTL trace of the window up to here";
      }
      note += ": " + trace_path_;
    } catch (const Error& t) {
      note = std::string("no RTL trace: ") + t.what();
    }
    std::string what = e.what();
    const std::string prefix = "instruction " + std::to_string(index) + ": ";
    if (what.rfind(prefix, 0) == 0) what.erase(0, prefix.size());
    return ExecutionError(what + "; " + note, index);
  }

  CoreResult run_mac(const isa::Mac& in, bool drop) {
    MacJob job;
    job.insn = &in;
    const auto mode = static_cast<isa::MacMode>(in.mode);
    job.speedup = static_cast<int>(isa::mac_speedup(mode, hw_));
    const DType at = isa::mac_act_type(mode, in.act_unsigned != 0), wt = isa::mac_wgt_type(mode);
    job.act_bits = mode == isa::MacMode::A16W8 ? 16 : dtype_info(at).bits;
    job.act_storage_bits = dtype_info(at).bits;
    job.wgt_bits = dtype_info(wt).bits;
    job.in_h = (in.out_h - 1) * in.stride_h + (in.kernel_h - 1) * in.dilation + 1;
    job.in_w = (in.out_w - 1) * in.stride_w + (in.kernel_w - 1) * in.dilation + 1;
    const std::uint64_t act_n = u(job.in_h) * u(job.in_w) * u(in.in_c);
    core_->act_sync_in(state_->act, u(in.act_addr), storage_bytes(at, act_n));
    job.wgt_type = wt;
    core_->wgt_sync_in(state_->wgt, u(in.wgt_addr),
                       storage_bytes(wt, u(in.out_c) * u(in.kernel_h) * u(in.kernel_w) * (in.depthwise ? 1 : u(in.in_c))));
    if (in.accumulate) core_->acc_sync_in(state_->acc, u(in.acc_addr), u(in.out_h) * u(in.out_w) * u(in.out_c));
    return core_->mac(job, drop);
  }

  CoreResult run_requant(const isa::Requant& in, bool drop) {
    RequantJob job;
    job.insn = &in;
    core_->acc_sync_in(state_->acc, u(in.acc_addr), u(in.pixels) * u(in.channels));
    core_->param_sync_in(state_->param, u(in.param_addr), isa::RequantRecord::size(u(in.channels)));
    job.hw = hw_;
    return core_->requant(job, drop);
  }

  /// The type of the elements an instruction writes to ACT (VCOPY: bytes; MAC: I32, its ACC
  /// words); nullopt for the instructions the core does not run.
  static std::optional<DType> output_type(const isa::Instruction& insn) {
    return std::visit(
        [](const auto& in) -> std::optional<DType> {
          using T = std::decay_t<decltype(in)>;
          if constexpr (std::is_same_v<T, isa::Mac>) return DType::I32;
          else if constexpr (std::is_same_v<T, isa::Requant> || std::is_same_v<T, isa::VAvgPool> ||
                             std::is_same_v<T, isa::VLut>) return static_cast<DType>(in.out_type);
          else if constexpr (std::is_same_v<T, isa::VAdd>) return static_cast<DType>(in.y_type);
          else if constexpr (std::is_same_v<T, isa::VMaxPool> || std::is_same_v<T, isa::VUpsample>) return static_cast<DType>(in.type);
          else if constexpr (std::is_same_v<T, isa::VCopy>) return DType::U8;
          else return std::nullopt;
        },
        insn);
  }

  CoreResult run_lut(const isa::VLut& in, bool drop) {
    LutJob job;
    job.in = static_cast<DType>(in.in_type);
    job.out = static_cast<DType>(in.out_type);
    job.in_addr = u(in.in_addr);
    job.count = u(in.count);
    core_->act_sync_in(state_->act, job.in_addr, storage_bytes(job.in, job.count));
    job.param_addr = u(in.param_addr);
    core_->param_sync_in(state_->param, job.param_addr, isa::LutRecord::size(job.in));
    job.mode = hw_.rounding_mode;
    return core_->lut(job, drop);
  }

  /// PoolJob::input of a pool: output element e at window position k reads input element
  /// ((oh * stride_h + kh - pad_top) * in_w + ow * stride_w + kw - pad_left) * channels + c
  /// of the in_h x in_w input, or nothing in the padding.
  template <class Pool>
  static std::function<bool(std::uint64_t, std::int64_t, std::uint64_t*)> window_input(
      const Pool& in, std::int64_t in_h, std::int64_t in_w, std::int64_t pad_top, std::int64_t pad_left) {
    return [&in, in_h, in_w, pad_top, pad_left](std::uint64_t e, std::int64_t k, std::uint64_t* i) {
      const auto c = static_cast<std::int64_t>(e % u(in.channels)), p = static_cast<std::int64_t>(e / u(in.channels));
      const std::int64_t ih = p / in.out_w * in.stride_h + k / in.kernel_w - pad_top;
      const std::int64_t iw = p % in.out_w * in.stride_w + k % in.kernel_w - pad_left;
      if (ih < 0 || ih >= in_h || iw < 0 || iw >= in_w) return false;
      *i = u((ih * in_w + iw) * in.channels + c);
      return true;
    };
  }

  CoreResult run_maxpool(const isa::VMaxPool& in, bool drop) {
    PoolJob job;
    job.op = isa::info_of(isa::Instruction{in}).funct;
    job.in = job.out = static_cast<DType>(in.type);
    job.outputs = u(in.out_h) * u(in.out_w) * u(in.channels);
    job.positions = in.kernel_h * in.kernel_w;
    job.mode = hw_.rounding_mode;
    job.in_addr = u(in.in_addr);
    core_->act_sync_in(state_->act, job.in_addr, storage_bytes(job.in, u(in.in_h) * u(in.in_w) * u(in.channels)));
    job.input = window_input(in, in.in_h, in.in_w, in.pad_top, in.pad_left);
    return core_->pool(job, drop);
  }

  CoreResult run_avgpool(const isa::VAvgPool& in, bool drop) {
    PoolJob job;
    job.op = isa::info_of(isa::Instruction{in}).funct;
    job.in = static_cast<DType>(in.in_type);
    job.out = static_cast<DType>(in.out_type);
    job.outputs = u(in.out_h) * u(in.out_w) * u(in.channels);
    job.positions = in.kernel_h * in.kernel_w;
    core_->param_sync_in(state_->param, u(in.param_addr), isa::AvgPoolRecord::kSize);
    const isa::AvgPoolRecord rec =
        isa::AvgPoolRecord::decode(core_->param_record(u(in.param_addr), isa::AvgPoolRecord::kSize).data());
    // describe() has checked that M fits (perform() ran on the shadow first).
    job.mult = *avgpool_multiplier(job.positions, static_cast<int>(hw_.avgpool_shift));
    job.shift = rec.shift;
    job.clip_lo = rec.clip_lo;
    job.clip_hi = rec.clip_hi;
    job.mode = hw_.rounding_mode;
    const std::int64_t in_w = (in.out_w - 1) * in.stride_w + in.kernel_w;
    const std::int64_t in_h = (in.out_h - 1) * in.stride_h + in.kernel_h;
    job.in_addr = u(in.in_addr);
    core_->act_sync_in(state_->act, job.in_addr, storage_bytes(job.in, u(in_h) * u(in_w) * u(in.channels)));
    job.input = window_input(in, in_h, in_w, 0, 0);
    return core_->pool(job, drop);
  }

  CoreResult run_upsample(const isa::VUpsample& in, bool drop) {
    PoolJob job;
    job.op = isa::info_of(isa::Instruction{in}).funct;
    job.in = job.out = static_cast<DType>(in.type);
    job.outputs = 4 * u(in.in_h) * u(in.in_w) * u(in.channels);
    job.mode = hw_.rounding_mode;
    job.in_addr = u(in.in_addr);
    core_->act_sync_in(state_->act, job.in_addr, storage_bytes(job.in, u(in.in_h) * u(in.in_w) * u(in.channels)));
    job.input = [&in](std::uint64_t e, std::int64_t, std::uint64_t* i) {
      const auto c = static_cast<std::int64_t>(e % u(in.channels)), p = static_cast<std::int64_t>(e / u(in.channels));
      const std::int64_t oh = p / (2 * in.in_w), ow = p % (2 * in.in_w);
      *i = u(((oh / 2) * in.in_w + ow / 2) * in.channels + c);
      return true;
    };
    return core_->pool(job, drop);
  }

  CoreResult run_copy(const isa::VCopy& in, bool drop) {
    PoolJob job;
    job.op = isa::info_of(isa::Instruction{in}).funct;
    job.in = job.out = DType::U8;
    job.outputs = u(in.bytes);
    job.mode = hw_.rounding_mode;
    job.in_addr = u(in.src_addr);
    job.input = [](std::uint64_t e, std::int64_t, std::uint64_t* i) {
      *i = e;
      return true;
    };
    core_->act_sync_in(state_->act, job.in_addr, u(in.bytes));
    return core_->pool(job, drop);
  }

  CoreResult run_vadd(const isa::VAdd& in, bool drop) {
    VAddJob job;
    job.insn = &in;
    core_->param_sync_in(state_->param, u(in.param_addr), isa::AddRecord::kSize);
    core_->act_sync_in(state_->act, u(in.a_addr), storage_bytes(static_cast<DType>(in.a_type), u(in.count)));
    core_->act_sync_in(state_->act, u(in.b_addr), storage_bytes(static_cast<DType>(in.b_type), u(in.count)));
    job.hw = hw_;
    return core_->vadd(job, drop);
  }

  static std::string unit_name(const isa::Instruction& insn) {
    if (std::holds_alternative<isa::Mac>(insn)) return "MAC array (dla_mac_array)";
    if (std::holds_alternative<isa::Requant>(insn)) return "requantizer (dla_requant)";
    if (std::holds_alternative<isa::VAdd>(insn)) return "vector unit (dla_vadd)";
    if (std::holds_alternative<isa::VLut>(insn)) return "vector unit (dla_vlut)";
    return "vector unit (dla_vpool)";
  }

  std::string layer_text(std::uint32_t index) const {
    for (const auto& d : prog_->debug) {
      if (index >= d.insn_begin && index < d.insn_end) return " (layer '" + d.layer + "')";
    }
    return " (no layer)";
  }

  std::string mismatch_head(const isa::Instruction& insn, std::uint32_t index, std::uint64_t now) const {
    return "rtl lockstep mismatch in the " + unit_name(insn) + " on " + isa::disassemble(insn) + layer_text(index) +
           " at cycle " + std::to_string(now);
  }

  /// The first element of a written region where the RTL's state and the shadow differ.
  void compare(const isa::Instruction& insn, std::uint32_t index, const Region& r, std::uint64_t now) const {
    const MachineState& m = *state_;
    for (std::uint64_t row = 0; row < r.rows; ++row) {
      const std::uint64_t base = r.base + row * r.stride;
      for (std::uint64_t k = 0; k < r.row_len; ++k) {
        const std::uint64_t at = base + k;
        if (r.space == Space::kAcc) {
          if (m.acc[at] == shadow_.acc[at]) continue;
          throw ExecutionError(mismatch_head(insn, index, now) + ": ACC word " + std::to_string(at) + " (element " +
                                   std::to_string(at - r.base) + " of the tile): RTL " + std::to_string(m.acc[at]) +
                                   ", expected " + std::to_string(shadow_.acc[at]),
                               index);
        }
        if (r.space != Space::kAct || m.act[at] == shadow_.act[at]) continue;
        // An ACT byte of the output: name the element and its value of the output type.
        const DType type = *output_type(insn);
        const std::uint64_t off = at - r.base;
        std::uint64_t element = off;
        if (dtype_info(type).bits == 4) element = 2 * off + (((m.act[at] ^ shadow_.act[at]) & 0x0f) != 0 ? 0 : 1);
        const std::int64_t got = dla::load_element(m.act.data() + r.base, type, element);
        const std::int64_t want = dla::load_element(shadow_.act.data() + r.base, type, element);
        throw ExecutionError(mismatch_head(insn, index, now) + ": ACT byte " + std::to_string(at) + " (element " +
                                 std::to_string(element) + " of the " + std::string(dtype_info(type).name) +
                                 " output): RTL " + std::to_string(got) + ", expected " + std::to_string(want),
                             index);
      }
    }
  }

  HwConfig hw_;
  RtlOptions options_;
  const CoreEntry& entry_;
  const Program* prog_ = nullptr;
  MachineState* state_ = nullptr;
  MachineState shadow_;
  std::unique_ptr<Core> core_;
  // --trace (rtl_trace.hpp): declared after core_, so the trace closes before the blocks go.
  std::string trace_path_;
  std::uint64_t period_ps_ = 1;
  rtl::TraceWindow window_;
  bool replay_ = false;  ///< no window: a failing instruction's trace is made again alone
  std::unique_ptr<rtl::RtlTrace> trace_;
  MachineState pre_;  ///< replay_: the current instruction's regions as it started
  std::uint64_t started_ = 0;
  bool drop_ = false;
  CoreResult result_;
  Region out_;  ///< the region the current instruction writes
  Effects expected_;
  std::uint64_t on_rtl_ = 0;
  std::uint64_t checks_ = 0;
  std::map<std::string, std::uint64_t> fallbacks_;
};

}  // namespace

std::vector<std::string> rtl_core_presets() {
  std::vector<std::string> v;
  for (const CoreEntry& e : kCores) v.emplace_back(e.preset);
  return v;
}

std::unique_ptr<CycleDevice> make_rtl_engine(const HwConfig& config, const RtlOptions& options) {
  config.validate();
  core_for(config);  // refuses a config no core was built for, before any program is loaded
  return cycle::make_cycle_model(
      config, [options](const HwConfig& hw) { return std::make_unique<RtlUnit>(hw, options); }, "rtl");
}

}  // namespace dla::sim
