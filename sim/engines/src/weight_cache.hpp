// Private: what the emulator remembers of its WGT SRAM between instructions, to skip work
// whose result is already in place. Compiled programs reload a layer's weights for every
// tile (the same DRAM rows into the same SRAM rows, alternating between two buffers), and
// the MAC that follows would pack the same bytes again for the host kernel:
//   * a LOAD into WGT of exactly the rows that an earlier LOAD wrote (same DRAM rows, same
//     SRAM rows), when neither its SRAM destination nor its DRAM source has been written
//     since, would write the bytes that are already there: it moves nothing;
//   * a MAC whose weight bytes and shape are those of an earlier MAC, when no write to WGT
//     has touched those bytes since, reuses that MAC's packed kernels (gemm::ConvKernel);
//   * across runs of one program: a MAC whose weight bytes were put in WGT by a LOAD from
//     the program's constants (DRAM bytes every run starts with and this run has not
//     written) reuses the kernels packed from the same LOAD's bytes in any earlier run,
//     so a program run on many inputs packs each layer's weights once, as libtorch's
//     prepacked weights are;
//   * a LOAD of constants into WGT is deferred: its bytes stay in DRAM until something
//     needs them in WGT (a MAC that must pack them, a write around them or over their
//     DRAM source, the end of the run), so weights whose kernels are kept move no bytes.
// Results never depend on the cache: it only skips work that would reproduce the bytes or
// kernels already present. Every write is seen by written(); so only an engine that makes
// every change of its MachineState through perform() and calls reset() whenever the state
// is set otherwise (the start of a run) may pass one in ExecOptions.
// One cache serves one machine state on one thread (each lane of the emulator's replays
// has its own, replay.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dla/gemm.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"
#include "dla/semantics.hpp"

namespace dla::sim::detail {

class WeightCache {
 public:
  /// What a MAC's packed weights depend on.
  struct MacKey {
    std::uint64_t wgt_begin = 0, wgt_end = 0;  ///< WGT bytes the MAC reads
    gemm::ConvShape shape;
    gemm::ActType act = gemm::ActType::kU8;
    DType wgt_type = DType::I8;
    gemm::Isa isa = gemm::Isa::kScalar;
    unsigned slices = 1;  ///< output-channel slices, one kernel each
    bool operator==(const MacKey& o) const;
  };
  using Kernels = std::vector<std::unique_ptr<gemm::ConvKernel>>;

  WeightCache() = default;
  WeightCache(const WeightCache& other) = default;
  WeightCache& operator=(const WeightCache&) = delete;


  /// A new program: forgets everything.
  void reset();
  /// A new run of the program whose constants are DRAM bytes [0, constants): forgets what
  /// WGT holds (the state was set by other means than perform()), keeps the packings of
  /// loaded constants.
  void begin_run(std::uint64_t constants);
  /// Whether WGT already holds the bytes this LOAD would write.
  bool holds(const isa::Load& insn) const;
  /// After `insn` ran with effects `fx`: forgets what its writes may have changed, and
  /// remembers a LOAD into WGT.
  void written(const isa::Instruction& insn, const Effects& fx);
  /// Whether this LOAD may leave its bytes in DRAM until they are needed (a LOAD of
  /// constants into WGT); written() then records it as deferred. `m` is the machine the
  /// deferred bytes are put into later.
  bool defer(const isa::Load& insn, MachineState& m);
  /// Before an instruction writes the regions of `fx`: the deferred bytes it would
  /// write around in WGT, or whose DRAM source it would overwrite, are put in place.
  void before_write(const Effects& fx);
  /// Before a MAC reads WGT bytes [begin, end): deferred bytes among them put in place.
  void materialize(std::uint64_t begin, std::uint64_t end);
  /// Every deferred byte put in place (the end of a run).
  void materialize_all();
  /// WGT as the program sees it: m.wgt with the deferred bytes in place (for tests).
  std::vector<std::uint8_t> visible_wgt(const MachineState& m) const;
  /// The kernels kept for `key` (key.slices slots; a null slot is not packed yet): an
  /// earlier MAC's, or new empty slots. Shared: kept for this run and across runs alike,
  /// and held by the MAC that runs them.
  std::shared_ptr<Kernels> kernels(const MacKey& key);

 private:
  struct LoadRecord {
    isa::Load insn;
    std::uint64_t sram_begin, sram_end, dram_begin, dram_end;
    bool constants;  ///< its bytes are the program's constants (DRAM unwritten this run)
    bool deferred;   ///< its bytes are still in DRAM only
  };
  /// Copies a deferred LOAD's bytes from DRAM into WGT, except bytes in [skip_begin, skip_end).
  void put_in_place(LoadRecord& r, std::uint64_t skip_begin = 0, std::uint64_t skip_end = 0);
  bool from_constants(std::uint64_t dram_begin, std::uint64_t dram_end) const;
  struct Packed {
    MacKey key;
    std::shared_ptr<Kernels> kernels;
  };
  /// Where a MAC's weight bytes came from: the LOAD of constants and the offset in its
  /// rows, with the MAC's key but not its address.
  struct Origin {
    MacKey key;  ///< wgt_begin: offset from the LOAD's first SRAM byte; wgt_end: length
    isa::Load load;
    bool operator==(const Origin& o) const;
  };
  struct OriginHash {
    std::size_t operator()(const Origin& o) const;
  };
  std::optional<Origin> origin_of(const MacKey& key) const;
  /// Bounds on what is kept: a few tiles' worth (weights alternate between two buffers).
  static constexpr std::size_t kMaxLoads = 64;
  static constexpr std::size_t kMaxPacked = 8;
  /// Packings kept across runs, at most this many (all are dropped when full).
  static constexpr std::size_t kMaxKept = 4096;
  std::vector<LoadRecord> loads_;
  std::vector<Packed> packed_;
  std::uint64_t constants_ = 0;
  MachineState* state_ = nullptr;  ///< where deferred bytes go
  bool deferring_ = false;         ///< defer() said yes to the LOAD written() sees next
  /// DRAM ranges this run wrote inside the constants.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> constants_written_;
  std::unordered_map<Origin, std::shared_ptr<Kernels>, OriginHash> kept_;
};

}  // namespace dla::sim::detail
