// `dla signoff --out DIR` (signoff_out.hpp).
#include "signoff_out.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "dla/file_io.hpp"
#include "output_set.hpp"
#include "signoff_page.hpp"

namespace dla::cli {

void write_signoff_dir(const std::string& dir, nlohmann::json report, const std::string& trace_json) {
  make_directory(dir, "output directory");
  if (!trace_json.empty()) {
    write_file_atomically(dir + "/trace.json", trace_json, "trace file");
    report["trace"] = "trace.json";
  }
  write_file_atomically(dir + "/signoff.json", report.dump(1) + "\n", "sign-off report");
  write_file_atomically(dir + "/index.html", report::signoff_html(report), "report page");
}

nlohmann::json unit_timeline(const sim::CycleReport& report, int bins) {
  const std::uint64_t cycles = std::max<std::uint64_t>(report.cycles, 1);
  const sim::ExecUnit units[] = {sim::ExecUnit::kLoad, sim::ExecUnit::kMac, sim::ExecUnit::kRequant,
                                 sim::ExecUnit::kVector, sim::ExecUnit::kStore};
  std::vector<std::vector<double>> busy(std::size(units), std::vector<double>(static_cast<std::size_t>(bins), 0.0));
  const double span = static_cast<double>(cycles) / bins;
  for (const auto& t : report.timeline) {
    const auto row = std::find(std::begin(units), std::end(units), t.unit) - std::begin(units);
    if (row == static_cast<std::ptrdiff_t>(std::size(units)) || t.end <= t.start) continue;
    // Spread [start, end) over the bins it covers.
    for (auto b = static_cast<std::size_t>(static_cast<double>(t.start) / span);
         b < static_cast<std::size_t>(bins) && static_cast<double>(b) * span < static_cast<double>(t.end); ++b) {
      const double lo = std::max(static_cast<double>(t.start), static_cast<double>(b) * span);
      const double hi = std::min(static_cast<double>(t.end), static_cast<double>(b + 1) * span);
      if (hi > lo) busy[static_cast<std::size_t>(row)][b] += (hi - lo) / span;
    }
  }
  nlohmann::json out = {{"cycles", report.cycles}, {"units", nlohmann::json::array()}};
  for (std::size_t u = 0; u < std::size(units); ++u) {
    for (double& v : busy[u]) v = std::min(1.0, std::round(v * 1000) / 1000);
    out["units"].push_back({{"name", std::string(sim::exec_unit_name(units[u]))}, {"busy", busy[u]}});
  }
  return out;
}

}  // namespace dla::cli
