// The sign-off report page: one renderer for `dla signoff --out DIR` and for Python's
// dlasim.SignoffReport.write (through torch.ops.dla.signoff_html), so the two pages are
// the same page. The layout lives in signoff_page.html (embedded at build time); this
// fills it from the report's JSON:
//
//   {"ok": bool, "engines": [...], "program": str, "model" | "export": str (optional),
//    "reference": str (what the layers were compared with), "trace": str (optional: a
//    Chrome trace file beside the page),
//    "layers": [{"engine", "layer", "elements", "equal", "saturations", "overflows",
//                "cycles", "macs", "mac_utilization" (0..1),
//                "sqnr_db": number | null (optional: SQNR against the float model; null: equal),
//                "first_diff": null | {"index": any, "expected": int, "actual": int}}, ...],
//    "timeline": {"cycles": N, "units": [{"name", "busy": [0..1 per equal span]}]} (optional)}
//
// The page: a PASS/FAIL heading (FAIL when "ok" is false or any layer differs), a summary
// naming the first differing layer, one table row per layer result (class "ok" or "bad"),
// and three inline SVG bar charts (class "bar" per bar): cycles and MAC utilization per
// layer of the timed results, saturations per layer of the first engine; when the rows
// carry "sqnr_db", an SQNR column and a chart of SQNR per layer of the first engine; with a
// "timeline", the unit timeline of the cycle run (svg#timeline, a strip per unit).
// No scripts, no external resources.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dla::report {

/// The page for `report` (the JSON above). Throws dla::Error naming a missing or mistyped
/// member.
std::string signoff_html(const nlohmann::json& report);

}  // namespace dla::report
