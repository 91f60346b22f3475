//! The shape of the configuration — which keys exist, in which tables, of which kind — read
//! off the settings types themselves by serializing a sample value through a serializer that
//! records instead of writing. So the settings structs stay the one list of keys: the loader
//! uses this shape to map `GLINT_*` variables to keys, to accept `<key>_file` for secrets,
//! and to name the nearest known key when one is misspelt.
//!
//! It leaves deserializing (and every type check) to serde: a shape only needs names.

use std::collections::BTreeMap;

use serde::ser::{self, Serialize};

use super::secret::SECRET_TYPE_NAME;

/// One key's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A boolean.
    Bool,
    /// An integer.
    Integer,
    /// A floating-point number.
    Float,
    /// A string (also enums written as strings, paths, addresses).
    Text,
    /// A [`super::Secret`]: also accepted as `<key>_file`.
    Secret,
    /// An array.
    List,
    /// An optional value that the sample leaves unset: its kind is unknown, so it is taken
    /// as text where a kind matters (a `GLINT_*` variable).
    Unset,
    /// A table with fixed keys (a settings struct).
    Table(BTreeMap<String, Node>),
    /// A table whose keys are free (e.g. project ids), each holding a value of one shape.
    Map(Box<Node>),
}

impl Node {
    /// The shape of `sample`'s type.
    pub fn of(sample: &impl Serialize) -> Node {
        // `Recorder` has no failure of its own; a type whose `Serialize` fails has no shape.
        sample.serialize(Recorder).unwrap_or(Node::Unset)
    }

    /// The fixed keys, when this is a table.
    pub fn keys(&self) -> Option<&BTreeMap<String, Node>> {
        match self {
            Node::Table(keys) => Some(keys),
            _ => None,
        }
    }

    /// Every key below this node that holds a value (not a table), with its path, skipping
    /// free-keyed tables (their keys cannot be named in advance).
    pub fn leaves(&self) -> Vec<(Vec<&str>, &Node)> {
        let mut out = Vec::new();
        self.collect_leaves(&mut Vec::new(), &mut out);
        out
    }

    fn collect_leaves<'a>(
        &'a self,
        path: &mut Vec<&'a str>,
        out: &mut Vec<(Vec<&'a str>, &'a Node)>,
    ) {
        match self {
            Node::Table(keys) => {
                for (key, node) in keys {
                    path.push(key);
                    node.collect_leaves(path, out);
                    path.pop();
                }
            }
            Node::Map(_) => {}
            leaf => out.push((path.clone(), leaf)),
        }
    }
}

/// Why recording failed (never, for plain settings types).
#[derive(Debug)]
pub struct RecordError(String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

impl ser::Error for RecordError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RecordError(msg.to_string())
    }
}

/// A serializer whose output is the [`Node`] of what it was given.
struct Recorder;

/// Collects a struct's fields.
struct TableRecorder(BTreeMap<String, Node>);

/// Records the shape of a map's first value.
struct MapRecorder(Option<Node>);

/// Ignores elements: a list is a list.
struct ListRecorder;

type R = Result<Node, RecordError>;

impl ser::Serializer for Recorder {
    type Ok = Node;
    type Error = RecordError;
    type SerializeSeq = ListRecorder;
    type SerializeTuple = ListRecorder;
    type SerializeTupleStruct = ListRecorder;
    type SerializeTupleVariant = ListRecorder;
    type SerializeMap = MapRecorder;
    type SerializeStruct = TableRecorder;
    type SerializeStructVariant = TableRecorder;

