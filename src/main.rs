fn main() -> std::process::ExitCode {
    regwarden::cli::main()
}
