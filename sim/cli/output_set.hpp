// The files one `dla run` writes into its output directory, published as a set: they are
// written into a staging directory inside it and moved into place only once all of them
// are complete, then the manifest (DIR/manifest.json: every file with its size and CRC-32)
// replaces the previous one, and files the previous manifest listed that this run did not
// write are removed. A failed run leaves the previous set as it was; a file is never torn;
// a reader that checks the files against the manifest never mistakes a mix of two runs
// for one. A destination that is a character device (a link to /dev/null) is written in
// place.
//
// Concurrent runs into one directory: each stages into a directory of its own, and the
// publishing (renames, stale-file removal, manifest) holds an exclusive lock on
// DIR/.dla-run.lock (flock, released when the process ends however it ends). A run that
// finds the lock held says so on stderr and waits for it, so the runs publish one after
// the other and the directory holds the complete set of the last one, never a mix.
// `dla verify DIR` takes the lock shared, so it never reads a set half published.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dla::cli {

/// An flock on DIR/.dla-run.lock (created if missing), held for the object's lifetime.
/// Waits while another process holds it in a conflicting mode, after logging a warning
/// naming the directory. Errors name the lock file and the errno text.
class DirLock {
 public:
  DirLock(const std::filesystem::path& dir, bool exclusive);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

/// What is wrong with the set of files in `dir` against its manifest.json: files it lists
/// that are missing, not regular files, or differ in size or CRC-32; regular files it does
/// not list (the manifest, the lock file and staging directories of runs aside). Empty
/// when the set is intact. Throws dla::Error when there is no readable manifest.
/// `listed` receives the number of files the manifest lists.
std::vector<std::string> verify_output_set(const std::filesystem::path& dir, std::size_t* listed);

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
