// `dla signoff --out DIR` (signoff_out.hpp).
#include "signoff_out.hpp"

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

}  // namespace dla::cli
