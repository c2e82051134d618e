//! The program interpreter (PT_INTERP) of a 64-bit little-endian ELF file: the dynamic loader a
//! binary needs, which the exec helper takes along into an image's root file system.

use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// `None` for a static binary, or a file that is not a 64-bit little-endian ELF.
pub(crate) fn interpreter(bytes: &[u8]) -> Option<PathBuf> {
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(bytes, 0x20)?,
        u16_at(bytes, 0x36)?,
        u16_at(bytes, 0x38)?,
    );
    (0..usize::from(phnum)).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(usize::from(phentsize))?)?;
        if u32_at(bytes, ph)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(bytes, ph + 8)?, u64_at(bytes, ph + 0x20)?);
        let raw = bytes.get(offset..offset.checked_add(size)?)?;
        let raw = raw.split(|b| *b == 0).next()?;
        Some(PathBuf::from(std::str::from_utf8(raw).ok()?))
    })
}

/// The host's loader for `program` and the directories its libraries are in, for running it
/// inside a root file system that is not the host's: `(loader, library dirs)`. `None` when it
/// is static (it runs anywhere as it is).
pub(crate) fn host_runtime(program: &Path) -> std::io::Result<Option<(PathBuf, Vec<PathBuf>)>> {
    let bytes = std::fs::read(program)?;
    let Some(interp) = interpreter(&bytes) else {
        return Ok(None);
    };
    let loader = std::fs::canonicalize(&interp)?;
    // Debian's multiarch dirs and the loader's own: where the helper's few libraries (libc,
    // libm, libgcc_s) are. Canonical, so /lib -> usr/lib counts once.
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    let mut dirs: Vec<PathBuf> = Vec::new();
    let candidates = [
        loader.parent().map(Path::to_path_buf),
        Some(PathBuf::from("/lib").join(&triple)),
        Some(PathBuf::from("/usr/lib").join(&triple)),
        Some(PathBuf::from("/lib64")),
        Some(PathBuf::from("/usr/lib64")),
    ];
    for c in candidates.into_iter().flatten() {
        if let Ok(real) = std::fs::canonicalize(&c) {
            if real.is_dir() && !dirs.contains(&real) {
                dirs.push(real);
            }
        }
    }
    Ok(Some((loader, dirs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loader_of_this_test_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me).expect("a dynamically linked test binary");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert_eq!(interpreter(b"\x7fELF\x02\x01garbage"), None);
        assert_eq!(interpreter(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn a_static_binary_has_none() {
        if let Ok(b) = std::fs::read("/bin/busybox") {
            assert_eq!(interpreter(&b), None);
        }
    }
}
