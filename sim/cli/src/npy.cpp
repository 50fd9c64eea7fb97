// NumPy .npy reader and writer (dla/npy.hpp).
#include "dla/npy.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "dla/error.hpp"
#include "dla/file_io.hpp"

namespace dla::npy {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
/// Largest .npy file read: bounds the allocation a file can cause (an input never
/// needs more than the 4 GiB a program's DRAM can hold).
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{4} << 30;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error(source + ": " + what);
}

/// Describes a dtype string for messages: "'<f4' (float32)".
std::string describe_descr(const std::string& d) {
  static const struct {
    const char* code;
    const char* name;
  } kNames[] = {{"f2", "float16"}, {"f4", "float32"}, {"f8", "float64"}, {"f16", "float128"},
                {"u2", "uint16"},  {"u4", "uint32"},  {"u8", "uint64"},  {"b1", "bool"},
                {"c8", "complex64"}, {"c16", "complex128"}, {"i1", "int8"}, {"u1", "uint8"},
                {"i2", "int16"},   {"i4", "int32"},   {"i8", "int64"}};
  std::string s = "'" + d + "'";
  if (d.size() >= 2) {
    const std::string code = d.substr(1);
    for (const auto& n : kNames) {
      if (code == n.code) return s + " (" + n.name + ")";
    }
  }
  return s;
}

/// Item size of an accepted dtype, or 0. Normalizes `d` ("<i1" -> "|i1").
std::size_t accepted_itemsize(std::string& d) {
  if (d == "|i1" || d == "<i1") { d = "|i1"; return 1; }
  if (d == "|u1" || d == "<u1") { d = "|u1"; return 1; }
  if (d == "<i2") return 2;
  if (d == "<i4") return 4;
  if (d == "<i8") return 8;
  return 0;
}

/// A tiny parser for the header's Python dict literal.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  void parse(Array& out) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() == '[') bad("structured dtypes are not supported (dla tensors are plain integers)");
        out.descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (boolean()) bad("fortran_order True is not supported: save the array in C order");
        have_order = true;
      } else if (key == "shape") {
        out.shape = tuple();
        have_shape = true;
      } else {
        bad("unexpected key '" + key + "' in the header");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      expect('}');
      break;
    }
    skip_ws();
    if (pos_ != s_.size()) bad("unexpected text after the header dict");
    if (!have_descr || !have_order || !have_shape) {
      bad("the header must have the keys 'descr', 'fortran_order' and 'shape'");
    }
  }

 private:
  [[noreturn]] void bad(const std::string& what) const { fail(source_, "bad .npy header: " + what); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "' at header offset " + std::to_string(pos_));
    ++pos_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a string at header offset " + std::to_string(pos_));
    ++pos_;
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') bad("escapes in header strings are not supported");
      ++pos_;
    }
    if (pos_ >= s_.size()) bad("unterminated string");
    return s_.substr(start, pos_++ - start);
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    bad("expected True or False at header offset " + std::to_string(pos_));
  }
  std::vector<std::uint64_t> tuple() {
    std::vector<std::uint64_t> dims;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        return dims;
      }
      if (peek() < '0' || peek() > '9') bad("expected a dimension at header offset " + std::to_string(pos_));
      std::uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const auto d = static_cast<std::uint64_t>(peek() - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) bad("dimension too large");
        v = v * 10 + d;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      dims.push_back(v);
      if (dims.size() > static_cast<std::size_t>(kMaxTensorRank)) {
        bad("more than " + std::to_string(kMaxTensorRank) + " dimensions");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(')');
      return dims;
    }
  }

  const std::string& s_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

