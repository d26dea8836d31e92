//! The tenant's folder as a sandbox: every path a connection names is resolved inside it, and
//! no file is opened through a symbolic link or outside it.
//!
//! Paths are checked twice. Resolving (`resolve_in_tenant`) refuses `..`, absolute paths that
//! leave the folder and any existing component below the folder that is a symbolic link.
//! Opening a file to read (`open_in_tenant`) then asks the kernel to resolve the path beneath
//! the folder without following any link (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` on Linux), so a link placed between the check and the open is refused
//! too; where `openat2` is missing, every component is checked again and the file is opened
//! with `O_NOFOLLOW`. Files are written only as new temporary files renamed into place, and a
//! rename replaces a link instead of following it.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{ConnectorContext, ConnectorError};

/// Resolves `raw` (relative to the tenant's folder, or absolute inside it) and refuses anything
/// that leaves the tenant's folder, lexically (`..`, absolute paths) or through a symbolic link.
pub(crate) fn resolve_in_tenant(
    ctx: &ConnectorContext,
    raw: &str,
    connection: &str,
) -> Result<PathBuf, ConnectorError> {
    let refuse = |why: &str| {
        ConnectorError::Config(format!(
            "connection {connection}: path `{raw}` is refused: {why}"
        ))
    };
    if raw.trim().is_empty() {
        return Err(ConnectorError::Config(format!(
            "connection {connection}: path= is required"
        )));
    }
    if raw.contains('\0') {
        return Err(refuse("it contains a NUL character"));
    }
    let base = absolute(&ctx.tenant_dir);
    let candidate = normalize(&if Path::new(raw).is_absolute() {
        PathBuf::from(raw)
    } else {
        base.join(raw)
    });
    if !candidate.starts_with(&base) {
        return Err(refuse(
            "paths must stay inside the tenant's folder (no `..` or absolute paths outside it)",
        ));
    }
    if let Some(link) = first_link_below(&base, &candidate) {
        return Err(refuse(&format!(
            "`{}` is a symbolic link; links are not followed inside the tenant's folder",
            link.strip_prefix(&base).unwrap_or(&link).display()
        )));
    }
    Ok(candidate)
}

/// The first component of `path` below `base` that is a symbolic link, if any (components
/// that do not exist yet are not links).
fn first_link_below(base: &Path, path: &Path) -> Option<PathBuf> {
    let relative = path.strip_prefix(base).ok()?;
    let mut probe = base.to_path_buf();
    for component in relative.components() {
        probe.push(component.as_os_str());
        match fs::symlink_metadata(&probe) {
            Ok(meta) if meta.file_type().is_symlink() => return Some(probe),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Opens an existing file inside the tenant's folder for reading, never through a link.
pub(crate) fn open_in_tenant(ctx: &ConnectorContext, path: &Path) -> io::Result<fs::File> {
    let base = absolute(&ctx.tenant_dir);
    let relative = path.strip_prefix(&base).map_err(|_| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the path is outside the tenant's folder",
        )
    })?;
    open_beneath(&base, relative)
}

#[cfg(target_os = "linux")]
fn open_beneath(base: &Path, relative: &Path) -> io::Result<fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        base,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rustix::fs::openat2(
        &root,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(fs::File::from(fd)),
        // ELOOP: a component is a link.
        Err(rustix::io::Errno::LOOP) => Err(link_refused()),
        // Kernels before 5.6 (or sandboxes that filter the call): check by hand.
        Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
            open_checked(base, relative)
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_beneath(base: &Path, relative: &Path) -> io::Result<fs::File> {
    open_checked(base, relative)
}

/// Checks every component, then opens without following a link in the last one.
fn open_checked(base: &Path, relative: &Path) -> io::Result<fs::File> {
    let path = base.join(relative);
    if first_link_below(base, &path).is_some() {
        return Err(link_refused());
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

fn link_refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "it is reached through a symbolic link, which is not followed inside the tenant's folder",
    )
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        normalize(path)
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        normalize(&cwd.join(path))
    }
}

/// Removes `.` and resolves `..` without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(dir: &Path) -> ConnectorContext {
        ConnectorContext::for_tests(dir)
    }

    #[test]
    fn paths_stay_inside() {
        let dir = std::env::temp_dir().join("integrator-paths-test");
        let ctx = context(&dir);
        assert_eq!(
            resolve_in_tenant(&ctx, "exports", "c").unwrap(),
            dir.join("exports")
        );
        assert_eq!(
            resolve_in_tenant(&ctx, "a/../b", "c").unwrap(),
            dir.join("b")
        );
        assert!(resolve_in_tenant(&ctx, "../other", "c").is_err());
        assert!(resolve_in_tenant(&ctx, "/etc", "c").is_err());
        assert!(resolve_in_tenant(&ctx, "a/../../x", "c").is_err());
        assert!(resolve_in_tenant(&ctx, "", "c").is_err());
        let inside = dir.join("x").display().to_string();
        assert!(resolve_in_tenant(&ctx, &inside, "c").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_the_folder_are_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = context(dir.path());
        let outside = tempfile::tempdir().expect("temp dir");
        fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
        fs::create_dir_all(dir.path().join("in")).expect("mkdir");
        std::os::unix::fs::symlink(
            outside.path().join("secret.csv"),
            dir.path().join("in/pw.csv"),
        )
        .expect("link");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("link");
        fs::write(dir.path().join("in/ok.csv"), "a\n1\n").expect("write");

        // A linked folder is refused when resolved.
        let error = resolve_in_tenant(&ctx, "out", "c").expect_err("linked folder");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        // A linked file is refused when opened, whatever the check before.
        let error = open_in_tenant(&ctx, &dir.path().join("in/pw.csv")).expect_err("linked file");
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        assert!(open_in_tenant(&ctx, &dir.path().join("in/ok.csv")).is_ok());
        assert!(open_checked(dir.path(), Path::new("in/pw.csv")).is_err());
        assert!(open_checked(dir.path(), Path::new("in/ok.csv")).is_ok());
    }
}
