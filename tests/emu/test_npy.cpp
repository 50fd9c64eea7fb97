// NumPy .npy files: round trips for every dtype, files written by numpy itself (and
// numpy reading ours), malformed files refused with a message that names the problem.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dla/npy.hpp"
#include "emu_test_util.hpp"

using dla::DType;
using dla::HostTensor;
using dla::TensorDesc;
using namespace emu_test;

namespace {

/// Scratch files live in one directory per process, removed when the suite ends.
const std::string& temp_dir() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "/emu_npy_" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

class RemoveTempDir : public ::testing::Environment {
 public:
  void TearDown() override { std::filesystem::remove_all(temp_dir()); }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new RemoveTempDir);

std::string temp_path(const std::string& name) { return temp_dir() + "/" + name; }

/// Runs a shell command; returns its stdout and exit code.
std::pair<int, std::string> shell(const std::string& cmd) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::pair<int, std::string> python(const std::string& script) {
  const std::string file = temp_path("script.py");
  std::ofstream(file) << script;
  return shell("/usr/bin/python3 " + file);
}

TensorDesc desc_of(const std::string& name, DType t, std::vector<std::uint64_t> shape) {
  TensorDesc d;
  d.name = name;
  d.dtype = t;
  d.frac = 3;
  d.shape = std::move(shape);
  return d;
}

HostTensor random_tensor(DType t, std::vector<std::uint64_t> shape, std::mt19937_64& g) {
  HostTensor h;
  h.dtype = t;
  h.frac = 3;
  h.shape = std::move(shape);
  const auto info = dla::dtype_info(t);
  for (std::uint64_t i = 0; i < h.num_elements(); ++i) {
    // Extremes first, then random values.
    const std::int64_t v = i == 0 ? info.min : i == 1 ? info.max : rand_int(g, info.min, info.max);
    h.values.push_back(static_cast<std::int32_t>(v));
  }
  return h;
}

/// A .npy file with an arbitrary header text and payload.
std::vector<std::uint8_t> npy_bytes(const std::string& header, const std::vector<std::uint8_t>& data, int major = 1) {
  std::vector<std::uint8_t> f = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major), 0};
  const std::size_t len = header.size();
  f.push_back(static_cast<std::uint8_t>(len));
  f.push_back(static_cast<std::uint8_t>(len >> 8));
  if (major != 1) {
    f.push_back(static_cast<std::uint8_t>(len >> 16));
    f.push_back(static_cast<std::uint8_t>(len >> 24));
  }
  f.insert(f.end(), header.begin(), header.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

void expect_parse_error(const std::vector<std::uint8_t>& f, const std::string& text) {
  expect_error([&] { dla::npy::parse(f.data(), f.size(), "bad.npy"); }, text);
  expect_error([&] { dla::npy::parse(f.data(), f.size(), "bad.npy"); }, "bad.npy: ");
}

}  // namespace

