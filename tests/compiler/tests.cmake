# Compiler tests (tests/compiler/); included from tests/CMakeLists.txt.
dla_add_gtest(test_compile SOURCES compiler/test_compile.cpp LIBS dla::compiler dla::random_graphs)
dla_add_gtest(test_lut_tables SOURCES compiler/test_lut_tables.cpp LIBS dla::lut)
if(TARGET dla_sim)
  dla_add_gtest(test_differential SOURCES compiler/test_differential.cpp LIBS dla::compiler dla::random_graphs dla::sim)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/oracle_tests.cmake)
