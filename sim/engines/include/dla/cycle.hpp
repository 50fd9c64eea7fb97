// dla/cycle.hpp — the SystemC cycle model behind the device API (README.md, layout),
// its timing report and its VCD trace.
//
// The cycle model computes exactly what the emulator computes: every instruction's data
// moves through the shared semantic bodies (dla/semantics.hpp: describe() when it
// starts, perform() when it completes), so timing only decides *when*. Scheduling follows
// isa.hpp and the emulator: fetch/decode dispatches in program order into the load,
// compute and store queues (queue_depth each); a queue's head pops its tokens, executes,
// then stays at the head until its pushes fit their FIFOs (token_depth); SYNC and END
// wait at fetch until every queue is empty. Every access is checked by the emulator's
// race detector, and a program that cannot progress fails with the emulator's deadlock
// message.
//
// Timing (every parameter from the hardware config; one cycle = 1 / clock_mhz us):
//   fetch/decode   one instruction per cycle.
//   LOAD / STORE   a DMA transfer through the DRAM model (TLM-2.0 b_transport):
//                  dram_latency_cycles, then the transfer's bursts on the DRAM bus. A row
//                  covers every dram_burst_bytes-aligned burst it touches (rows of a
//                  contiguous block, dram_stride == row_bytes, share bursts); the bus
//                  moves dram_bytes_per_cycle bytes a cycle, shared equally (work
//                  conserving, per cycle) between the load and the store channel when both
//                  transfer. The SRAM side moves each row through one port of the
//                  buffer (sram_banks banks of sram_bank_bytes, HwConfig::
//                  sram_access_clocks a row; the ACC SRAM's bank words are
//                  HwConfig::acc_bank_words wide): a transfer ends no earlier than its first
//                  data beat plus those clocks. LOAD fill_zero takes the SRAM clocks alone
//                  without touching DRAM.
//   MAC            weight-stationary, in weight sets: dense, one per block of mac_cols
//                  output channels, kernel position and chunk of mac_rows * s input
//                  channels; depthwise (each lane reduces its own channel on the array's
//                  diagonal), one per block of min(mac_rows, mac_cols) channels and group of
//                  s kernel positions; s the mode's speedup (a4w4_speedup, a8w4_speedup,
//                  else 1). A set takes out_h * out_w * p beats (p = a16w8_passes for A16W8,
//                  else 1), one cycle each; a depthwise beat reads one activation run per
//                  kernel position of its set, alternately on two ACT read ports, and
//                  takes ceil(positions / 2) cycles (a4w4: 2, so depthwise a4w4 runs at
//                  a8w4's rate). Its weights are read from the WGT SRAM, one run
//                  per active column (depthwise: lane), each run sram_access_clocks, into
//                  the array's second weight register while the previous set computes: a
//                  set starts max(previous set's beats, its own reads) after the previous
//                  one, the first set's reads come first, and mac_pipeline_depth is added
//                  once. Where every set has at least as many beats as columns to read,
//                  the reads hide and a dense MAC takes out_h * out_w * kernel_h *
//                  kernel_w * ceil(in_c / (mac_rows * s)) * ceil(out_c / mac_cols) * p +
//                  min(out_c, mac_cols) + mac_pipeline_depth cycles.
//   REQUANT        ceil(pixels * channels / requant_lanes) cycles.
//   vector unit    ceil(work / vector_lanes) cycles (VLUT: / lut_lanes), work = count (VADD),
//                  count (VLUT of 4- and 8-bit inputs) or 2 * count (VLUT of i16 inputs,
//                  two knots read per element); a VLUT first loads its table from PARAM,
//                  one block of lut_lanes entries a cycle (16 cycles for an 8-bit table on
//                  default), each block one PARAM access. Windows (VMAXPOOL, VAVGPOOL,
//                  VUPSAMPLE; VCOPY as one window position): each group of vector_lanes
//                  consecutive output elements (pixel-major, so a group may straddle
//                  pixels) takes one beat per window position; the beat reads each run of
//                  consecutive input elements its lanes need once, the runs alternately on
//                  two ACT read ports, and takes the busier port's clocks, at least one:
//                  ceil(outputs / vector_lanes) * kernel_h * kernel_w cycles where a group
//                  spans at most two pixels (channels >= vector_lanes), more where it
//                  spans more pixels than adjacent input pixels merge (stride 2).
//   SYNC / END     no cycles of their own beyond decode and the wait for the queues.
// SRAM capacities are enforced by the semantic bodies. Banks: the DMA's rows (above); the
// ACC SRAM's accesses take one clock (its bank width, HwConfig::acc_bank_words, guarantees
// it for partial-sum rows and requantizer groups); a dense MAC beat's activation run,
// VADD's two operands (two read ports), VLUT's inputs of a beat and each group of outputs a unit writes
// (requant_lanes, vector_lanes or lut_lanes elements, lut_lanes / 2 for i16 VLUT inputs)
// are one ACT access each, and a beat whose slowest access takes more than one clock
// (sram_access_clocks) adds the extra clocks to the formulas above; the MAC's weight runs
// are WGT accesses (above). PARAM: a record (REQUANT's clips, with its shifts where the
// channels fit in requant_lanes; VADD's and VAVGPOOL's records) is read when the word is
// accepted, which overlaps the previous instruction's last beat (no cycle); with more
// channels than lanes each requantizer beat reads its group's shifts, a run from its
// first channel and, where the group wraps, one from channel 0 on a second port, in
// parallel with its other accesses; the table blocks above. The depthwise and window
// reads (above) are ACT accesses too, each sram_access_clocks on its port.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dla/device.hpp"

