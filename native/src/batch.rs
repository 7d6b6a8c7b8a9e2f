//! `BatchPlanner.decode`'s loop in Rust (worker/core/batch_plan.py): the Python loop's tuple
//! and dict lookup per message, the model's ids read back and the call's list found, on the
//! event loop's thread (measured: 0.5-0.6 us less per event).
//!
//! The same result as the Python loop, which stays as the reference (`decode_batch_python`;
//! tests/unit/core/test_batch_decode.py holds this one to it): each distinct
//! (key, value) decoded once, by `EventValidator::record` or else by `fallback(key, value)`
//! (the Python decoder: a rejection or the rare valid event the native one leaves); valid
//! events grouped by (shared project_id, call_id) in arrival order, with their record and
//! `call_event` row; rejections in arrival order with their record.

use std::hash::{Hash, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::{EventValidator, Map};

/// Messages decoded between two GIL yields (about a millisecond).
const GIL_YIELD_EVERY: usize = 256;

/// A message as the batch's de-duplication compares it: its key and value bytes.
#[derive(PartialEq, Eq)]
struct Message<'a> {
    key: Option<&'a [u8]>,
    value: &'a [u8],
}

impl Hash for Message<'_> {
    /// The key, the value's length and its last 64 bytes (where two events' payloads differ
    /// most, after the shared fields); equal messages compare in full.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.value.len().hash(state);
        self.value[self.value.len().saturating_sub(64)..].hash(state);
    }
}

/// One record's parts, read before the loop so the messages can borrow their bytes.
struct Parts<'py> {
    record: Bound<'py, PyAny>,
    key: Option<Bound<'py, PyBytes>>,
    value: Option<Bound<'py, PyBytes>>,
    topic: Bound<'py, PyString>,
    partition: i32,
    offset: i64,
}

pub(crate) fn decode_batch<'py>(
    validator: &EventValidator,
    records: &Bound<'py, PyAny>,
    fallback: &Bound<'py, PyAny>,
    projects: &Bound<'py, PyDict>,
    pool_max: usize,
) -> PyResult<Option<(Bound<'py, PyDict>, Bound<'py, PyList>)>> {
    let py = records.py();
    let mut parts = Vec::new();
    for record in records.try_iter()? {
        let record = record?;
        let (Some(key), Some(value)) = (
            bytes_or_none(&record.getattr(pyo3::intern!(py, "key"))?),
            bytes_or_none(&record.getattr(pyo3::intern!(py, "value"))?),
        ) else {
            return Ok(None);
        };
        parts.push(Parts {
            topic: record
                .getattr(pyo3::intern!(py, "topic"))?
                .downcast_into::<PyString>()?,
            partition: record.getattr(pyo3::intern!(py, "partition"))?.extract()?,
            offset: record.getattr(pyo3::intern!(py, "offset"))?.extract()?,
            record,
            key,
            value,
        });
    }

    let by_call = PyDict::new(py);
    let rejected = PyList::empty(py);
    let valid_event = validator.valid_event_class(py);
    let none = py.None().into_bound(py);
    let empty = PyBytes::new(py, b"");
    let mut seen: Map<Message<'_>, Bound<'py, PyAny>> =
        Map::with_capacity_and_hasher(parts.len(), Default::default());
    let mut texts = crate::Texts::default();
    for (index, part) in parts.iter().enumerate() {
        if index % GIL_YIELD_EVERY == GIL_YIELD_EVERY - 1 {
            // A GIL yield point: the writer's thread waits for the GIL between its inserts,
            // and a batch's loop holds it for a tenth of a second or more.
            py.allow_threads(|| ());
        }
        let value = part.value.as_ref().unwrap_or(&empty);
        let message = Message {
            key: part.key.as_ref().map(|key| key.as_bytes()),
            value: value.as_bytes(),
        };
        let (decoded, row) = match seen.get(&message) {
            // A message delivered twice in the batch: decoded once, its repeat a duplicate.
            Some(decoded) => (decoded.clone(), none.clone()),
            None => {
                let at = (part.topic.to_str()?, part.partition, part.offset);
                let found =
                    validator.record(py, message.value, message.key, at, Some(&mut texts))?;
                let (decoded, row) = match found {
                    Some((valid, row)) => (valid.into_bound(py), row.into_bound(py)),
                    None => {
                        let key = part.key.as_ref().map_or(&none, |key| key.as_any());
                        (fallback.call1((key, value))?, none.clone())
                    }
                };
                seen.insert(message, decoded.clone());
                (decoded, row)
            }
        };
        if !decoded.is_instance(valid_event)? {
            rejected.append(PyTuple::new(py, [&part.record, &decoded])?)?;
            continue;
        }
        // The event's values (ValidEvent.values), not its model: the hot path builds none.
        let values = decoded.getattr(pyo3::intern!(py, "values"))?;
        let project_id = shared(
            projects,
            values.get_item(pyo3::intern!(py, "project_id"))?,
            pool_max,
        )?;
        let call_id = values.get_item(pyo3::intern!(py, "call_id"))?;
        let call = PyTuple::new(py, [project_id, call_id])?;
        let item = PyTuple::new(py, [&part.record, &decoded, &row])?;
        match by_call.get_item(&call)? {
            Some(items) => items.downcast_into::<PyList>()?.append(item)?,
            None => by_call.set_item(call, PyList::new(py, [item])?)?,
        }
    }
    Ok(Some((by_call, rejected)))
}

/// Some(bytes) or Some(None) for None; None for anything else.
fn bytes_or_none<'py>(value: &Bound<'py, PyAny>) -> Option<Option<Bound<'py, PyBytes>>> {
    if value.is_none() {
        return Some(None);
    }
    value
        .downcast_exact::<PyBytes>()
        .ok()
        .map(|b| Some(b.clone()))
}

/// The pool's object equal to `value`, which joins the pool if there is room (as
/// `worker.core.event_pack._shared`).
fn shared<'py>(
    pool: &Bound<'py, PyDict>,
    value: Bound<'py, PyAny>,
    pool_max: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(found) = pool.get_item(&value)? {
        return Ok(found);
    }
    if pool.len() < pool_max {
        pool.set_item(&value, &value)?;
    }
    Ok(value)
}
