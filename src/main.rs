fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    airlock::cli::main()
}

/// glibc gives threads that allocate concurrently arenas of their own (up to 8 per core)
/// and an arena keeps what it freed. Listings and small reads run on tokio's blocking
/// pool, whose many short-lived threads each grew an arena: measured with the scale
/// bench at N=100,000 (benches/scale.rs), peak RSS of `airlock serve` after the web
/// catalog 521 -> 266 MiB and after the hot loads 563 -> 296 MiB, and `airlock bundle
/// have` 431 -> 66 MiB, with two arenas; request rates unchanged. Set before any thread
/// starts; `MALLOC_ARENA_MAX` in the environment still wins (glibc reads it first).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