namespace dla::sim {

/// Why a unit was not doing its work during a cycle (beyond being idle).
enum class Stall : std::uint8_t {
  kTokenFromLoad = 0,     ///< waiting to pop a token pushed by the load queue
  kTokenFromCompute,      ///< ... by the compute queue
  kTokenFromStore,        ///< ... by the store queue
  kFifoFullToLoad,        ///< executed; waiting for room in the token FIFO to the load queue
  kFifoFullToCompute,     ///< ... to the compute queue
  kFifoFullToStore,       ///< ... to the store queue
  kDramContention,        ///< DMA: the DRAM bus was shared with the other channel
  kQueueFullLoad,         ///< fetch: the load queue was full
  kQueueFullCompute,      ///< fetch: the compute queue was full
  kQueueFullStore,        ///< fetch: the store queue was full
  kBarrier,               ///< fetch: SYNC / END waiting for the queues to drain
};
inline constexpr int kNumStalls = 11;
/// "token_from_load", ..., "barrier": the names used in reports.
std::string_view stall_name(Stall s);

/// Cycles of one unit. busy + sum(stalls) + idle == the run's cycles.
struct UnitReport {
  std::string name;                 ///< "fetch", "load", "compute", "store"
  std::uint64_t instructions = 0;   ///< instructions it decoded (fetch) or executed
  std::uint64_t busy = 0;           ///< cycles doing its work
  std::uint64_t idle = 0;           ///< cycles with nothing to do (queue empty)
  std::array<std::uint64_t, kNumStalls> stalls{};  ///< cycles stalled, by reason
  std::uint64_t stalled() const;
};

/// The unit an instruction occupied while it executed (SYNC and END: the fetch unit's
/// barrier, zero cycles long).
enum class ExecUnit : std::uint8_t { kBarrier = 0, kLoad, kMac, kRequant, kVector, kStore };
inline constexpr int kNumExecUnits = 6;
/// "barrier", "load", "mac", "requant", "vector", "store".
std::string_view exec_unit_name(ExecUnit u);

/// When one instruction executed: [start, end) in cycles, after its tokens were popped and
/// before its pushes (a DMA's span includes the cycles it lost to the other channel).
/// Instructions on one queue never overlap.
struct InsnTiming {
  std::uint32_t index = 0;  ///< the instruction's index in the program
  ExecUnit unit = ExecUnit::kBarrier;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
};

/// Timing of one layer (debug record): its instructions span [start, end).
struct LayerReport {
  std::string name;
  std::uint64_t start = 0;   ///< first cycle one of its instructions executes
  std::uint64_t end = 0;     ///< cycle its last instruction completes
  std::uint64_t cycles = 0;  ///< end - start
  std::uint64_t macs = 0;
  /// Cycles the MAC array would need at its peak in each instruction's mode
  /// (sum of macs / (mac_rows * mac_cols * speedup), times a16w8_passes for A16W8).
  double mac_ideal_cycles = 0;
  double mac_utilization = 0;  ///< mac_ideal_cycles / cycles
  std::uint64_t mac_busy = 0;  ///< cycles the MAC array worked on the layer (with pipeline fill)
  std::uint64_t requant_busy = 0;
  std::uint64_t vector_busy = 0;
  std::uint64_t load_busy = 0;   ///< load DMA cycles (latency + transfer, without contention)
  std::uint64_t store_busy = 0;
  std::uint64_t dram_read_bytes = 0;
  std::uint64_t dram_write_bytes = 0;
  std::uint64_t acc_overflows = 0;
  std::uint64_t saturations = 0;
  std::string bound;  ///< the unit with the most busy cycles: "compute", "load" or "store"
  /// The rtl engine: cycles of the layer's compute instructions that ran on the RTL core,
  /// as the core took them and as the cycle model's formulas (timing.cpp) give them.
  std::uint64_t rtl_cycles = 0;
  std::uint64_t rtl_model_cycles = 0;
};

/// The rtl engine's compute core in a run (empty core: the cycle model's formulas).
struct RtlCoreReport {
  std::string core;  ///< the RTL build that ran ("default": MAC 16x16, ...)
  std::uint64_t instructions = 0;  ///< compute instructions that ran on the core
  /// Compute instructions the core does not implement, by mnemonic: they ran through the
  /// shared semantics (perform()) with the formulas' timing.
  std::vector<std::pair<std::string, std::uint64_t>> fallbacks;
  std::uint64_t rtl_cycles = 0;        ///< the core's cycles over those instructions
  std::uint64_t rtl_model_cycles = 0;  ///< the formulas' cycles over the same instructions
  std::uint64_t lockstep_checks = 0;   ///< instructions compared with perform() on a shadow state
};

/// What a cycle-model run reports (after run()).
struct CycleReport {
  std::uint64_t cycles = 0;  ///< END's completion
  std::int64_t clock_mhz = 0;
  double microseconds = 0;   ///< cycles at clock_mhz
  std::uint64_t instructions = 0;
  std::vector<UnitReport> units;  ///< fetch, load, compute, store

