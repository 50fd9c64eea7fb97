# The RTL suites (included by tests/CMakeLists.txt inside if(DLA_BUILD_TESTS) when
# DLA_BUILD_RTL is on): the generated package against the C++ tables, and the Verilated
# blocks against dla/numerics.hpp.
dla_add_gtest(test_rtl_pkg SOURCES rtl/test_rtl_pkg.cpp LIBS dla::isa)
target_compile_definitions(test_rtl_pkg PRIVATE DLA_RTL_PKG_PATH="${DLA_RTL_PKG}"
  DLA_RTL_PRESET="${DLA_RTL_PRESET}")
add_dependencies(test_rtl_pkg dla_rtl_pkg)

# The Verilated blocks against dla/numerics.hpp (the C++ contract, not the RTL).
add_executable(test_rtl_blocks rtl/test_rtl_requant.cpp rtl/test_rtl_mac_array.cpp
  rtl/test_rtl_vadd.cpp rtl/test_rtl_vlut.cpp rtl/test_rtl_vpool.cpp rtl/test_rtl_ctrl.cpp rtl/test_rtl_sram.cpp)
target_link_libraries(test_rtl_blocks PRIVATE dla::rtl_models dla::isa GTest::gtest
  GTest::gtest_main dla::warnings)
# Verilator's headers are not held to dlasim's warning flags.
get_target_property(dla_rtl_includes dla_rtl_models INTERFACE_INCLUDE_DIRECTORIES)
target_include_directories(test_rtl_blocks SYSTEM PRIVATE ${dla_rtl_includes})
target_compile_definitions(test_rtl_blocks PRIVATE DLA_RTL_PRESET="${DLA_RTL_PRESET}")
gtest_discover_tests(test_rtl_blocks DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60)

# verilator --lint-only -Wall on every block.
find_program(DLA_VERILATOR verilator REQUIRED)
foreach(top ${DLA_RTL_TOPS})
  add_test(NAME RtlLint.${top}
    COMMAND ${DLA_VERILATOR} --lint-only -Wall --top-module ${top} ${DLA_RTL_SOURCES})
endforeach()
# The rtl engine's SRAMs: dla_sram with the package's ACT and ACC geometry.
foreach(geometry ACT ACC)
  add_test(NAME RtlLint.dla_sram_${geometry}
    COMMAND ${DLA_VERILATOR} --lint-only -Wall --top-module dla_sram -G${geometry}_GEOMETRY=1 ${DLA_RTL_SOURCES})
endforeach()
