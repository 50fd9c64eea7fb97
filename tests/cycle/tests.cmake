# The cycle model's suites and the suite over every engine (included by tests/CMakeLists.txt
# inside if(DLA_BUILD_TESTS)).
# White-box: the timing formulas and the DRAM bus are private to sim/engines/src/cycle.
dla_add_gtest(test_cycle_units SOURCES cycle/test_timing_units.cpp LIBS dla::cycle)
target_include_directories(test_cycle_units PRIVATE ${PROJECT_SOURCE_DIR}/sim/engines/src/cycle)
# Exact cycle counts of small programs, the report, traces, many runs per process.
dla_add_gtest(test_cycle_device SOURCES cycle/test_cycle_device.cpp LIBS dla::cycle)
# `dla run --engine cycle` and `dla bench cycle` through the binary.
dla_add_gtest(test_cycle_cli SOURCES cycle/test_cycle_cli.cpp LIBS dla::sim dla::npy)
target_compile_definitions(test_cycle_cli PRIVATE DLA_TOOL_PATH="$<TARGET_FILE:dla>")
add_dependencies(test_cycle_cli dla)
# The timing tests that can fail, on compiled programs.
dla_add_gtest(test_cycle_timing SOURCES cycle/test_cycle_timing.cpp LIBS dla::cycle dla::compiler dla::random_graphs)
# One suite over every engine: the same programs, one reference.
dla_add_gtest(test_engines SOURCES cycle/test_engines.cpp LIBS dla::cycle dla::compiler dla::random_graphs)
# `dla run --trace FILE.json`: the Chrome/Perfetto trace against the program and the report.
dla_add_gtest(test_chrome_trace SOURCES cycle/test_chrome_trace.cpp LIBS dla::isa dla::npy)
target_compile_definitions(test_chrome_trace PRIVATE DLA_TOOL_PATH="$<TARGET_FILE:dla>")
add_dependencies(test_chrome_trace dla)
# The rtl engine, in builds with the RTL: a row of the suite above, and its own checks.
if(TARGET dla_rtl)
  target_link_libraries(test_engines PRIVATE dla::rtl)
  target_compile_definitions(test_engines PRIVATE DLA_HAVE_RTL=1)
  dla_add_gtest(test_rtl_engine SOURCES cycle/test_rtl_engine.cpp LIBS dla::rtl dla::compiler dla::random_graphs)
  # --trace on the rtl engine: the RTL blocks' VCD, read back by the test.
  dla_add_gtest(test_rtl_trace SOURCES cycle/test_rtl_trace.cpp LIBS dla::rtl dla::compiler)
  target_compile_definitions(test_cycle_cli PRIVATE DLA_HAVE_RTL=1)
endif()
