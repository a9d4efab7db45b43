# Included by the top CMakeLists.txt when VIGIL_FUZZ is on, before any
# library is defined: everything the fuzz targets link is compiled with
# coverage for libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer,
# so a bug deep in a library is caught where it happens.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang" OR NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "VIGIL_FUZZ needs clang, whose libFuzzer the fuzz targets use; this build uses "
    "${CMAKE_CXX_COMPILER_ID}. Configure a separate build directory with "
    "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ (make fuzz does).")
endif()
# Every UB report aborts: a fuzzer only notices what stops the process.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                    -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)
