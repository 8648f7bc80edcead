//! `confab`: the chat node binary. Everything is in the library's `cli` module.

/// mimalloc: its pages hold one size of block each and go back to the system once empty, so the
/// memory of a parked session's actor is returned (glibc's heap kept it, between the
/// connections' live blocks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    confab::cli::main()
}
