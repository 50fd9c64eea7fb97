// The sign-off report page (signoff_page.hpp).
#include "signoff_page.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/error.hpp"
#include "signoff_page_template.hpp"

namespace dla::report {
namespace {

using nlohmann::json;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      case '{': out += "&#123;"; break;  // no text of a report can form a {{mark}} of the template
      case '}': out += "&#125;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string fixed1(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

/// One layer result, read once with every member checked.
struct Row {
  std::string engine, layer;
  std::uint64_t elements = 0, equal = 0, saturations = 0, overflows = 0, cycles = 0, macs = 0;
  double mac_utilization = 0;
  std::optional<double> sqnr_db;  ///< against the float model, where the report has one (null: equal)
  bool sqnr_equal = false;        ///< the layer equals the float model's (infinite SQNR)
  json first_diff;  // null when none
  bool ok() const { return equal == elements && first_diff.is_null(); }
};

template <typename T>
T member(const json& j, const char* name, const std::string& where) {
  if (!j.contains(name)) throw Error("sign-off report: " + where + " has no \"" + name + "\"");
  try {
    return j.at(name).get<T>();
  } catch (const json::exception&) {
    throw Error("sign-off report: " + where + ": \"" + name + "\" has the wrong type");
  }
}

Row read_row(const json& j, std::size_t i) {
  const std::string where = "layers[" + std::to_string(i) + "]";
  if (!j.is_object()) throw Error("sign-off report: " + where + " is not an object");
  Row r;
  r.engine = member<std::string>(j, "engine", where);
  r.layer = member<std::string>(j, "layer", where);
  r.elements = member<std::uint64_t>(j, "elements", where);
  r.equal = member<std::uint64_t>(j, "equal", where);
  r.saturations = member<std::uint64_t>(j, "saturations", where);
  r.overflows = member<std::uint64_t>(j, "overflows", where);
  r.cycles = member<std::uint64_t>(j, "cycles", where);
  r.macs = member<std::uint64_t>(j, "macs", where);
  r.mac_utilization = member<double>(j, "mac_utilization", where);
  if (j.contains("sqnr_db")) {  // a number, or null for "equal to the float model" (JSON has no inf)
    if (j.at("sqnr_db").is_null()) {
      r.sqnr_equal = true;
    } else {
      r.sqnr_db = member<double>(j, "sqnr_db", where);
    }
  }
  r.first_diff = j.contains("first_diff") ? j.at("first_diff") : json();
  if (!r.first_diff.is_null() && !r.first_diff.is_object()) {
    throw Error("sign-off report: " + where + ": \"first_diff\" is neither null nor an object");
  }
  return r;
}

std::string diff_text(const json& d) {
  if (d.is_null()) return "";
  const json index = d.contains("index") ? d.at("index") : json("?");
  std::string s = (index.is_number() ? "element " : "at ") + index.dump();  // a flat index or one per dimension
  if (d.contains("expected") && d.contains("actual")) {
    s += ": expected " + d.at("expected").dump() + ", got " + d.at("actual").dump();
  }
  return s;
}

/// An inline SVG bar chart, one bar per row.
std::string bars(const std::string& title, const std::vector<const Row*>& rows, const std::function<double(const Row&)>& value,
                 const std::string& unit) {
  double top = 1e-9;
  for (const Row* r : rows) top = std::max(top, value(*r));
  const int w = 640, bh = 16;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(w + 320) + "\" height=\"" +
                  std::to_string(bh * static_cast<int>(rows.size()) + 24) + "\" role=\"img\" aria-label=\"" +
                  escape(title) + "\">\n<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">" + escape(title) +
                  "</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double v = value(*rows[i]);
    const int y = 22 + static_cast<int>(i) * bh;
    const double len = w * v / top;
    s += "<text x=\"0\" y=\"" + std::to_string(y + 11) + "\" font-size=\"11\">" + escape(rows[i]->layer.substr(0, 30)) +
         "</text>\n";
    s += "<rect class=\"bar\" x=\"200\" y=\"" + std::to_string(y + 2) + "\" width=\"" + fixed1(len) + "\" height=\"" +
         std::to_string(bh - 4) + "\" fill=\"#4a7fb5\"/>\n";
    const std::string label = v == static_cast<double>(static_cast<std::uint64_t>(v)) ? std::to_string(static_cast<std::uint64_t>(v))
                                                                                      : fixed1(v);
    s += "<text x=\"" + fixed1(205 + len) + "\" y=\"" + std::to_string(y + 11) + "\" font-size=\"10\">" + label +
         (unit.empty() ? "" : " " + unit) + "</text>\n";
  }
  return s + "</svg>";
}

/// A busy fraction as a fill opacity: "0.05".."1.00" (a cell with any work stays visible).
std::string opacity(double busy) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", std::min(1.0, std::max(0.05, busy)));
  return buf;
}

