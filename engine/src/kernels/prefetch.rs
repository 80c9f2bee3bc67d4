//! Software prefetch: ask the CPU to start loading the rows a graph walk is
//! about to score, so that the loads of a node's neighbours overlap instead
//! of each distance waiting for its own cache misses.
#![allow(unsafe_code)]

/// Hint that `items` will be read soon (every 64-byte line of them: codes,
/// or the one f32 factor beside a code). Does nothing on targets without a
/// prefetch instruction.
///
/// ```
/// let codes = vec![1i8; 384];
/// engram::kernels::prefetch::read_soon(&codes); // a hint: nothing observable changes
/// ```
#[inline]
pub fn read_soon<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = items.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(items)).step_by(64) {
            // SAFETY: `_mm_prefetch` is a hint: it never faults and changes
            // no memory; the address is inside the live slice (`offset` is
            // below its byte length). SSE is part of every x86_64 target.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
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
        let f: Vec<f32> = (0..100).map(|i| i as f32).collect();
        for start in [0, 1, 17, 99] {
            super::read_soon(&f[start..start + 1]);
        }
        super::read_soon::<f32>(&[]);
        assert_eq!(f[99], 99.0);
    }
}