  // Compute units (inside the compute queue's busy cycles).
  std::uint64_t mac_busy = 0;
  std::uint64_t requant_busy = 0;
  std::uint64_t vector_busy = 0;
  std::uint64_t macs = 0;
  double mac_ideal_cycles = 0;
  double mac_utilization = 0;       ///< mac_ideal_cycles / cycles
  double mac_busy_utilization = 0;  ///< mac_ideal_cycles / mac_busy (the mapping's efficiency)

  // DMA and DRAM.
  std::uint64_t dram_read_bytes = 0;   ///< bytes the program read (as every engine counts them)
  std::uint64_t dram_write_bytes = 0;
  std::uint64_t dram_bus_read_bytes = 0;   ///< bytes on the bus, whole bursts
  std::uint64_t dram_bus_write_bytes = 0;
  std::uint64_t dram_transfers = 0;
  std::uint64_t dram_busy_cycles = 0;  ///< cycles the DRAM bus moved data
  std::uint64_t dram_latency_cycles = 0;  ///< sum over transfers of dram_latency_cycles
  double dram_utilization = 0;  ///< bus bytes / (cycles * dram_bytes_per_cycle)

  std::uint64_t acc_overflows = 0;
  std::uint64_t saturations = 0;
  std::vector<LayerReport> layers;  ///< one per debug record, in record order
  /// Every instruction that executed, in program order (not part of to_json: the Chrome
  /// trace below is its file form).
  std::vector<InsnTiming> timeline;
  RtlCoreReport rtl;  ///< the rtl engine only
};

/// JSON of a report (nlohmann's to_json hook).
void to_json(nlohmann::json& j, const CycleReport& r);
/// A readable table: summary, units with their stall reasons, layers.
std::string report_table(const CycleReport& r);

/// The run as a Chrome trace-event JSON document (loadable by ui.perfetto.dev and
/// chrome://tracing): one track (thread) per unit of ExecUnit, each instruction a complete
/// ("X") slice named by its disassembly with its index, layer and cycles in args, and the
/// layers as slices on tracks of their own ("layers", plus "layers 2", ... where layer
/// spans overlap, since slices on one track must nest). Timestamps and durations are in
/// cycles: the viewer's "us" reads as cycles; otherData holds clock_mhz and the run's cycles.
/// `program` is the program of the run the report describes.
std::string chrome_trace(const CycleReport& report, const Program& program);

/// Several runs back to back (the device segments of a model with float parts): each run
/// is a process of its own, named by `name`, its cycles following the previous run's.
struct TracedRun {
  const CycleReport& report;
  const Program& program;
  std::string name;
};
std::string chrome_trace(const std::vector<TracedRun>& runs);

/// The sign-off page's unit timeline of runs back to back: {"cycles": N, "units":
/// [{"name", "busy": [...]}]}, each unit's busy fraction (0..1) in `bins` equal spans.
nlohmann::json unit_timeline(const std::vector<const CycleReport*>& runs, int bins = 120);

/// What --trace records: value changes of every unit (state, instruction, DRAM activity)
/// as a VCD file, limited to the cycles [window_begin, window_end) or, when `layer` is
/// set, to that layer's span [start, end].
struct TraceOptions {
  std::string path;  ///< empty: no trace
  std::uint64_t window_begin = 0;
  std::uint64_t window_end = UINT64_MAX;
  std::string layer;
};

/// A file a traced run writes, and what it holds.
struct TraceFile {
  std::string path;
  std::string holds;  ///< "unit activity", "RTL signals"
};

class CycleDevice : public Device {
 public:
  /// Records a VCD trace on the following runs (written when a run ends, also when it
  /// fails). Throws Error for a layer name the loaded program lacks (checked at run).
  /// The cycle model writes its unit activity to options.path; the rtl engine writes the
  /// RTL's signals there and the unit activity beside it (dla/rtl.hpp).
  virtual void set_trace(const TraceOptions& options) = 0;
  /// The files the last traced run wrote (also when it failed).
  virtual std::vector<TraceFile> trace_files() const = 0;
  /// The report of the last successful run.
  virtual const CycleReport& report() const = 0;
};

/// The SystemC cycle model. Several devices and runs may exist in one process; runs are
/// serialized (SystemC has one simulation context per process; each run gets a fresh one).
std::unique_ptr<CycleDevice> make_cycle_model(const HwConfig& config);

}  // namespace dla::sim
