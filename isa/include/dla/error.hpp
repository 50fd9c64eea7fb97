// dla/error.hpp — exception types for user-facing errors.
//
// Every error that bad input can cause is one of these, with a message that names what
// is wrong and where; the `dla` tool turns them into a one-line message and exit code 1.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace dla {

/// Base of every user-facing error (bad file, bad config, bad argument).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A hardware config that is malformed or out of range; the message names the field,
/// the value and the allowed range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// An instruction that cannot be encoded or decoded; the message names the instruction
/// and the field.
class EncodeError : public Error {
 public:
  using Error::Error;
};

/// A program file that cannot be read; `offset()` is the byte offset of the problem.
class FormatError : public Error {
 public:
  FormatError(const std::string& what, std::uint64_t offset)
      : Error(what + " (at byte offset " + std::to_string(offset) + ")"), detail_(what), offset_(offset) {}
  std::uint64_t offset() const { return offset_; }
  /// The message without the offset.
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
  std::uint64_t offset_;
};

}  // namespace dla
