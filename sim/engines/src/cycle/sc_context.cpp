// One SystemC simulation context per run (sc_context.hpp).
#include "sc_context.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <systemc>

namespace dla::sim::cycle {
namespace {

std::mutex& kernel_mutex() {
  static std::mutex m;
  return m;
}

/// SystemC's default handler, with its display going to stderr instead of stdout.
void report_to_stderr(const sc_core::sc_report& report, const sc_core::sc_actions& actions) {
  if (actions & sc_core::SC_DISPLAY) {
    std::cerr << sc_core::sc_report_compose_message(report) << std::endl;
  }
  sc_core::sc_report_handler::default_handler(report, actions & ~sc_core::SC_DISPLAY);
}

void configure_kernel_once() {
  static const bool done = [] {
    // Read by the kernel when it creates its first context.
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "DISABLE", 1);
    sc_core::sc_report_handler::set_handler(&report_to_stderr);
    return true;
  }();
  (void)done;
}

}  // namespace

ScContext::ScContext() : lock_(kernel_mutex()) {
  configure_kernel_once();
  previous_ = sc_core::sc_curr_simcontext;
  previous_default_ = sc_core::sc_default_global_context;
  context_ = new sc_core::sc_simcontext();
  sc_core::sc_curr_simcontext = context_;
  sc_core::sc_default_global_context = context_;
}

ScContext::~ScContext() {
  delete context_;
  sc_core::sc_curr_simcontext = previous_;
  sc_core::sc_default_global_context = previous_default_;
}

}  // namespace dla::sim::cycle

/// libsystemc.so defines main() and calls sc_main() from it; every dlasim program has its
/// own main(), which the linker takes before the library's. This definition satisfies the
/// library's reference and says so if the library's main() was linked by mistake.
extern "C" int sc_main(int /*argc*/, char* /*argv*/[]) {
  std::fprintf(stderr, "dlasim: SystemC's main() ran instead of the program's; link libsystemc after the object "
                       "that defines main()\n");
  return 2;
}
