// dla/file_io.hpp — whole-file reads and writes for every file the tools take or make.
//
// Reads refuse anything that is not a regular file before reading a byte (a FIFO or a
// terminal would block, a directory reports a nonsense size), and files over a limit
// before allocating. Writes go to a temporary file beside the destination that is renamed
// into place only once every byte is written and the file is closed, so a reader sees the
// old file or the new one, never a torn one; a destination that is a character device
// (/dev/null, /dev/stdout, /dev/full) is written in place. Every failure is a dla::Error
// "PATH: cannot read|write WHAT: REASON" with the errno text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dla {

/// The bytes of the regular file `path`; `what` names it in errors ("program file").
std::vector<std::uint8_t> read_regular_file(const std::string& path, std::uint64_t max_bytes, const std::string& what);

/// Replaces `path` with `bytes` atomically (see above).
void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what);
inline void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes,
                                  const std::string& what) {
  write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), what);
}

/// Writes `bytes` to an open descriptor, retrying short writes; returns 0 or the errno.
int write_all(int fd, const char* data, std::size_t size);

}  // namespace dla
