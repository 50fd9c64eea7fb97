// The cycle report's timeline as a Chrome trace-event document (dla/cycle.hpp,
// chrome_trace). Format: the "JSON Object Format" of the Trace Event Format (traceEvents
// with "M" metadata events naming the process and threads, "X" complete events with ts
// and dur), which ui.perfetto.dev and chrome://tracing load.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/cycle.hpp"
#include "dla/isa.hpp"

namespace dla::sim {
namespace {

constexpr int kFirstLayerTid = 100;

/// Tracks in the order a viewer shows them: the DMA read side, the compute units, the DMA
/// write side, then fetch's barriers.
int tid_of(ExecUnit u) {
  switch (u) {
    case ExecUnit::kLoad: return 1;
    case ExecUnit::kMac: return 2;
    case ExecUnit::kRequant: return 3;
    case ExecUnit::kVector: return 4;
    case ExecUnit::kStore: return 5;
    case ExecUnit::kBarrier: return 6;
  }
  return 6;
}

const char* track_name(ExecUnit u) {
  switch (u) {
    case ExecUnit::kLoad: return "load (DMA read)";
    case ExecUnit::kMac: return "compute: MAC array";
    case ExecUnit::kRequant: return "compute: requantizer";
    case ExecUnit::kVector: return "compute: vector unit";
    case ExecUnit::kStore: return "store (DMA write)";
    case ExecUnit::kBarrier: return "fetch: SYNC/END";
  }
  return "?";
}

nlohmann::json thread_meta(int pid, int tid, const std::string& name) {
  return {{"ph", "M"}, {"pid", pid}, {"tid", tid}, {"name", "thread_name"}, {"args", {{"name", name}}}};
}
nlohmann::json thread_order(int pid, int tid) {
  return {{"ph", "M"}, {"pid", pid}, {"tid", tid}, {"name", "thread_sort_index"}, {"args", {{"sort_index", tid}}}};
}

}  // namespace

std::string_view exec_unit_name(ExecUnit u) {
  switch (u) {
    case ExecUnit::kBarrier: return "barrier";
    case ExecUnit::kLoad: return "load";
    case ExecUnit::kMac: return "mac";
    case ExecUnit::kRequant: return "requant";
    case ExecUnit::kVector: return "vector";
    case ExecUnit::kStore: return "store";
  }
  return "?";
}

namespace {

/// Appends one run's events as process `pid`, its cycles shifted by `offset`.
void append_run(nlohmann::json& events, int pid, const std::string& process, std::uint64_t offset,
                const CycleReport& report, const Program& program) {
  // The layer of each instruction: the debug record whose range holds it (the first one).
  std::vector<int> layer_of(program.instructions.size(), -1);
  for (std::size_t r = 0; r < program.debug.size(); ++r) {
    const auto& d = program.debug[r];
    for (std::uint32_t i = d.insn_begin; i < d.insn_end && i < layer_of.size(); ++i) {
      if (layer_of[i] < 0) layer_of[i] = static_cast<int>(r);
    }
  }

  events.push_back({{"ph", "M"}, {"pid", pid}, {"name", "process_name"}, {"args", {{"name", process}}}});
  for (int u = 0; u < kNumExecUnits; ++u) {
    const auto unit = static_cast<ExecUnit>(u);
    events.push_back(thread_meta(pid, tid_of(unit), track_name(unit)));
    events.push_back(thread_order(pid, tid_of(unit)));
  }
  for (const InsnTiming& t : report.timeline) {
    if (t.index >= program.instructions.size()) continue;  // a report of another program
    nlohmann::json args = {{"insn", t.index}, {"start_cycle", t.start}, {"cycles", t.end - t.start}};
    if (layer_of[t.index] >= 0) args["layer"] = program.debug[static_cast<std::size_t>(layer_of[t.index])].layer;
    events.push_back({{"ph", "X"},
                      {"pid", pid},
                      {"tid", tid_of(t.unit)},
                      {"cat", exec_unit_name(t.unit)},
                      {"name", isa::disassemble(program.instructions[t.index])},
                      {"ts", offset + t.start},
                      {"dur", t.end - t.start},
                      {"args", std::move(args)}});
  }

  // Layers: a span may overlap its neighbours' (the next layer's loads start early), and
  // slices on one track must nest, so each layer goes to the first lane free at its start.
  std::vector<std::uint64_t> lane_end;  // per lane: where its last layer ends
  std::vector<std::size_t> order(report.layers.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return report.layers[a].start < report.layers[b].start; });
  for (const std::size_t li : order) {
    const LayerReport& l = report.layers[li];
    if (l.cycles == 0) continue;  // moved no data (a flatten): nothing to show
    std::size_t lane = 0;
    while (lane < lane_end.size() && lane_end[lane] > l.start) ++lane;
    if (lane == lane_end.size()) {
      lane_end.push_back(0);
      const int tid = kFirstLayerTid + static_cast<int>(lane);
      events.push_back(thread_meta(pid, tid, lane == 0 ? "layers" : "layers " + std::to_string(lane + 1)));
      events.push_back(thread_order(pid, tid));
    }
    lane_end[lane] = l.end;
    events.push_back({{"ph", "X"},
                      {"pid", pid},
                      {"tid", kFirstLayerTid + static_cast<int>(lane)},
                      {"cat", "layer"},
                      {"name", l.name},
                      {"ts", offset + l.start},
                      {"dur", l.cycles},
                      {"args",
                       {{"cycles", l.cycles},
                        {"macs", l.macs},
                        {"mac_utilization", l.mac_utilization},
                        {"saturations", l.saturations},
                        {"acc_overflows", l.acc_overflows},
                        {"bound", l.bound}}}});
  }
}

}  // namespace

