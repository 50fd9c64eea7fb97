# Installation: headers, the libraries as an exported CMake package (find_package(dlasim)
# gives dla::isa, dla::sim, dla::cycle, dla::lut, dla::compiler, dla::npy), the dla tool, and the
# dlasim Python package with its op library next to it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_dla_exported dla_isa dla_sim dla_cycle dla_npy dla_lut dla_compiler)
foreach(target ${_dla_exported})
  string(REGEX REPLACE "^dla_" "" export_name ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
endforeach()
# Private link-only dependencies of the static libraries travel with the export.
set_target_properties(dla_warnings PROPERTIES EXPORT_NAME warnings)

install(TARGETS ${_dla_exported} dla_warnings
  EXPORT dlasimTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY
    ${PROJECT_SOURCE_DIR}/isa/include/
    ${PROJECT_SOURCE_DIR}/sim/engines/include/
    ${PROJECT_SOURCE_DIR}/sim/cli/include/
    ${PROJECT_SOURCE_DIR}/compiler_backend/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  # The rtl engine is in the installed dla tool, not in the exported libraries.
  PATTERN "rtl.hpp" EXCLUDE)
install(TARGETS dla RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(_dla_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/dlasim)
install(EXPORT dlasimTargets NAMESPACE dla:: DESTINATION ${_dla_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dlasimConfig.cmake.in
  ${PROJECT_BINARY_DIR}/dlasimConfig.cmake INSTALL_DESTINATION ${_dla_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dlasimConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dlasimConfig.cmake ${PROJECT_BINARY_DIR}/dlasimConfigVersion.cmake
  DESTINATION ${_dla_cmake_dir})

if(DLA_WITH_TORCH)
  # Debian's python3 looks in <prefix>/lib/python3.X/dist-packages; the package finds
  # libdla_qat.so next to itself, so no PYTHONPATH or DLASIM_QAT_LIBRARY is needed.
  execute_process(COMMAND /usr/bin/python3 -c "import sys; print('%d.%d' % sys.version_info[:2])"
    OUTPUT_VARIABLE _dla_py_version OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT _dla_py_version)
    set(_dla_py_version 3)
  endif()
  set(DLA_PYTHON_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/python${_dla_py_version}/dist-packages" CACHE STRING
    "Where `cmake --install` puts the dlasim Python package and its op library (relative to the prefix)")
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/qat_bridge/python/dlasim DESTINATION ${DLA_PYTHON_INSTALL_DIR}
    PATTERN __pycache__ EXCLUDE)
  install(TARGETS dla_qat LIBRARY DESTINATION ${DLA_PYTHON_INSTALL_DIR}/dlasim)
  # The tool runs the host steps of segmented programs through the op library: it finds it
  # where the Python package has it.
  file(RELATIVE_PATH _dla_bin_to_qat /${CMAKE_INSTALL_BINDIR} /${DLA_PYTHON_INSTALL_DIR}/dlasim)
  set_target_properties(dla PROPERTIES INSTALL_RPATH "$ORIGIN/${_dla_bin_to_qat}")
endif()
