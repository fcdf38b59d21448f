//! Compiled modules, in memory and on disk.
//!
//! A module is compiled at most once per engine process (the memory cache,
//! keyed by the sha256 of its binary; slots that need the same module at once
//! wait for the one loading it rather than compile or deserialize it too) and, when a cache directory is set, at
//! most once per machine and engine configuration: the compiled artifact is
//! written to `DIR/<compat>/<module-hash>.cwasm`, where `<compat>` hashes
//! wasmtime's `precompile_compatibility_hash` (so an artifact compiled with
//! other settings, e.g. fuel metering, is never loaded). Writes go through a
//! temporary file and a rename, so a crash never leaves half an artifact.
//!
//! Artifacts are read into memory rather than mapped, so a file changed
//! under a running engine cannot crash it. Loading an artifact is `unsafe` in wasmtime because a tampered file is
//! executed as machine code: the cache directory must be writable only by the
//! operator. A file that fails to load is deleted and the module recompiled.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use grid_proto::ModuleHash;
use wasmtime::{Engine, Module};

/// The on-disk artifact cache of one engine configuration.
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    pub(crate) fn new(root: &Path, engine: &Engine) -> DiskCache {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        DiskCache {
            dir: root.join(format!("{:016x}", h.finish())),
        }
    }

    fn path(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hash.to_hex()))
    }

    /// The cached artifact of `hash`, if there is a loadable one.
    pub(crate) fn load(&self, engine: &Engine, hash: &ModuleHash) -> Option<Module> {
        let path = self.path(hash);
        // Read, not mmap: a mapped file truncated by someone else would crash
        // the process (SIGBUS); a copy costs ~0.2 ms once per module.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the cache directory is the operator's (see the module docs);
        // wasmtime checks the artifact's header and engine compatibility.
        match unsafe { Module::deserialize(engine, &bytes) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping unloadable cached module");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compiled artifact of `hash`. Failures are logged, not fatal:
    /// the cache only saves time.
    pub(crate) fn store(&self, hash: &ModuleHash, module: &Module) {
        if let Err(e) = self.try_store(hash, module) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache compiled module");
        }
    }

    fn try_store(
        &self,
        hash: &ModuleHash,
        module: &Module,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let bytes = module.serialize()?;
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(self.path(hash))?;
        Ok(())
    }
}

/// Modules compiled in this process, shared by all engine slots.
pub(crate) struct MemoryCache<T> {
    entries: Mutex<HashMap<ModuleHash, Arc<T>>>,
    /// One gate per module being loaded, held by the loader.
    loading: Mutex<HashMap<ModuleHash, Arc<Mutex<()>>>>,
}

impl<T> Default for MemoryCache<T> {
    fn default() -> Self {
        MemoryCache {
            entries: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> MemoryCache<T> {
    pub(crate) fn get(&self, hash: &ModuleHash) -> Option<Arc<T>> {
        self.lock().get(hash).cloned()
    }

    /// Inserts `value` unless another thread got there first; returns the entry.
    pub(crate) fn insert(&self, hash: ModuleHash, value: T) -> Arc<T> {
        self.lock()
            .entry(hash)
            .or_insert_with(|| Arc::new(value))
            .clone()
    }

    /// The entry of `hash`, made by `load` when there is none. One caller
    /// loads a given hash at a time: the others wait for it and take its
    /// entry (or, when it failed, try themselves).
    pub(crate) fn get_or_load<E>(
        &self,
        hash: &ModuleHash,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(entry) = self.get(hash) {
            return Ok(entry);
        }
        let gate = Arc::clone(unpoison(self.loading.lock()).entry(*hash).or_default());
        let result = {
            let _loader = unpoison(gate.lock());
            match self.get(hash) {
                Some(entry) => Ok(entry),
                None => load().map(|value| self.insert(*hash, value)),
            }
        };
        unpoison(self.loading.lock()).remove(hash);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ModuleHash, Arc<T>>> {
        unpoison(self.entries.lock())
    }
}

fn unpoison<G>(lock: std::sync::LockResult<G>) -> G {
    lock.unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn threads_needing_one_module_load_it_once() {
        let cache = MemoryCache::<usize>::default();
        let hash = ModuleHash::of(b"module");
        let loads = AtomicUsize::new(0);
        let start = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    start.wait();
                    let entry = cache.get_or_load(&hash, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok::<_, ()>(7)
                    });
                    assert_eq!(entry.map(|e| *e), Ok(7));
                });
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_load_leaves_the_next_caller_to_try() {
        let cache = MemoryCache::<usize>::default();
        let hash = ModuleHash::of(b"module");
        assert_eq!(cache.get_or_load(&hash, || Err("no")), Err("no"));
        assert_eq!(
            cache.get_or_load(&hash, || Ok::<_, &str>(3)).map(|e| *e),
            Ok(3)
        );
        assert!(cache.loading.lock().unwrap().is_empty());
    }
}
