//! Values crossing the [`Db`](super::Db) boundary: query parameters, result rows, and a
//! builder for statements assembled from filters.

use std::fmt::Write as _;

use crate::{Error, Result};

/// A parameter or column value, in the few types the schema uses. Each backend converts it to
/// its driver's types: SQLite binds `Bool` as 0/1, PostgreSQL as `BOOLEAN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// Bytes (`BLOB` / `BYTEA`).
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Int(_) => "integer",
            Self::Bool(_) => "boolean",
            Self::Text(_) => "text",
            Self::Blob(_) => "blob",
        }
    }
}

/// One result row. Accessors check the column's type, so a row that does not have the shape
/// the query promised is a [`Error::Backend`], never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn column(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::Backend(format!("result row has no column {i}")))
    }

    fn mismatch(&self, i: usize, expected: &str) -> Error {
        let found = self.0.get(i).map_or("nothing", Value::type_name);
        Error::Backend(format!("column {i}: expected {expected}, found {found}"))
    }

    /// An integer column.
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        match self.column(i)? {
            Value::Int(v) => Ok(*v),
            _ => Err(self.mismatch(i, "integer")),
        }
    }

    /// A nullable integer column.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.column(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            _ => Err(self.mismatch(i, "integer or NULL")),
        }
    }

    /// A boolean column (SQLite stores 0/1).
    pub(crate) fn bool(&self, i: usize) -> Result<bool> {
        match self.column(i)? {
            Value::Bool(v) => Ok(*v),
            Value::Int(v) => Ok(*v != 0),
            _ => Err(self.mismatch(i, "boolean")),
        }
    }

    /// A text column.
    pub(crate) fn text(&self, i: usize) -> Result<&str> {
        match self.column(i)? {
            Value::Text(v) => Ok(v),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// A nullable text column.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<&str>> {
        match self.column(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            _ => Err(self.mismatch(i, "text or NULL")),
        }
    }

    /// A blob column, moved out of the row.
    pub(crate) fn take_blob(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.0.get_mut(i) {
            Some(Value::Blob(v)) => Ok(std::mem::take(v)),
            _ => Err(self.mismatch(i, "blob")),
        }
    }
}

/// A column value borrowed from a row, as [`RowRef::value`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Int(v) => Self::Int(v),
            ValueRef::Bool(v) => Self::Bool(v),
            ValueRef::Text(v) => Self::Text(v.to_owned()),
            ValueRef::Blob(v) => Self::Blob(v.to_vec()),
        }
    }
}

impl ValueRef<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Int(_) => "integer",
            Self::Bool(_) => "boolean",
            Self::Text(_) => "text",
            Self::Blob(_) => "blob",
        }
    }
}

/// A result row read in place: a [`Row`], or a row the driver still holds, which
/// [`Db::query_each`](super::Db::query_each) hands out without copying its values. The
/// accessors on `dyn RowRef` check types as [`Row`]'s do.
pub(crate) trait RowRef {
    /// Column `i`.
    fn value(&self, i: usize) -> Result<ValueRef<'_>>;
}

impl RowRef for Row {
    fn value(&self, i: usize) -> Result<ValueRef<'_>> {
        Ok(match self.column(i)? {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Int(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::Text(v) => ValueRef::Text(v),
            Value::Blob(v) => ValueRef::Blob(v),
        })
    }
}

impl dyn RowRef + '_ {
    fn typed<T>(
        &self,
        i: usize,
        expected: &str,
        f: impl FnOnce(ValueRef<'_>) -> Option<T>,
    ) -> Result<T> {
        let value = self.value(i)?;
        f(value).ok_or_else(|| {
            Error::Backend(format!(
                "column {i}: expected {expected}, found {}",
                value.type_name()
            ))
        })
    }

    /// An integer column.
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        self.typed(i, "integer", |v| match v {
            ValueRef::Int(v) => Some(v),
            _ => None,
        })
    }

    /// A nullable integer column.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.typed(i, "integer or NULL", |v| match v {
            ValueRef::Null => Some(None),
            ValueRef::Int(v) => Some(Some(v)),
            _ => None,
        })
    }

    /// A boolean column (SQLite stores 0/1).
    pub(crate) fn bool(&self, i: usize) -> Result<bool> {
        self.typed(i, "boolean", |v| match v {
            ValueRef::Bool(v) => Some(v),
            ValueRef::Int(v) => Some(v != 0),
            _ => None,
        })
    }

    /// A text column.
    pub(crate) fn text(&self, i: usize) -> Result<&str> {
        match self.value(i)? {
            ValueRef::Text(v) => Ok(v),
            other => Err(Error::Backend(format!(
                "column {i}: expected text, found {}",
                other.type_name()
            ))),
        }
    }
}

