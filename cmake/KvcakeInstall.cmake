# Install rules: `cmake --install <build> --prefix <dir>` gives
#   bin/kvcaked, bin/kvcakectl                 the daemon and the operator CLI
#   lib/libkvcake.so*                          the connector library
#   include/kvcake/{client,cake,kvcake_c}.h    its public headers, plus the three
#   include/kvcake/common/{status,result,block_hash}.h  they build on
#   lib/cmake/kvcake/                          find_package(kvcake) -> kvcake::kvcake
#   lib/pkgconfig/kvcake.pc                    pkg-config --cflags --libs kvcake
#   share/kvcake/python/kvcake/                the Python binding (ctypes; PYTHONPATH)
# tests/install checks that an engine builds and runs against the installed tree.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS kvcaked kvcakectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kvcake EXPORT kvcakeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} ${CMAKE_INSTALL_INCLUDEDIR}/kvcake)
install(FILES ${CMAKE_SOURCE_DIR}/client/include/kvcake/client.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/cake.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/kvcake_c.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvcake)
# client.h includes "common/status.h" etc.: they resolve next to it, and
# through include/kvcake for the headers that include each other.
install(FILES ${CMAKE_SOURCE_DIR}/common/status.h ${CMAKE_SOURCE_DIR}/common/result.h
              ${CMAKE_SOURCE_DIR}/common/block_hash.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvcake/common)

install(DIRECTORY ${CMAKE_SOURCE_DIR}/client/python/kvcake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/kvcake/python FILES_MATCHING PATTERN "*.py"
        PATTERN "__pycache__" EXCLUDE)

install(EXPORT kvcakeTargets NAMESPACE kvcake:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvcake)
file(WRITE ${CMAKE_BINARY_DIR}/kvcakeConfig.cmake.in
     "@PACKAGE_INIT@\ninclude(\"\${CMAKE_CURRENT_LIST_DIR}/kvcakeTargets.cmake\")\n")
configure_package_config_file(${CMAKE_BINARY_DIR}/kvcakeConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/kvcakeConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvcake)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kvcakeConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/kvcakeConfig.cmake ${CMAKE_BINARY_DIR}/kvcakeConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvcake)

file(WRITE ${CMAKE_BINARY_DIR}/kvcake.pc.in
     "prefix=@CMAKE_INSTALL_PREFIX@\n"
     "libdir=\${prefix}/@CMAKE_INSTALL_LIBDIR@\n"
     "includedir=\${prefix}/@CMAKE_INSTALL_INCLUDEDIR@\n\n"
     "Name: kvcake\n"
     "Description: kvcake connector library (KV-cache tiers for LLM inference)\n"
     "Version: @PROJECT_VERSION@\n"
     "Libs: -L\${libdir} -lkvcake\n"
     "Cflags: -I\${includedir} -I\${includedir}/kvcake\n")
# The prefix is only known at install time: write the .pc then.
install(CODE "
  set(CMAKE_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${CMAKE_BINARY_DIR}/kvcake.pc.in\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/kvcake.pc\" @ONLY)
")
