// dla — the dlasim command-line tool: one binary, one subcommand per job.
#include <boost/program_options.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <streambuf>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "dla/error.hpp"
#include "dla/file_io.hpp"

namespace po = boost::program_options;

namespace {

void print_help(const po::options_description& global) {
  std::cout << "dla — bit-accurate simulator of the dlasim deep-learning accelerator\n\n"
               "usage: dla [global options] COMMAND [command options]\n\ncommands:\n";
  for (const auto& c : dla::cli::kCommands) {
    std::cout << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  std::cout << "\n" << global << "\n'dla COMMAND --help' describes a command.\n";
}

int run(int argc, char** argv) {
  po::options_description global("global options");
  global.add_options()
      ("help,h", "print this help")
      ("version", "print the version")
      ("log-level", po::value<std::string>()->default_value("warn"),
       "logging threshold: trace, debug, info, warn, error, critical or off");
  po::options_description hidden;
  hidden.add_options()
      ("command", po::value<std::string>(), "subcommand")
      ("args", po::value<std::vector<std::string>>(), "subcommand arguments");
  po::options_description all;
  all.add(global).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);

  po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(all).positional(positional).allow_unregistered().run();
  po::variables_map vm;
  po::store(parsed, vm);
  po::notify(vm);

  const std::string level_name = vm["log-level"].as<std::string>();
  const auto level = spdlog::level::from_str(level_name);
  if (level == spdlog::level::off && level_name != "off") {
    throw dla::Error("unknown log level '" + level_name + "' (use trace, debug, info, warn, error, critical or off)");
  }
  auto logger = spdlog::stderr_color_mt("dla");
  logger->set_pattern("[%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);

  if (vm.count("version")) {
    std::cout << "dla (dlasim) 0.1.0\n";
    return 0;
  }
  if (!vm.count("command")) {
    print_help(global);
    return vm.count("help") ? 0 : 1;
  }
  const std::string command = vm["command"].as<std::string>();
  // Everything after the command name belongs to the command, options included.
  std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
  rest.erase(rest.begin());
  if (vm.count("help")) rest.insert(rest.begin(), "--help");
  for (const auto& c : dla::cli::kCommands) {
    if (command == c.name) {
      spdlog::debug("running '{}'", command);
      return c.run(rest);
    }
  }
  throw dla::Error("unknown command '" + command + "' (see 'dla --help')");
}

/// std::cout's buffer: writes to file descriptor 1 and keeps the first write error, so
/// that output which did not reach its destination (a full disk) fails the command with
/// the errno text: a report that was never written is not a success.
class CheckedStdout : public std::streambuf {
 public:
  CheckedStdout() { setp(buf_.data(), buf_.data() + buf_.size()); }
  /// Writes what is buffered; throws if any write failed.
  void finish() {
    sync();
    if (error_ == 0 && (std::fflush(stdout) != 0 || std::ferror(stdout) != 0)) error_ = errno != 0 ? errno : EIO;
    if (error_ != 0) throw dla::Error(std::string("cannot write to standard output: ") + std::strerror(error_));
  }

 protected:
  int sync() override {
    const auto n = static_cast<std::size_t>(pptr() - pbase());
    setp(buf_.data(), buf_.data() + buf_.size());
    if (n > 0 && error_ == 0) {
      std::fflush(stdout);  // what `printf` buffered goes first
      error_ = dla::write_all(1, buf_.data(), n);
    }
    return error_ == 0 ? 0 : -1;
  }
  int_type overflow(int_type c) override {
    if (sync() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) sputc(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::array<char, 1 << 16> buf_{};
  int error_ = 0;
};

/// An error message as one line of printable ASCII: a message may quote bytes of a damaged
/// file (libtorch's parser does), which are written as \xNN; a line break becomes "; ".
std::string one_line(const std::string& what) {
  static const char* const kHex = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < what.size(); ++i) {
    const auto c = static_cast<unsigned char>(what[i]);
    if (c == '\n') {
      if (i + 1 < what.size()) s += "; ";
    } else if (c < 0x20 || c > 0x7e) {
      s += "\\x";
      s += kHex[c >> 4];
      s += kHex[c & 15];
    } else {
      s += static_cast<char>(c);
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CheckedStdout out;
  std::streambuf* const original = std::cout.rdbuf(&out);
  struct Restore {
    std::streambuf* original;
    ~Restore() { std::cout.rdbuf(original); }
  } restore{original};
  try {
    const int code = run(argc, argv);
    out.finish();
    return code;
  } catch (const dla::Error& e) {
    out.pubsync();  // what the command printed before it failed, then the error
    std::cerr << "dla: error: " << one_line(e.what()) << "\n";
  } catch (const po::error& e) {
    out.pubsync();
    std::cerr << "dla: error: " << one_line(e.what()) << "\n";
  } catch (const std::exception& e) {
    out.pubsync();
    std::cerr << "dla: internal error: " << one_line(e.what()) << "\n";
    return 2;
  }
  return 1;
}
