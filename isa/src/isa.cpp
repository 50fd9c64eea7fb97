// Encoder, decoder and disassembler, all generated from DLA_ISA_TABLE.
#include "dla/isa.hpp"

#include <sstream>

#include "dla/error.hpp"
#include "dla/mac_modes.hpp"
#include "dla/numerics.hpp"

namespace dla::isa {
namespace {

constexpr int kOpclassLsb = 0;
constexpr int kOpclassWidth = 4;
constexpr int kTokenLsb = 4;
constexpr int kFunctLsb = 8;
constexpr int kFunctWidth = 4;

constexpr std::uint64_t low_mask(int width) {
  return width >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width) - 1;
}

#define DLA_ISA_INFO_ENTRY(Name, mnem, opclass, funct, queue, FIELDS)                      \
  InsnInfo{mnem,                                                                           \
           opclass,                                                                        \
           funct,                                                                          \
           queue,                                                                          \
           Name::kFields.data(),                                                           \
           Name::kFields.size(),                                                           \
           std::uint64_t{opclass} | (funct == kNoFunct ? 0 : std::uint64_t(funct) << kFunctLsb), \
           low_mask(kOpclassWidth) | (funct == kNoFunct ? 0 : low_mask(kFunctWidth) << kFunctLsb)},

constexpr InsnInfo kInsnInfos[] = {DLA_ISA_TABLE(DLA_ISA_INFO_ENTRY)};
#undef DLA_ISA_INFO_ENTRY

constexpr std::size_t kNumInsns = sizeof(kInsnInfos) / sizeof(kInsnInfos[0]);

/// Covered-bit mask of an instruction: header, funct and every field.
Word covered_bits(const InsnInfo& info) {
  Word w;
  w.set_bits(kOpclassLsb, kOpclassWidth + 4, low_mask(kOpclassWidth + 4));
  if (info.funct != kNoFunct) w.set_bits(kFunctLsb, kFunctWidth, low_mask(kFunctWidth));
  for (std::size_t i = 0; i < info.num_fields; ++i) {
    w.set_bits(info.fields[i].lsb, info.fields[i].width, low_mask(info.fields[i].width));
  }
  return w;
}

/// Throws EncodeError naming the instruction when it carries a token flag its queue has not.
void check_tokens(std::string_view mnemonic, Queue q, const Tokens& t) {
  const std::string error = token_flag_error(q, t);
  if (!error.empty()) throw EncodeError(std::string(mnemonic) + ": " + error);
}

std::string range_error(std::string_view mnemonic, const FieldInfo& f, std::int64_t value) {
  std::ostringstream os;
  os << mnemonic << ": field " << f.name << " = " << value << " is out of range [" << f.min
     << ", " << f.max << "]";
  return os.str();
}

template <typename Insn>
Word encode_one(const Insn& insn) {
  check_tokens(Insn::kMnemonic, Insn::kQueue, insn.tokens);
  Word w;
  w.set_bits(kOpclassLsb, kOpclassWidth, static_cast<std::uint64_t>(Insn::kOpclass));
  w.set_bits(kTokenLsb + 0, 1, insn.tokens.pop_prev);
  w.set_bits(kTokenLsb + 1, 1, insn.tokens.pop_next);
  w.set_bits(kTokenLsb + 2, 1, insn.tokens.push_prev);
  w.set_bits(kTokenLsb + 3, 1, insn.tokens.push_next);
  if constexpr (Insn::kFunct != kNoFunct) {
    w.set_bits(kFunctLsb, kFunctWidth, static_cast<std::uint64_t>(Insn::kFunct));
  }
  insn.visit_fields([&](const FieldInfo& f, std::int64_t value) {
    if (value < f.min || value > f.max) throw EncodeError(range_error(Insn::kMnemonic, f, value));
    w.set_bits(f.lsb, f.width, static_cast<std::uint64_t>(value));
  });
  return w;
}

template <typename Insn>
Instruction decode_one(const Word& w) {
  Insn insn;
  insn.tokens.pop_prev = w.bits(kTokenLsb + 0, 1) != 0;
  insn.tokens.pop_next = w.bits(kTokenLsb + 1, 1) != 0;
  insn.tokens.push_prev = w.bits(kTokenLsb + 2, 1) != 0;
  insn.tokens.push_next = w.bits(kTokenLsb + 3, 1) != 0;
  check_tokens(Insn::kMnemonic, Insn::kQueue, insn.tokens);
  insn.visit_fields([&](const FieldInfo& f, std::int64_t& value) {
    value = static_cast<std::int64_t>(w.bits(f.lsb, f.width));
    if (value < f.min || value > f.max) throw EncodeError(range_error(Insn::kMnemonic, f, value));
  });
  return insn;
}

template <typename Insn>
constexpr std::size_t index_of() {
  std::size_t i = 0;
  for (; i < kNumInsns; ++i) {
    if (kInsnInfos[i].mnemonic == Insn::kMnemonic) break;
  }
  return i;
}

std::string field_text(const FieldInfo& f, std::int64_t value) {
  switch (f.kind) {
    case FieldKind::kAddr: {
      std::ostringstream os;
      os << "0x" << std::hex << value;
      return os.str();
    }
    case FieldKind::kBool: return value != 0 ? "1" : "0";
    case FieldKind::kBuffer: return std::string(buffer_name(static_cast<Buffer>(value)));
    case FieldKind::kDType:
      return is_valid_dtype(static_cast<int>(value))
                 ? std::string(dtype_info(static_cast<DType>(value)).name)
                 : std::to_string(value);
    case FieldKind::kMacMode: return std::string(mac_mode_name(static_cast<MacMode>(value)));
    case FieldKind::kNum: break;
  }
  return std::to_string(value);
}

}  // namespace

