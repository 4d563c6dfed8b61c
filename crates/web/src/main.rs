//! `shop-web`: the storefront as its own process.

// mimalloc: several times cheaper than glibc's malloc for the many small
// per-request buffers (docs/benchmarks.md). Set here, in the binary, so
// that linking the library never chooses an allocator for anyone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_runtime::main::<shop_web::Web>(env!("CARGO_PKG_DESCRIPTION")).await
}
