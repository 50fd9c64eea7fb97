// The property every input to the program reader must satisfy, shared by the libFuzzer
// target and the deterministic mutation test: parsing either succeeds or throws
// dla::FormatError; nothing else escapes, and a file that parses serializes to a file
// that parses back to the same program.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstdio>

#include "dla/error.hpp"
#include "dla/program.hpp"

namespace dla::testing {

enum class DlabOutcome { kAccepted, kRefused };

inline DlabOutcome check_dlab_input(const std::uint8_t* data, std::size_t size, bool verify_checksums) {
  ReadOptions options;
  options.verify_checksums = verify_checksums;
  Program p;
  try {
    p = parse_program(data, size, options);
  } catch (const FormatError&) {
    return DlabOutcome::kRefused;
  }
  // Accepted: the program must survive a write/read round trip unchanged.
  const std::vector<std::uint8_t> again = serialize_program(p);
  const Program q = parse_program(again.data(), again.size());
  if (!(q.instructions == p.instructions && q.constants == p.constants && q.tensors == p.tensors &&
        q.debug == p.debug && q.hw_config == p.hw_config && q.dram_size == p.dram_size && q.hw_config_hash == p.hw_config_hash)) {
    std::fprintf(stderr, "round trip changed an accepted program\n");
    std::abort();
  }
  return DlabOutcome::kAccepted;
}

}  // namespace dla::testing
