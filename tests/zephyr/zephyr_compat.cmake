# The one place where mcuforge's Zephyr tests handle Zephyr releases:
#   Zephyr 3.1 - 3.6: the ztest API of the tests (ZTEST, ZTEST_SUITE) must be
#                     chosen with CONFIG_ZTEST_NEW_API=y (it is the only API
#                     from 3.7 on, where that symbol no longer exists);
#   boards:           native_posix / native_posix_64 and mps3_an547 up to 3.x,
#                     native_sim and mps3/corstone300/an547 in 4.x: testcase.yaml
#                     selects them by Kconfig symbol (filter:), never by name;
#                     the board names of the Python tests are in
#                     tests/test_zephyr.py (BOARDS).
# Include it before find_package(Zephyr).
set(_mcuforge_zephyr_base "${ZEPHYR_BASE}")
if(NOT _mcuforge_zephyr_base)
  set(_mcuforge_zephyr_base "$ENV{ZEPHYR_BASE}")
endif()
if(EXISTS "${_mcuforge_zephyr_base}/VERSION")
  file(STRINGS "${_mcuforge_zephyr_base}/VERSION" _mcuforge_version_lines)
  foreach(line ${_mcuforge_version_lines})
    if(line MATCHES "^VERSION_(MAJOR|MINOR) *= *([0-9]+)")
      set(_mcuforge_zephyr_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
    endif()
  endforeach()
  if(_mcuforge_zephyr_MAJOR EQUAL 3 AND _mcuforge_zephyr_MINOR LESS 7)
    set(_mcuforge_conf "${CMAKE_CURRENT_LIST_DIR}/ztest_new_api.conf")
    # OVERLAY_CONFIG: Twister passes its extra_configs through it (a cache
    # entry, which Zephyr reads before a normal variable), so extend the cache.
    if(NOT "${OVERLAY_CONFIG}" MATCHES "ztest_new_api\\.conf")
      if(OVERLAY_CONFIG)
        set(_mcuforge_overlays "${OVERLAY_CONFIG} ${_mcuforge_conf}")
      else()
        set(_mcuforge_overlays "${_mcuforge_conf}")
      endif()
      set(OVERLAY_CONFIG "${_mcuforge_overlays}" CACHE STRING "Kconfig overlay files" FORCE)
    endif()
  endif()
else()
  message(STATUS "mcuforge tests: ZEPHYR_BASE not set; assuming Zephyr 3.7 or later")
endif()
