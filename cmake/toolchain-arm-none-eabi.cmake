# CMake toolchain file: bare-metal Arm Cortex-M with arm-none-eabi-gcc
# (Debian: gcc-arm-none-eabi + libnewlib-arm-none-eabi).
#
#   cmake -G Ninja -DCMAKE_TOOLCHAIN_FILE=<mcuforge>/cmake/toolchain-arm-none-eabi.cmake \
#         -DMCUFORGE_CPU=cortex-m4 -S . -B build
#
# MCUFORGE_CPU: cortex-m0, cortex-m0plus, cortex-m3, cortex-m4 (FPU), cortex-m7
# (FPU), cortex-m33 (FPU), cortex-m55 (FPU). Executables link newlib-nano with
# the nosys stubs; give a linker script with -T for a real memory map (the
# MPS2 scripts in python/mcuforge/targets/ serve QEMU).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(MCUFORGE_CPU "cortex-m4" CACHE STRING "Cortex-M core (-mcpu)")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES MCUFORGE_CPU)

set(_prefix arm-none-eabi-)
if(DEFINED ARM_NONE_EABI_TOOLCHAIN_PATH)
  set(_prefix "${ARM_NONE_EABI_TOOLCHAIN_PATH}/bin/arm-none-eabi-")
endif()
set(CMAKE_C_COMPILER ${_prefix}gcc)
set(CMAKE_CXX_COMPILER ${_prefix}g++)
set(CMAKE_ASM_COMPILER ${_prefix}gcc)
set(CMAKE_OBJCOPY ${_prefix}objcopy CACHE FILEPATH "")
set(CMAKE_SIZE ${_prefix}size CACHE FILEPATH "")

if(MCUFORGE_CPU MATCHES "^cortex-m(0|0plus|3)$")
  set(_fpu "-mfloat-abi=soft")
elseif(MCUFORGE_CPU STREQUAL "cortex-m4")
  set(_fpu "-mfloat-abi=hard -mfpu=fpv4-sp-d16")
elseif(MCUFORGE_CPU STREQUAL "cortex-m7")
  set(_fpu "-mfloat-abi=hard -mfpu=fpv5-d16")
elseif(MCUFORGE_CPU STREQUAL "cortex-m33")
  set(_fpu "-mfloat-abi=hard -mfpu=fpv5-sp-d16")
elseif(MCUFORGE_CPU STREQUAL "cortex-m55")
  set(_fpu "-mfloat-abi=hard -mfpu=auto")
else()
  message(FATAL_ERROR "MCUFORGE_CPU '${MCUFORGE_CPU}' is not one of cortex-m0, cortex-m0plus, cortex-m3, "
                      "cortex-m4, cortex-m7, cortex-m33, cortex-m55")
endif()

set(CMAKE_C_FLAGS_INIT "-mcpu=${MCUFORGE_CPU} -mthumb ${_fpu} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_ASM_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")

# Compiler checks build a static library: there is no operating system to link against.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