namespace {
/// The name of enum value `v` in `names` (indexed by value), "?" outside it.
template <typename Enum, std::size_t N>
std::string_view enum_name(Enum v, const std::string_view (&names)[N]) {
  const auto i = static_cast<std::size_t>(v);
  return i < N ? names[i] : "?";
}
constexpr std::string_view kQueueNames[] = {"load", "compute", "store", "all"};
constexpr std::string_view kBufferNames[] = {"act", "wgt", "acc", "param"};
}  // namespace

std::string_view queue_name(Queue q) { return enum_name(q, kQueueNames); }

std::string_view buffer_name(Buffer b) { return enum_name(b, kBufferNames); }

std::string_view mac_mode_name(MacMode m) {
  return static_cast<std::size_t>(m) < kMacModes.size() ? mac_mode_info(m).name : "?";
}

std::string token_flag_error(Queue q, const Tokens& t) {
  const bool has_prev = q == Queue::kCompute || q == Queue::kStore;
  const bool has_next = q == Queue::kCompute || q == Queue::kLoad;
  const char* bad = !has_prev && t.pop_prev    ? "pop_prev"
                    : !has_prev && t.push_prev ? "push_prev"
                    : !has_next && t.pop_next  ? "pop_next"
                    : !has_next && t.push_next ? "push_next"
                                               : nullptr;
  if (bad == nullptr) return {};
  const bool prev = std::string_view(bad).find("prev") != std::string_view::npos;
  return std::string("token flag ") + bad + " is invalid on the " + std::string(queue_name(q)) +
         " queue (it has no " + (prev ? "previous" : "next") + " queue)";
}

const InsnInfo* insn_infos(std::size_t* count) {
  *count = kNumInsns;
  return kInsnInfos;
}

const InsnInfo& info_of(const Instruction& insn) {
  return std::visit(
      [](const auto& i) -> const InsnInfo& {
        return kInsnInfos[index_of<std::decay_t<decltype(i)>>()];
      },
      insn);
}

std::uint64_t Word::bits(int lsb, int width) const {
  // A field lies in one 64-bit word or straddles the boundary at bit 64.
  const auto word = static_cast<std::size_t>(lsb / 64);
  const int shift = lsb % 64;
  std::uint64_t out = words[word] >> shift;
  if (shift != 0 && shift + width > 64 && word == 0) out |= words[1] << (64 - shift);
  return out & low_mask(width);
}

void Word::set_bits(int lsb, int width, std::uint64_t value) {
  value &= low_mask(width);
  const auto word = static_cast<std::size_t>(lsb / 64);
  const int shift = lsb % 64;
  words[word] = (words[word] & ~(low_mask(width) << shift)) | (value << shift);
  if (shift != 0 && shift + width > 64 && word == 0) {
    const int high = shift + width - 64;  // bits that spill into word 1
    words[1] = (words[1] & ~low_mask(high)) | (value >> (64 - shift));
  }
}

void Word::to_bytes(std::uint8_t* out) const {
  for (int i = 0; i < kInstructionBytes; ++i) {
    out[i] = static_cast<std::uint8_t>(words[static_cast<std::size_t>(i / 8)] >> (8 * (i % 8)));
  }
}

Word Word::from_bytes(const std::uint8_t* in) {
  Word w;
  for (int i = 0; i < kInstructionBytes; ++i) {
    w.words[static_cast<std::size_t>(i / 8)] |= std::uint64_t{in[i]} << (8 * (i % 8));
  }
  return w;
}

Word encode(const Instruction& insn) {
  return std::visit([](const auto& i) { return encode_one(i); }, insn);
}

Instruction decode(const Word& word) {
  for (std::size_t i = 0; i < kNumInsns; ++i) {
    const InsnInfo& info = kInsnInfos[i];
    if ((word.words[0] & info.mask) != info.match) continue;
    const Word covered = covered_bits(info);
    if ((word.words[0] & ~covered.words[0]) != 0 || (word.words[1] & ~covered.words[1]) != 0) {
      throw EncodeError(std::string(info.mnemonic) + ": reserved bits are set");
    }
#define DLA_ISA_DECODE_CASE(Name, ...) \
  if (info.mnemonic == Name::kMnemonic) return decode_one<Name>(word);
    DLA_ISA_TABLE(DLA_ISA_DECODE_CASE)
#undef DLA_ISA_DECODE_CASE
  }
  const auto opclass = word.bits(kOpclassLsb, kOpclassWidth);
  std::ostringstream os;
  os << "unknown instruction: opclass " << opclass;
  if (opclass == 5) os << ", funct " << word.bits(kFunctLsb, kFunctWidth);
  throw EncodeError(os.str());
}

std::string disassemble(const Instruction& insn) {
  return std::visit(
      [](const auto& i) {
        std::ostringstream os;
        os << i.kMnemonic;
        if (i.tokens.pop_prev) os << " +pop_prev";
        if (i.tokens.pop_next) os << " +pop_next";
        if (i.tokens.push_prev) os << " +push_prev";
        if (i.tokens.push_next) os << " +push_next";
        i.visit_fields([&](const FieldInfo& f, std::int64_t value) {
          os << ' ' << f.name << '=' << field_text(f, value);
        });
        return os.str();
      },
      insn);
}

Queue queue_of(const Instruction& insn) {
  return std::visit([](const auto& i) { return i.kQueue; }, insn);
}

const Tokens& tokens_of(const Instruction& insn) {
  return std::visit([](const auto& i) -> const Tokens& { return i.tokens; }, insn);
}

Tokens& tokens_of(Instruction& insn) {
  return std::visit([](auto& i) -> Tokens& { return i.tokens; }, insn);
}

}  // namespace dla::isa
