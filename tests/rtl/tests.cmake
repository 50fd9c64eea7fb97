# The RTL suites (included by tests/CMakeLists.txt inside if(DLA_BUILD_TESTS) when
# DLA_BUILD_RTL is on): the generated package against the C++ tables, and the Verilated
# blocks against dla/numerics.hpp.
dla_add_gtest(test_rtl_pkg SOURCES rtl/test_rtl_pkg.cpp LIBS dla::isa)
target_compile_definitions(test_rtl_pkg PRIVATE DLA_RTL_PKG_PATH="${DLA_RTL_PKG}"
  DLA_RTL_PRESET="${DLA_RTL_PRESET}")
add_dependencies(test_rtl_pkg dla_rtl_pkg)
