//! The `genolm` command: parse arguments and dispatch; all work lives in the library.

fn main() {
    std::process::exit(genolm::cli::main());
}
