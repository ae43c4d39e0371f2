//! glibc malloc settings for a process whose work is one large, short-lived burst per scrape.
//!
//! At 2,048 segments a scrape allocates ~10 MB for a moment (the catalog rows, the snapshot,
//! a 4.7 MB body) and frees it. With glibc's defaults that burst kept the peak RSS at about
//! three times the peak heap: every tokio thread that allocated got its own arena, each
//! keeping its freed memory, and after the first large buffer was freed glibc raised its
//! mmap threshold, so later bodies came from an arena too and were never given back.

/// Arenas: one is plenty for a handful of threads on an exporter's few cores.
const ARENA_MAX: i32 = 1;
/// Allocations from this size on are mapped on their own and unmapped when freed. Fixing it
/// also stops glibc from raising it after the first large free.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Free memory at the top of the heap beyond this goes back to the system.
const TRIM_THRESHOLD: i32 = 256 * 1024;

/// Applies the settings, each unless its `MALLOC_*` environment variable is set (an
/// operator's own tuning wins). Call it before any thread starts: a thread's arena is chosen
/// by its first allocation. Returns the variables of settings glibc refused, to be logged
/// once logging is set up.
pub fn tune_malloc() -> Vec<&'static str> {
    #[allow(unused_mut)] // Nothing to refuse without glibc.
    let mut refused = Vec::new();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        ),
    ] {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        if unsafe { libc::mallopt(parameter, value) } != 1 {
            refused.push(variable);
        }
    }
    refused
}
