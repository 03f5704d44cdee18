# CUDA for solsa-ext: decides whether the CUDA kernels are built and for which GPUs.
#
#   SOLSA_BUILD_CUDA  AUTO (default): build CUDA iff an nvcc is found
#                     ON / 1:  require nvcc (configure fails without it)
#                     OFF / 0: CPU only
#   SOLSA_CUDA_ARCHS  "80;90" (default): plain numbers become SASS ("-real") for every
#                     entry and SASS + PTX for the last one, i.e. CMAKE_CUDA_ARCHITECTURES
#                     "80-real;90": Ampere and Hopper get native code, newer GPUs JIT the
#                     sm_90 PTX. Entries that already carry a suffix ("86-real",
#                     "90-virtual") and the keywords all / all-major / native pass through.
#   nvcc discovery:   CMAKE_CUDA_COMPILER, else $CUDACXX, else nvcc on PATH, else
#                     $CUDA_HOME/bin, /usr/local/cuda/bin.
#
# Output: SOLSA_WITH_CUDA (bool), SOLSA_CUDA_ARCHS_EFFECTIVE (string).

set(SOLSA_BUILD_CUDA "AUTO" CACHE STRING "Build the CUDA kernels: AUTO, ON or OFF")
set(SOLSA_CUDA_ARCHS "80;90" CACHE STRING "CUDA architectures (see cmake/SolsaCuda.cmake)")

string(TOUPPER "${SOLSA_BUILD_CUDA}" _solsa_mode)
if(_solsa_mode STREQUAL "1" OR _solsa_mode STREQUAL "TRUE" OR _solsa_mode STREQUAL "YES")
  set(_solsa_mode ON)
elseif(_solsa_mode STREQUAL "0" OR _solsa_mode STREQUAL "FALSE" OR _solsa_mode STREQUAL "NO")
  set(_solsa_mode OFF)
endif()
if(NOT _solsa_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "SOLSA_BUILD_CUDA must be AUTO, ON/1 or OFF/0, got '${SOLSA_BUILD_CUDA}'")
endif()

set(SOLSA_WITH_CUDA OFF)
set(SOLSA_CUDA_ARCHS_EFFECTIVE "")

if(NOT _solsa_mode STREQUAL "OFF")
  # nvcc discovery beyond what CMake does by itself ($CUDACXX, PATH).
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(_solsa_nvcc nvcc
      HINTS "$ENV{CUDA_HOME}/bin" "$ENV{CUDA_PATH}/bin" /usr/local/cuda/bin)
    if(_solsa_nvcc)
      # Through the environment, so check_language() below still tests that it works
      # (AUTO then falls back to CPU only instead of failing on a broken toolkit).
      set(ENV{CUDACXX} "${_solsa_nvcc}")
    endif()
  endif()

  # Map SOLSA_CUDA_ARCHS to CMAKE_CUDA_ARCHITECTURES (before enable_language).
  set(_archs "${SOLSA_CUDA_ARCHS}")
  string(REPLACE "," ";" _archs "${_archs}")
  string(REPLACE " " ";" _archs "${_archs}")
  list(FILTER _archs EXCLUDE REGEX "^$")
  list(LENGTH _archs _n)
  if(_n EQUAL 0)
    message(FATAL_ERROR "SOLSA_CUDA_ARCHS is empty")
  endif()
  set(_mapped "")
  math(EXPR _last "${_n} - 1")
  foreach(_k RANGE ${_last})
    list(GET _archs ${_k} _a)
    if(_a MATCHES "^[0-9]+[a-z]?$" AND _k LESS _last)
      list(APPEND _mapped "${_a}-real")
    else()
      list(APPEND _mapped "${_a}")
    endif()
  endforeach()
  set(CMAKE_CUDA_ARCHITECTURES "${_mapped}")

  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(SOLSA_WITH_CUDA ON)
    set(SOLSA_CUDA_ARCHS_EFFECTIVE "${CMAKE_CUDA_ARCHITECTURES}")
  elseif(_solsa_mode STREQUAL "ON")
    message(FATAL_ERROR
      "SOLSA_BUILD_CUDA=1 but no working nvcc was found: set CUDACXX, put nvcc on PATH, "
      "or install the CUDA toolkit in /usr/local/cuda")
  else()
    message(STATUS "solsa-ext: nvcc not found, building the CPU kernels only")
  endif()
endif()
