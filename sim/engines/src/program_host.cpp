#include "program_host.hpp"

#include <algorithm>
#include <limits>
#include <variant>

#include "dla/tensor.hpp"
#include "race_detector.hpp"

namespace dla::sim::detail {
namespace {

std::string names_of(const Program& p, TensorRole role) {
  std::string s;
  for (const auto& t : p.tensors) {
    if (t.role != role) continue;
    s += (s.empty() ? "" : ", ") + t.name;
  }
  return s.empty() ? "none" : s;
}

void check_program(const Program& p, const HwConfig& config) {
  const std::uint64_t mine = config.identity_hash();
  if (p.hw_config_hash != mine) {
    throw Error("program was compiled for hardware config " + hash_hex(p.hw_config_hash) +
                ", but this device runs hardware config " + hash_hex(mine));
  }
  if (p.dram_size > static_cast<std::uint64_t>(config.dram_bytes())) {
    throw Error("program needs " + std::to_string(p.dram_size) + " bytes of DRAM, more than the " +
                std::to_string(config.dram_bytes()) + " bytes of the hardware config (dram_size_mib = " +
                std::to_string(config.dram_size_mib) + ")");
  }
  if (p.constants.size() > p.dram_size) {
    throw Error("program constants (" + std::to_string(p.constants.size()) + " bytes) exceed its DRAM size " +
                std::to_string(p.dram_size));
  }
  if (p.instructions.empty() || !std::holds_alternative<isa::End>(p.instructions.back())) {
    throw Error("program's instruction stream does not end with END");
  }
  if (p.instructions.size() > kMaxEvent) {
    throw Error("program has " + std::to_string(p.instructions.size()) + " instructions, more than the engines' " +
                std::to_string(kMaxEvent));
  }
  // Field ranges and token flags, as the encoder checks them (a program built in memory
  // has not been through the encoder).
  for (std::size_t i = 0; i < p.instructions.size(); ++i) check_instruction(p.instructions[i], static_cast<std::uint32_t>(i));
  auto check_tensor = [&](const TensorDesc& t, const std::string& what) {
    const std::uint64_t bytes = t.byte_size();
    if (t.dram_offset > p.dram_size || bytes > p.dram_size - t.dram_offset) {
      throw Error(what + " '" + t.name + "' at DRAM [" + std::to_string(t.dram_offset) + ", +" +
                  std::to_string(bytes) + ") lies outside the program's " + std::to_string(p.dram_size) +
                  "-byte DRAM");
    }
  };
  for (const auto& t : p.tensors) check_tensor(t, "tensor");
  for (const auto& r : p.debug) {
    check_tensor(r.output, "layer");
    if (r.insn_begin > r.insn_end || r.insn_end > p.instructions.size()) {
      throw Error("layer '" + r.layer + "' has an invalid instruction range [" + std::to_string(r.insn_begin) +
                  ", " + std::to_string(r.insn_end) + ")");
    }
  }
}

/// The DRAM ranges the program's instructions may write, merged and sorted; everything
/// when an instruction cannot be described (it fails again when it runs).
std::vector<std::pair<std::uint64_t, std::uint64_t>> dram_writes(const Program& p, const MachineState& state) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    try {
      for (const Access& a : describe(p.instructions[i], state, static_cast<std::uint32_t>(i))) {
        if (a.region.space == Space::kDram && a.kind == AccessKind::kWrite) ranges.emplace_back(a.region.base, a.region.end());
      }
    } catch (const Error&) {
      return {{0, std::numeric_limits<std::uint64_t>::max()}};
    }
  }
  std::sort(ranges.begin(), ranges.end());
  std::size_t merged = 0;
  for (const auto& r : ranges) {
    if (merged > 0 && r.first <= ranges[merged - 1].second) {
      ranges[merged - 1].second = std::max(ranges[merged - 1].second, r.second);
    } else {
      ranges[merged++] = r;
    }
  }
  ranges.resize(merged);
  return ranges;
}

std::string range_text(const TensorDesc& t) {
  return "DRAM [" + std::to_string(t.dram_offset) + ", " + std::to_string(t.dram_offset + t.byte_size()) + ")";
}

/// True when [begin, end) lies inside one of the merged, sorted `ranges`.
bool covered(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, std::uint64_t begin, std::uint64_t end) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), begin,
                             [](std::uint64_t v, const std::pair<std::uint64_t, std::uint64_t>& r) { return v < r.second; });
  return begin == end || (it != ranges.end() && it->first <= begin && end <= it->second);
}

/// Where the program's records point: a result (an output, a layer) must be DRAM that
/// the program's instructions write, or an input's bytes for a layer that only renames
/// its input; an input must not overlap the constants or another input (binding it
/// would overwrite them). Otherwise a crafted record would report weights as a result.
void check_records(const Program& p, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& written) {
  const std::uint64_t constants = p.constants.size();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> inputs;
  for (const auto& t : p.tensors) {
    if (t.role != TensorRole::kInput) continue;
    const std::uint64_t begin = t.dram_offset, end = t.dram_offset + t.byte_size();
    if (begin < constants && begin < end) {
      throw Error("input '" + t.name + "' at " + range_text(t) + " overlaps the program's constants [0, " +
                  std::to_string(constants) + ")");
    }
    for (const auto& [b, e] : inputs) {
      if (begin < e && b < end) throw Error("input '" + t.name + "' at " + range_text(t) + " overlaps another input");
    }
    inputs.emplace_back(begin, end);
  }
  std::sort(inputs.begin(), inputs.end());
  auto check_result = [&](const TensorDesc& t, const std::string& what, bool may_be_input) {
    const std::uint64_t begin = t.dram_offset, end = t.dram_offset + t.byte_size();
    if (begin < constants && begin < end) {
      throw Error(what + " '" + t.name + "' at " + range_text(t) + " overlaps the program's constants [0, " +
                  std::to_string(constants) + "): it would report constants as a result");
    }
    if (!covered(written, begin, end) && !(may_be_input && covered(inputs, begin, end))) {
      throw Error(what + " '" + t.name + "' at " + range_text(t) + " is not DRAM that the program's instructions write");
    }
  };
  for (const auto& t : p.tensors) {
    if (t.role == TensorRole::kOutput) check_result(t, "output", false);
  }
  for (const auto& r : p.debug) check_result(r.output, "layer", true);
}

}  // namespace

