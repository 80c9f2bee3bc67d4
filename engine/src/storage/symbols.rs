//! Interned strings (namespaces, sessions): stored as u32 ids in the
//! fixed-width meta column, resolved back on read. Id 0 is the empty string.
//! Ids are assigned in order of first appearance in the log, so replaying the
//! same log always yields the same ids.

use std::collections::HashMap;

#[derive(Clone, Debug)]
pub(crate) struct Symbols {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols::from_names(vec![String::new()]).unwrap_or_else(|| unreachable!())
    }
}

impl Symbols {
    /// Rebuild from a manifest's list; `None` if the list is malformed.
    pub fn from_names(names: Vec<String>) -> Option<Symbols> {
        if names.first().map(String::as_str) != Some("") || names.len() > u32::MAX as usize {
            return None;
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i as u32).is_some() {
                return None;
            }
        }
        Some(Symbols { names, index })
    }

    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.index.insert(s.to_string(), id);
        id
    }

    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_validated() {
        let mut s = Symbols::default();
        assert_eq!(s.intern(""), 0);
        let a = s.intern("a");
        assert_eq!(s.intern("b"), a + 1);
        assert_eq!(s.intern("a"), a);
        assert_eq!(s.name(a), Some("a"));
        let again = Symbols::from_names(s.names().to_vec()).unwrap();
        assert_eq!(again.name(a + 1), Some("b"));
        assert!(Symbols::from_names(vec!["x".into()]).is_none());
        assert!(Symbols::from_names(vec![String::new(), "a".into(), "a".into()]).is_none());
    }
}
