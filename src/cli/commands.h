#pragma once
// Each `loom <command>` lives in its own file and adds itself to the application here. A command's callback returns
// the process exit code through `exit_code`; errors thrown as loom::Error are reported by main().

#include <CLI/CLI.hpp>

namespace loom::cli {

// Set by the chosen subcommand's callback; main() returns it.
extern int exit_code;

// `loom info`: describe a snapshot (info_command.cpp).
void register_info_command(CLI::App& app);
// `loom tokenize`: src/cli/tokenize_command.cpp.
void register_tokenize_command(CLI::App& app);
// `loom prompt`: src/cli/prompt_command.cpp.
void register_prompt_command(CLI::App& app);
// `loom quantize`: src/cli/quantize_command.cpp.
void register_quantize_command(CLI::App& app);

// `loom run`: one chat request end to end on this machine (run_command.cpp).
void register_run_command(CLI::App& app);
// `loom serve`: the HTTP server (serve_command.cpp).
void register_serve_command(CLI::App& app);
// `loom bench`: prefill/decode speed against the machine's bandwidth (bench_command.cpp).
void register_bench_command(CLI::App& app);
// `loom tp-worker`: one rank of a tensor-parallel group whose rank 0 is another process (tp_worker_command.cpp).
void register_tp_worker_command(CLI::App& app);

}  // namespace loom::cli
