//! A small read-mostly cache with generations.
//!
//! Every clear starts a new generation. A reader notes the generation before it
//! reads the store and inserts only if the generation is unchanged, so a row read
//! before a change can never be cached after the change was noticed. Entries are
//! immutable `Arc`s; the cache is cleared whole when full (these sets are small or
//! the hot part refills at once).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Debug)]
struct Inner<K, V> {
    generation: u64,
    map: HashMap<K, Arc<V>>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Cache<K, V> {
    inner: RwLock<Inner<K, V>>,
    max: usize,
}

impl<K: Eq + Hash, V> Cache<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: RwLock::new(Inner {
                generation: 0,
                map: HashMap::new(),
            }),
            max,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<K, V>> {
        match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<K, V>> {
        match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A hit, or the generation to pass to [`Cache::insert`] after reading the store.
    pub(crate) fn get<Q>(&self, k: &Q) -> Result<Arc<V>, u64>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let g = self.read();
        g.map.get(k).cloned().ok_or(g.generation)
    }

    /// Inserts unless the cache was cleared since `generation`.
    pub(crate) fn insert(&self, generation: u64, k: K, v: Arc<V>) {
        let mut g = self.write();
        if g.generation != generation {
            return;
        }
        if g.map.len() >= self.max {
            g.map.clear();
        }
        g.map.insert(k, v);
    }

    /// Removes one entry (and starts a new generation, so an in-flight read of it is not cached).
    pub(crate) fn remove<Q>(&self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut g = self.write();
        g.generation += 1;
        g.map.remove(k);
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let mut g = self.write();
        g.generation += 1;
        g.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_straddles_a_clear_is_not_cached() {
        let c: Cache<String, u32> = Cache::new(10);
        let generation = c.get("a").expect_err("miss");
        c.clear();
        c.insert(generation, "a".into(), Arc::new(1));
        assert!(c.get("a").is_err(), "stale insert dropped");
        let generation = c.get("a").expect_err("miss");
        c.insert(generation, "a".into(), Arc::new(2));
        assert_eq!(c.get("a").map(|v| *v), Ok(2));
        c.remove("a");
        assert!(c.get("a").is_err());
    }

    #[test]
    fn a_full_cache_starts_over() {
        let c: Cache<u32, u32> = Cache::new(2);
        for i in 0..3 {
            let g = c.get(&i).expect_err("miss");
            c.insert(g, i, Arc::new(i));
        }
        assert!(c.get(&0).is_err() && c.get(&2).is_ok());
    }
}
