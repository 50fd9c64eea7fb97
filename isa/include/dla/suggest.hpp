// dla/suggest.hpp — user input quoted in one-line messages, and "did you mean" hints for
// misspelled names (hardware config fields, graph file fields).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dla {

/// `s` as a JSON string literal (control characters escaped, so a message stays one
/// line), cut to 64 characters.
std::string quote_for_message(std::string_view s);

/// The hint after "unknown field \"key\"": " (did you mean \"name\"?)" for the known name
/// closest to `key` within edit distance 3, otherwise " (known fields: a, b, ...)".
std::string unknown_name_hint(std::string_view key, const std::vector<std::string_view>& known);

}  // namespace dla
