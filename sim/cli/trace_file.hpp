// `--trace FILE` of `dla run` and the trace `dla signoff --out` writes: the file format
// (a VCD of unit signals, or a Chrome/Perfetto trace-event JSON of instruction slices) and
// the writing of the Chrome form from a cycle run.
#pragma once

#include <string>

#include "dla/cycle.hpp"
#include "dla/program.hpp"

namespace dla::cli {

enum class TraceFormat { kVcd, kChrome };

/// The format `--trace-format` names ("vcd" or "chrome"), or, when it is empty, the one the
/// file name implies: ".json" is chrome, anything else VCD.
TraceFormat trace_format(const std::string& path, const std::string& requested);

/// Writes the Chrome trace of `device`'s last run of `program` to `path` (atomically; an
/// error names the file and the errno text).
void write_chrome_trace(const std::string& path, const sim::CycleDevice& device, const Program& program);

}  // namespace dla::cli
