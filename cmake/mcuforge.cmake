# mcuforge CMake API, usable with or without Zephyr.
#
#   include(<mcuforge>/cmake/mcuforge.cmake)      # Zephyr: done by the module
#   mcuforge_add_model(<target> MODEL <file>
#                      [NAME <id>] [CALIBRATION <file.npy|.npz>]
#                      [SRAM_BUDGET <size>] [FLASH_BUDGET <size>]
#                      [SCHEDULE layer|patch|auto] [PATCH_GRID <n>]
#                      [TRAINING none|bias|sparse|full] [LEARNING_RATE <lr>] [MOMENTUM <m>]
#                      [TRAIN_BIAS_LAYERS <n>] [TRAIN_WEIGHT_LAYERS <i,j>]
#                      [TRAIN_WEIGHT_RATIO <r1,r2>] [TRAIN_DATA <file.npz>]
#                      [KERNELS portable|arm-dsp] [STACK_TARGET cortex-m4|cortex-m3|cortex-m7|host|none]
#                      [THREAD_STACK <bytes>] [PATCH_MAX_OVERHEAD <fraction, e.g. 0.3>] [CHECK_ELF])
#
# The generated header defines <ID>_STACK_SIZE (and <ID>_TRAIN_STEP_STACK_SIZE),
# the worst-case stack of the entry points for STACK_TARGET at -O2
# (CONFIG_MCUFORGE_STACK_TARGET under Zephyr). The post-link check adds it to the
# model's RAM and compares it with the stack of the thread that runs the model:
# THREAD_STACK, or under Zephyr CONFIG_MCUFORGE_THREAD_STACK_SIZE when non-zero,
# else CONFIG_MAIN_STACK_SIZE. Too small fails the build naming the symbol to
# raise (a warning with CONFIG_MCUFORGE_MEMORY_CHECK_FAIL=n).
#
# The generator (python -m mcuforge compile) runs at build time through
# add_custom_command, writes only into ${CMAKE_CURRENT_BINARY_DIR}/mcuforge/<id>/
# and re-runs when the model, the calibration data or the generator (its
# Python sources and runtime kernels) change, and not otherwise. The model's
# C files are compiled into <target>; the runtime kernels (mcf_*) once per
# build into the library target `mcuforge_runtime`.
#
# Under Zephyr (CONFIG_MCUFORGE=y) the options come from Kconfig
# (CONFIG_MCUFORGE_*); an explicit argument wins and the build says so. The
# generator checks the budgets before compiling; with
# CONFIG_MCUFORGE_MEMORY_CHECK=y the linked zephyr.elf is checked against
# them too after linking (mcuforge check-elf) and the report written to
# ${CMAKE_CURRENT_BINARY_DIR}/mcuforge/<id>_memory.json. Outside Zephyr,
# CHECK_ELF does the same for an executable <target>.
#
# Cache variable MCUFORGE_PYTHON: the Python that runs the generator (default:
# the repository's .venv if present, else the Python CMake or Zephyr found).
include_guard(GLOBAL)

