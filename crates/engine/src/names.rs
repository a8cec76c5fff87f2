//! A map from names (event names, products, attribute names) to dense positions and
//! the item (a column, or nothing for products) at each.

use std::collections::HashMap;

/// Items of type `T` looked up by name, created on first use.
#[derive(Debug, Clone)]
pub struct Named<T> {
    ids: HashMap<String, usize>,
    items: Vec<T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named {
            ids: HashMap::new(),
            items: Vec::new(),
        }
    }
}

impl<T: Default> Named<T> {
    /// The item named `name`, created empty on first use.
    pub fn get_or_create(&mut self, name: &str) -> &mut T {
        let id = self.id_or_create(name);
        &mut self.items[id]
    }

    /// The position of the item named `name`, created empty on first use.
    pub fn id_or_create(&mut self, name: &str) -> usize {
        match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.items.len();
                self.items.push(T::default());
                self.ids.insert(name.to_owned(), id);
                id
            }
        }
    }
}

impl<T> Named<T> {
    /// The position of the item named `name`, if any.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.ids.get(name).copied()
    }

    /// The item named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.ids.get(name).and_then(|&id| self.items.get(id))
    }

    /// An estimate of the bytes of memory held by the names and the item slots (not
    /// what the items hold themselves).
    pub fn heap_bytes(&self) -> usize {
        let names: usize = self.ids.keys().map(String::capacity).sum();
        self.ids.capacity() * (size_of::<(String, usize)>() + 1)
            + names
            + self.items.capacity() * size_of::<T>()
    }

    /// Every item, in order of creation.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Every name, in order of creation (the position of each item).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<(&str, usize)> = self
            .ids
            .iter()
            .map(|(name, &id)| (name.as_str(), id))
            .collect();
        names.sort_unstable_by_key(|&(_, id)| id);
        names.into_iter().map(|(name, _)| name).collect()
    }

    /// Items and their names, in order of creation; `None` when the names repeat or
    /// their number differs from that of the items.
    pub fn from_parts(names: Vec<String>, items: Vec<T>) -> Option<Named<T>> {
        if names.len() != items.len() {
            return None;
        }
        let n = names.len();
        let ids: HashMap<String, usize> = names.into_iter().zip(0..).collect();
        (ids.len() == n).then_some(Named { ids, items })
    }

    /// Every item, mutably.
    pub fn items_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}
