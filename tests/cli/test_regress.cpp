// `dla regress` through the binary: a small run passes on every engine built, its table
// names every case and its JUnit XML (read by Python's XML parser, not by us) has the
// right counts; a run with a wrong reference fails naming the case; bad options are one
// clear error.
#include <gtest/gtest.h>

#include <string>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::ToolResult;

namespace {

#ifdef DLA_HAVE_RTL
constexpr int kEngines = 3;
#else
constexpr int kEngines = 2;
#endif
constexpr int kBadCases = 5;  // truncated header and payload, bit flips in each, another config

class Regress : public dla::testing::ScratchDirTest {
 protected:
  Regress() : ScratchDirTest("regress") {}
  /// "TESTS FAILURES TESTCASES FAILURE-ELEMENTS" of a JUnit file, parsed by Python.
  static std::string junit_counts(const std::string& file) {
    FILE* pipe = popen(("/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1])"
                        ".getroot().find(\"testsuite\"); print(s.get(\"tests\"), s.get(\"failures\"), "
                        "len(s.findall(\"testcase\")), len(s.findall(\"testcase/failure\")))' " + file + " 2>&1")
                           .c_str(),
                       "r");
    std::string out;
    char buf[256];
    for (std::size_t n; pipe != nullptr && (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    if (pipe != nullptr) pclose(pipe);
    return out;
  }
};

TEST_F(Regress, SmallRunPassesOnEveryEngineWithJUnit) {
  const ToolResult r = run_dla("regress --seeds 1 --junit " + path("r.xml"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("regress: PASS: " + std::to_string(1 + 3 + kBadCases) + " cases on " +
                       std::to_string(kEngines) + " engine(s)"), std::string::npos) << r.out;
  for (const char* c : {"resnet18/32 ", "random/small/1005 ", "random/default/1007 ", "random/large/1005 "}) {
    EXPECT_NE(r.out.find(std::string(c)), std::string::npos) << c << "\n" << r.out;
  }
  // The bad programs are refused with the loader's own words, on every engine.
  EXPECT_NE(r.out.find("refused  program was compiled for hardware config"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ACCEPTED"), std::string::npos) << r.out;
  const int runs = (1 + 3 + kBadCases) * kEngines;
  EXPECT_EQ(junit_counts(path("r.xml")),
            std::to_string(runs) + " 0 " + std::to_string(runs) + " 0\n");
}

TEST_F(Regress, AWrongReferenceFailsNamingTheCase) {
  const ToolResult r = run_dla("regress --seeds 2 --resnet-size 0 --engines emu,cycle --fault-reference random/default/8926 "
                               "--junit " + path("r.xml"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("regress: FAIL: 2 of " + std::to_string((6 + kBadCases) * 2) +
                       " case runs failed in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first: case 'random/default/8926' on emu: MISMATCH layer '"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("element 0: expected "), std::string::npos) << r.out;
  const int runs = (6 + kBadCases) * 2;
  EXPECT_EQ(junit_counts(path("r.xml")), std::to_string(runs) + " 2 " + std::to_string(runs) + " 2\n");
}

TEST_F(Regress, BadOptionsAreOneError) {
  expect_user_error(run_dla("regress --engines emu,nope"), "unknown engine 'nope'");
  expect_user_error(run_dla("regress --seeds -1"), "--seeds -1 is out of range");
  expect_user_error(run_dla("regress --seeds 0 --fault-reference random/small/9"),
                    "--fault-reference: no case 'random/small/9' in this run");
}

}  // namespace
