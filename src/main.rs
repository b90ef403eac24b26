fn main() -> std::process::ExitCode {
    snrscope::cli::main()
}
