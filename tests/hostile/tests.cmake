# Hostile and careless input to the `dla` tool (included by tests/CMakeLists.txt inside
# if(DLA_BUILD_TESTS)): each case states its one-line error and exit code.
dla_add_gtest(test_hostile SOURCES hostile/test_hostile.cpp LIBS dla::isa dla::npy)
target_compile_definitions(test_hostile PRIVATE DLA_TOOL_PATH="$<TARGET_FILE:dla>")
add_dependencies(test_hostile dla)
