# Tools of the kill loops (tests/integration/killlib.sh): killrun runs a
# command and SIGKILLs it after a given number of microseconds (standalone
# POSIX); treesum prints or checks the digests of a folder tree and links
# libsimsync for its hash (core/crypt.h). Included from the top-level
# CMakeLists.txt inside if(SIMSYNC_TESTS):
#
#     include(tests/tools/killloop.cmake)
#
# Both go to <build>/tests/tools/, next to linkshim, where killlib.sh looks
# for them.

add_executable(killrun ${CMAKE_CURRENT_LIST_DIR}/killrun.c)
add_executable(treesum ${CMAKE_CURRENT_LIST_DIR}/treesum.c)
target_link_libraries(treesum PRIVATE simsync)
set_target_properties(killrun treesum PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)

add_test(NAME tools.killtools_selftest
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/killtools_selftest.sh
                 $<TARGET_FILE:killrun> $<TARGET_FILE:treesum>)
set_tests_properties(tools.killtools_selftest PROPERTIES TIMEOUT 120)
