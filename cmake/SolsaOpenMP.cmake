# OpenMP for the CPU kernels.
#
# Which runtime: the same one torch uses, libgomp (the Linux torch wheels link
# torch/lib/libgomp.so.1; see `ldd torch/lib/libtorch_cpu.so`). We link libgomp
# DYNAMICALLY (GCC's -fopenmp) and never bundle or link it statically: libraries that
# share the soname libgomp.so.1 resolve to ONE loaded copy, so inside a torch process
# our kernels use torch's runtime (one thread pool, no second runtime fighting over
# cores, no crash from two OpenMP runtimes). The module's RUNPATH starts with
# $ORIGIN/../torch/lib, so even when solsa_ext._C is imported before torch it picks up
# torch's libgomp (site-packages/torch is the sibling of site-packages/solsa_ext) and
# falls back to the system libgomp (editable installs, no torch).
#
#   SOLSA_OPENMP  ON (default): require OpenMP; OFF: single-threaded kernels.
#
# Output: SOLSA_WITH_OPENMP (bool); target solsa_openmp (INTERFACE) to link.

option(SOLSA_OPENMP "Build the CPU kernels with OpenMP" ON)
add_library(solsa_openmp INTERFACE)
set(SOLSA_WITH_OPENMP OFF)
if(SOLSA_OPENMP)
  find_package(OpenMP COMPONENTS CXX)
  if(OpenMP_CXX_FOUND)
    target_link_libraries(solsa_openmp INTERFACE OpenMP::OpenMP_CXX)
    target_compile_definitions(solsa_openmp INTERFACE SOLSA_WITH_OPENMP=1)
    set(SOLSA_WITH_OPENMP ON)
  else()
    message(WARNING "solsa-ext: OpenMP not found; the CPU kernels will run on one thread")
  endif()
endif()
