#include "dla/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "dla/error.hpp"

namespace dla {
namespace {

std::string errno_text(int err) {
  if (err == ENOENT) return "no such file";
  if (err == EISDIR) return "is a directory";
  return std::strerror(err);
}

/// Why a file of this mode cannot be read or replaced as a whole; "" for a regular file.
std::string not_regular(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(mode)) return "is a character device, not a regular file";
  if (S_ISBLK(mode)) return "is a block device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

/// Closes on scope exit (error paths).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  /// close() reports late write errors (NFS, quota); 0 or the errno.
  int release() {
    const int rc = ::close(fd);
    fd = -1;
    return rc == 0 ? 0 : errno;
  }
};

}  // namespace

int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

std::vector<std::uint8_t> read_regular_file(const std::string& path, std::uint64_t max_bytes, const std::string& what) {
  const std::string prefix = path + ": cannot read " + what + ": ";
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below refuses it.
  Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
  if (f.fd < 0) throw Error(prefix + errno_text(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error(prefix + errno_text(errno));
  const std::string why = not_regular(st.st_mode);
  if (!why.empty()) throw Error(prefix + why);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    throw Error(prefix + "it is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max_bytes));
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(f.fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(prefix + errno_text(errno));
    if (n == 0) throw Error(prefix + "the file shrank while it was read");
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what) {
  const std::string prefix = path + ": cannot write " + what + ": ";
  std::string target = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISCHR(st.st_mode)) {
      Fd f{::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY)};
      if (f.fd < 0) throw Error(prefix + std::strerror(errno));
      if (const int err = write_all(f.fd, bytes.data(), bytes.size())) throw Error(prefix + std::strerror(err));
      if (const int err = f.release()) throw Error(prefix + std::strerror(err));
      return;
    }
    const std::string why = not_regular(st.st_mode);
    if (!why.empty()) throw Error(prefix + why);
    // A link to a regular file: replace the file it names, not the link.
    std::error_code ec;
    if (std::filesystem::is_symlink(path, ec)) {
      const auto real = std::filesystem::canonical(path, ec);
      if (!ec) target = real.string();
    }
  }
  // A name no other writer uses: O_EXCL fails on a clash, the next suffix is tried.
  std::string temp;
  Fd f;
  for (int attempt = 0; f.fd < 0; ++attempt) {
    temp = target + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(attempt);
    f.fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f.fd < 0 && (errno != EEXIST || attempt == 99)) throw Error(prefix + std::strerror(errno));
  }
  int err = write_all(f.fd, bytes.data(), bytes.size());
  if (err == 0) err = f.release();
  if (err == 0 && ::rename(temp.c_str(), target.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(temp.c_str());
    throw Error(prefix + std::strerror(err));
  }
}

}  // namespace dla
