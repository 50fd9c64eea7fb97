// tests/compiler/onnx_reader.hpp — a minimal, dependency-free reader of the ONNX protobuf
// files the backend node tests ship (model.onnx, test_data_set_N/{input,output}_N.pb).
//
// It decodes the protobuf wire format by hand (varints, 64-bit, length-delimited and 32-bit
// fields; groups are refused) and keeps only what the oracle tests need:
//   TensorProto     dims (1), data_type (2), int32_data (5), int64_data (7), name (8),
//                   raw_data (9); integer element types only.
//   ModelProto      ir_version (1), opset_import (8), graph (7).
//   GraphProto      node (1), name (2), initializer (5), input (11), output (12).
//   NodeProto       input (1), output (2), name (3), op_type (4), attribute (5), domain (7).
//   AttributeProto  name (1), f (2), i (3), s (4), ints (8, packed or not), type (20).
//   ValueInfoProto  name (1), type (2) -> TypeProto.tensor_type (1) -> elem_type (1),
//                   shape (2) -> dim (1) -> dim_value (1) / dim_param (2).
// Every malformed or unsupported input throws std::runtime_error naming the field.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

namespace onnx_reader {

// TensorProto.DataType values used here.
enum DataType : int {
  kUndefined = 0,
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kUint32 = 12,
  kUint64 = 13,
};

inline std::string data_type_name(int t) {
  switch (t) {
    case kFloat: return "float";
    case kUint8: return "uint8";
    case kInt8: return "int8";
    case kUint16: return "uint16";
    case kInt16: return "int16";
    case kInt32: return "int32";
    case kInt64: return "int64";
    case kBool: return "bool";
    case kUint32: return "uint32";
    case kUint64: return "uint64";
    default: return "data_type " + std::to_string(t);
  }
}

// ---------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------

enum WireType : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

/// One field of a message: its number, wire type and payload (the value for varint and
/// fixed fields; the bytes for length-delimited ones).
struct Field {
  std::uint32_t number = 0;
  int wire = kVarint;
  std::uint64_t value = 0;           ///< varint / fixed32 / fixed64 payload
  const std::uint8_t* data = nullptr;  ///< length-delimited payload
  std::size_t size = 0;
};

/// Iterates over the fields of one serialized message.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size, std::string what)
      : p_(data), end_(data + size), begin_(data), what_(std::move(what)) {}

  bool done() const { return p_ == end_; }

  Field next() {
    const std::size_t at = offset();
    const std::uint64_t key = varint();
    Field f;
    f.number = static_cast<std::uint32_t>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.number == 0 || (key >> 3) > 0x1fffffffu) fail(at, "invalid field number");
    switch (f.wire) {
      case kVarint: f.value = varint(); break;
      case kFixed64: f.value = fixed(8); break;
      case kFixed32: f.value = fixed(4); break;
      case kLengthDelimited: {
        const std::uint64_t n = varint();
        if (n > static_cast<std::uint64_t>(end_ - p_)) fail(at, "length-delimited field runs past the end");
        f.data = p_;
        f.size = static_cast<std::size_t>(n);
        p_ += n;
        break;
      }
      default: fail(at, "unsupported wire type " + std::to_string(f.wire) + " (groups are not used by ONNX)");
    }
    return f;
  }

  /// Decodes one varint from a packed payload (used by packed repeated fields).
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) fail(offset(), "truncated varint");
      const std::uint8_t b = *p_++;
      if (shift == 63 && (b & 0x7e) != 0) fail(offset(), "varint overflows 64 bits");
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail(offset(), "varint longer than 10 bytes");
  }

  std::uint64_t fixed(int bytes) {
    if (end_ - p_ < bytes) fail(offset(), "truncated fixed-width field");
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += bytes;
    return v;
  }

  [[noreturn]] void fail(std::size_t at, const std::string& why) const {
    throw std::runtime_error(what_ + ": byte " + std::to_string(at) + ": " + why);
  }

 private:
  std::size_t offset() const { return static_cast<std::size_t>(p_ - begin_); }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  const std::uint8_t* begin_;
  std::string what_;
};

