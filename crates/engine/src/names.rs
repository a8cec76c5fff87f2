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

    /// Every name, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ids.keys().map(String::as_str)
    }

    /// Every item, in order of creation.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Every item, mutably.
    pub fn items_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}
