//! The file system under a store: every byte the engine writes, every
//! fsync, rename, removal and directory sync goes through [`Fs`], so that a
//! test can put a machine that crashes under the engine ([`SimFs`]).
//!
//! [`RealFs`] is the operating system's. [`SimFs`] keeps the real files
//! (reads and maps see what was written) and, beside them, what a machine
//! crash would leave: each file's contents as of its last fsync, and each
//! directory's entries as of its last directory fsync. [`SimFs::crash`]
//! rewrites the directory to exactly that, and can make any operation fail
//! (or every operation after a point fail, as a machine that has died).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::Mutex;

use super::mmap::map_sealed;

/// A file open for writing.
pub trait FsFile: Send + Sync {
    /// Write `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()>;
    /// Append `buf` at the end.
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Set the length.
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
    /// Make the contents durable (`fdatasync`/`fsync`).
    fn sync(&mut self) -> std::io::Result<()>;
    /// Current length.
    fn len(&self) -> std::io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The operations a store performs on its directory.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Create `path`, empty (truncating it if it exists).
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>>;
    /// Open the existing `path` for writing at its end.
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>>;
    /// Read all of `path`.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Read `path` from byte `from` to its end.
    fn read_from(&self, path: &Path, from: u64) -> std::io::Result<Vec<u8>>;
    /// Read the first `n` bytes of `path` (fewer if it is shorter).
    fn read_prefix(&self, path: &Path, n: usize) -> std::io::Result<Vec<u8>>;
    /// Map the sealed file `path` (never written again) read-only.
    fn map(&self, path: &Path) -> std::io::Result<Mmap>;
    /// Length of `path`.
    fn len(&self, path: &Path) -> std::io::Result<u64>;
    /// Rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Remove the file `path`.
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    /// Make the entries of directory `dir` durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Create `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()>;
    /// Names of the entries of `dir`.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl FsFile for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.seek(SeekFrom::End(0))?;
        self.0.write_all(buf)
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Fs for RealFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        Ok(Box::new(RealFile(
            OpenOptions::new().read(true).write(true).open(path)?,
        )))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn read_from(&self, path: &Path, from: u64) -> std::io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn read_prefix(&self, path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        File::open(path)?.take(n as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn map(&self, path: &Path) -> std::io::Result<Mmap> {
        map_sealed(&File::open(path)?)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}

/// What [`SimFs`] knows of one file (an inode): its contents as of its last
/// sync.
#[derive(Default)]
struct Inode {
    durable: Vec<u8>,
}

#[derive(Default)]
struct Sim {
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    /// Directory entries as they are now, and as a crash would leave them.
    live: HashMap<PathBuf, u64>,
    durable: HashMap<PathBuf, u64>,
    /// Operations done so far (writes, syncs, renames, removals, creations).
    ops: u64,
    /// Fail operation number `fail_at` (once) with an I/O error.
    fail_at: Option<u64>,
    /// From operation number `dead_at` on, fail every operation: the
    /// machine has died.
    dead_at: Option<u64>,
}

/// A file system whose machine can crash: see the module documentation.
///
/// ```
/// use std::sync::Arc;
/// use engram::storage::fs::{Fs, SimFs};
/// let dir = tempfile::tempdir().unwrap();
/// let fs = Arc::new(SimFs::new(dir.path()));
/// let p = dir.path().join("f");
/// let mut f = fs.create(&p).unwrap();
/// f.append(b"durable").unwrap();
/// f.sync().unwrap();
/// fs.sync_dir(dir.path()).unwrap();
/// f.append(b" and lost").unwrap();
/// fs.crash().unwrap();
/// assert_eq!(std::fs::read(&p).unwrap(), b"durable");
/// ```
#[derive(Debug, Clone)]
pub struct SimFs {
    root: PathBuf,
    sim: Arc<Mutex<SimState>>,
}

/// [`Sim`] behind a lock, printable.
struct SimState(Sim);

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimFs({} ops, {} files)", self.0.ops, self.0.live.len())
    }
}

struct SimFile {
    path: PathBuf,
    inode: u64,
    file: File,
    sim: Arc<Mutex<SimState>>,
}

fn dead() -> std::io::Error {
    std::io::Error::other("simulated machine crash")
}

impl Sim {
    /// Count one operation; an error if it is the one to fail or the
    /// machine is dead.
    fn step(&mut self) -> std::io::Result<()> {
        self.ops += 1;
        if self.dead_at.is_some_and(|d| self.ops >= d) {
            return Err(dead());
        }
        if self.fail_at == Some(self.ops) {
            self.fail_at = None;
            return Err(std::io::Error::other("simulated I/O error"));
        }
        Ok(())
    }

    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, Inode::default());
        self.next_inode
    }
}

