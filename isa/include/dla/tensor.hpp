// dla/tensor.hpp — integer tensors on the host, and their DRAM images.
//
// A HostTensor holds one integer per element in logical row-major order (for images
// N, C, H, W, as PyTorch sees them). A TensorDesc of a program says how the tensor lies
// in DRAM (layout, packing); to_dram/from_dram convert between the two.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dla/program.hpp"

namespace dla {

struct HostTensor {
  DType dtype = DType::I8;
  int frac = 0;
  std::vector<std::uint64_t> shape;
  std::vector<std::int32_t> values;  ///< row-major over `shape`

  std::uint64_t num_elements() const;
  /// Every value within the dtype's range and values.size() == product of shape.
  bool is_consistent() const;
  bool operator==(const HostTensor& o) const {
    return dtype == o.dtype && frac == o.frac && shape == o.shape && values == o.values;
  }
};

/// Describes the shape as "[1,3,8,8]".
std::string shape_string(const std::vector<std::uint64_t>& shape);

/// The DRAM bytes of `t` laid out as `desc` says (NHWC transposition, 4-bit packing,
/// little endian). Throws Error naming the tensor when dtype or shape differ from `desc`
/// or a value is out of the dtype's range.
std::vector<std::uint8_t> to_dram(const TensorDesc& desc, const HostTensor& t);

/// Reads a tensor described by `desc` from its DRAM bytes (`bytes` holds exactly
/// desc.byte_size() bytes).
HostTensor from_dram(const TensorDesc& desc, const std::uint8_t* bytes);

}  // namespace dla
