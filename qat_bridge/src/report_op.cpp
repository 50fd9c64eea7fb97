// report_op.cpp — dla::signoff_html: the sign-off report page of `dla signoff --out`
// (sim/cli/report/signoff_page.hpp) for Python's SignoffReport, so both draw one page.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/library.h>

#include "dla/error.hpp"
#include "signoff_page.hpp"

namespace dla::qat {
namespace {

std::string signoff_html_op(const std::string& report_json) {
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(report_json);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, "dla.signoff_html: the report is not JSON: ", e.what());
  }
  try {
    return report::signoff_html(report);
  } catch (const Error& e) {
    TORCH_CHECK(false, "dla.signoff_html: ", e.what());
  }
  return {};
}

}  // namespace
}  // namespace dla::qat

TORCH_LIBRARY_FRAGMENT(dla, m) { m.def("signoff_html(str report_json) -> str", &dla::qat::signoff_html_op); }
