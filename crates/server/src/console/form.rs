//! Reading the console's `application/x-www-form-urlencoded` bodies.

/// The fields of a submitted form, in order.
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Parses a body; anything unreadable is simply absent.
    pub fn parse(body: &[u8]) -> FormData {
        FormData(form_urlencoded::parse(body).into_owned().collect())
    }

    /// Parses a URL's query string.
    pub fn query(query: Option<&str>) -> FormData {
        FormData::parse(query.unwrap_or("").as_bytes())
    }

    /// The last value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A field's value, or "".
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}
