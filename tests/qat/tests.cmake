# Tests of the QAT bridge (qat_bridge/): included by tests/CMakeLists.txt inside
# if(DLA_BUILD_TESTS). The bridge exists only when libtorch is there (DLA_WITH_TORCH).
if(TARGET dla_qat)
  # The integer kernels against naive loops (no libtorch headers: quick to build).
  dla_add_gtest(test_qat_kernels SOURCES qat/test_qat_kernels.cpp LIBS dla::qat)
  # The C++ API through the dispatcher, autograd, errors and the C++ modules.
  dla_add_gtest(test_qat_modules SOURCES qat/test_qat_modules.cpp LIBS dla::qat)
  # The hardware rules of isa/ as the compiler, the engines and the bridge apply them.
  if(TARGET dla_sim AND TARGET dla_compiler)
    dla_add_gtest(test_hw_rules SOURCES qat/test_hw_rules.cpp LIBS dla::qat dla::compiler dla::sim)
  endif()

  # The worked example trains briefly and fails if the loss does not go down.
  add_test(NAME qat_example COMMAND dla_qat_example --steps 30)

  # The Python package and the ops from Python: one ctest test per pytest file, run by
  # Debian's python3 (python3-torch 1.13, python3-pytest, python3-numpy).
  foreach(py ops modules)
    add_test(NAME qat_pytest_${py}
      COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
              ${CMAKE_CURRENT_SOURCE_DIR}/qat/test_${py}.py)
    set_tests_properties(qat_pytest_${py} PROPERTIES
      ENVIRONMENT "DLASIM_QAT_LIBRARY=$<TARGET_FILE:dla_qat>;PYTHONPATH=${PROJECT_SOURCE_DIR}/qat_bridge/python;PYTHONDONTWRITEBYTECODE=1"
      TIMEOUT 300)
  endforeach()

  # dla::lut (activation tables) from Python: forward, derivative backward, training.
  add_test(NAME qat_pytest_lut
    COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/qat/test_lut.py)
  set_tests_properties(qat_pytest_lut PROPERTIES
    ENVIRONMENT "DLASIM_QAT_LIBRARY=$<TARGET_FILE:dla_qat>;PYTHONPATH=${PROJECT_SOURCE_DIR}/qat_bridge/python;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300)

  # The PyTorch workflow (prepare_qat, plans, observers, export and its integer replay,
  # DDP with two gloo processes, Fashion-MNIST): one ctest test per file of qat/workflow.
  # Fashion-MNIST comes from Debian's dataset-fashion-mnist (scripts/setup installs it).
  # qat_workflow_signoff compiles the exports with `dla compile` and runs them on the
  # emulator.
  set(_qat_dla_tool ";DLA_TOOL=$<TARGET_FILE:dla>")
  foreach(py models plan observers ddp fashion_mnist signoff compile_export device signoff_report export_integrity
                 float_islands host_segments segmented_signoff regress_models torchvision damaged_files
                 bn_fold_grad)
    add_test(NAME qat_workflow_${py}
      COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
              ${CMAKE_CURRENT_SOURCE_DIR}/qat/workflow/test_${py}.py)
    set_tests_properties(qat_workflow_${py} PROPERTIES
      ENVIRONMENT "DLASIM_QAT_LIBRARY=$<TARGET_FILE:dla_qat>;PYTHONPATH=${PROJECT_SOURCE_DIR}/qat_bridge/python;PYTHONDONTWRITEBYTECODE=1;OMP_NUM_THREADS=1${_qat_dla_tool}"
      TIMEOUT 300)
  endforeach()
  # Stock activations (SiLU, hardswish, ...) on the table unit: prepare, export, compile,
  # sign-off on emu, cycle and rtl (where the build has the rtl engine).
  add_test(NAME qat_workflow_lut_models
    COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/qat/workflow/test_lut_models.py)
  set_tests_properties(qat_workflow_lut_models PROPERTIES
    ENVIRONMENT "DLASIM_QAT_LIBRARY=$<TARGET_FILE:dla_qat>;PYTHONPATH=${PROJECT_SOURCE_DIR}/qat_bridge/python;PYTHONDONTWRITEBYTECODE=1;OMP_NUM_THREADS=1${_qat_dla_tool}"
    TIMEOUT 300)
endif()

# The README's main job, quick: train, QAT, export, compile, the test subset on the
# emulator (equal to the QAT eval forward image by image) and sign-off on emu and cycle.
if(TARGET dla_qat)
  add_test(NAME demo_quick
    COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/scripts/demo.py --quick --out ${CMAKE_BINARY_DIR}/demo-test)
  set_tests_properties(demo_quick PROPERTIES
    ENVIRONMENT "DLASIM_QAT_LIBRARY=$<TARGET_FILE:dla_qat>;DLA_TOOL=$<TARGET_FILE:dla>;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 900)
endif()
