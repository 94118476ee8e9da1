# hubprobe: a misbehaving client or hub for the abuse tests (another
# protocol version in the handshake prologue or the Hello, a fresh key
# claiming a registered terminal ID, an impostor hub that asks for a
# backup). Like hubtamper it links libsimsync and its internal headers.
# Included from the top-level CMakeLists.txt inside if(SIMSYNC_TESTS):
#
#     include(tests/tools/hubprobe.cmake)
#
# The binary goes to <build>/tests/tools/hubprobe, next to linkshim, where
# the integration tests look for it.

add_executable(hubprobe ${CMAKE_CURRENT_LIST_DIR}/hubprobe.c)
target_link_libraries(hubprobe PRIVATE simsync)
set_target_properties(hubprobe PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