/// A statement under construction: SQL text with `$n` placeholders and the matching
/// parameters. Both backends accept this text (SQLite after [`super::sqlite_placeholders`]).
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Value>,
}

impl Sql {
    /// A statement starting with `text`.
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds a parameter and returns its placeholder, for text that uses it more than once.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// Adds a parameter and appends its placeholder.
    pub(crate) fn param(&mut self, value: impl Into<Value>) -> &mut Self {
        self.params.push(value.into());
        let n = self.params.len();
        // Writing to a String cannot fail.
        let _ = write!(self.text, "${n}");
        self
    }

    /// Adds parameters and returns `($n, $n+1, …)` for them: an IN list that the text uses
    /// more than once.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> String {
        let placeholders: Vec<String> = values.into_iter().map(|v| self.bind(v)).collect();
        format!("({})", placeholders.join(", "))
    }

    /// Adds parameters and appends `($n, $n+1, …)` for them: an IN list or a VALUES row.
    pub(crate) fn list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.param(v);
        }
        self.push(")")
    }
}

/// Splits `0..len` into chunks of at most `max` (a power of two) whose sizes are all powers of
/// two, so statements built per chunk have few distinct texts and stay in the prepared
/// statement caches.
pub(crate) fn pow2_chunks(len: usize, max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let left = len - start;
        let size = if left >= max {
            max
        } else {
            // The largest power of two not above `left`.
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        out.push(start..start + size);
        start += size;
    }
    out
}

/// An `i64` column that holds a value of a narrower unsigned type.
pub(crate) fn to_u32(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::corrupt(what, format!("{v} is out of range")))
}

/// A count (`COUNT(*)`, rows affected) as `u64`.
pub(crate) fn to_count(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Backend(format!("negative count {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_chunks_cover_the_range_with_powers_of_two() {
        for len in 0..300 {
            let chunks = pow2_chunks(len, 64);
            let mut next = 0;
            for c in &chunks {
                assert_eq!(c.start, next);
                assert!(c.len().is_power_of_two() && c.len() <= 64);
                next = c.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn sql_builder_numbers_placeholders_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.param(1_i64).push(" AND b IN ").list(["x", "y"]);
        let again = sql.bind(true);
        sql.push(" AND c = ").push(&again);
        assert_eq!(
            sql.text,
            "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND c = $4"
        );
        assert_eq!(sql.params.len(), 4);
    }

    #[test]
    fn row_accessors_refuse_wrong_types() {
        let mut row = Row(vec![Value::Int(1), Value::Text("t".into()), Value::Null]);
        assert_eq!(row.int(0).ok(), Some(1));
        assert!(row.int(1).is_err());
        assert!(row.text(0).is_err());
        assert_eq!(row.opt_int(2).ok(), Some(None));
        assert!(row.bool(0).is_ok_and(|b| b));
        assert!(row.take_blob(1).is_err());
        assert!(row.int(9).is_err());
    }

    #[test]
    fn borrowed_row_accessors_refuse_wrong_types() {
        let row = Row(vec![
            Value::Int(1),
            Value::Text("t".into()),
            Value::Null,
            Value::Bool(true),
        ]);
        let row: &dyn RowRef = &row;
        assert_eq!(row.int(0).ok(), Some(1));
        assert_eq!(row.text(1).ok(), Some("t"));
        assert!(row.int(1).is_err());
        assert!(row.text(0).is_err());
        assert!(row.text(2).is_err());
        assert_eq!(row.opt_int(2).ok(), Some(None));
        assert!(row.opt_int(1).is_err());
        assert!(row.bool(0).is_ok_and(|b| b));
        assert!(row.bool(3).is_ok_and(|b| b));
        assert!(row.bool(1).is_err());
        assert!(row.int(9).is_err());
    }
}
