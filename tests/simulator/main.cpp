// bigmodel_simulator: a stand-in for Zhipu BigModel's chat API, for integration tests and benchmarks.
// See --help for the endpoints, checks and fault markers.

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "options.h"
#include "server.h"

namespace {

// Thousands of parked connections need thousands of descriptors; the soft limit is often 1024.
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::perror("bigmodel_simulator: getrlimit");
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("bigmodel_simulator: setrlimit");
}

// Written to a temporary file and renamed, so a test polling for the file never reads a partial number.
void write_port_file(const std::filesystem::path& path, unsigned short port) {
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << '\n';
    out.close();
    if (!out) throw std::runtime_error("cannot write " + temporary.string());
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace

int main(int argc, char** argv) {
  simulator::Options options;
  CLI::App app;
  simulator::add_options(app, options);
  CLI11_PARSE(app, argc, argv);

  // A client vanishing mid-write must be an error code, not a SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit();
  try {
    simulator::Server server(options);
    const auto endpoint = server.endpoint();
    if (!options.port_file.empty()) write_port_file(options.port_file, endpoint.port());
    std::printf("listening on %s:%u\n", endpoint.address().to_string().c_str(), endpoint.port());
    std::fflush(stdout);
    server.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bigmodel_simulator: %s\n", e.what());
    return 1;
  }
  return 0;
}