std::string chrome_trace(const std::vector<TracedRun>& runs) {
  nlohmann::json events = nlohmann::json::array();
  std::uint64_t offset = 0;
  std::uint64_t instructions = 0;
  std::int64_t clock_mhz = 0;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const TracedRun& run = runs[k];
    append_run(events, static_cast<int>(k) + 1, runs.size() == 1 ? "dla cycle model" : run.name, offset, run.report,
               run.program);
    offset += run.report.cycles;
    instructions += run.report.instructions;
    clock_mhz = run.report.clock_mhz;
  }
  const nlohmann::json doc = {
      {"traceEvents", std::move(events)},
      {"otherData",
       {{"generator", "dla run --engine cycle"},
        {"time_unit", "cycle (ts and dur are cycles; a viewer's us reads as cycles)"},
        {"clock_mhz", clock_mhz},
        {"cycles", offset},
        {"instructions", instructions}}}};
  return doc.dump() + "\n";
}

std::string chrome_trace(const CycleReport& report, const Program& program) {
  return chrome_trace(std::vector<TracedRun>{{report, program, "dla cycle model"}});
}

nlohmann::json unit_timeline(const std::vector<const CycleReport*>& runs, int bins) {
  std::uint64_t total = 0;
  for (const CycleReport* r : runs) total += r->cycles;
  const ExecUnit units[] = {ExecUnit::kLoad, ExecUnit::kMac, ExecUnit::kRequant, ExecUnit::kVector, ExecUnit::kStore};
  std::vector<std::vector<double>> busy(std::size(units), std::vector<double>(static_cast<std::size_t>(bins), 0.0));
  const double span = static_cast<double>(std::max<std::uint64_t>(total, 1)) / bins;
  std::uint64_t offset = 0;
  for (const CycleReport* r : runs) {
    for (const auto& t : r->timeline) {
      const auto row = std::find(std::begin(units), std::end(units), t.unit) - std::begin(units);
      if (row == static_cast<std::ptrdiff_t>(std::size(units)) || t.end <= t.start) continue;
      // Spread [start, end) over the bins it covers.
      const auto start = static_cast<double>(offset + t.start), end = static_cast<double>(offset + t.end);
      for (auto b = static_cast<std::size_t>(start / span);
           b < static_cast<std::size_t>(bins) && static_cast<double>(b) * span < end; ++b) {
        const double lo = std::max(start, static_cast<double>(b) * span);
        const double hi = std::min(end, static_cast<double>(b + 1) * span);
        if (hi > lo) busy[static_cast<std::size_t>(row)][b] += (hi - lo) / span;
      }
    }
    offset += r->cycles;
  }
  nlohmann::json out = {{"cycles", total}, {"units", nlohmann::json::array()}};
  for (std::size_t u = 0; u < std::size(units); ++u) {
    for (double& v : busy[u]) v = std::min(1.0, std::round(v * 1000) / 1000);
    out["units"].push_back({{"name", std::string(exec_unit_name(units[u]))}, {"busy", busy[u]}});
  }
  return out;
}

}  // namespace dla::sim
