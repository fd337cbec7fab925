# kvcake_add_test(NAME <name> SOURCES <src...> LIBS <lib...> LABELS <label...> [TIMEOUT <s>])
# Builds a GoogleTest binary into <build>/bin and registers each of its tests
# with ctest, labelled (unit | integration | gpu | tsan ...). Tests run with the
# repository root as working directory and KVCAKE_SOURCE_DIR / KVCAKE_BIN_DIR
# in the environment.
#
# List-valued properties (several labels, several environment variables) do
# not survive gtest_discover_tests' PROPERTIES, so they are applied by a small
# script ctest includes after the discovered tests.
function(kvcake_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT KVCAKE_BUILD_TESTS)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${T_NAME}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    DISCOVERY_TIMEOUT 60
    TEST_LIST ${T_NAME}_TESTS)
  set(props "${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}_properties.cmake")
  file(WRITE ${props}
    "if(DEFINED ${T_NAME}_TESTS)\n"
    "  set_tests_properties(\${${T_NAME}_TESTS} PROPERTIES\n"
    "    LABELS \"${T_LABELS}\"\n"
    "    TIMEOUT ${T_TIMEOUT}\n"
    "    ENVIRONMENT \"KVCAKE_SOURCE_DIR=${CMAKE_SOURCE_DIR};KVCAKE_BIN_DIR=${CMAKE_BINARY_DIR}/bin\")\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${props})
endfunction()