std::uint64_t read_le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Array parse(const std::uint8_t* data, std::size_t size, const std::string& source, bool allow_float32) {
  if (size < kMagicLen + 2 || std::memcmp(data, kMagic, kMagicLen) != 0) {
    fail(source, "not a .npy file (bad magic; expected \\x93NUMPY)");
  }
  const int major = data[6];
  const int minor = data[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    fail(source, "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor) +
                     " (1.0, 2.0 and 3.0 are read)");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (size < kMagicLen + 2 + len_bytes) fail(source, "truncated .npy header");
  const std::uint64_t header_len = read_le(data + 8, static_cast<int>(len_bytes));
  if (header_len > kMaxHeaderBytes) {
    fail(source, ".npy header is " + std::to_string(header_len) + " bytes, over the limit of " +
                     std::to_string(kMaxHeaderBytes));
  }
  const std::size_t data_at = kMagicLen + 2 + len_bytes + static_cast<std::size_t>(header_len);
  if (size < data_at) {
    fail(source, "truncated .npy header (" + std::to_string(header_len) + " bytes announced, " +
                     std::to_string(size - (kMagicLen + 2 + len_bytes)) + " present)");
  }
  const std::string text(reinterpret_cast<const char*>(data) + kMagicLen + 2 + len_bytes,
                         static_cast<std::size_t>(header_len));
  Array a;
  HeaderParser(text, source).parse(a);

  std::string descr = a.descr;
  const bool float32 = allow_float32 && a.descr == "<f4";
  const std::size_t item = float32 ? 4 : accepted_itemsize(descr);
  if (item == 0) {
    std::string why = "unsupported dtype " + describe_descr(a.descr);
    if (!a.descr.empty() && a.descr[0] == '>') {
      why += ": big-endian data is not supported";
    } else if (a.descr.size() >= 2 && (a.descr[1] == 'f' || a.descr[1] == 'c')) {
      why += ": dla tensors are integers";
    } else {
      why += " (use int8, uint8, int16, int32 or int64)";
    }
    fail(source, why);
  }
  a.descr = descr;

  std::uint64_t count = 1;
  for (std::uint64_t d : a.shape) {
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d / item) {
      fail(source, "shape " + shape_string(a.shape) + " is too large");
    }
    count *= d;
  }
  const std::uint64_t need = count * item;
  const std::uint64_t have = size - data_at;
  if (have < need) {
    fail(source, "truncated data: shape " + shape_string(a.shape) + " of " + describe_descr(a.descr) + " needs " +
                     std::to_string(need) + " bytes, the file has " + std::to_string(have));
  }
  if (have > need) {
    fail(source, std::to_string(have - need) + " bytes of unexpected data after the array");
  }

  const std::uint8_t* p = data + data_at;
  if (float32) {
    a.reals.resize(static_cast<std::size_t>(count));
    if (count != 0) std::memcpy(a.reals.data(), p, static_cast<std::size_t>(need));  // little-endian host
    return a;
  }
  a.values.resize(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < a.values.size(); ++i, p += item) {
    std::int64_t v = 0;
    if (a.descr == "|i1") {
      v = static_cast<std::int8_t>(p[0]);
    } else if (a.descr == "|u1") {
      v = p[0];
    } else if (a.descr == "<i2") {
      v = static_cast<std::int16_t>(static_cast<std::uint16_t>(read_le(p, 2)));
    } else if (a.descr == "<i4") {
      v = static_cast<std::int32_t>(static_cast<std::uint32_t>(read_le(p, 4)));
    } else {
      v = static_cast<std::int64_t>(read_le(p, 8));
      if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max()) {
        fail(source, "element " + std::to_string(i) + " = " + std::to_string(v) +
                         " of the '<i8' array does not fit in 32 bits");
      }
    }
    a.values[i] = static_cast<std::int32_t>(v);
  }
  return a;
}

Array read(const std::string& path, bool allow_float32) {
  const std::vector<std::uint8_t> bytes = read_regular_file(path, kMaxFileBytes, ".npy file");
  return parse(bytes.data(), bytes.size(), path, allow_float32);
}

namespace {

/// Magic, version, header and padding of a .npy file of `descr` and `shape`, with room
/// for `data_bytes` after them (zeroed); returns the bytes and the data offset.
std::pair<std::vector<std::uint8_t>, std::size_t> npy_frame(const std::string& d, const std::vector<std::uint64_t>& shape,
                                                            std::size_t data_bytes) {
  std::ostringstream h;
  h << "{'descr': '" << d << "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) h << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) h << ",";
  h << "), }";
  std::string header = h.str();
  // Pad with spaces so that magic + version + length + header (ending in '\n') is a
  // multiple of 64, as numpy does.
  auto padded = [&](std::size_t prefix_len) { return (prefix_len + header.size() + 1 + 63) / 64 * 64; };
  std::size_t prefix = kMagicLen + 2 + 2;  // version 1.0: u16 header length
  if (padded(prefix) - prefix > 65535) prefix = kMagicLen + 2 + 4;  // version 2.0: u32
  const std::size_t total = padded(prefix);
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');

  std::vector<std::uint8_t> out(total + data_bytes, 0);
  std::memcpy(out.data(), kMagic, kMagicLen);
  out[kMagicLen] = prefix == kMagicLen + 4 ? 1 : 2;
  out[kMagicLen + 1] = 0;
  for (std::size_t i = 0; i < prefix - kMagicLen - 2; ++i) {
    out[kMagicLen + 2 + i] = static_cast<std::uint8_t>(header.size() >> (8 * i));
  }
  std::memcpy(out.data() + prefix, header.data(), header.size());
  return {std::move(out), total};
}

std::uint64_t element_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  for (auto s : shape) count *= s;
  return count;
}

}  // namespace

