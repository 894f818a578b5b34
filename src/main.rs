//! The `genolm` command: parse arguments and dispatch; all work lives in the library.

#[global_allocator]
static ALLOC: genolm::mem::CountingAlloc = genolm::mem::CountingAlloc;

fn main() {
    genolm::mem::keep_freed_memory();
    std::process::exit(genolm::cli::main());
}
