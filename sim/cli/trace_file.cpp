// Trace files of the cycle engine (trace_file.hpp).
#include "trace_file.hpp"

#include "dla/error.hpp"
#include "dla/file_io.hpp"

namespace dla::cli {

TraceFormat trace_format(const std::string& path, const std::string& requested) {
  if (requested == "vcd") return TraceFormat::kVcd;
  if (requested == "chrome") return TraceFormat::kChrome;
  if (!requested.empty()) throw Error("--trace-format takes 'vcd' or 'chrome', not '" + requested + "'");
  const std::string ext = ".json";
  const bool json = path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
  return json ? TraceFormat::kChrome : TraceFormat::kVcd;
}

void write_chrome_trace(const std::string& path, const sim::CycleDevice& device, const Program& program) {
  write_file_atomically(path, sim::chrome_trace(device.report(), program), "trace file");
}

}  // namespace dla::cli