    fn serialize_bool(self, _: bool) -> R {
        Ok(Node::Bool)
    }
    fn serialize_i8(self, _: i8) -> R {
        Ok(Node::Integer)
    }
    fn serialize_i16(self, _: i16) -> R {
        Ok(Node::Integer)
    }
    fn serialize_i32(self, _: i32) -> R {
        Ok(Node::Integer)
    }
    fn serialize_i64(self, _: i64) -> R {
        Ok(Node::Integer)
    }
    fn serialize_u8(self, _: u8) -> R {
        Ok(Node::Integer)
    }
    fn serialize_u16(self, _: u16) -> R {
        Ok(Node::Integer)
    }
    fn serialize_u32(self, _: u32) -> R {
        Ok(Node::Integer)
    }
    fn serialize_u64(self, _: u64) -> R {
        Ok(Node::Integer)
    }
    fn serialize_f32(self, _: f32) -> R {
        Ok(Node::Float)
    }
    fn serialize_f64(self, _: f64) -> R {
        Ok(Node::Float)
    }
    fn serialize_char(self, _: char) -> R {
        Ok(Node::Text)
    }
    fn serialize_str(self, _: &str) -> R {
        Ok(Node::Text)
    }
    fn serialize_bytes(self, _: &[u8]) -> R {
        Ok(Node::List)
    }
    fn serialize_none(self) -> R {
        Ok(Node::Unset)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        value.serialize(Recorder)
    }
    fn serialize_unit(self) -> R {
        Ok(Node::Unset)
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        Ok(Node::Unset)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
        Ok(Node::Text)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> R {
        if name == SECRET_TYPE_NAME {
            Ok(Node::Secret)
        } else {
            value.serialize(Recorder)
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> R {
        Ok(Node::Unset)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<ListRecorder, RecordError> {
        Ok(ListRecorder)
    }
    fn serialize_tuple(self, _: usize) -> Result<ListRecorder, RecordError> {
        Ok(ListRecorder)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<ListRecorder, RecordError> {
        Ok(ListRecorder)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<ListRecorder, RecordError> {
        Ok(ListRecorder)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapRecorder, RecordError> {
        Ok(MapRecorder(None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<TableRecorder, RecordError> {
        Ok(TableRecorder(BTreeMap::new()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<TableRecorder, RecordError> {
        Ok(TableRecorder(BTreeMap::new()))
    }
}

impl ser::SerializeStruct for TableRecorder {
    type Ok = Node;
    type Error = RecordError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        self.0.insert(key.to_owned(), value.serialize(Recorder)?);
        Ok(())
    }

    fn end(self) -> R {
        Ok(Node::Table(self.0))
    }
}

impl ser::SerializeStructVariant for TableRecorder {
    type Ok = Node;
    type Error = RecordError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> R {
        Ok(Node::Unset)
    }
}

impl ser::SerializeMap for MapRecorder {
    type Ok = Node;
    type Error = RecordError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), RecordError> {
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
        if self.0.is_none() {
            self.0 = Some(value.serialize(Recorder)?);
        }
        Ok(())
    }

    fn end(self) -> R {
        Ok(Node::Map(Box::new(self.0.unwrap_or(Node::Unset))))
    }
}

macro_rules! list_recorder {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for ListRecorder {
            type Ok = Node;
            type Error = RecordError;

            fn $method<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), RecordError> {
                Ok(())
            }

            fn end(self) -> R {
                Ok(Node::List)
            }
        }
    )*};
}

list_recorder!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The key among `candidates` nearest to `name` (fewest single-character edits; the first
/// of equals), for "did you mean …" messages.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .min_by_key(|candidate| edit_distance(&name, &candidate.to_ascii_lowercase()))
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[derive(serde::Serialize, Default)]
    struct Inner {
        password: Secret,
        token: Option<String>,
    }

    #[derive(serde::Serialize, Default)]
    struct Outer {
        workers: usize,
        on: bool,
        name: String,
        list: Vec<String>,
        inner: Inner,
        maybe: Option<Inner>,
        by_id: BTreeMap<String, Inner>,
    }

    #[test]
    fn records_kinds_secrets_and_tables() {
        let sample = Outer {
            by_id: [("*".to_owned(), Inner::default())].into(),
            ..Outer::default()
        };
        let node = Node::of(&sample);
        let keys = node.keys().unwrap();
        assert_eq!(keys["workers"], Node::Integer);
        assert_eq!(keys["on"], Node::Bool);
        assert_eq!(keys["name"], Node::Text);
        assert_eq!(keys["list"], Node::List);
        assert_eq!(keys["maybe"], Node::Unset);
        let inner = keys["inner"].keys().unwrap();
        assert_eq!(inner["password"], Node::Secret);
        assert_eq!(inner["token"], Node::Unset);
        let Node::Map(value) = &keys["by_id"] else {
            panic!("by_id is a map")
        };
        assert_eq!(value.keys().unwrap()["password"], Node::Secret);
        let leaves: Vec<String> = node.leaves().iter().map(|(p, _)| p.join(".")).collect();
        assert!(leaves.contains(&"inner.password".to_owned()), "{leaves:?}");
        assert!(!leaves.iter().any(|l| l.starts_with("by_id")), "{leaves:?}");
    }

    #[test]
    fn nearest_is_by_fewest_edits() {
        let keys = ["listen", "data_dir", "workers", "log_filter", "log_format"];
        assert_eq!(nearest("listne", keys), Some("listen"));
        assert_eq!(nearest("datadir", keys), Some("data_dir"));
        assert_eq!(nearest("LOG_FORMATT", keys), Some("log_format"));
        assert_eq!(nearest("x", []), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
