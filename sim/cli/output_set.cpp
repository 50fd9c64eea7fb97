#include "output_set.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

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
constexpr const char* kLockFile = ".dla-run.lock";
constexpr const char* kStagingPrefix = ".dla-run-";

std::string crc_hex(const std::vector<std::uint8_t>& bytes) {
  std::ostringstream os;
  os << std::hex << std::setw(8) << std::setfill('0') << crc32(bytes.data(), bytes.size());
  return os.str();
}

/// A file name from a manifest that stays inside the directory: relative, no "." or ".."
/// parts. A manifest is input like any other; a crafted one must not reach elsewhere.
bool inside(const std::string& name) {
  const fs::path p(name);
  if (name.empty() || p.is_absolute()) return false;
  for (const auto& part : p) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

/// A file name from a manifest that may be removed: inside the directory, a .npy file.
bool removable(const std::string& name) { return inside(name) && fs::path(name).extension() == ".npy"; }

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

DirLock::DirLock(const fs::path& dir, bool exclusive) {
  const fs::path path = dir / kLockFile;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0 && !exclusive && (errno == EACCES || errno == EROFS)) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  // A directory we cannot write to: no run can publish into it either (ENOENT: no lock
  // file, from the fallback open above).
  if (fd_ < 0 && !exclusive && (errno == EACCES || errno == EROFS || errno == ENOENT)) return;
  if (fd_ < 0) throw Error("cannot open lock file '" + path.string() + "': " + std::strerror(errno));
  const int mode = exclusive ? LOCK_EX : LOCK_SH;
  if (::flock(fd_, mode | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK) {
    spdlog::warn("waiting for another dla run to finish publishing its outputs into '{}' (lock {})", dir.string(),
                 path.string());
    int rc;
    while ((rc = ::flock(fd_, mode)) != 0 && errno == EINTR) {
    }
    if (rc == 0) return;
  }
  const int err = errno;
  ::close(fd_);
  throw Error("cannot lock '" + path.string() + "': " + std::strerror(err));
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::vector<std::string> verify_output_set(const fs::path& dir, std::size_t* listed) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("'" + dir.string() + "' is not a directory");
  const DirLock lock(dir, false);
  const std::string manifest_path = (dir / kManifest).string();
  const auto bytes = read_regular_file(manifest_path, std::uint64_t{64} << 20, "manifest");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(manifest_path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || j.value("format", "") != "dla-run-manifest" || !j.contains("files") || !j["files"].is_array()) {
    throw Error(manifest_path + ": not a dla run manifest (format \"dla-run-manifest\" with a \"files\" list)");
  }
  std::vector<std::string> problems;
  std::set<std::string> names;
  std::size_t n = 0;
  for (const auto& f : j["files"]) {
    const std::string where = manifest_path + ": files[" + std::to_string(n++) + "]";
    if (!f.is_object() || !f.contains("file") || !f["file"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned() || !f.contains("crc32") || !f["crc32"].is_string()) {
      throw Error(where + " lacks \"file\", \"bytes\" or \"crc32\"");
    }
    const std::string name = f["file"];
    if (!inside(name)) throw Error(where + ": '" + name + "' is not a path inside the directory");
    names.insert(name);
    const fs::path p = dir / name;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      problems.push_back("missing: " + name);
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      problems.push_back("not a regular file: " + name);
      continue;
    }
    std::vector<std::uint8_t> data;
    try {
      data = read_regular_file(p.string(), std::uint64_t{1} << 40, "output file");
    } catch (const Error& e) {
      problems.push_back(std::string("unreadable: ") + e.what());
      continue;
    }
    const std::uint64_t want_bytes = f["bytes"];
    const std::string want_crc = f["crc32"];
    if (data.size() != want_bytes) {
      problems.push_back("size differs: " + name + " has " + std::to_string(data.size()) + " bytes, the manifest says " +
                         std::to_string(want_bytes));
    } else if (crc_hex(data) != want_crc) {
      problems.push_back("CRC-32 differs: " + name + " has " + crc_hex(data) + ", the manifest says " + want_crc);
    }
  }
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), dir).generic_string();
    if (it.depth() == 0 && rel.rfind(kStagingPrefix, 0) == 0) {  // a run's staging directory (or the lock)
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (rel == kManifest || rel == kLockFile || it->is_directory() || names.count(rel)) continue;
    problems.push_back("not in the manifest: " + rel);
  }
  if (ec) throw Error("cannot list '" + dir.string() + "': " + ec.message());
  if (listed != nullptr) *listed = names.size();
  return problems;
}

void make_directory(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && !fs::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) throw Error("cannot create " + what + " '" + dir.string() + "': " + ec.message());
}

OutputSet::OutputSet(fs::path dir) : dir_(std::move(dir)) {
  make_directory(dir_, "output directory");
  std::string name = (dir_ / (std::string(kStagingPrefix) + "XXXXXX")).string();
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
  const DirLock lock(dir_, true);  // one run publishes at a time; the previous manifest is its own
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
