// The per-layer comparison of `dla signoff` (signoff_checks.hpp).
#include "signoff_checks.hpp"

#include <cstring>
#include <iomanip>
#include <sstream>

namespace dla::cli {

LayerCheck compare(const std::string& engine, const std::string& layer, const HostTensor& want, const HostTensor& got) {
  LayerCheck c;
  c.engine = engine;
  c.layer = layer;
  c.elements = want.values.size();
  if (got.values.size() != want.values.size()) {
    c.first_diff = 0;
    c.expected = static_cast<std::int64_t>(want.values.size());
    c.actual = static_cast<std::int64_t>(got.values.size());
    return c;
  }
  for (std::size_t i = 0; i < want.values.size(); ++i) {
    if (want.values[i] == got.values[i]) {
      ++c.equal;
    } else if (c.first_diff < 0) {
      c.first_diff = static_cast<std::int64_t>(i);
      c.expected = want.values[i];
      c.actual = got.values[i];
    }
  }
  return c;
}

LayerCheck compare_reals(const std::string& engine, const std::string& layer, const std::vector<float>& want,
                         const std::vector<float>& got) {
  LayerCheck c;
  c.engine = engine;
  c.layer = layer;
  c.reals = true;
  c.elements = want.size();
  if (got.size() != want.size()) {
    c.first_diff = 0;
    c.expected_real = static_cast<double>(want.size());
    c.actual_real = static_cast<double>(got.size());
    return c;
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&want[i], &got[i], sizeof(float)) == 0) {  // bit for bit: -0 and NaN payloads too
      ++c.equal;
    } else if (c.first_diff < 0) {
      c.first_diff = static_cast<std::int64_t>(i);
      c.expected_real = want[i];
      c.actual_real = got[i];
    }
  }
  return c;
}

std::string difference_text(const LayerCheck& c) {
  if (c.ok()) return "";
  std::ostringstream s;
  if (c.elements != 0 && c.first_diff == 0 && c.equal == 0 && !c.reals && c.expected == static_cast<std::int64_t>(c.elements)) {
    s << "element count: expected " << c.expected << ", got " << c.actual;
    return s.str();
  }
  s << "element " << c.first_diff << ": expected ";
  if (c.reals) {
    s << std::setprecision(9) << c.expected_real << ", got " << c.actual_real;
  } else {
    s << c.expected << ", got " << c.actual;
  }
  return s.str();
}

}  // namespace dla::cli