# Cache (INTERNAL) rather than normal variables: under Zephyr this file is
# included from the module's directory scope, the functions run in the app's.
get_filename_component(_mcuforge_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(MCUFORGE_ROOT "${_mcuforge_root}" CACHE INTERNAL "mcuforge source tree")
set(MCUFORGE_PACKAGE_DIR "${MCUFORGE_ROOT}/python/mcuforge" CACHE INTERNAL "")
set(MCUFORGE_RUNTIME_INCLUDE_DIR "${MCUFORGE_PACKAGE_DIR}/runtime/include" CACHE INTERNAL "")
set(MCUFORGE_RUNTIME_SOURCE_DIR "${MCUFORGE_PACKAGE_DIR}/runtime/src" CACHE INTERNAL "")

if(EXISTS "${MCUFORGE_ROOT}/.venv/bin/python")
  set(_mcuforge_python_default "${MCUFORGE_ROOT}/.venv/bin/python")
elseif(DEFINED Python3_EXECUTABLE)
  set(_mcuforge_python_default "${Python3_EXECUTABLE}")
elseif(DEFINED PYTHON_EXECUTABLE)
  set(_mcuforge_python_default "${PYTHON_EXECUTABLE}")
else()
  find_package(Python3 3.10 REQUIRED COMPONENTS Interpreter)
  set(_mcuforge_python_default "${Python3_EXECUTABLE}")
endif()
set(MCUFORGE_PYTHON "${_mcuforge_python_default}" CACHE FILEPATH
    "Python interpreter with mcuforge's dependencies (numpy, onnx, pyelftools)")

# The generator itself: a change to any of these re-runs every model.
file(GLOB_RECURSE _mcuforge_generator_depends
     "${MCUFORGE_PACKAGE_DIR}/*.py"
     "${MCUFORGE_PACKAGE_DIR}/runtime/*.c"
     "${MCUFORGE_PACKAGE_DIR}/runtime/*.h")
list(SORT _mcuforge_generator_depends)
set(MCUFORGE_GENERATOR_DEPENDS "${_mcuforge_generator_depends}" CACHE INTERNAL "")

# The generator runs from this source tree whether or not mcuforge is installed.
set(MCUFORGE_COMMAND
    ${CMAKE_COMMAND} -E env "PYTHONPATH=${MCUFORGE_ROOT}/python"
    ${MCUFORGE_PYTHON} -m mcuforge CACHE INTERNAL "")

function(mcuforge_runtime_sources out_var)
  file(GLOB _sources "${MCUFORGE_RUNTIME_SOURCE_DIR}/*.c")
  list(SORT _sources)
  set(${out_var} ${_sources} PARENT_SCOPE)
endfunction()

# The runtime kernels, once per build. Zephyr's module defines it as a
# zephyr library (compiled with the kernel's flags); elsewhere a static
# library, from which the linker takes only the kernels a model calls.
function(_mcuforge_runtime_library)
  if(TARGET mcuforge_runtime)
    return()
  endif()
  mcuforge_runtime_sources(_sources)
  add_library(mcuforge_runtime STATIC ${_sources})
  target_include_directories(mcuforge_runtime PUBLIC "${MCUFORGE_RUNTIME_INCLUDE_DIR}")
  set_target_properties(mcuforge_runtime PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
endfunction()

function(_mcuforge_kconfig_choice out_var prefix)
  # _mcuforge_kconfig_choice(var SCHEDULE layer patch auto)
  set(${out_var} "" PARENT_SCOPE)
  foreach(option ${ARGN})
    string(TOUPPER "${option}" upper)
    string(REPLACE "-" "_" upper "${upper}")
    if(CONFIG_MCUFORGE_${prefix}_${upper})
      set(${out_var} "${option}" PARENT_SCOPE)
    endif()
  endforeach()
endfunction()

function(mcuforge_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 MF "CHECK_ELF"
    "MODEL;NAME;CALIBRATION;SRAM_BUDGET;FLASH_BUDGET;SCHEDULE;PATCH_GRID;TRAINING;LEARNING_RATE;MOMENTUM;\
TRAIN_BIAS_LAYERS;TRAIN_WEIGHT_LAYERS;TRAIN_WEIGHT_RATIO;TRAIN_DATA;KERNELS;STACK_TARGET;THREAD_STACK;PATCH_MAX_OVERHEAD" "")
  if(MF_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "mcuforge_add_model(${target}): unknown arguments: ${MF_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "mcuforge_add_model(${target}): no target named '${target}'; "
                        "create it first (add_executable, add_library; under Zephyr: app)")
  endif()
  if(NOT MF_MODEL)
    message(FATAL_ERROR "mcuforge_add_model(${target}): MODEL <file> is required")
  endif()
  get_filename_component(model "${MF_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(MF_NAME)
    set(name "${MF_NAME}")
  else()
    get_filename_component(name "${model}" NAME_WE)
    string(MAKE_C_IDENTIFIER "${name}" name)
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "mcuforge_add_model(${target}): NAME '${name}' is not a C identifier")
  endif()

  # Zephyr: Kconfig gives the options; an explicit argument wins.
  set(zephyr OFF)
  if(COMMAND zephyr_library_named)
    set(zephyr ON)
    if(NOT CONFIG_MCUFORGE)
      message(FATAL_ERROR "mcuforge_add_model(${target}): add CONFIG_MCUFORGE=y to prj.conf")
    endif()
    set(kconfig_SRAM_BUDGET "")
    if(CONFIG_MCUFORGE_SRAM_BUDGET_KB)  # 0: no budget
      set(kconfig_SRAM_BUDGET "${CONFIG_MCUFORGE_SRAM_BUDGET_KB}K")
    endif()
    set(kconfig_FLASH_BUDGET "")
    if(CONFIG_MCUFORGE_FLASH_BUDGET_KB)
      set(kconfig_FLASH_BUDGET "${CONFIG_MCUFORGE_FLASH_BUDGET_KB}K")
    endif()
    _mcuforge_kconfig_choice(kconfig_SCHEDULE SCHEDULE layer patch auto)
    set(kconfig_PATCH_GRID "${CONFIG_MCUFORGE_PATCH_GRID}")
    _mcuforge_kconfig_choice(kconfig_TRAINING TRAINING none bias sparse full)
    # Defined only when training is on (Kconfig: if !MCUFORGE_TRAINING_NONE).
    set(kconfig_LEARNING_RATE "${CONFIG_MCUFORGE_TRAINING_LEARNING_RATE}")
    set(kconfig_MOMENTUM "${CONFIG_MCUFORGE_TRAINING_MOMENTUM}")
    set(kconfig_TRAIN_BIAS_LAYERS "${CONFIG_MCUFORGE_TRAINING_BIAS_LAYERS}")
    _mcuforge_kconfig_choice(kconfig_KERNELS KERNELS portable arm-dsp)
    set(symbol_SRAM_BUDGET CONFIG_MCUFORGE_SRAM_BUDGET_KB)
    set(symbol_FLASH_BUDGET CONFIG_MCUFORGE_FLASH_BUDGET_KB)
    set(symbol_SCHEDULE CONFIG_MCUFORGE_SCHEDULE)
    set(symbol_PATCH_GRID CONFIG_MCUFORGE_PATCH_GRID)
    set(symbol_TRAINING CONFIG_MCUFORGE_TRAINING)
    set(symbol_LEARNING_RATE CONFIG_MCUFORGE_TRAINING_LEARNING_RATE)
    set(symbol_MOMENTUM CONFIG_MCUFORGE_TRAINING_MOMENTUM)
    set(symbol_TRAIN_BIAS_LAYERS CONFIG_MCUFORGE_TRAINING_BIAS_LAYERS)
    set(symbol_KERNELS CONFIG_MCUFORGE_KERNELS)
    foreach(opt SRAM_BUDGET FLASH_BUDGET SCHEDULE PATCH_GRID TRAINING LEARNING_RATE MOMENTUM TRAIN_BIAS_LAYERS KERNELS)
      if(DEFINED MF_${opt})
        if(NOT "${MF_${opt}}" STREQUAL "${kconfig_${opt}}")
          message(STATUS "mcuforge: ${name}: ${opt} ${MF_${opt}} (argument of mcuforge_add_model) "
                         "overrides ${symbol_${opt}} (${kconfig_${opt}})")
        endif()
      else()
        set(MF_${opt} "${kconfig_${opt}}")
      endif()
    endforeach()
  endif()

  # arm-dsp on a core compiled without the DSP extension (Zephyr builds some
  # Cortex-M33/M55 SoCs with -mcpu=...+nodsp, e.g. mps2/an521/cpu0): the
  # kernels then run their plain-C fallback, with the same bytes; say so.
  if(zephyr AND "${MF_KERNELS}" STREQUAL "arm-dsp")
    if(CONFIG_ARMV8_M_DSP OR CONFIG_CPU_CORTEX_M4 OR CONFIG_CPU_CORTEX_M7)
      message(STATUS "mcuforge: ${name}: arm-dsp kernels with the DSP extension's instructions (SMLAD, SXTB16)")
    else()
      message(STATUS "mcuforge: ${name}: NOTE: arm-dsp kernels on a core built without the DSP extension "
                     "(CONFIG_ARMV8_M_DSP is not set on ${BOARD}${BOARD_QUALIFIERS}): they run as plain C (their fallback, the "
                     "same bytes, slower); choose a SoC with the extension for SMLAD/SXTB16")
    endif()
  endif()

  # Configure time: can the generator's Python import what this model needs?
  execute_process(COMMAND ${MCUFORGE_PYTHON} "${MCUFORGE_PACKAGE_DIR}/tools/envcheck.py" "${model}"
                  RESULT_VARIABLE _mf_env OUTPUT_VARIABLE _mf_missing OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _mf_env EQUAL 0)
    message(FATAL_ERROR "mcuforge_add_model(${target}): the generator's Python ${MCUFORGE_PYTHON} cannot import "
                        "${_mf_missing}, which ${name} needs. Install them into that environment "
                        "(${MCUFORGE_PYTHON} -m pip install ...) or choose another Python: "
                        "-DMCUFORGE_PYTHON=/path/to/python (e.g. mcuforge's .venv/bin/python, made by 'make').")
  endif()

  set(outdir "${CMAKE_CURRENT_BINARY_DIR}/mcuforge/${name}")
  set(outputs "${outdir}/${name}.c" "${outdir}/${name}.h" "${outdir}/${name}_weights.c"
              "${outdir}/report.json")
  set(args compile "${model}" -o "${outdir}" --name "${name}")
  set(depends "${model}")
  if(MF_CALIBRATION)
    get_filename_component(calibration "${MF_CALIBRATION}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND args --calibration "${calibration}")
    list(APPEND depends "${calibration}")
  endif()
  if(MF_TRAIN_DATA)
    get_filename_component(MF_TRAIN_DATA "${MF_TRAIN_DATA}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND depends "${MF_TRAIN_DATA}")
  endif()
  if(zephyr AND NOT DEFINED MF_PATCH_MAX_OVERHEAD AND CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT)
    math(EXPR _mf_whole "${CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT} / 100")
    math(EXPR _mf_frac "${CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT} % 100")
    if(_mf_frac LESS 10)
      set(_mf_frac "0${_mf_frac}")
    endif()
    set(MF_PATCH_MAX_OVERHEAD "${_mf_whole}.${_mf_frac}")
  endif()
  if(zephyr AND NOT DEFINED MF_STACK_TARGET AND CONFIG_MCUFORGE_STACK_TARGET)
    set(MF_STACK_TARGET "${CONFIG_MCUFORGE_STACK_TARGET}")
  endif()
  foreach(opt SCHEDULE PATCH_GRID TRAINING LEARNING_RATE MOMENTUM TRAIN_BIAS_LAYERS TRAIN_WEIGHT_LAYERS TRAIN_WEIGHT_RATIO
              TRAIN_DATA KERNELS STACK_TARGET PATCH_MAX_OVERHEAD)
    string(TOLOWER "${opt}" flag)
    string(REPLACE "_" "-" flag "${flag}")
    if(NOT "${MF_${opt}}" STREQUAL "")
      list(APPEND args --${flag} "${MF_${opt}}")
    endif()
  endforeach()

  # Budgets: the generator checks what it knows before anything is compiled
  # (arena and other model RAM, weights; exit 3 with the numbers and the option
  # to change), so that a model too large for the board never ends in a raw
  # linker error. Under Zephyr with CONFIG_MCUFORGE_MEMORY_CHECK the linked ELF
  # is checked as well (the full accounting: code, every RAM symbol), and
  # CONFIG_MCUFORGE_MEMORY_CHECK_FAIL=n turns both into warnings.
  set(check_args "")
  foreach(opt SRAM_BUDGET FLASH_BUDGET)
    string(TOLOWER "${opt}" flag)
    string(REPLACE "_" "-" flag "${flag}")
    if(NOT "${MF_${opt}}" STREQUAL "")
      list(APPEND check_args --${flag} "${MF_${opt}}")
      list(APPEND args --${flag} "${MF_${opt}}")
    endif()
  endforeach()
  if(zephyr AND CONFIG_MCUFORGE_MEMORY_CHECK AND NOT CONFIG_MCUFORGE_MEMORY_CHECK_FAIL)
    list(APPEND args --warn-only)
  endif()
  list(APPEND check_args --generated "${outdir}")
  if(zephyr AND CONFIG_MCUFORGE_MEMORY_CHECK_VERBOSE)
    list(APPEND check_args --verbose)  # the image's section table too, not only the model's lines
  endif()
  # The stack of the thread that runs the model, and the symbol a user raises.
  if(DEFINED MF_THREAD_STACK)
    list(APPEND check_args --thread-stack "${MF_THREAD_STACK}" --thread-stack-symbol "THREAD_STACK of mcuforge_add_model")
  elseif(zephyr AND CONFIG_MCUFORGE_THREAD_STACK_SIZE)
    list(APPEND check_args --thread-stack "${CONFIG_MCUFORGE_THREAD_STACK_SIZE}"
         --thread-stack-symbol CONFIG_MCUFORGE_THREAD_STACK_SIZE)
  elseif(zephyr AND CONFIG_MAIN_STACK_SIZE)
    list(APPEND check_args --thread-stack "${CONFIG_MAIN_STACK_SIZE}" --thread-stack-symbol CONFIG_MAIN_STACK_SIZE)
  endif()

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${MCUFORGE_COMMAND} -q ${args}
    DEPENDS ${depends} ${MCUFORGE_GENERATOR_DEPENDS}
    COMMENT "mcuforge: generating ${name} from ${MF_MODEL}"
    VERBATIM)
  add_custom_target(mcuforge_generate_${name} DEPENDS ${outputs})

  target_sources(${target} PRIVATE "${outdir}/${name}.c" "${outdir}/${name}_weights.c" "${outdir}/${name}.h")
  target_include_directories(${target} PRIVATE "${outdir}" "${MCUFORGE_RUNTIME_INCLUDE_DIR}")
  add_dependencies(${target} mcuforge_generate_${name})
  if(NOT zephyr)
    _mcuforge_runtime_library()
    target_link_libraries(${target} PRIVATE mcuforge_runtime)
  endif()

  set(MCUFORGE_${name}_DIR "${outdir}" PARENT_SCOPE)

  # Post-link memory check.
  set(report "${CMAKE_CURRENT_BINARY_DIR}/mcuforge/${name}_memory.json")
  if(zephyr AND CONFIG_MCUFORGE_MEMORY_CHECK)
    set(elf_target ${logical_target_for_zephyr_elf})
    if(NOT CONFIG_MCUFORGE_MEMORY_CHECK_FAIL)
      list(APPEND check_args --warn-only)
    endif()
  elseif(MF_CHECK_ELF)
    get_target_property(type ${target} TYPE)
    if(NOT type STREQUAL "EXECUTABLE")
      message(FATAL_ERROR "mcuforge_add_model(${target}): CHECK_ELF needs an executable target")
    endif()
    set(elf_target ${target})
  else()
    return()
  endif()
  add_custom_command(
    OUTPUT "${report}"
    COMMAND ${MCUFORGE_COMMAND} check-elf "$<TARGET_FILE:${elf_target}>" --model "${name}"
            ${check_args} --report "${report}"
    DEPENDS ${elf_target}
    COMMENT "mcuforge: checking ${name} in the linked ELF against the budgets"
    VERBATIM)
  add_custom_target(mcuforge_check_${name} ALL DEPENDS "${report}")
endfunction()