inline std::string as_string(const Field& f, const std::string& what) {
  if (f.wire != kLengthDelimited) throw std::runtime_error(what + ": expected a length-delimited string field");
  return std::string(reinterpret_cast<const char*>(f.data), f.size);
}

inline void expect_wire(const Field& f, int wire, const std::string& what) {
  if (f.wire != wire) {
    throw std::runtime_error(what + ": field " + std::to_string(f.number) + " has wire type " + std::to_string(f.wire) +
                             ", expected " + std::to_string(wire));
  }
}

/// A repeated integer field: either one varint per occurrence or one packed payload.
inline void append_varints(const Field& f, std::vector<std::uint64_t>& out, const std::string& what) {
  if (f.wire == kVarint) {
    out.push_back(f.value);
  } else if (f.wire == kLengthDelimited) {
    Reader r(f.data, f.size, what + " (packed)");
    while (!r.done()) out.push_back(r.varint());
  } else {
    throw std::runtime_error(what + ": repeated integer field with wire type " + std::to_string(f.wire));
  }
}

// Protobuf int64/int32 fields hold the two's complement value as a 64-bit varint.
inline std::int64_t as_int64(std::uint64_t v) {
  std::int64_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

inline std::int32_t as_int32(std::uint64_t v, const std::string& what) {
  const std::int64_t s = as_int64(v);
  if (s < INT32_MIN || s > INT32_MAX) throw std::runtime_error(what + ": int32 value out of range");
  return static_cast<std::int32_t>(s);
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

struct Tensor {
  std::string name;
  int data_type = kUndefined;
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> values;  ///< decoded elements, row-major over dims

  std::int64_t num_elements() const {
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
};

struct Attribute {
  std::string name;
  int type = 0;  ///< AttributeProto.AttributeType (1 FLOAT, 2 INT, 3 STRING, 7 INTS, ...)
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  std::vector<std::int64_t> ints;
};

struct Node {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;

  const Attribute* attribute(const std::string& attr_name) const {
    for (const auto& a : attributes) {
      if (a.name == attr_name) return &a;
    }
    return nullptr;
  }
  /// The INTS attribute `attr_name`, or `fallback` when the node does not carry it.
  std::vector<std::int64_t> ints(const std::string& attr_name, std::vector<std::int64_t> fallback) const {
    const Attribute* a = attribute(attr_name);
    if (a == nullptr) return fallback;
    if (a->type != 7) throw std::runtime_error("attribute '" + attr_name + "' is not of type INTS");
    return a->ints;
  }
  std::int64_t int_attr(const std::string& attr_name, std::int64_t fallback) const {
    const Attribute* a = attribute(attr_name);
    if (a == nullptr) return fallback;
    if (a->type != 2) throw std::runtime_error("attribute '" + attr_name + "' is not of type INT");
    return a->i;
  }
  std::string string_attr(const std::string& attr_name, std::string fallback) const {
    const Attribute* a = attribute(attr_name);
    if (a == nullptr) return fallback;
    if (a->type != 3) throw std::runtime_error("attribute '" + attr_name + "' is not of type STRING");
    return a->s;
  }
};

struct ValueInfo {
  std::string name;
  int elem_type = kUndefined;
  std::vector<std::int64_t> dims;  ///< -1 for a symbolic dimension
};

struct OpsetId {
  std::string domain;
  std::int64_t version = 0;
};

struct Model {
  std::int64_t ir_version = 0;
  std::vector<OpsetId> opsets;
  std::string graph_name;
  std::vector<Node> nodes;
  std::vector<Tensor> initializers;
  std::vector<ValueInfo> inputs, outputs;
};

namespace detail {

inline std::size_t element_bytes(int data_type) {
  switch (data_type) {
    case kUint8:
    case kInt8:
    case kBool: return 1;
    case kUint16:
    case kInt16: return 2;
    case kInt32:
    case kUint32: return 4;
    case kInt64:
    case kUint64: return 8;
    default: return 0;
  }
}

/// Decodes raw_data: little-endian elements of the tensor's type.
inline std::vector<std::int64_t> decode_raw(int data_type, const std::string& raw, const std::string& what) {
  const std::size_t eb = element_bytes(data_type);
  if (eb == 0) throw std::runtime_error(what + ": raw_data of " + data_type_name(data_type) + " is not supported");
  if (raw.size() % eb != 0) throw std::runtime_error(what + ": raw_data size is not a multiple of the element size");
  std::vector<std::int64_t> out;
  out.reserve(raw.size() / eb);
  for (std::size_t k = 0; k < raw.size(); k += eb) {
    std::uint64_t u = 0;
    for (std::size_t b = 0; b < eb; ++b) u |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(raw[k + b])) << (8 * b);
    std::int64_t v = 0;
    switch (data_type) {
      case kInt8: v = static_cast<std::int8_t>(static_cast<std::uint8_t>(u)); break;
      case kInt16: v = static_cast<std::int16_t>(static_cast<std::uint16_t>(u)); break;
      case kInt32: v = static_cast<std::int32_t>(static_cast<std::uint32_t>(u)); break;
      case kInt64: v = as_int64(u); break;
      case kUint64:
        if (u > static_cast<std::uint64_t>(INT64_MAX)) throw std::runtime_error(what + ": uint64 value too large");
        v = static_cast<std::int64_t>(u);
        break;
      default: v = static_cast<std::int64_t>(u); break;  // unsigned types of up to 32 bits, bool
    }
    out.push_back(v);
  }
  return out;
}

/// Checks that `v` lies in the range of `data_type` (int32_data holds the narrow types).
inline void check_range(int data_type, std::int64_t v, const std::string& what) {
  std::int64_t lo = INT64_MIN, hi = INT64_MAX;
  switch (data_type) {
    case kUint8: lo = 0; hi = 255; break;
    case kInt8: lo = -128; hi = 127; break;
    case kUint16: lo = 0; hi = 65535; break;
    case kInt16: lo = -32768; hi = 32767; break;
    case kInt32: lo = INT32_MIN; hi = INT32_MAX; break;
    case kBool: lo = 0; hi = 1; break;
    default: break;
  }
  if (v < lo || v > hi) {
    throw std::runtime_error(what + ": value " + std::to_string(v) + " is outside " + data_type_name(data_type));
  }
}

inline ValueInfo parse_value_info(const std::uint8_t* data, std::size_t size, const std::string& what) {
  ValueInfo vi;
  Reader r(data, size, what);
  while (!r.done()) {
    const Field f = r.next();
    if (f.number == 1) {
      vi.name = as_string(f, what + ".name");
    } else if (f.number == 2) {  // TypeProto
      expect_wire(f, kLengthDelimited, what + ".type");
      Reader tr(f.data, f.size, what + ".type");
      while (!tr.done()) {
        const Field tf = tr.next();
        if (tf.number != 1) continue;  // tensor_type; other TypeProto kinds are ignored
        expect_wire(tf, kLengthDelimited, what + ".type.tensor_type");
        Reader ttr(tf.data, tf.size, what + ".type.tensor_type");
        while (!ttr.done()) {
          const Field g = ttr.next();
          if (g.number == 1) {
            expect_wire(g, kVarint, what + ".elem_type");
            vi.elem_type = static_cast<int>(g.value);
          } else if (g.number == 2) {  // TensorShapeProto
            expect_wire(g, kLengthDelimited, what + ".shape");
            Reader sr(g.data, g.size, what + ".shape");
            while (!sr.done()) {
              const Field d = sr.next();
              if (d.number != 1) continue;
              expect_wire(d, kLengthDelimited, what + ".shape.dim");
              Reader dr(d.data, d.size, what + ".shape.dim");
              std::int64_t dim = -1;
              while (!dr.done()) {
                const Field dv = dr.next();
                if (dv.number == 1) {
                  expect_wire(dv, kVarint, what + ".dim_value");
                  dim = as_int64(dv.value);
                }
              }
              vi.dims.push_back(dim);
            }
          }
        }
      }
    }
  }
  return vi;
}

inline Attribute parse_attribute(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Attribute a;
  Reader r(data, size, what);
  std::vector<std::uint64_t> ints;
  while (!r.done()) {
    const Field f = r.next();
    switch (f.number) {
      case 1: a.name = as_string(f, what + ".name"); break;
      case 2: {
        expect_wire(f, kFixed32, what + ".f");
        const auto bits = static_cast<std::uint32_t>(f.value);
        std::memcpy(&a.f, &bits, sizeof a.f);
        break;
      }
      case 3: expect_wire(f, kVarint, what + ".i"); a.i = as_int64(f.value); break;
      case 4: a.s = as_string(f, what + ".s"); break;
      case 8: append_varints(f, ints, what + ".ints"); break;
      case 20: expect_wire(f, kVarint, what + ".type"); a.type = static_cast<int>(f.value); break;
      default: break;  // t, g, floats, strings, tensors, graphs, doc_string: not needed
    }
  }
  for (auto v : ints) a.ints.push_back(as_int64(v));
  return a;
}

inline Node parse_node(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Node n;
  Reader r(data, size, what);
  while (!r.done()) {
    const Field f = r.next();
    switch (f.number) {
      case 1: n.inputs.push_back(as_string(f, what + ".input")); break;
      case 2: n.outputs.push_back(as_string(f, what + ".output")); break;
      case 3: n.name = as_string(f, what + ".name"); break;
      case 4: n.op_type = as_string(f, what + ".op_type"); break;
      case 5:
        expect_wire(f, kLengthDelimited, what + ".attribute");
        n.attributes.push_back(parse_attribute(f.data, f.size, what + ".attribute"));
        break;
      case 7: n.domain = as_string(f, what + ".domain"); break;
      default: break;
    }
  }
  return n;
}

}  // namespace detail

/// Parses a serialized TensorProto.
inline Tensor parse_tensor(const std::uint8_t* data, std::size_t size, const std::string& what = "TensorProto") {
  Tensor t;
  Reader r(data, size, what);
  std::vector<std::uint64_t> dims, int32_data, int64_data;
  std::optional<std::string> raw;
  bool has_data_type = false;
  while (!r.done()) {
    const Field f = r.next();
    switch (f.number) {
      case 1: append_varints(f, dims, what + ".dims"); break;
      case 2:
        expect_wire(f, kVarint, what + ".data_type");
        t.data_type = static_cast<int>(f.value);
        has_data_type = true;
        break;
      case 3: throw std::runtime_error(what + ": segmented tensors are not supported");
      case 4: throw std::runtime_error(what + ": float_data is not supported (integer tensors only)");
      case 5: append_varints(f, int32_data, what + ".int32_data"); break;
      case 7: append_varints(f, int64_data, what + ".int64_data"); break;
      case 8: t.name = as_string(f, what + ".name"); break;
      case 9: raw = as_string(f, what + ".raw_data"); break;
      case 13:
      case 14: throw std::runtime_error(what + ": external data is not supported");
      default: break;  // string/double/uint64 data, doc_string: not used by integer tensors here
    }
  }
  if (!has_data_type) throw std::runtime_error(what + ": no data_type");
  std::int64_t elements = 1;
  for (auto d : dims) {
    const std::int64_t v = as_int64(d);
    if (v < 0) throw std::runtime_error(what + ": negative dimension");
    if (v != 0 && elements > INT64_MAX / v) throw std::runtime_error(what + ": element count overflows");
    elements *= v;
    t.dims.push_back(v);
  }
  const std::string where = what + (t.name.empty() ? "" : " '" + t.name + "'");
  const int sources = (raw ? 1 : 0) + (int32_data.empty() ? 0 : 1) + (int64_data.empty() ? 0 : 1);
  if (sources > 1) throw std::runtime_error(where + ": data in more than one field");
  if (raw) {
    t.values = detail::decode_raw(t.data_type, *raw, where);
  } else if (!int32_data.empty()) {
    if (detail::element_bytes(t.data_type) == 0 || detail::element_bytes(t.data_type) > 4 || t.data_type == kUint32) {
      throw std::runtime_error(where + ": int32_data for " + data_type_name(t.data_type));
    }
    for (auto v : int32_data) t.values.push_back(as_int32(v, where));
  } else if (!int64_data.empty()) {
    if (t.data_type != kInt64) throw std::runtime_error(where + ": int64_data for " + data_type_name(t.data_type));
    for (auto v : int64_data) t.values.push_back(as_int64(v));
  }
  for (auto v : t.values) detail::check_range(t.data_type, v, where);
  if (static_cast<std::int64_t>(t.values.size()) != elements) {
    throw std::runtime_error(where + ": " + std::to_string(t.values.size()) + " values for " +
                             std::to_string(elements) + " elements");
  }
  return t;
}

/// Parses a serialized ModelProto (only the parts listed at the top of this file).
inline Model parse_model(const std::uint8_t* data, std::size_t size, const std::string& what = "ModelProto") {
  Model m;
  Reader r(data, size, what);
  bool has_graph = false;
  while (!r.done()) {
    const Field f = r.next();
    if (f.number == 1) {
      expect_wire(f, kVarint, what + ".ir_version");
      m.ir_version = as_int64(f.value);
    } else if (f.number == 8) {
      expect_wire(f, kLengthDelimited, what + ".opset_import");
      Reader o(f.data, f.size, what + ".opset_import");
      OpsetId id;
      while (!o.done()) {
        const Field of = o.next();
        if (of.number == 1) id.domain = as_string(of, what + ".opset_import.domain");
        if (of.number == 2) {
          expect_wire(of, kVarint, what + ".opset_import.version");
          id.version = as_int64(of.value);
        }
      }
      m.opsets.push_back(id);
    } else if (f.number == 7) {
      expect_wire(f, kLengthDelimited, what + ".graph");
      if (has_graph) throw std::runtime_error(what + ": more than one graph");
      has_graph = true;
      Reader g(f.data, f.size, what + ".graph");
      while (!g.done()) {
        const Field gf = g.next();
        switch (gf.number) {
          case 1:
            expect_wire(gf, kLengthDelimited, what + ".graph.node");
            m.nodes.push_back(detail::parse_node(gf.data, gf.size, what + ".graph.node"));
            break;
          case 2: m.graph_name = as_string(gf, what + ".graph.name"); break;
          case 5:
            expect_wire(gf, kLengthDelimited, what + ".graph.initializer");
            m.initializers.push_back(parse_tensor(gf.data, gf.size, what + ".graph.initializer"));
            break;
          case 11:
            expect_wire(gf, kLengthDelimited, what + ".graph.input");
            m.inputs.push_back(detail::parse_value_info(gf.data, gf.size, what + ".graph.input"));
            break;
          case 12:
            expect_wire(gf, kLengthDelimited, what + ".graph.output");
            m.outputs.push_back(detail::parse_value_info(gf.data, gf.size, what + ".graph.output"));
            break;
          default: break;
        }
      }
    }
  }
  if (!has_graph) throw std::runtime_error(what + ": no graph");
  return m;
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline Tensor load_tensor(const std::string& path) {
  const auto bytes = read_file(path);
  return parse_tensor(bytes.data(), bytes.size(), path);
}

inline Model load_model(const std::string& path) {
  const auto bytes = read_file(path);
  return parse_model(bytes.data(), bytes.size(), path);
}

}  // namespace onnx_reader
