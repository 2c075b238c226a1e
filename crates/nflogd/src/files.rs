//! How nflogd creates and replaces its own files (logs, spools, positions, stores): never
//! through a symbolic link, so that whoever can write a log directory cannot make nflogd
//! (often root) write somewhere else. Modes come from the process umask (`umask`, 0027 by
//! default: files 0640, directories 0750).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for appending, creating it; fails (ELOOP) if `path` is a symbolic link.
pub fn append_no_follow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Replaces `path`'s content atomically (written aside, then renamed over it); neither name is
/// followed if it is a symbolic link.
pub fn replace(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(content)?;
    drop(f);
    std::fs::rename(tmp, path)
}

/// An error if `path` exists as a symbolic link (for files another library opens).
pub fn refuse_symlink(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::other(format!(
            "{} is a symbolic link; nflogd does not write through links",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Reads a umask from its octal text ("0027").
pub fn parse_umask(octal: &str) -> anyhow::Result<u32> {
    u32::from_str_radix(octal.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| anyhow::anyhow!("umask: `{octal}` is not an octal mode such as \"0027\""))
}

/// Sets the process umask from its octal text ("0027").
pub fn set_umask(octal: &str) -> anyhow::Result<()> {
    let mask = parse_umask(octal)?;
    // SAFETY: umask only changes the process's file creation mask.
    unsafe { libc::umask(mask as libc::mode_t) };
    Ok(())
}

/// Creates (or empties) `path` for writing; fails (ELOOP) if `path` is a symbolic link.
pub fn create_truncated(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("nflogd-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"precious\n").unwrap();
        let link = dir.join("events.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = append_no_follow(&link).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(refuse_symlink(&link).is_err());
        // A link planted at the temporary name is replaced, not written through.
        let pos = dir.join("k.position");
        std::os::unix::fs::symlink(&target, pos.with_extension("tmp")).unwrap();
        assert!(replace(&pos, b"1 2 3\n").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious\n");
        std::fs::remove_file(pos.with_extension("tmp")).unwrap();
        replace(&pos, b"1 2 3\n").unwrap();
        assert_eq!(std::fs::read(&pos).unwrap(), b"1 2 3\n");
        assert!(set_umask("0999").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
