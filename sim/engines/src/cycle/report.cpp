// The cycle report as JSON and as a table (dla/cycle.hpp).
#include <cstdio>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dla/cycle.hpp"

namespace dla::sim {

std::string_view stall_name(Stall s) {
  switch (s) {
    case Stall::kTokenFromLoad: return "token_from_load";
    case Stall::kTokenFromCompute: return "token_from_compute";
    case Stall::kTokenFromStore: return "token_from_store";
    case Stall::kFifoFullToLoad: return "token_fifo_full_to_load";
    case Stall::kFifoFullToCompute: return "token_fifo_full_to_compute";
    case Stall::kFifoFullToStore: return "token_fifo_full_to_store";
    case Stall::kDramContention: return "dram_contention";
    case Stall::kQueueFullLoad: return "load_queue_full";
    case Stall::kQueueFullCompute: return "compute_queue_full";
    case Stall::kQueueFullStore: return "store_queue_full";
    case Stall::kBarrier: return "barrier";
  }
  return "?";
}

std::uint64_t UnitReport::stalled() const {
  std::uint64_t s = 0;
  for (std::uint64_t c : stalls) s += c;
  return s;
}

void to_json(nlohmann::json& j, const CycleReport& r) {
  nlohmann::json units = nlohmann::json::array();
  for (const auto& u : r.units) {
    nlohmann::json stalls = nlohmann::json::object();
    for (int s = 0; s < kNumStalls; ++s) {
      if (u.stalls[static_cast<std::size_t>(s)] != 0) {
        stalls[std::string(stall_name(static_cast<Stall>(s)))] = u.stalls[static_cast<std::size_t>(s)];
      }
    }
    units.push_back({{"name", u.name},
                     {"instructions", u.instructions},
                     {"busy", u.busy},
                     {"stalled", u.stalled()},
                     {"idle", u.idle},
                     {"stalls", stalls}});
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : r.layers) {
    layers.push_back({{"name", l.name},
                      {"start", l.start},
                      {"end", l.end},
                      {"cycles", l.cycles},
                      {"macs", l.macs},
                      {"mac_ideal_cycles", l.mac_ideal_cycles},
                      {"mac_utilization", l.mac_utilization},
                      {"mac_busy", l.mac_busy},
                      {"requant_busy", l.requant_busy},
                      {"vector_busy", l.vector_busy},
                      {"load_busy", l.load_busy},
                      {"store_busy", l.store_busy},
                      {"dram_read_bytes", l.dram_read_bytes},
                      {"dram_write_bytes", l.dram_write_bytes},
                      {"acc_overflows", l.acc_overflows},
                      {"saturations", l.saturations},
                      {"bound", l.bound}});
    if (!r.rtl.core.empty()) {
      layers.back()["rtl_cycles"] = l.rtl_cycles;
      layers.back()["rtl_model_cycles"] = l.rtl_model_cycles;
    }
  }
  j = {{"cycles", r.cycles},
       {"clock_mhz", r.clock_mhz},
       {"microseconds", r.microseconds},
       {"instructions", r.instructions},
       {"units", units},
       {"mac", {{"busy", r.mac_busy},
                {"macs", r.macs},
                {"ideal_cycles", r.mac_ideal_cycles},
                {"utilization", r.mac_utilization},
                {"busy_utilization", r.mac_busy_utilization}}},
       {"requant_busy", r.requant_busy},
       {"vector_busy", r.vector_busy},
       {"dram", {{"read_bytes", r.dram_read_bytes},
                 {"write_bytes", r.dram_write_bytes},
                 {"bus_read_bytes", r.dram_bus_read_bytes},
                 {"bus_write_bytes", r.dram_bus_write_bytes},
                 {"transfers", r.dram_transfers},
                 {"busy_cycles", r.dram_busy_cycles},
                 {"latency_cycles", r.dram_latency_cycles},
                 {"utilization", r.dram_utilization}}},
       {"acc_overflows", r.acc_overflows},
       {"saturations", r.saturations},
       {"layers", layers}};
  if (!r.rtl.core.empty()) {
    nlohmann::json fallbacks = nlohmann::json::object();
    for (const auto& [mnemonic, n] : r.rtl.fallbacks) fallbacks[mnemonic] = n;
    j["rtl"] = {{"core", r.rtl.core},
                {"instructions", r.rtl.instructions},
                {"fallbacks", fallbacks},
                {"rtl_cycles", r.rtl.rtl_cycles},
                {"model_cycles", r.rtl.rtl_model_cycles},
                {"lockstep_checks", r.rtl.lockstep_checks}};
  }
}

namespace {

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * x);
  return buf;
}

std::string share(std::uint64_t part, std::uint64_t whole) {
  return percent(whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole));
}

