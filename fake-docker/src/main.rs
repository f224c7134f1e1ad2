//! The `fake-docker` binary: thin glue over the library.

fn main() {
    // Lossy: docker's own arguments are text; a stray non-UTF-8 byte must not panic.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The call server (`__serve SOCKET`) runs `commands::main` per call, so it is
    // dispatched here, above both, not from `commands` (tidy: no import cycle).
    let code = match args.first().map(String::as_str) {
        Some(fake_docker::serve::SERVE) => {
            fake_docker::serve::serve(args.get(1).map_or("", String::as_str))
        }
        _ => fake_docker::commands::main(&args),
    };
    std::process::exit(code);
}
