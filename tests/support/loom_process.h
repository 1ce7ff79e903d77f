#pragma once
// Runs the built `loom` binary as a child process and collects its exit status, stdout and stderr: how the CLI tests
// see the program, exactly as a user's shell does.

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "support/scratch_dir.h"

namespace loom::test_support {

struct LoomRun {
  int status = -1;  // the exit code; -1 when the process did not exit normally
  std::string out;
  std::string err;
};

// `arguments` is appended to the binary's path as shell text: quote paths with quoted().
inline LoomRun run_loom(const std::string& arguments) {
  ScratchDir scratch;
  const auto err_path = scratch / "stderr";
  const std::string command = std::string(LOOM_BINARY) + " " + arguments + " 2>'" + err_path.string() + "'";
  LoomRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) run.out += buffer;
  const int status = ::pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  run.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return run;
}

inline std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

}  // namespace loom::test_support
