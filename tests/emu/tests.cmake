# The emulator's suites (included by tests/CMakeLists.txt inside if(DLA_BUILD_TESTS)).
dla_add_gtest(test_emu_semantics SOURCES emu/test_semantics.cpp LIBS dla::sim)
dla_add_gtest(test_emu_device SOURCES emu/test_device.cpp emu/bench_emu.cpp LIBS dla::sim)
dla_add_gtest(test_npy SOURCES emu/test_npy.cpp LIBS dla::sim dla::npy)
dla_add_gtest(test_emu_cli SOURCES emu/test_run_cli.cpp LIBS dla::sim dla::npy)
target_compile_definitions(test_emu_cli PRIVATE DLA_TOOL_PATH="$<TARGET_FILE:dla>"
  DLA_TEST_WITH_TORCH=$<BOOL:${DLA_WITH_TORCH}>)
add_dependencies(test_emu_cli dla)
dla_add_gtest(test_emu_batch SOURCES emu/test_batch.cpp LIBS dla::sim dla::compiler)
# White-box: the weight cache is private to sim/engines/src.
dla_add_gtest(test_emu_weight_cache SOURCES emu/test_weight_cache.cpp LIBS dla::sim)
target_include_directories(test_emu_weight_cache PRIVATE ${PROJECT_SOURCE_DIR}/sim/engines/src)
# White-box: the replay of a recorded schedule is private to sim/engines/src.
dla_add_gtest(test_emu_replay SOURCES emu/test_replay.cpp LIBS dla::sim dla::compiler)
target_include_directories(test_emu_replay PRIVATE ${PROJECT_SOURCE_DIR}/sim/engines/src)
