//! The `soft-prompt-lab` binary. The command line is native; in wasm32 the page calls the
//! library instead, so this binary is empty there (cargo still builds it for wasm tests).

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
