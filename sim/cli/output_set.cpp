#include "output_set.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <set>
#include <sstream>

#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/program.hpp"

namespace fs = std::filesystem;

namespace dla::cli {
namespace {

constexpr const char* kManifest = "manifest.json";

std::string crc_hex(const std::vector<std::uint8_t>& bytes) {
  std::ostringstream os;
  os << std::hex << std::setw(8) << std::setfill('0') << crc32(bytes.data(), bytes.size());
  return os.str();
}

/// A file name from a manifest that may be removed: relative, inside the directory, a
/// .npy file. A manifest is input like any other; a crafted one must not delete elsewhere.
bool removable(const std::string& name) {
  const fs::path p(name);
  if (name.empty() || p.is_absolute() || p.extension() != ".npy") return false;
  for (const auto& part : p) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

/// The files the manifest in `dir` lists (none when it is missing or unreadable).
std::set<std::string> previous_files(const fs::path& dir) {
  std::set<std::string> files;
  try {
    const auto bytes = read_regular_file((dir / kManifest).string(), std::uint64_t{64} << 20, "manifest");
    const auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
    for (const auto& f : j.at("files")) files.insert(f.at("file").get<std::string>());
  } catch (const std::exception&) {
    // No previous set to clean up after.
  }
  return files;
}

bool is_char_device(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

void make_directory(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && !fs::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) throw Error("cannot create " + what + " '" + dir.string() + "': " + ec.message());
}

OutputSet::OutputSet(fs::path dir) : dir_(std::move(dir)) {
  make_directory(dir_, "output directory");
  std::string name = (dir_ / ".dla-run-XXXXXX").string();
  if (::mkdtemp(name.data()) == nullptr) {
    throw Error("cannot create a staging directory in output directory '" + dir_.string() + "': " +
                std::strerror(errno));
  }
  staging_ = name;
}

OutputSet::~OutputSet() {
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

std::string OutputSet::add(const std::string& relative, const std::vector<std::uint8_t>& bytes, const std::string& what) {
  const fs::path final_path = dir_ / relative;
  if (is_char_device(final_path)) {
    write_file_atomically(final_path.string(), bytes, what);
    return final_path.string();
  }
  const fs::path staged = staging_ / relative;
  make_directory(staged.parent_path(), "staging directory");
  write_file_atomically(staged.string(), bytes, what);
  files_.push_back({{"file", relative}, {"bytes", bytes.size()}, {"crc32", crc_hex(bytes)}});
  return final_path.string();
}

void OutputSet::commit(nlohmann::json about) {
  std::set<std::string> stale = previous_files(dir_);
  for (const auto& f : files_) {
    const std::string relative = f["file"].get<std::string>();
    const fs::path to = dir_ / relative;
    make_directory(to.parent_path(), "output directory");
    std::error_code ec;
    fs::rename(staging_ / relative, to, ec);
    if (ec) throw Error(to.string() + ": cannot write output file: " + ec.message());
    stale.erase(relative);
  }
  for (const auto& name : stale) {
    std::error_code ec;
    if (removable(name)) fs::remove(dir_ / name, ec);  // best effort: the manifest tells what is current
  }
  about["files"] = files_;
  write_file_atomically((dir_ / kManifest).string(), about.dump(2) + "\n", "manifest");
}

}  // namespace dla::cli
