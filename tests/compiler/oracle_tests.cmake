# External-oracle tests of the compiler and the emulator (tests/compiler/); included from
# tests/compiler/tests.cmake, which is included from tests/CMakeLists.txt (dla_add_gtest).
if(TARGET dla_sim)
  # ONNX backend node tests ConvInteger / MatMulInteger (Debian package libonnx-testdata).
  set(DLA_ONNX_NODE_DIR "/usr/share/libonnx-testdata/data/node" CACHE PATH
      "Folder of the ONNX backend node tests (libonnx-testdata)")
  if(EXISTS "${DLA_ONNX_NODE_DIR}/test_matmulinteger/model.onnx")
    dla_add_gtest(test_onnx_oracle SOURCES compiler/onnx_oracle.cpp LIBS dla::compiler dla::sim)
    target_compile_definitions(test_onnx_oracle PRIVATE DLA_ONNX_NODE_DIR="${DLA_ONNX_NODE_DIR}")
  else()
    # An oracle that silently disappears is a skipped test: refuse to configure instead.
    message(FATAL_ERROR "ONNX node test data not found in ${DLA_ONNX_NODE_DIR} "
                        "(scripts/setup installs libonnx-testdata)")
  endif()

  # libtorch's quantized conv2d / linear (onednn, qnnpack) with power-of-two scales.
  if(DLA_WITH_TORCH)
    dla_add_gtest(test_torch_oracle SOURCES compiler/torch_oracle.cpp
      LIBS dla::compiler dla::sim ${TORCH_LIBRARIES})
  endif()
endif()
