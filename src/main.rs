//! The `snrscope` command: the explorer ([`ui`]) and the headless subcommands ([`cli`]), both
//! over the library (models, scans, plans, writers, the forward pass).

mod cli;
mod ui;

fn main() -> std::process::ExitCode {
    cli::main()
}
