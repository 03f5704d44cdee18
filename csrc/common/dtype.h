// Element types shared by every op. The core is torch-free: Python tells the
// kernels which type the buffers hold through this enum.
#pragma once
#include <cstdint>

namespace solsa {

enum class DType : int32_t { Float32 = 0, Float64 = 1 };

}  // namespace solsa
