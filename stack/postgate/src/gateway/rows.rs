//! What a result may hold: rows shaped as arrays or objects, and the row and response-size
//! limits (`row_limit`, `response_too_large`).

use super::{Column, RowsAs};
use crate::error::ApiError;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// A row as the client asked for it: an array, or an object (duplicate column names: the first
/// column wins; arrays keep them all).
pub(super) fn shape_row(values: Vec<Value>, columns: &[Column], rows_as: RowsAs) -> Value {
    match rows_as {
        RowsAs::Arrays => Value::Array(values),
        RowsAs::Objects => {
            let mut m = Map::new();
            for (c, v) in columns.iter().zip(values) {
                m.entry(c.name.clone()).or_insert(v);
            }
            Value::Object(m)
        }
    }
}

pub(super) fn row_limit(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "row_limit",
        format!("the statement returned more than {max} rows; add a LIMIT"),
    )
}

pub(super) struct Budget {
    pub(super) bytes: usize,
    pub(super) max: usize,
}

impl Budget {
    pub(super) fn add(&mut self, v: &Value) -> Result<(), ApiError> {
        let mut counter = Counter(0);
        // Writing into a counter cannot fail.
        let _ = serde_json::to_writer(&mut counter, v);
        self.bytes += counter.0 + 1;
        if self.bytes > self.max {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "response_too_large",
                format!(
                    "the response would pass {} bytes; select fewer rows or columns",
                    self.max
                ),
            ));
        }
        Ok(())
    }
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
