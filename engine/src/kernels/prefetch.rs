//! Software prefetch: ask the CPU to start loading the rows a graph walk is
//! about to score, so that the loads of a node's neighbours overlap instead
//! of each distance waiting for its own cache misses.
#![allow(unsafe_code)]

/// Hint that `bytes` will be read soon (every 64-byte line of it). Does
/// nothing on targets without a prefetch instruction.
///
/// ```
/// let codes = vec![1i8; 384];
/// engram::kernels::prefetch::read_soon(&codes); // a hint: nothing observable changes
/// ```
#[inline]
pub fn read_soon(bytes: &[i8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: `_mm_prefetch` is a hint: it never faults and changes no
        // memory, and the address is that of a live slice. SSE is part of
        // every x86_64 target.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_length_and_alignment_is_accepted() {
        let v: Vec<i8> = (0..1000).map(|i| i as i8).collect();
        for start in [0, 1, 63, 64, 500] {
            for len in [0, 1, 64, 65, 384, 500] {
                super::read_soon(&v[start..start + len]);
            }
        }
        assert_eq!(v[999], (999 % 256) as u8 as i8, "a prefetch changes nothing");
    }
}
