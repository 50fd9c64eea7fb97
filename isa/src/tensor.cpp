// Host tensors and their DRAM images.
#include "dla/tensor.hpp"

#include <sstream>

#include "dla/error.hpp"

namespace dla {
namespace {

/// Index into DRAM order of logical element (n, c, h, w) of an NHWC tensor.
std::uint64_t nhwc_index(const std::vector<std::uint64_t>& s, std::uint64_t n, std::uint64_t c, std::uint64_t h,
                         std::uint64_t w) {
  return ((n * s[2] + h) * s[3] + w) * s[1] + c;
}

/// Calls fn(logical_index, dram_index) for every element.
template <typename Fn>
void for_each_element(const TensorDesc& desc, Fn&& fn) {
  if (desc.layout == Layout::kRowMajor) {
    const std::uint64_t n = desc.num_elements();
    for (std::uint64_t i = 0; i < n; ++i) fn(i, i);
    return;
  }
  const auto& s = desc.shape;
  std::uint64_t logical = 0;
  for (std::uint64_t n = 0; n < s[0]; ++n)
    for (std::uint64_t c = 0; c < s[1]; ++c)
      for (std::uint64_t h = 0; h < s[2]; ++h)
        for (std::uint64_t w = 0; w < s[3]; ++w) fn(logical++, nhwc_index(s, n, c, h, w));
}

}  // namespace

std::uint64_t HostTensor::num_elements() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

bool HostTensor::is_consistent() const {
  if (values.size() != num_elements()) return false;
  const auto info = dtype_info(dtype);
  for (auto v : values) {
    if (v < info.min || v > info.max) return false;
  }
  return true;
}

std::string shape_string(const std::vector<std::uint64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

std::vector<std::uint8_t> to_dram(const TensorDesc& desc, const HostTensor& t) {
  if (t.dtype != desc.dtype) {
    throw Error("tensor '" + desc.name + "': expected dtype " + std::string(dtype_info(desc.dtype).name) + ", got " +
                std::string(dtype_info(t.dtype).name));
  }
  if (t.shape != desc.shape) {
    throw Error("tensor '" + desc.name + "': expected shape " + shape_string(desc.shape) + ", got " +
                shape_string(t.shape));
  }
  if (t.values.size() != desc.num_elements()) {
    throw Error("tensor '" + desc.name + "': " + std::to_string(t.values.size()) + " values for shape " +
                shape_string(t.shape));
  }
  const auto info = dtype_info(desc.dtype);
  std::vector<std::uint8_t> bytes(desc.byte_size(), 0);
  for_each_element(desc, [&](std::uint64_t logical, std::uint64_t dram) {
    const std::int64_t v = t.values[logical];
    if (v < info.min || v > info.max) {
      throw Error("tensor '" + desc.name + "': element " + std::to_string(logical) + " = " + std::to_string(v) +
                  " is outside the range of " + std::string(info.name));
    }
    store_element(bytes.data(), desc.dtype, dram, v);
  });
  return bytes;
}

HostTensor from_dram(const TensorDesc& desc, const std::uint8_t* bytes) {
  HostTensor t;
  t.dtype = desc.dtype;
  t.frac = desc.frac;
  t.shape = desc.shape;
  t.values.resize(desc.num_elements());
  for_each_element(desc, [&](std::uint64_t logical, std::uint64_t dram) {
    t.values[logical] = static_cast<std::int32_t>(load_element(bytes, desc.dtype, dram));
  });
  return t;
}

}  // namespace dla
