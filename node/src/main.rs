//! `confab`: the chat node binary. Everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    confab::cli::main()
}
