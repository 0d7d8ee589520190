//! The `strata` binary: argument parsing and wiring only (see lib.rs).

/// mimalloc, not glibc's malloc: glibc keeps what a thread frees in that thread's arena and
/// grows its mmap threshold with the largest block freed, so a run's peak RSS became the sum
/// of what its stages and threads once held rather than the largest of them (whole MedQuAD,
/// static: 343 MB against 260 MB for the largest stage alone; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    strata_cli::main()
}
