# usbpipe: drives the USB transports directly (tests/tools/usbpipe.c), an
# echo handset on a gadget and a desktop sender over libusb, for the VM
# tests that check the link below simsync's protocol. Links libsimsync.
# Included from the top-level CMakeLists.txt inside if(SIMSYNC_TESTS).

add_executable(usbpipe ${CMAKE_CURRENT_LIST_DIR}/usbpipe.c)
target_link_libraries(usbpipe PRIVATE simsync)
set_target_properties(usbpipe PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
