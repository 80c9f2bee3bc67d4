//! Read-only memory maps of files that never change once written.
#![allow(unsafe_code)]

use std::fs::File;

use memmap2::Mmap;

/// Map `file` read-only.
///
/// Callers pass only sealed segment files: written to a temp name, fsynced and
/// renamed into place, and never opened for writing again. The writer removes
/// a segment only by unlinking it, which leaves existing maps valid.
pub(crate) fn map_sealed(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified while the
    // map is alive. Sealed segments are immutable by the store's protocol
    // (see segment/mod.rs): no code path opens them for writing after the
    // rename that publishes them, and deletion (unlink) does not modify the
    // pages of a live mapping.
    unsafe { Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_the_bytes_of_a_sealed_file_and_survives_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        File::create(&p).unwrap().write_all(b"sealed bytes").unwrap();
        let m = map_sealed(&File::open(&p).unwrap()).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(&m[..], b"sealed bytes");
    }
}
