#include "dla/suggest.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace dla {
namespace {

constexpr std::size_t kMaxShown = 64;

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string quote_for_message(std::string_view s) {
  const std::string cut = s.size() > kMaxShown ? std::string(s.substr(0, kMaxShown - 3)) + "..." : std::string(s);
  return nlohmann::json(cut).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string unknown_name_hint(std::string_view key, const std::vector<std::string_view>& known) {
  std::string_view best;
  std::size_t best_distance = 4;  // suggest only within edit distance 3
  for (std::string_view candidate : known) {
    const std::size_t d = edit_distance(key.substr(0, kMaxShown), candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  if (!best.empty()) return " (did you mean \"" + std::string(best) + "\"?)";
  std::string list;
  for (std::string_view name : known) list += (list.empty() ? "" : ", ") + std::string(name);
  return " (known fields: " + list + ")";
}

}  // namespace dla
