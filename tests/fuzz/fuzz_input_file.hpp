// Helpers of the libFuzzer targets whose readers take a path (libtorch's container
// reader): the input as a file, and the base file a target edits.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "dla/file_io.hpp"

namespace dla::testing {

/// Writes `bytes` to this process's file of the fuzz input (in the temp directory,
/// rewritten for every input) and returns its path; `suffix` is the file's extension.
inline std::string fuzz_input_file(std::string_view bytes, const char* suffix) {
  struct File {  // removed when the fuzzer exits normally
    std::string path;
    ~File() { std::remove(path.c_str()); }
  };
  static const File file{
      (std::filesystem::temp_directory_path() / ("dla-fuzz-" + std::to_string(getpid()) + suffix)).string()};
  write_file_atomically(file.path, bytes, "fuzz input");
  return file.path;
}

/// The path in environment variable `name` (the base file that the target's text mode
/// edits), or empty after one note on stderr when it is not set.
inline std::string fuzz_base_path(const char* name) {
  const char* p = std::getenv(name);
  if (p == nullptr || *p == '\0') {
    std::fprintf(stderr, "fuzz: %s is not set: inputs of the text mode are skipped (scripts/fuzz sets it)\n", name);
    return "";
  }
  return p;
}

}  // namespace dla::testing
