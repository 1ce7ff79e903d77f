// loom: one binary for every command (serve, run, prompt, tokenize, info, quantize, bench, tp-worker).

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"

namespace loom::cli {
int exit_code = 0;
}  // namespace loom::cli

int main(int argc, char** argv) {
  CLI::App app{"loom: an inference server for vision-language models"};
  app.set_version_flag("--version", "loom 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  loom::cli::register_info_command(app);
  loom::cli::register_tokenize_command(app);
  loom::cli::register_prompt_command(app);
  loom::cli::register_quantize_command(app);
  loom::cli::register_run_command(app);
  loom::cli::register_serve_command(app);
  loom::cli::register_bench_command(app);
  loom::cli::register_tp_worker_command(app);
  app.require_subcommand(1);
  app.parse_complete_callback([&] { loom::log::set_level(log_level); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom: %s\n", e.what());
    return 1;
  }
  return loom::cli::exit_code;
}
