// The files one `dla run` writes into its output directory, published as a set: they are
// written into a staging directory inside it and moved into place only once all of them
// are complete, then the manifest (DIR/manifest.json: every file with its size and CRC-32)
// replaces the previous one, and files the previous manifest listed that this run did not
// write are removed. A failed run leaves the previous set as it was; a file is never torn;
// a reader that checks the files against the manifest never mistakes a mix of two runs
// for one. A destination that is a character device (a link to /dev/null) is written in
// place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dla::cli {

/// Creates `dir` and its parents unless it is a directory already; errors name `what`
/// and the errno text.
void make_directory(const std::filesystem::path& dir, const std::string& what);

class OutputSet {
 public:
  /// Creates `dir` (if needed) and the staging directory inside it.
  explicit OutputSet(std::filesystem::path dir);
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  /// Stages `bytes` as `relative` ("fc.npy", "layers/c1.npy"); returns the path the file
  /// will have once published. `what` names the file in errors.
  std::string add(const std::string& relative, const std::vector<std::uint8_t>& bytes, const std::string& what);
  /// Publishes the staged files and the manifest (`about` plus the file list).
  void commit(nlohmann::json about);

 private:
  std::filesystem::path dir_;
  std::filesystem::path staging_;
  nlohmann::json files_ = nlohmann::json::array();
};

}  // namespace dla::cli
