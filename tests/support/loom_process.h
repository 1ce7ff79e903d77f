#pragma once
// Runs the built `loom` binary as a child process and collects its exit status, stdout and stderr: how the CLI tests
// see the program, exactly as a user's shell does.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "support/scratch_dir.h"

namespace loom::test_support {

struct LoomRun {
  int status = -1;  // the exit code; -1 when the process did not exit normally
  std::string out;
  std::string err;
};

// Any shell command (a client such as curl): its stdout and exit status.
inline LoomRun run_shell(const std::string& command) {
  LoomRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) run.out += buffer;
  const int status = ::pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// `arguments` is appended to the binary's path as shell text: quote paths with quoted(). Collects stderr too.
inline LoomRun run_loom(const std::string& arguments) {
  ScratchDir scratch;
  const auto err_path = scratch / "stderr";
  LoomRun run = run_shell(std::string(LOOM_BINARY) + " " + arguments + " 2>'" + err_path.string() + "'");
  std::ifstream err(err_path);
  run.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return run;
}

inline std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

// The binary running in the background (a tensor-parallel rank, a server), its stdout and stderr going to files that
// can be read while it runs. The destructor kills it (SIGKILL) if it is still running.
class LoomChild {
 public:
  explicit LoomChild(const std::string& arguments) {
    const std::string command = "exec " + std::string(LOOM_BINARY) + " " + arguments + " >'" +
                                (scratch_ / "stdout").string() + "' 2>'" + (scratch_ / "stderr").string() + "'";
    const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
    if (::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) pid_ = -1;
  }
  ~LoomChild() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  LoomChild(const LoomChild&) = delete;
  LoomChild& operator=(const LoomChild&) = delete;

  bool started() const { return pid_ > 0; }
  std::string err() const { return read(scratch_ / "stderr"); }
  std::string out() const { return read(scratch_ / "stdout"); }

  // Polls stderr until it contains `text` (true), or the process exits or `timeout` passes (false).
  bool wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (err().find(text) != std::string::npos) return true;
      if (poll_exit()) return err().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Waits for the exit (killing the process at `timeout`: status -1) and returns what it wrote.
  LoomRun wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!poll_exit() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited_) {
      kill();
      status_ = -1;
    }
    return {status_, out(), err()};
  }

  // Sends `signal` (SIGTERM: a graceful stop) without waiting.
  void signal(int signal) {
    if (pid_ > 0 && !exited_) ::kill(pid_, signal);
  }

  // SIGKILL, and waits until the process is gone.
  void kill() {
    if (pid_ <= 0 || exited_) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    status_ = -1;
  }

 private:
  bool poll_exit() {
    if (pid_ <= 0) return true;
    if (exited_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return exited_;
  }
  static std::string read(const std::filesystem::path& path) {
    std::ifstream file(path);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  }

  ScratchDir scratch_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
};

}  // namespace loom::test_support
