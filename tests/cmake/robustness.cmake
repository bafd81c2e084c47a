# Robustness tests: broken model files and inputs must fail with one clear line, never crash;
# the command line behaves as documented. Included from tests/CMakeLists.txt; both scripts are
# POSIX sh and run the same in the normal and the sanitizer build.
add_test(NAME bad_input
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/../bad-input/run_bad_inputs.sh $<TARGET_FILE:kiln_cli> ${KILN_SHARED_DIR})
set_tests_properties(bad_input PROPERTIES LABELS "bad-input;cpu" TIMEOUT 900)

add_test(NAME cli
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/../cli/cli_test.sh $<TARGET_FILE:kiln_cli> ${KILN_SHARED_DIR})
set_tests_properties(cli PROPERTIES LABELS "cli;cpu" TIMEOUT 900)
