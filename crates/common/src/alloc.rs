//! The memory allocator of every ferroshop binary (and test) that links this
//! crate: mimalloc instead of the system's glibc malloc.
//!
//! A proxy or service on the request path allocates and frees many small
//! buffers per request (headers, futures, bodies). Profiling the gateway
//! under load put glibc's `malloc`/`free` at about 15% of its CPU time;
//! mimalloc's per-thread free lists make the same work several times
//! cheaper (see `docs/benchmarks.md`). It is built from C sources by the
//! `cc` crate, so it needs only the C compiler the Rust toolchain already
//! uses for linking — no `make`, no system library.

/// The global allocator. A program embedding ferroshop's crates that wants
/// another allocator can only have one, so this is the place to change it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
