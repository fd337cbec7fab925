# Install rules: `cmake --install <build> --prefix <dir>` gives
#   bin/kvcaked, bin/kvcakectl                 the daemon and the operator CLI
#   lib/libkvcake.so*                          the connector library
#   include/kvcake/*.h                         its public headers, self-contained
#                                              (docs/api.md), version.h generated
#   lib/cmake/kvcake/                          find_package(kvcake) -> kvcake::kvcake
#   lib/pkgconfig/kvcake.pc                    pkg-config --cflags --libs kvcake (C++)
#   lib/pkgconfig/kvcake-c.pc                  the same for C engines (no -std=c++20)
#   share/kvcake/python/                       the Python client: pip install it, or put
#                                              it on PYTHONPATH
# What a consumer needs comes with the package: kvcake::kvcake carries C++20 (a compile
# feature) and the include directories, the .pc files carry -std=c++20 (C++ only), the
# include directories and an rpath to <prefix>/lib; the installed tools find the library
# through their own rpath ($ORIGIN/../lib). tests/install checks that an engine builds
# and runs against the installed tree, with the README's recipes as written.
include(CMakePackageConfigHelpers)

set_target_properties(kvcaked kvcakectl PROPERTIES
                      INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS kvcaked kvcakectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kvcake EXPORT kvcakeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The public headers include each other as "kvcake/<name>.h" and nothing
# outside kvcake/ but the standard library.
install(FILES ${CMAKE_SOURCE_DIR}/client/include/kvcake/cake.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/client.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/export.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/hash_chain.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/kvcake_c.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/result.h
              ${CMAKE_SOURCE_DIR}/client/include/kvcake/status.h
              ${CMAKE_BINARY_DIR}/include/kvcake/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvcake)

# The Python client, installable with pip from there (its pyproject.toml and build
# backend), plus kvcake/_libpath.py: the library's path relative to the package, which both
# an import through PYTHONPATH and a pip install from this folder use.
set(KVCAKE_PYTHON_DIR ${CMAKE_INSTALL_DATADIR}/kvcake/python)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/client/python/kvcake
                  ${CMAKE_SOURCE_DIR}/client/python/build_backend
        DESTINATION ${KVCAKE_PYTHON_DIR} FILES_MATCHING PATTERN "*.py"
        PATTERN "_libpath.py" EXCLUDE PATTERN "__pycache__" EXCLUDE)
install(FILES ${CMAKE_SOURCE_DIR}/client/python/pyproject.toml DESTINATION ${KVCAKE_PYTHON_DIR})
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(KVCAKE_PYTHON_LIBRARY "${CMAKE_INSTALL_LIBDIR}/libkvcake.so.0")
else()
  file(RELATIVE_PATH KVCAKE_PYTHON_LIBRARY "/prefix/${KVCAKE_PYTHON_DIR}/kvcake"
       "/prefix/${CMAKE_INSTALL_LIBDIR}/libkvcake.so.0")
endif()
file(WRITE ${CMAKE_BINARY_DIR}/python/_libpath.py
     "\"\"\"Where libkvcake is, relative to this folder (written by cmake --install).\"\"\"\n\n"
     "LIBRARY = \"${KVCAKE_PYTHON_LIBRARY}\"\n")
install(FILES ${CMAKE_BINARY_DIR}/python/_libpath.py DESTINATION ${KVCAKE_PYTHON_DIR}/kvcake)

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

# kvcake.pc for C++ engines (client.h needs C++20: -std=c++20 is in Cflags; an engine on a
# newer standard puts its own -std after the pkg-config output), kvcake-c.pc for C engines
# (kvcake_c.h). Both carry an rpath to the library, so an engine runs without
# LD_LIBRARY_PATH.
foreach(pc kvcake kvcake-c)
  if(pc STREQUAL "kvcake")
    set(pc_name "kvcake")
    set(pc_std "-std=c++20 ")
    set(pc_what "C++ API, kvcake/client.h")
  else()
    set(pc_name "kvcake-c")
    set(pc_std "")
    set(pc_what "C ABI, kvcake/kvcake_c.h")
  endif()
  file(WRITE ${CMAKE_BINARY_DIR}/${pc}.pc.in
       "prefix=@CMAKE_INSTALL_PREFIX@\n"
       "libdir=\${prefix}/@CMAKE_INSTALL_LIBDIR@\n"
       "includedir=\${prefix}/@CMAKE_INSTALL_INCLUDEDIR@\n\n"
       "Name: ${pc_name}\n"
       "Description: kvcake connector library (KV-cache tiers for LLM inference), ${pc_what}\n"
       "Version: @PROJECT_VERSION@\n"
       "Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lkvcake\n"
       "Cflags: ${pc_std}-I\${includedir}\n")
endforeach()
# The prefix is only known at install time: write the .pc files then.
install(CODE "
  set(CMAKE_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  foreach(pc kvcake kvcake-c)
    configure_file(\"${CMAKE_BINARY_DIR}/\${pc}.pc.in\"
                   \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/\${pc}.pc\" @ONLY)
  endforeach()
")