TEST(Npy, RoundTripThroughFilesForEveryDtype) {
  std::mt19937_64 g(200);
  const std::vector<std::vector<std::uint64_t>> shapes = {{}, {7}, {2, 3, 5}, {1, 3, 4, 4}, {0, 3}};
  for (int t = 0; t < dla::kNumDTypes; ++t) {
    for (const auto& shape : shapes) {
      const auto dt = static_cast<DType>(t);
      SCOPED_TRACE(std::string(dla::dtype_info(dt).name) + " " + dla::shape_string(shape));
      const HostTensor h = random_tensor(dt, shape, g);
      const std::string path = temp_path("rt.npy");
      dla::npy::write_tensor(path, h);
      // numpy's layout: magic, version 1.0, header padded so the data starts at 64k.
      std::ifstream in(path, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
      ASSERT_GE(bytes.size(), 10u);
      EXPECT_EQ(std::string(bytes.data() + 1, 5), "NUMPY");
      EXPECT_EQ(bytes[6], 1);
      const std::size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
      EXPECT_EQ((10 + hlen) % 64, 0u);
      EXPECT_EQ(bytes[10 + hlen - 1], '\n');
      const HostTensor back = dla::npy::read_tensor(path, desc_of("x", dt, shape));
      EXPECT_EQ(back, h);
      const dla::npy::Array a = dla::npy::read(path);
      EXPECT_EQ(a.descr, dla::npy::descr_for(dt));
    }
  }
}

TEST(Npy, ReadsFilesWrittenByNumpy) {
  const std::string dir = temp_path("np_");
  const auto [code, out] = python(
      "import numpy as np\n"
      "d = '" + dir + "'\n"
      "np.save(d + 'i8.npy', (np.arange(60) * 37 % 256 - 128).astype(np.int8).reshape(3, 4, 5))\n"
      "np.save(d + 'u8.npy', (np.arange(30) * 11 % 256).astype(np.uint8).reshape(1, 2, 3, 5))\n"
      "np.save(d + 'i16.npy', (np.arange(24) * 2731 - 32768).astype(np.int16))\n"
      "np.save(d + 'i32.npy', (np.arange(24, dtype=np.int64) * -89478485 + 2147483647).astype(np.int32).reshape(2, 3, 4))\n"
      "np.save(d + 'i64.npy', np.arange(6, dtype=np.int64).reshape(2, 3) * 1000 - 2500)\n"
      "np.save(d + 'scalar.npy', np.array(-7, dtype=np.int32))\n"
      "with open(d + 'v2.npy', 'wb') as f:\n"
      "    np.lib.format.write_array(f, np.arange(10, dtype=np.int16) - 5, version=(2, 0))\n"
      "np.save(d + 'fortran.npy', np.asfortranarray(np.arange(6, dtype=np.int8).reshape(2, 3)))\n"
      "np.save(d + 'f32.npy', np.zeros(3, dtype=np.float32))\n"
      "np.save(d + 'be.npy', np.arange(3, dtype='>i4'))\n"
      "print('ok')\n");
  ASSERT_EQ(code, 0) << out;
  {
    const HostTensor t = dla::npy::read_tensor(dir + "i8.npy", desc_of("a", DType::I8, {3, 4, 5}));
    for (int i = 0; i < 60; ++i) EXPECT_EQ(t.values[static_cast<std::size_t>(i)], i * 37 % 256 - 128) << i;
  }
  {
    const HostTensor t = dla::npy::read_tensor(dir + "u8.npy", desc_of("b", DType::U8, {1, 2, 3, 5}));
    for (int i = 0; i < 30; ++i) EXPECT_EQ(t.values[static_cast<std::size_t>(i)], i * 11 % 256) << i;
  }
  {
    const HostTensor t = dla::npy::read_tensor(dir + "i16.npy", desc_of("c", DType::I16, {24}));
    for (int i = 0; i < 24; ++i) EXPECT_EQ(t.values[static_cast<std::size_t>(i)], i * 2731 - 32768) << i;
  }
  {
    const HostTensor t = dla::npy::read_tensor(dir + "i32.npy", desc_of("d", DType::I32, {2, 3, 4}));
    for (int i = 0; i < 24; ++i) {
      EXPECT_EQ(t.values[static_cast<std::size_t>(i)], static_cast<std::int64_t>(i) * -89478485 + 2147483647) << i;
    }
  }
  {
    // int64 files are accepted when every value fits the tensor's type.
    const HostTensor t = dla::npy::read_tensor(dir + "i64.npy", desc_of("e", DType::I16, {2, 3}));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(t.values[static_cast<std::size_t>(i)], i * 1000 - 2500);
    expect_error([&] { dla::npy::read_tensor(dir + "i64.npy", desc_of("e", DType::I8, {2, 3})); },
                 "element 0 = -2500 is outside the range of i8 [-128, 127]");
  }
  {
    const HostTensor t = dla::npy::read_tensor(dir + "scalar.npy", desc_of("s", DType::I32, {}));
    EXPECT_EQ(t.values, std::vector<std::int32_t>{-7});
  }
  {
    const dla::npy::Array a = dla::npy::read(dir + "v2.npy");
    EXPECT_EQ(a.descr, "<i2");
    EXPECT_EQ(a.shape, std::vector<std::uint64_t>{10});
    for (int i = 0; i < 10; ++i) EXPECT_EQ(a.values[static_cast<std::size_t>(i)], i - 5);
  }
  expect_error([&] { dla::npy::read(dir + "fortran.npy"); }, "fortran_order True is not supported");
  expect_error([&] { dla::npy::read(dir + "f32.npy"); }, "unsupported dtype '<f4' (float32): dla tensors are integers");
  expect_error([&] { dla::npy::read(dir + "be.npy"); }, "unsupported dtype '>i4' (int32): big-endian data is not supported");
}

TEST(Npy, NumpyReadsFilesWeWrite) {
  std::mt19937_64 g(201);
  std::string checks;
  int k = 0;
  for (int t = 0; t < dla::kNumDTypes; ++t) {
    const auto dt = static_cast<DType>(t);
    const HostTensor h = random_tensor(dt, {2, 3, 4}, g);
    const std::string path = temp_path("ours" + std::to_string(k++) + ".npy");
    dla::npy::write_tensor(path, h);
    std::ostringstream list;
    for (auto v : h.values) list << v << ",";
    const std::string np_type = dt == DType::I4 || dt == DType::I8 ? "int8"
                                : dt == DType::U4 || dt == DType::U8 ? "uint8"
                                : dt == DType::I16 ? "int16" : "int32";
    checks += "a = np.load('" + path + "')\n"
              "assert a.dtype == np." + np_type + ", a.dtype\n"
              "assert a.shape == (2, 3, 4), a.shape\n"
              "assert a.flatten().tolist() == [" + list.str() + "], a\n";
  }
  const auto [code, out] = python("import numpy as np\n" + checks + "print('ok')\n");
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "ok\n");
}