impl FsFile for SimFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.sim.lock().0.step()?;
        self.file.write_all_at(buf, offset)
    }
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.sim.lock().0.step()?;
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(buf)
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.sim.lock().0.step()?;
        self.file.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        let mut s = self.sim.lock();
        s.0.step()?;
        let mut now = Vec::new();
        let mut f = File::open(&self.path)?;
        f.read_to_end(&mut now)?;
        if let Some(i) = s.0.inodes.get_mut(&self.inode) {
            i.durable = now;
        }
        Ok(())
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl SimFs {
    /// A simulated machine over directory `root` (which may hold files
    /// already: they count as durable).
    pub fn new(root: &Path) -> SimFs {
        let fs = SimFs {
            root: root.to_path_buf(),
            sim: Arc::new(Mutex::new(SimState(Sim::default()))),
        };
        fs.adopt(root);
        fs
    }

    /// Count every file under `dir` as durable, as it is now.
    fn adopt(&self, dir: &Path) {
        let mut s = self.sim.lock();
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                let i = s.0.new_inode();
                if let Some(n) = s.0.inodes.get_mut(&i) {
                    n.durable = std::fs::read(&p).unwrap_or_default();
                }
                s.0.live.insert(p.clone(), i);
                s.0.durable.insert(p, i);
            } else if p.is_dir() {
                drop(s);
                self.adopt(&p);
                s = self.sim.lock();
            }
        }
    }

    /// Operations done so far.
    pub fn ops(&self) -> u64 {
        self.sim.lock().0.ops
    }

    /// Fail operation number `n` (counted from the start) with an I/O error.
    pub fn fail_at(&self, n: u64) {
        self.sim.lock().0.fail_at = Some(n);
    }

    /// Let the machine die at operation number `n`: it and every later
    /// operation fail.
    pub fn die_at(&self, n: u64) {
        self.sim.lock().0.dead_at = Some(n);
    }

    /// Crash the machine: every file not named by a synced directory entry
    /// disappears, and every file's contents go back to its last sync. The
    /// machine is alive again afterwards (with every file durable).
    pub fn crash(&self) -> std::io::Result<()> {
        let mut s = self.sim.lock();
        let keep: HashMap<PathBuf, Vec<u8>> =
            s.0.durable
                .iter()
                .map(|(p, i)| {
                    (
                        p.clone(),
                        s.0.inodes.get(i).map(|n| n.durable.clone()).unwrap_or_default(),
                    )
                })
                .collect();
        let live: Vec<PathBuf> = s.0.live.keys().cloned().collect();
        for p in live {
            let _ = std::fs::remove_file(&p);
        }
        for (p, bytes) in &keep {
            std::fs::write(p, bytes)?;
        }
        s.0 = Sim::default();
        drop(s);
        self.adopt(&self.root);
        Ok(())
    }

    fn sim(&self) -> parking_lot::MutexGuard<'_, SimState> {
        self.sim.lock()
    }
}

impl Fs for SimFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        let mut s = self.sim();
        s.0.step()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let inode = s.0.new_inode();
        s.0.live.insert(path.to_path_buf(), inode);
        Ok(Box::new(SimFile {
            path: path.to_path_buf(),
            inode,
            file,
            sim: self.sim.clone(),
        }))
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        let mut s = self.sim();
        s.0.step()?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let inode = match s.0.live.get(path) {
            Some(&i) => i,
            None => {
                let i = s.0.new_inode();
                s.0.live.insert(path.to_path_buf(), i);
                i
            }
        };
        Ok(Box::new(SimFile {
            path: path.to_path_buf(),
            inode,
            file,
            sim: self.sim.clone(),
        }))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let s = self.sim();
        if s.0.dead_at.is_some_and(|d| s.0.ops >= d) {
            return Err(dead());
        }
        drop(s);
        std::fs::read(path)
    }
    fn read_from(&self, path: &Path, from: u64) -> std::io::Result<Vec<u8>> {
        RealFs.read_from(path, from)
    }
    fn read_prefix(&self, path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
        RealFs.read_prefix(path, n)
    }
    fn map(&self, path: &Path) -> std::io::Result<Mmap> {
        RealFs.map(path)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        RealFs.len(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut s = self.sim();
        s.0.step()?;
        std::fs::rename(from, to)?;
        if let Some(i) = s.0.live.remove(from) {
            s.0.live.insert(to.to_path_buf(), i);
        }
        Ok(())
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        let mut s = self.sim();
        s.0.step()?;
        std::fs::remove_file(path)?;
        s.0.live.remove(path);
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut s = self.sim();
        s.0.step()?;
        let in_dir = |p: &Path| p.parent() == Some(dir);
        s.0.durable.retain(|p, _| !in_dir(p));
        let now: Vec<(PathBuf, u64)> =
            s.0.live
                .iter()
                .filter(|(p, _)| in_dir(p))
                .map(|(p, i)| (p.clone(), *i))
                .collect();
        s.0.durable.extend(now);
        Ok(())
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.sim().0.step()?;
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        RealFs.list(dir)
    }
}
