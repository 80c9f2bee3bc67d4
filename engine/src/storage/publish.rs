//! Publishing a new state: the manifest first (atomically), then the state
//! readers of this handle see, then the files no longer named are removed
//! (readers that still map them keep their maps).

use std::collections::HashSet;
use std::sync::Arc;

use super::inner::Inner;
use super::manifest;
use super::state::State;

/// Publish `next` as the new manifest and state.
pub(crate) fn publish(inner: &Inner, next: State) -> crate::Result<()> {
    // Past the rename the new manifest may be the durable one while memory
    // still holds the old: stop writing until a reopen settles which.
    let fs = &*inner.opts.fs;
    manifest::write(fs, &inner.dir, &next.manifest()).map_err(|e| inner.fail(e))?;
    let keep: HashSet<_> = next.live_files(&inner.dir).into_iter().collect();
    let old = std::mem::replace(&mut *inner.state.write(), Arc::new(next));
    for f in old.live_files(&inner.dir) {
        if !keep.contains(&f) {
            let _ = fs.remove(&f);
        }
    }
    Ok(())
}
