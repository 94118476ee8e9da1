# hubtamper: plays a malicious or broken hub by editing a hub's store
# directly (tests/tools/hubtamper.c). Unlike linkshim it links libsimsync
# and uses its internal headers (store.h, journal.h, hub_backup.h and the
# generated simsync.pb-c.h), which the `simsync` target exports as PUBLIC
# include directories. Included from the top-level CMakeLists.txt inside
# if(SIMSYNC_TESTS):
#
#     include(tests/tools/hubtamper.cmake)
#
# The binary goes to <build>/tests/tools/hubtamper, next to linkshim, which
# is where the integration tests look when HUBTAMPER is not set.

add_executable(hubtamper ${CMAKE_CURRENT_LIST_DIR}/hubtamper.c)
target_link_libraries(hubtamper PRIVATE simsync)
set_target_properties(hubtamper PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