/// The unit timeline of the cycle run: one strip per unit, one cell per span of the run,
/// darker where the unit was busier (the "timeline" member; see the header).
std::string timeline_chart(const json& t) {
  const auto cycles = member<std::uint64_t>(t, "cycles", "the timeline");
  if (!t.contains("units") || !t.at("units").is_array()) throw Error("sign-off report: the timeline has no \"units\"");
  const int w = 720, rh = 18, left = 200;
  const auto rows = static_cast<int>(t.at("units").size());
  std::string s = "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(left + w + 20) +
                  "\" height=\"" + std::to_string(rows * rh + 44) +
                  "\" role=\"img\" aria-label=\"Unit timeline\">\n<text x=\"0\" y=\"14\" font-size=\"13\" "
                  "font-weight=\"bold\">Unit timeline of the cycle run (busy fraction over " +
                  std::to_string(cycles) + " cycles)</text>\n";
  int row = 0;
  for (const auto& u : t.at("units")) {
    const std::string where = "timeline unit " + std::to_string(row);
    const auto name = member<std::string>(u, "name", where);
    const auto busy = member<std::vector<double>>(u, "busy", where);
    const int y = 22 + row * rh;
    s += "<text x=\"0\" y=\"" + std::to_string(y + 12) + "\" font-size=\"11\">" + escape(name) + "</text>\n";
    const double cell = busy.empty() ? 0 : static_cast<double>(w) / static_cast<double>(busy.size());
    for (std::size_t i = 0; i < busy.size(); ++i) {
      if (busy[i] <= 0) continue;
      s += "<rect class=\"busy\" x=\"" + fixed1(left + cell * static_cast<double>(i)) + "\" y=\"" + std::to_string(y + 2) +
           "\" width=\"" + fixed1(cell) + "\" height=\"" + std::to_string(rh - 4) + "\" fill=\"#4a7fb5\" fill-opacity=\"" +
           opacity(busy[i]) + "\"/>\n";
    }
    ++row;
  }
  s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(rows * rh + 38) +
       "\" font-size=\"10\">cycle 0</text><text x=\"" + std::to_string(left + w - 60) + "\" y=\"" +
       std::to_string(rows * rh + 38) + "\" font-size=\"10\">cycle " + std::to_string(cycles) + "</text>\n";
  return s + "</svg>";
}

void fill(std::string& page, const std::string& key, const std::string& text) {
  const std::string mark = "{{" + key + "}}";
  for (auto at = page.find(mark); at != std::string::npos; at = page.find(mark, at + text.size())) {
    page.replace(at, mark.size(), text);
  }
}

}  // namespace

