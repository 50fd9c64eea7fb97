// End-to-end tests of the `dla` binary: help, exit codes, one-line errors for every
// malformed input, and outputs that agree with the library.
#include <gtest/gtest.h>

#include "../support/run_tool.hpp"
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/sample_programs.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"

namespace {

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using Result = dla::testing::ToolResult;


std::string temp_file(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}


}  // namespace

TEST(DlaTool, HelpListsCommandsAndGlobalOptions) {
  const Result r = run_dla("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"config", "disasm", "--log-level"}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
  const Result bare = run_dla("");
  EXPECT_EQ(bare.code, 1);
  EXPECT_NE(bare.out.find("usage"), std::string::npos);
}

TEST(DlaTool, EveryCommandHasHelp) {
  for (const char* cmd : {"config --help", "disasm --help", "--help disasm"}) {
    const Result r = run_dla(cmd);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("usage: dla"), std::string::npos) << cmd << "\n" << r.out;
  }
}

TEST(DlaTool, BadCommandsAndOptionsAreUserErrors) {
  expect_user_error(run_dla("frobnicate"), "unknown command 'frobnicate'");
  expect_user_error(run_dla("--log-level loud config --doc"), "unknown log level 'loud'");
  expect_user_error(run_dla("config --no-such-flag"), "no-such-flag");
  expect_user_error(run_dla("config"), "exactly one of");
  expect_user_error(run_dla("disasm"), "program");
}

TEST(DlaConfig, PresetPrintsTheFullConfigAsJson) {
  for (const char* name : {"small", "default", "large"}) {
    const Result r = run_dla(std::string("config --preset ") + name);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(dla::HwConfig::from_json(j), dla::HwConfig::preset(name)) << name;
    EXPECT_EQ(j.size(), dla::hw_config_field_docs().size());
  }
  const Result hash = run_dla("config --preset small --hash");
  EXPECT_EQ(hash.out, dla::hash_hex(dla::HwConfig::preset("small").identity_hash()) + "\n");
  expect_user_error(run_dla("config --preset huge"), "huge");
}

TEST(DlaConfig, DocListsEveryField) {
  const Result r = run_dla("config --doc");
  ASSERT_EQ(r.code, 0);
  for (const auto& f : dla::hw_config_field_docs()) EXPECT_NE(r.out.find(f.name), std::string::npos) << f.name;
}

TEST(DlaConfig, CheckAcceptsGoodFilesAndNamesWhatIsWrongInBadOnes) {
  const std::string good = temp_file("good.json", R"({"preset": "small", "acc_bits": 24})");
  const Result ok = run_dla("config --check " + good);
  EXPECT_EQ(ok.code, 0) << ok.out;
  dla::HwConfig expect = dla::HwConfig::preset("small");
  expect.acc_bits = 24;
  EXPECT_NE(ok.out.find(dla::hash_hex(expect.identity_hash())), std::string::npos) << ok.out;

  const Result range = run_dla("config --check " + temp_file("range.json", R"({"acc_bits": 40})"));
  expect_user_error(range, "acc_bits");
  EXPECT_NE(range.out.find("40"), std::string::npos);
  EXPECT_NE(range.out.find("[8, 32]"), std::string::npos);
  expect_user_error(run_dla("config --check " + temp_file("type.json", R"({"mac_rows": "16"})")), "mac_rows");
  expect_user_error(run_dla("config --check " + temp_file("unknown.json", R"({"acc_bit": 16})")), "acc_bit");
  expect_user_error(run_dla("config --check " + temp_file("syntax.json", R"({"acc_bits": )")), "syntax.json");
  expect_user_error(run_dla("config --check " + temp_file("array.json", "[1, 2]")), "array.json");
  expect_user_error(run_dla("config --check /nonexistent/cfg.json"), "/nonexistent/cfg.json");
}

TEST(DlaDisasm, PrintsAProgramAndRefusesBadFiles) {
  const std::string path = ::testing::TempDir() + "/cli_sample.dlab";
  const dla::HwConfig small = dla::HwConfig::preset("small");
  dla::write_program_file(path, dla::testing::sample_program(small.identity_hash()));
  const Result r = run_dla("disasm " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"sections:", "tensors:", "image", "mac +pop_prev", "end"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
  EXPECT_EQ(run_dla("disasm --preset small " + path).code, 0);
  expect_user_error(run_dla("disasm --preset large " + path), "compiled for hardware config");

  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string corrupt = bytes;
  corrupt[corrupt.size() - 5] ^= 0x40;
  expect_user_error(run_dla("disasm " + temp_file("corrupt.dlab", corrupt)), "offset");
  expect_user_error(run_dla("disasm " + temp_file("short.dlab", bytes.substr(0, 70))), "truncated");
  expect_user_error(run_dla("disasm " + temp_file("empty.dlab", "")), "empty.dlab");
  expect_user_error(run_dla("disasm /nonexistent/x.dlab"), "/nonexistent/x.dlab");
}