std::vector<std::uint8_t> serialize(const std::string& descr, const std::vector<std::uint64_t>& shape,
                                    const std::vector<std::int32_t>& values) {
  std::string d = descr;
  const std::size_t item = accepted_itemsize(d);
  if (item == 0) throw Error("cannot write .npy dtype " + describe_descr(descr));
  if (element_count(shape) != values.size()) {
    throw Error("cannot write .npy: " + std::to_string(values.size()) + " values for shape " + shape_string(shape));
  }
  auto [out, total] = npy_frame(d, shape, values.size() * item);
  const bool is_unsigned = d == "|u1";
  const int bits = 8 * static_cast<int>(std::min<std::size_t>(item, 4));
  const std::int64_t lo = is_unsigned ? 0 : -(std::int64_t{1} << (bits - 1));
  const std::int64_t hi = is_unsigned ? 255 : (std::int64_t{1} << (bits - 1)) - 1;
  std::uint8_t* p = out.data() + total;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::int64_t v = values[i];
    if (v < lo || v > hi) {
      throw Error("cannot write .npy: element " + std::to_string(i) + " = " + std::to_string(v) + " does not fit " +
                  describe_descr(d));
    }
    const auto u = static_cast<std::uint64_t>(v);
    for (std::size_t b = 0; b < item; ++b) *p++ = static_cast<std::uint8_t>(u >> (8 * b));
  }
  return out;
}

std::vector<std::uint8_t> serialize_float32(const std::vector<std::uint64_t>& shape, const std::vector<float>& values) {
  if (element_count(shape) != values.size()) {
    throw Error("cannot write .npy: " + std::to_string(values.size()) + " values for shape " + shape_string(shape));
  }
  auto [out, total] = npy_frame("<f4", shape, values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(out.data() + total, values.data(), values.size() * sizeof(float));  // little-endian host
  return out;
}

std::string descr_for(DType t) {
  switch (t) {
    case DType::I4:
    case DType::I8: return "|i1";
    case DType::U4:
    case DType::U8: return "|u1";
    case DType::I16: return "<i2";
    case DType::I32: return "<i4";
  }
  return "?";
}

void write_tensor(const std::string& path, const HostTensor& t) {
  write_file_atomically(path, serialize(descr_for(t.dtype), t.shape, t.values), ".npy file");
}

HostTensor read_tensor(const std::string& path, const TensorDesc& desc, bool batches) {
  const std::string who = "input '" + desc.name + "' (" + path + ")";
  Array a;
  try {
    a = read(path);
  } catch (const Error& e) {
    throw Error("input '" + desc.name + "': " + e.what());
  }
  const std::string want = descr_for(desc.dtype);
  if (a.descr != want && a.descr != "<i8") {
    throw Error(who + ": expected dtype " + describe_descr(want) + " for a " +
                std::string(dtype_info(desc.dtype).name) + " tensor, got " + describe_descr(a.descr));
  }
  const bool stacked = batches && !desc.shape.empty() && desc.shape[0] > 0 && a.shape.size() == desc.shape.size() &&
                       std::equal(a.shape.begin() + 1, a.shape.end(), desc.shape.begin() + 1) && a.shape[0] > 0 &&
                       a.shape[0] % desc.shape[0] == 0;
  if (a.shape != desc.shape && !stacked) {
    std::string also;
    if (batches && !desc.shape.empty()) {
      also = " (or a multiple of the program's batch " + std::to_string(desc.shape[0]) + " in the leading dimension)";
    }
    throw Error(who + ": expected shape " + shape_string(desc.shape) + also + ", got " + shape_string(a.shape));
  }
  const auto info = dtype_info(desc.dtype);
  for (std::size_t i = 0; i < a.values.size(); ++i) {
    if (a.values[i] < info.min || a.values[i] > info.max) {
      throw Error(who + ": element " + std::to_string(i) + " = " + std::to_string(a.values[i]) +
                  " is outside the range of " + std::string(info.name) + " [" + std::to_string(info.min) + ", " +
                  std::to_string(info.max) + "]");
    }
  }
  HostTensor t;
  t.dtype = desc.dtype;
  t.frac = desc.frac;
  t.shape = a.shape;
  t.values = std::move(a.values);
  return t;
}

}  // namespace dla::npy
