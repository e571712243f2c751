//! The process's open-file limit, raised at start.
//!
//! Every client connection, every live-lobby stream and every database connection holds one
//! file descriptor (docs/operations.md, "Sizing"), and the soft `RLIMIT_NOFILE` a process
//! inherits is often 1024 while the hard limit is far higher: a busy lobby would run out of
//! descriptors long before it runs out of anything else. `serve` raises the soft limit to the
//! hard one before it listens, and logs both.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; answers (soft limit before, soft limit
/// after).
///
/// On Unix the soft limit becomes the hard one (on macOS at most `kern.maxfilesperproc`, past
/// which `setrlimit` refuses); a soft limit already there is left as it is. The hard limit is
/// never changed: only the parent or root can raise it. Errors are those of `getrlimit` and
/// `setrlimit` (a sandbox may refuse the latter); the limit is then unchanged, and the service
/// can go on with it.
///
/// Where there is no such limit (not Unix), nothing is done and `(u64::MAX, u64::MAX)` is
/// answered: unlimited, as `RLIM_INFINITY`.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    #[cfg(unix)]
    {
        let (before, _hard) = rlimit::Resource::NOFILE.get()?;
        // Asks for as much as possible: the crate caps it at the hard limit (and at
        // kern.maxfilesperproc on macOS).
        let after = rlimit::increase_nofile_limit(u64::MAX)?;
        Ok((before, after))
    }
    #[cfg(not(unix))]
    {
        Ok((u64::MAX, u64::MAX))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::raise_nofile_limit;
    use rlimit::Resource;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_and_the_hard_one_stays() {
        let (soft, hard) = Resource::NOFILE.get().unwrap();
        // Start from a low soft limit, as a process started with the usual 1024 would. Lowering
        // it never needs privileges; descriptors already open stay open.
        let low = soft.min(hard).min(256);
        Resource::NOFILE.set(low, hard).unwrap();

        let (before, after) = raise_nofile_limit().unwrap();
        assert_eq!(before, low);
        let (now_soft, now_hard) = Resource::NOFILE.get().unwrap();
        assert_eq!(now_hard, hard, "the hard limit is not touched");
        assert_eq!(after, now_soft, "the answer is the limit now in force");
        assert!(after >= before);
        #[cfg(target_os = "linux")]
        assert_eq!(after, hard, "on Linux the soft limit reaches the hard one");

        // Nothing left to raise: a second call changes nothing.
        assert_eq!(raise_nofile_limit().unwrap(), (after, after));
        assert_eq!(Resource::NOFILE.get().unwrap(), (now_soft, now_hard));
    }
}
