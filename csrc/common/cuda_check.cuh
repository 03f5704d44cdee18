// CUDA helpers: error checking that throws std::runtime_error (pybind11 turns it into
// a Python RuntimeError), and launch geometry for grid-stride loops.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace solsa {

#define SOLSA_CUDA_CHECK(expr)                                                       \
  do {                                                                               \
    cudaError_t solsa_err_ = (expr);                                                 \
    if (solsa_err_ != cudaSuccess) {                                                 \
      throw std::runtime_error(std::string("solsa_ext CUDA error: ") +               \
                               cudaGetErrorString(solsa_err_) + " (" #expr ") at " + \
                               __FILE__ + ":" + std::to_string(__LINE__));           \
    }                                                                                \
  } while (0)

// After a kernel launch: reports configuration errors and earlier sticky errors.
#define SOLSA_CUDA_CHECK_LAUNCH(name)                                                 \
  do {                                                                                \
    cudaError_t solsa_err_ = cudaGetLastError();                                      \
    if (solsa_err_ != cudaSuccess) {                                                  \
      throw std::runtime_error(std::string("solsa_ext CUDA error in ") + (name) +     \
                               ": " + cudaGetErrorString(solsa_err_));                \
    }                                                                                 \
  } while (0)

// Number of blocks for `work` units of `per_block` each; the kernels use grid-stride
// loops, so capping the grid is always correct (the cap keeps it within limits for any
// size and avoids launching millions of nearly empty blocks).
inline unsigned int grid_for(int64_t work, int per_block) {
  const int64_t kMaxBlocks = int64_t(1) << 20;
  int64_t blocks = (work + per_block - 1) / per_block;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned int>(blocks);
}

}  // namespace solsa
