// dla/npy.hpp — NumPy .npy files for integer tensors (inputs and outputs of `dla run`).
//
// Format (numpy.lib.format): magic "\x93NUMPY", version major.minor (1.0, 2.0 and 3.0
// are read; 1.0 is written, 2.0 when the header needs more than 65535 bytes), header
// length (u16 for 1.0, u32 otherwise), then an ASCII Python dict literal
// {'descr': ..., 'fortran_order': False, 'shape': (...), } padded with spaces and a
// newline so that the data starts at a multiple of 64, then the elements in C order.
//
// Element types: '|i1' '|u1' '<i2' '<i4' (and '<i1' '<u1', the same bytes); '<i8' is read
// too, each value must fit in 32 bits; '<f4' only where a caller asks for floats. Everything
// else (other floats, big endian, structured
// dtypes, fortran_order True) is refused. Reading never allocates from an unchecked
// header: the header is capped at 64 KiB and the data must be exactly
// product(shape) * itemsize bytes of the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dla/program.hpp"
#include "dla/tensor.hpp"

namespace dla::npy {

inline constexpr std::size_t kMaxHeaderBytes = 64 * 1024;

/// An integer array read from a .npy file.
struct Array {
  std::string descr;  ///< normalized: "|i1", "|u1", "<i2", "<i4" or "<i8"
  std::vector<std::uint64_t> shape;
  std::vector<std::int32_t> values;  ///< C order (integer arrays)
  std::vector<float> reals;          ///< C order ('<f4' arrays, where the caller allows them)
  bool is_float32() const { return descr == "<f4"; }
};

/// Parses the bytes of a .npy file. `source` names it in messages. Throws dla::Error.
/// With allow_float32, '<f4' arrays are read too (into `reals`): the float inputs of
/// segmented programs (dla/qat/host_segments.hpp).
Array parse(const std::uint8_t* data, std::size_t size, const std::string& source, bool allow_float32 = false);
/// Reads a .npy file. Throws dla::Error naming the file and the problem.
Array read(const std::string& path, bool allow_float32 = false);

/// The bytes of a .npy file holding `values` (C order over `shape`) as `descr` ("|i1",
/// "|u1", "<i2", "<i4" or "<i8"); every value must fit the type.
std::vector<std::uint8_t> serialize(const std::string& descr, const std::vector<std::uint64_t>& shape,
                                    const std::vector<std::int32_t>& values);

/// The bytes of a '<f4' .npy file (the float outputs of segmented programs).
std::vector<std::uint8_t> serialize_float32(const std::vector<std::uint64_t>& shape, const std::vector<float>& values);

/// The file type of a tensor dtype: "|i1" for i8 and i4, "|u1" for u8 and u4, "<i2" for
/// i16, "<i4" for i32.
std::string descr_for(DType t);

/// Writes a tensor as descr_for(t.dtype). Throws dla::Error when the file cannot be written.
void write_tensor(const std::string& path, const HostTensor& t);

/// Reads a file as the program tensor `desc`: the file's type must be descr_for(desc.dtype)
/// (or '<i8'), its shape desc.shape and every value in the range of desc.dtype. The
/// result has desc's dtype and frac. Errors name the tensor, the file, what was expected
/// and what was found. With `batches`, the leading dimension may also be any positive
/// multiple of desc's (several of the program's batches stacked); the result has the
/// file's shape.
HostTensor read_tensor(const std::string& path, const TensorDesc& desc, bool batches = false);

}  // namespace dla::npy
