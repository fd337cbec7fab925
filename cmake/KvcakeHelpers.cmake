# kvcake_add_test(NAME <name> SOURCES <src...> LIBS <lib...> LABELS <label...> [TIMEOUT <s>])
# Builds a GoogleTest binary into <build>/bin and registers its tests with ctest,
# labelled (unit | integration | gpu | stress ...). Tests run with the repository
# root as working directory and KVCAKE_SOURCE_DIR / KVCAKE_BIN_DIR in the env.
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
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
      ENVIRONMENT "KVCAKE_SOURCE_DIR=${CMAKE_SOURCE_DIR};KVCAKE_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
endfunction()
