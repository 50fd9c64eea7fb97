// The per-layer comparison of `dla signoff` (signoff_checks.hpp).
#include "signoff_checks.hpp"

#include <cmath>
#include <cstring>
#include <limits>
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

std::vector<float> reals_of(const HostTensor& t) {
  std::vector<float> out(t.values.size());
  const double scale = std::ldexp(1.0, -t.frac);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(static_cast<double>(t.values[i]) * scale);
  return out;
}

std::optional<double> sqnr_db(const std::vector<float>& reference, const std::vector<float>& values) {
  if (reference.size() != values.size()) return std::nullopt;
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double r = reference[i], d = r - static_cast<double>(values[i]);
    signal += r * r;
    noise += d * d;
  }
  if (noise == 0) return std::numeric_limits<double>::infinity();
  if (signal == 0) return -std::numeric_limits<double>::infinity();
  return 10 * std::log10(signal / noise);
}

void set_sqnr(LayerCheck& check, const FloatValues& floats, const std::vector<float>& values) {
  const auto it = floats.find(check.layer);
  if (it != floats.end()) check.sqnr_db = sqnr_db(it->second, values);
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
