// Every engine behind the device API, for the suites that run all of them on the same
// programs (habit 5 of STYLE.md). A new engine is one row; the rtl engine is a row in
// builds with the RTL (DLA_HAVE_RTL).
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "dla/cycle.hpp"
#include "dla/device.hpp"
#ifdef DLA_HAVE_RTL
#include "dla/rtl.hpp"
#endif

namespace engines_test {

struct Engine {
  const char* name;
  std::unique_ptr<dla::sim::Device> (*make)(const dla::HwConfig& config);
};

inline std::unique_ptr<dla::sim::Device> make_cycle(const dla::HwConfig& config) {
  return dla::sim::make_cycle_model(config);
}

#ifdef DLA_HAVE_RTL
inline std::unique_ptr<dla::sim::Device> make_rtl(const dla::HwConfig& config) {
  return dla::sim::make_rtl_engine(config);
}
#endif

inline const Engine kEngines[] = {
    {"emu", dla::sim::make_emulator},
    {"cycle", make_cycle},
#ifdef DLA_HAVE_RTL
    {"rtl", make_rtl},
#endif
};

inline std::ostream& operator<<(std::ostream& os, const Engine& e) { return os << e.name; }

}  // namespace engines_test
