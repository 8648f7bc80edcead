//! The `confab` command line, built inside the tests crate so process-level tests can spawn it
//! (`CARGO_BIN_EXE_confab-test-node`) and SIGKILL or SIGTERM it.

fn main() -> std::process::ExitCode {
    confab::cli::main()
}
