// `dla signoff --out DIR`: signoff.json, the report page (index.html, an HTML structure
// test: heading, one row per layer result with the numbers of an independent `dla run`,
// the bar charts, the trace link) and trace.json; a FAIL report must read FAIL.
#include <gtest/gtest.h>

#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "../support/small_net.hpp"
#include "dla/compiler/graph_io.hpp"
#include "dla/npy.hpp"

using dla::testing::run_dla;
using dla::testing::slurp;
using nlohmann::json;

namespace {

struct PageRow {
  std::string cls, engine, layer;
  std::uint64_t elements, equal, saturations;
  std::string cycles;
};

/// What the page shows, read from its HTML.
struct Page {
  std::string status;
  std::string summary;
  std::vector<PageRow> rows;
  std::size_t svgs = 0, bars = 0;

  explicit Page(const std::string& html) {
    std::smatch m;
    if (std::regex_search(html, m, std::regex("<span id=\"status\" class=\"(\\w+)\">(\\w+)</span>"))) {
      EXPECT_EQ(m[1], m[2]) << "the heading's class and text disagree";
      status = m[2];
    }
    if (std::regex_search(html, m, std::regex("<p id=\"summary\">([^<]*)</p>"))) summary = m[1];
    const std::regex row("<tr class=\"(ok|bad)\"><td>([^<]*)</td><td>([^<]*)</td><td>(\\d+)</td><td>(\\d+)</td>"
                         "<td>(\\d+)</td><td>\\d+</td><td>([^<]*)</td>");
    for (auto it = std::sregex_iterator(html.begin(), html.end(), row); it != std::sregex_iterator(); ++it) {
      const auto& r = *it;
      rows.push_back({r[1], r[2], r[3], std::stoull(r[4]), std::stoull(r[5]), std::stoull(r[6]), r[7]});
    }
    for (std::size_t at = html.find("<svg "); at != std::string::npos; at = html.find("<svg ", at + 1)) ++svgs;
    for (std::size_t at = html.find("<rect class=\"bar\""); at != std::string::npos;
         at = html.find("<rect class=\"bar\"", at + 1)) {
      ++bars;
    }
  }
};

class SignoffPage : public dla::testing::ScratchDirTest {
 protected:
  SignoffPage() : ScratchDirTest("signoff_page") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    dla::compiler::save_graph(dla::testing::small_net(1, 11), path("a.json"));
    dla::compiler::save_graph(dla::testing::small_net(1, 12), path("b.json"));
    dla::npy::write_tensor(path("x.npy"), dla::testing::small_net_input(1, 3));
  }
};

TEST_F(SignoffPage, APassingSignoffShowsEveryLayerItsNumbersChartsAndTrace) {
  const auto r = run_dla("signoff " + path("a.json") + " -i x=" + path("x.npy") + " --out " + path("so"));
  ASSERT_EQ(r.code, 0) << r.out;
  const json doc = json::parse(slurp(path("so/signoff.json")));
  ASSERT_TRUE(doc.at("ok").get<bool>());
  const std::string html = slurp(path("so/index.html"));
  const Page page(html);
  EXPECT_EQ(page.status, "PASS");
  EXPECT_EQ(page.summary, "every layer equal on emu, cycle");
  ASSERT_EQ(page.rows.size(), 6u);  // conv1, pool, conv2 on two engines
  // The cycle engine's numbers as an independent `dla run` reports them.
  ASSERT_EQ(run_dla("compile " + path("a.json") + " -o " + path("a.dlab")).code, 0);
  const auto run = run_dla("run " + path("a.dlab") + " --engine cycle -i x=" + path("x.npy") + " -o " + path("o") +
                           " --stats json --report none");
  ASSERT_EQ(run.code, 0) << run.out;
  std::map<std::string, json> ran;
  const json stats = json::parse(run.out);
  for (const auto& l : stats["layers"]) ran[l["name"].get<std::string>()] = l;
  std::size_t timed = 0;
  for (const auto& row : page.rows) {
    EXPECT_EQ(row.cls, "ok") << row.layer;
    EXPECT_EQ(row.equal, row.elements) << row.layer;
    EXPECT_GT(row.elements, 0u);
    ASSERT_TRUE(ran.count(row.layer)) << row.layer;
    EXPECT_EQ(row.saturations, ran[row.layer]["saturations"].get<std::uint64_t>()) << row.layer;
    if (row.engine == "cycle") {
      EXPECT_EQ(row.cycles, std::to_string(ran[row.layer]["cycles"].get<std::uint64_t>())) << row.layer;
      ++timed;
    } else {
      EXPECT_EQ(row.cycles, "-");
    }
  }
  EXPECT_EQ(page.svgs, 4u);  // cycles, MAC utilization, saturations, the unit timeline
  EXPECT_EQ(page.bars, 2 * timed + 3);  // cycles and MAC utilization of the timed rows, saturations of emu's
  EXPECT_NE(html.find("<a href=\"trace.json\">"), std::string::npos);
  EXPECT_EQ(html.find("{{"), std::string::npos) << "a template mark was left";
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_TRUE(json::parse(slurp(path("so/trace.json"))).contains("traceEvents"));
}