std::string signoff_html(const json& report) {
  if (!report.is_object()) throw Error("sign-off report: not a JSON object");
  const bool declared_ok = member<bool>(report, "ok", "the report");
  const auto engines = member<std::vector<std::string>>(report, "engines", "the report");
  if (!report.contains("layers") || !report.at("layers").is_array()) {
    throw Error("sign-off report: the report has no \"layers\" array");
  }
  std::vector<Row> rows;
  for (const auto& l : report.at("layers")) rows.push_back(read_row(l, rows.size()));

  const Row* first = nullptr;
  for (const Row& r : rows) {
    if (!r.ok() && first == nullptr) first = &r;
  }
  const bool ok = declared_ok && first == nullptr;
  const std::string status = ok ? "PASS" : "FAIL";
  std::string engine_list;
  for (const auto& e : engines) engine_list += (engine_list.empty() ? "" : ", ") + e;
  std::string summary = first != nullptr ? "first difference in layer " + first->layer + " on " + first->engine
                        : ok             ? "every layer equal on " + engine_list
                                         : "the report says the sign-off failed";
  if (first != nullptr) {
    const auto bad = std::count_if(rows.begin(), rows.end(), [](const Row& r) { return !r.ok(); });
    summary += " (" + std::to_string(bad) + " of " + std::to_string(rows.size()) + " layer results differ)";
  }

  std::string sources;
  for (const char* key : {"program", "model", "export"}) {
    if (report.contains(key) && report.at(key).is_string()) {
      sources += std::string(sources.empty() ? "" : ", ") + key + " <code>" + escape(report.at(key).get<std::string>()) +
                 "</code>";
    }
  }
  if (sources.empty()) sources = "no sources named";
  const std::string reference = report.contains("reference") && report.at("reference").is_string()
                                    ? report.at("reference").get<std::string>()
                                    : std::string("the reference");
  std::string trace;
  if (report.contains("trace") && report.at("trace").is_string()) {
    const std::string t = escape(report.at("trace").get<std::string>());
    trace = "<p id=\"trace\">Unit timeline of the cycle run: <a href=\"" + t + "\">" + t +
            "</a> (Chrome trace-event JSON: open it in ui.perfetto.dev or chrome://tracing; times are cycles).</p>";
  }

  const bool with_sqnr = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.sqnr_db || r.sqnr_equal; });
  std::string table;
  for (const Row& r : rows) {
    const std::string sqnr = r.sqnr_equal ? "inf" : r.sqnr_db ? fixed1(*r.sqnr_db) : "-";
    table += "<tr class=\"" + std::string(r.ok() ? "ok" : "bad") + "\"><td>" + escape(r.engine) + "</td><td>" +
             escape(r.layer) + "</td><td>" + std::to_string(r.elements) + "</td><td>" + std::to_string(r.equal) +
             "</td><td>" + std::to_string(r.saturations) + "</td><td>" + std::to_string(r.overflows) + "</td><td>" +
             (r.cycles ? std::to_string(r.cycles) : "-") + "</td><td>" +
             (r.cycles && r.macs ? fixed1(100 * r.mac_utilization) + "%" : "-") + "</td><td>" +
             (with_sqnr ? sqnr + "</td><td>" : "") + escape(diff_text(r.first_diff)) + "</td></tr>\n";
  }

  std::vector<const Row*> timed, first_engine;
  for (const Row& r : rows) {
    if (r.cycles != 0) timed.push_back(&r);
    if (!engines.empty() && r.engine == engines[0]) first_engine.push_back(&r);
  }
  std::string charts;
  if (!timed.empty()) {
    charts += bars("Cycles per layer (cycle model)", timed, [](const Row& r) { return static_cast<double>(r.cycles); },
                   "cycles") + "\n";
    charts += bars("MAC utilization per layer (cycle model)", timed, [](const Row& r) { return 100 * r.mac_utilization; },
                   "%") + "\n";
  }
  charts += bars("Saturations per layer", first_engine, [](const Row& r) { return static_cast<double>(r.saturations); }, "");
  if (report.contains("timeline")) charts += "\n" + timeline_chart(report.at("timeline"));
  if (with_sqnr) {
    std::vector<const Row*> finite;  // a layer equal to the float model has no finite bar
    for (const Row* r : first_engine) {
      if (r->sqnr_db) finite.push_back(r);
    }
    charts += "\n" + bars("SQNR against the float model per layer", finite,
                          [](const Row& r) { return std::max(0.0, *r.sqnr_db); }, "dB");
  }

  std::string page = detail::kSignoffPageTemplate;
  fill(page, "status", status);
  fill(page, "summary", escape(summary));
  fill(page, "sources", sources);
  fill(page, "reference", escape(reference));
  fill(page, "trace", trace);
  fill(page, "sqnr_head", with_sqnr ? "<th>SQNR dB</th>" : "");
  fill(page, "rows", table);
  fill(page, "charts", charts);
  return page;
}

}  // namespace dla::report
