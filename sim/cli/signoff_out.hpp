// The report directory of `dla signoff --out DIR`: signoff.json (the per-layer results,
// the JSON the page is drawn from), index.html (the page, report/signoff_page.hpp) and
// trace.json (the cycle run's Chrome/Perfetto trace) when the cycle engine ran.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "dla/cycle.hpp"

namespace dla::cli {

/// Creates `dir` if needed and writes the report's files, each atomically. `trace_json`
/// empty: no trace (no cycle run); else the page links it.
void write_signoff_dir(const std::string& dir, nlohmann::json report, const std::string& trace_json);

}  // namespace dla::cli