TEST_F(SignoffPage, TheUnitTimelineAddsUpToTheCycleReportsBusyCycles) {
  // The page's timeline (busy fraction per span, per unit) against the unit busy cycles an
  // independent `dla run --report json` reports: load and store DMA, and the compute
  // queue as the sum of its MAC array, requantizer and vector unit.
  ASSERT_EQ(run_dla("signoff " + path("a.json") + " -i x=" + path("x.npy") + " --out " + path("so")).code, 0);
  const json timeline = json::parse(slurp(path("so/signoff.json"))).at("timeline");
  ASSERT_EQ(run_dla("compile " + path("a.json") + " -o " + path("a.dlab")).code, 0);
  const auto run = run_dla("run " + path("a.dlab") + " --engine cycle -i x=" + path("x.npy") + " -o " + path("o") +
                           " --report json");
  ASSERT_EQ(run.code, 0) << run.out;
  const json report = json::parse(run.out).at("report");
  ASSERT_EQ(timeline.at("cycles"), report.at("cycles"));
  std::map<std::string, double> busy;  // cycles, from the fractions
  for (const auto& u : timeline.at("units")) {
    const auto fractions = u.at("busy").get<std::vector<double>>();
    ASSERT_FALSE(fractions.empty());
    for (double f : fractions) EXPECT_TRUE(f >= 0 && f <= 1) << f;
    double sum = 0;
    for (double f : fractions) sum += f;
    busy[u.at("name").get<std::string>()] = sum * report.at("cycles").get<double>() / static_cast<double>(fractions.size());
  }
  std::map<std::string, double> want;
  for (const auto& u : report.at("units")) want[u.at("name").get<std::string>()] = u.at("busy").get<double>();
  const double compute = busy["mac"] + busy["requant"] + busy["vector"];
  EXPECT_NEAR(busy["load"], want["load"], 0.01 * want["load"] + 2);
  EXPECT_NEAR(busy["store"], want["store"], 0.01 * want["store"] + 2);
  EXPECT_NEAR(compute, want["compute"], 0.01 * want["compute"] + 2);
  EXPECT_NE(slurp(path("so/index.html")).find("<svg id=\"timeline\""), std::string::npos);
}

TEST_F(SignoffPage, AFailingSignoffReadsFailAndNamesTheFirstLayer) {
  ASSERT_EQ(run_dla("compile " + path("b.json") + " -o " + path("b.dlab")).code, 0);
  const auto r = run_dla("signoff " + path("a.json") + " -i x=" + path("x.npy") + " --program " + path("b.dlab") +
                         " --engines emu --out " + path("so"));
  ASSERT_EQ(r.code, 1) << r.out;
  EXPECT_FALSE(json::parse(slurp(path("so/signoff.json"))).at("ok").get<bool>());
  const Page page(slurp(path("so/index.html")));
  EXPECT_EQ(page.status, "FAIL");
  EXPECT_EQ(page.summary.rfind("first difference in layer conv1 on emu", 0), 0u) << page.summary;
  ASSERT_EQ(page.rows.size(), 3u);
  EXPECT_EQ(page.rows[0].cls, "bad");
  EXPECT_LT(page.rows[0].equal, page.rows[0].elements);
  EXPECT_EQ(page.svgs, 1u);  // no cycle engine: saturations only
  EXPECT_FALSE(std::filesystem::exists(path("so/trace.json")));
}

}  // namespace
