//! The `fake-docker` binary: thin glue over the library.

fn main() {
    // Lossy: docker's own arguments are text; a stray non-UTF-8 byte must not panic.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = fake_docker::commands::main(&args);
    std::process::exit(code);
}
