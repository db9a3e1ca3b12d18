# Runs PROG with ARG (--man or --bash-completion) and writes what it prints
# to OUT: the man pages and completions are generated from each program's
# own flag table at build time (src/app/cli.c).
execute_process(COMMAND ${PROG} ${ARG} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "${PROG} ${ARG}: exit ${rc}")
endif()