/// (a - b) / b as "+1.2%"; "-" when b is 0.
std::string signed_percent(std::uint64_t a, std::uint64_t b) {
  if (b == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f%%", 100.0 * (static_cast<double>(a) - static_cast<double>(b)) / static_cast<double>(b));
  return buf;
}

}  // namespace

std::string report_table(const CycleReport& r) {
  std::ostringstream o;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", r.microseconds);
  o << "cycles: " << r.cycles << " (" << buf << " us at " << r.clock_mhz << " MHz), " << r.instructions
    << " instructions\n";
  o << "MAC array: " << r.macs << " MACs, " << r.mac_busy << " busy cycles, utilization " << percent(r.mac_utilization)
    << " (" << percent(r.mac_busy_utilization) << " while busy); requantizer " << r.requant_busy
    << " busy cycles; vector unit " << r.vector_busy << " busy cycles\n";
  o << "DRAM: " << r.dram_read_bytes << " bytes read, " << r.dram_write_bytes << " bytes written ("
    << r.dram_bus_read_bytes + r.dram_bus_write_bytes << " on the bus in whole bursts, " << r.dram_transfers
    << " transfers), bus busy " << r.dram_busy_cycles << " cycles, utilization " << percent(r.dram_utilization)
    << "\n";
  o << "accumulator overflows: " << r.acc_overflows << ", saturations: " << r.saturations << "\n";
  if (!r.rtl.core.empty()) {
    o << "RTL core " << r.rtl.core << ": " << r.rtl.instructions << " compute instructions ran on the RTL ("
      << r.rtl.lockstep_checks << " checked in lockstep against the shared semantics), " << r.rtl.rtl_cycles
      << " RTL cycles vs " << r.rtl.rtl_model_cycles << " by the cycle model's formulas ("
      << signed_percent(r.rtl.rtl_cycles, r.rtl.rtl_model_cycles) << ")\n";
    o << "not on the RTL (shared semantics, formula timing): ";
    bool any = false;
    for (const auto& [mnemonic, n] : r.rtl.fallbacks) {
      o << (any ? ", " : "") << mnemonic << " x" << n;
      any = true;
    }
    o << (any ? "" : "none") << "\n";
  }
  o << "\n";

  o << std::left << std::setw(9) << "unit" << std::right << std::setw(8) << "insns" << std::setw(12) << "busy"
    << std::setw(8) << "" << std::setw(12) << "stalled" << std::setw(8) << "" << std::setw(12) << "idle"
    << std::setw(8) << "" << "  stalled on\n";
  for (const auto& u : r.units) {
    o << std::left << std::setw(9) << u.name << std::right << std::setw(8) << u.instructions << std::setw(12) << u.busy
      << std::setw(8) << share(u.busy, r.cycles) << std::setw(12) << u.stalled() << std::setw(8)
      << share(u.stalled(), r.cycles) << std::setw(12) << u.idle << std::setw(8) << share(u.idle, r.cycles) << "  ";
    bool any = false;
    for (int s = 0; s < kNumStalls; ++s) {
      const std::uint64_t c = u.stalls[static_cast<std::size_t>(s)];
      if (c == 0) continue;
      o << (any ? ", " : "") << stall_name(static_cast<Stall>(s)) << " " << c;
      any = true;
    }
    o << (any ? "" : "-") << "\n";
  }
  o << "\n";

  std::size_t width = 5;
  for (const auto& l : r.layers) width = std::max(width, l.name.size());
  const int w = static_cast<int>(width);
  o << std::left << std::setw(w) << "layer" << std::right << std::setw(12) << "cycles" << std::setw(13) << "MACs"
    << std::setw(9) << "MAC util" << std::setw(11) << "MAC busy" << std::setw(11) << "load busy" << std::setw(12)
    << "store busy" << std::setw(12) << "DRAM read" << std::setw(13) << "DRAM written" << std::setw(10) << "overflows"
    << std::setw(12) << "saturations" << "  bound";
  if (!r.rtl.core.empty()) o << std::setw(14) << "RTL cycles" << std::setw(12) << "model" << std::setw(9) << "diff";
  o << "\n";
  for (const auto& l : r.layers) {
    o << std::left << std::setw(w) << l.name << std::right << std::setw(12) << l.cycles << std::setw(13) << l.macs
      << std::setw(9) << percent(l.mac_utilization) << std::setw(11) << l.mac_busy << std::setw(11) << l.load_busy
      << std::setw(12) << l.store_busy << std::setw(12) << l.dram_read_bytes << std::setw(13) << l.dram_write_bytes
      << std::setw(10) << l.acc_overflows << std::setw(12) << l.saturations << "  ";
    if (r.rtl.core.empty()) {
      o << l.bound;
    } else {
      o << std::left << std::setw(7) << l.bound << std::right << std::setw(12) << l.rtl_cycles << std::setw(12) << l.rtl_model_cycles << std::setw(9)
        << signed_percent(l.rtl_cycles, l.rtl_model_cycles);
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace dla::sim