void ProgramHost::load(const Program& p) {
  check_program(p, config_);
  MachineState state(config_, p.dram_size);
  auto written = dram_writes(p, state);
  check_records(p, written);
  program_ = p;
  state_ = std::move(state);
  dram_written_ = std::move(written);
  inputs_.clear();
  state_dirty_ = false;
  ran_ = false;
  std::copy(p.constants.begin(), p.constants.end(), state_.dram.begin());
}

void ProgramHost::set_input(const std::string& name, const HostTensor& tensor) {
  if (!program_) throw Error("set_input('" + name + "'): no program loaded");
  const TensorDesc* desc = program().find_tensor(name);
  if (desc == nullptr || desc->role != TensorRole::kInput) {
    throw Error("'" + name + "' is not an input of the program (inputs: " + names_of(program(), TensorRole::kInput) +
                ")");
  }
  try {
    inputs_[name] = to_dram(*desc, tensor);
  } catch (const Error& e) {
    throw Error("input " + std::string(e.what()));
  }
}

void ProgramHost::begin_run() {
  if (!program_) throw Error("run: no program loaded");
  for (const auto& t : program().tensors) {
    if (t.role == TensorRole::kInput && inputs_.count(t.name) == 0) {
      throw Error("input '" + t.name + "' is not bound (shape " + shape_string(t.shape) + ", " +
                  std::string(dtype_info(t.dtype).name) + ")");
    }
  }
  ran_ = false;
  // After load the state is already the start state, constants included; after a run only
  // the SRAMs and the DRAM the program writes differ from it (inputs are copied in full).
  if (state_dirty_) {
    std::fill(state_.act.begin(), state_.act.end(), std::uint8_t{0});
    std::fill(state_.wgt.begin(), state_.wgt.end(), std::uint8_t{0});
    std::fill(state_.param.begin(), state_.param.end(), std::uint8_t{0});
    std::fill(state_.acc.begin(), state_.acc.end(), std::int64_t{0});
    const std::uint64_t constants = program().constants.size();
    for (const auto& [lo, hi_unclamped] : dram_written_) {
      const std::uint64_t hi = std::min<std::uint64_t>(hi_unclamped, state_.dram.size());
      if (lo >= hi) continue;
      std::fill(state_.dram.begin() + static_cast<std::ptrdiff_t>(lo), state_.dram.begin() + static_cast<std::ptrdiff_t>(hi),
                std::uint8_t{0});
      if (lo < constants) {
        const std::uint64_t end = std::min(hi, constants);
        std::copy(program().constants.begin() + static_cast<std::ptrdiff_t>(lo),
                  program().constants.begin() + static_cast<std::ptrdiff_t>(end),
                  state_.dram.begin() + static_cast<std::ptrdiff_t>(lo));
      }
    }
  }
  state_dirty_ = true;
  for (const auto& [name, bytes] : inputs_) {
    std::copy(bytes.begin(), bytes.end(),
              state_.dram.begin() + static_cast<std::ptrdiff_t>(program().find_tensor(name)->dram_offset));
  }
}

std::vector<LayerDump> ProgramHost::end_run(bool dump_layers) {
  ran_ = true;
  std::vector<LayerDump> dumps;
  if (dump_layers) {
    for (const auto& r : program().debug) {
      dumps.push_back({r.layer, from_dram(r.output, state_.dram.data() + r.output.dram_offset)});
    }
  }
  return dumps;
}

HostTensor ProgramHost::output(const std::string& name) const {
  if (!program_) throw Error("output('" + name + "'): no program loaded");
  const TensorDesc* desc = program().find_tensor(name);
  if (desc == nullptr || desc->role != TensorRole::kOutput) {
    throw Error("'" + name + "' is not an output of the program (outputs: " +
                names_of(program(), TensorRole::kOutput) + ")");
  }
  if (!ran_) throw Error("output '" + name + "': the program has not run");
  return from_dram(*desc, state_.dram.data() + desc->dram_offset);
}

bool ProgramHost::may_race(const Access& a) const {
  if (a.region.space != Space::kDram || a.kind != AccessKind::kRead) return true;
  const std::uint64_t begin = a.region.base, end = a.region.end();
  // The first written range that ends after `begin`.
  auto it = std::upper_bound(dram_written_.begin(), dram_written_.end(), begin,
                             [](std::uint64_t v, const std::pair<std::uint64_t, std::uint64_t>& w) { return v < w.second; });
  return it != dram_written_.end() && it->first < end;
}

}  // namespace dla::sim::detail
