// Runs the `dla` binary (DLA_TOOL_PATH, set by CMake) and checks its user-error contract.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace dla::testing {

struct ToolResult {
  int code;         ///< exit code, or 128 + signal
  std::string out;  ///< stdout and stderr together
};

inline ToolResult run_dla(const std::string& args) {
  const std::string cmd = std::string(DLA_TOOL_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

/// A user error: exit code 1 and one line that starts with "dla: error:" and says `what`.
inline void expect_user_error(const ToolResult& r, const std::string& what) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("dla: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(what), std::string::npos) << r.out << "\nexpected: " << what;
}

}  // namespace dla::testing
