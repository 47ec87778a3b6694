use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_large_allocations_out_of_the_heap();
    let cli = switchyard::cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Responses to proxies are framed in buffers of their own size (hundreds of KB each in a large mesh) and freed
/// once written. glibc's malloc serves such blocks from `mmap` and gives them back on `free`, but it raises that
/// threshold to the size of every such block freed, so after the first few responses they are carved from the
/// heap instead, between the small long-lived allocations of the streams connecting at the same time: once
/// freed, those pages stay resident. A fixed threshold (glibc's own default, 128 KB) keeps every large block in
/// its own mapping: 7-8 KB less resident memory per idle proxy after 1,000 unscoped proxies connected
/// (`BENCHMARKS.md`, "Where the memory of a connected proxy goes").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_out_of_the_heap() {
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: `mallopt` only sets a parameter of the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_out_of_the_heap() {}