TEST(Npy, MalformedFilesAreRefused) {
  const std::string good = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n";
  const std::vector<std::uint8_t> six_words(24, 0);
  EXPECT_NO_THROW(dla::npy::parse(npy_bytes(good, six_words).data(), npy_bytes(good, six_words).size(), "ok"));
  {
    auto f = npy_bytes(good, six_words);
    f[1] = 'X';
    expect_parse_error(f, "not a .npy file (bad magic");
    expect_parse_error({0x93, 'N'}, "not a .npy file");
  }
  {
    auto f = npy_bytes(good, six_words);
    f[6] = 4;
    expect_parse_error(f, "unsupported .npy version 4.0");
  }
  {
    std::vector<std::uint8_t> f = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0x70, 0x11, 0x01, 0x00};  // 70000 bytes
    expect_parse_error(f, ".npy header is 70000 bytes, over the limit of 65536");
  }
  {
    auto f = npy_bytes(good, six_words);
    f.resize(30);
    expect_parse_error(f, "truncated .npy header");
  }
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", six_words),
                     "fortran_order True is not supported");
  expect_parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", six_words),
                     "unsupported dtype '<f8' (float64): dla tensors are integers");
  expect_parse_error(npy_bytes("{'descr': '<u2', 'fortran_order': False, 'shape': (12,), }", six_words),
                     "unsupported dtype '<u2' (uint16)");
  expect_parse_error(npy_bytes("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (6,), }", six_words),
                     "structured dtypes are not supported");
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': False, }", six_words),
                     "the header must have the keys 'descr', 'fortran_order' and 'shape'");
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3}", six_words),
                     "bad .npy header: expected ')'");
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", six_words),
                     "unexpected key 'x'");
  // Shapes whose size cannot exist are refused before anything is allocated.
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", {}),
                     "shape [1099511627776,1099511627776] is too large");
  expect_parse_error(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1000000000,), }", six_words),
                     "truncated data: shape [1000000000] of '<i4' (int32) needs 4000000000 bytes, the file has 24");
  {
    auto extra = six_words;
    extra.push_back(0);
    expect_parse_error(npy_bytes(good, extra), "1 bytes of unexpected data after the array");
  }
  {
    std::vector<std::uint8_t> words(16, 0);
    words[5] = 1;  // element 0 = 2^40
    expect_parse_error(npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", words),
                       "element 0 = 1099511627776 of the '<i8' array does not fit in 32 bits");
  }
  expect_error([&] { dla::npy::read(temp_path("does_not_exist.npy")); }, "cannot read .npy file");
}

TEST(Npy, TensorDtypeAndShapeMustMatchTheProgram) {
  std::mt19937_64 g(202);
  const std::string path = temp_path("in.npy");
  dla::npy::write_tensor(path, random_tensor(DType::I8, {2, 3}, g));
  expect_error([&] { dla::npy::read_tensor(path, desc_of("image", DType::U8, {2, 3})); },
               "input 'image' (" + path + "): expected dtype '|u1' (uint8) for a u8 tensor, got '|i1' (int8)");
  expect_error([&] { dla::npy::read_tensor(path, desc_of("image", DType::I8, {3, 2})); },
               "input 'image' (" + path + "): expected shape [3,2], got [2,3]");
  expect_error([&] { dla::npy::read_tensor(path, desc_of("image", DType::I16, {2, 3})); },
               "expected dtype '<i2' (int16) for a i16 tensor");
  // i4 tensors take int8 files whose values fit in 4 bits.
  HostTensor wide;
  wide.dtype = DType::I8;
  wide.shape = {4};
  wide.values = {-8, 7, 0, 9};
  dla::npy::write_tensor(path, wide);
  expect_error([&] { dla::npy::read_tensor(path, desc_of("w", DType::I4, {4})); },
               "element 3 = 9 is outside the range of i4 [-8, 7]");
  expect_error([&] { dla::npy::read_tensor(temp_path("missing.npy"), desc_of("w", DType::I4, {4})); },
               "input 'w': ");
}
