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
//!
//! A chunk of messages at a time: first read (JSON members, payload digest, call_event row,
//! repeats: `ChunkRead::fill`) with the GIL let go, then made into Python objects with it; the
//! messages the native decoder refuses go to `fallback` after every chunk, one after another;
//! then the events are grouped.

use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::{payload_digests, EventValidator, Map, Read, Readings};

/// Messages read at a time with the GIL let go, then made into events (about a millisecond
/// of work).
const CHUNK: usize = 256;

/// A message's bytes and where it was consumed; the batch's de-duplication compares the key
/// and value bytes only.
struct Message<'a> {
    key: Option<&'a [u8]>,
    value: &'a [u8],
    topic: &'a str,
    partition: i32,
    offset: i64,
}

impl PartialEq for Message<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl Eq for Message<'_> {}

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
    let empty = PyBytes::new(py, b"");
    let mut messages = Vec::with_capacity(parts.len());
    for part in &parts {
        messages.push(Message {
            key: part.key.as_ref().map(|key| key.as_bytes()),
            value: part.value.as_ref().unwrap_or(&empty).as_bytes(),
            topic: part.topic.to_str()?,
            partition: part.partition,
            offset: part.offset,
        });
    }

    let none = py.None().into_bound(py);
    // Each message's decoded event or rejection and its row, by index (None: a repeat, or a
    // message the native decoder refused, until the passes below fill it in).
    let mut decoded_at: Vec<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> =
        Vec::with_capacity(parts.len());
    // (index, first index) of each repeat: a message delivered twice in the batch is decoded
    // once, its repeat a duplicate.
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    let mut first_at: Map<&Message<'_>, usize> =
        Map::with_capacity_and_hasher(messages.len(), Default::default());
    let mut texts = crate::Texts::default();
    let mut chunk_read = ChunkRead::default();
    for (chunk_at, chunk) in messages.chunks(CHUNK).enumerate() {
        let start = chunk_at * CHUNK;
        // THE GIL-FREE READ: a chunk's JSON, digests, call_event rows and repeats are read
        // with the GIL let go, so the writer's thread runs its Python meanwhile instead of
        // taking the GIL from the objects' making below (the batch's GIL time is what bounds
        // the worker: the loop's thread and the writer's take turns).
        // The chunk's readings fill the previous chunk's buffers (no fresh pages per chunk).
        py.allow_threads(|| chunk_read.fill(chunk, start, &mut first_at));
        for (offset, reading) in chunk_read.readings.iter().enumerate() {
            let at = start + offset;
            let decoded = match reading {
                Reading::Repeat(first) => {
                    repeats.push((at, *first));
                    None
                }
                Reading::First(found) => {
                    let made = match found {
                        Some(found) => validator.record_read(
                            py,
                            &chunk_read.read,
                            found,
                            messages[at].key,
                            Some(&mut texts),
                        )?,
                        None => None,
                    };
                    if made.is_none() {
                        refused.push(at);
                    }
                    made.map(|(valid, row)| (valid.into_bound(py), row.into_bound(py)))
                }
            };
            decoded_at.push(decoded);
        }
    }
    // THE REFUSED, TOGETHER: the Python decoder's calls after every native event is made.
    // Interleaved with them, each took 21-22 us (pydantic's code and data pushed out of the
    // CPU's caches by the native decoding in between) against 10 us one after another.
    for at in refused {
        let part = &parts[at];
        let key = part.key.as_ref().map_or(&none, |key| key.as_any());
        let value = part.value.as_ref().unwrap_or(&empty);
        decoded_at[at] = Some((fallback.call1((key, value))?, none.clone()));
    }
    for (at, first) in repeats {
        decoded_at[at] = decoded_at[first]
            .as_ref()
            .map(|(first, _)| (first.clone(), none.clone()));
    }

    let by_call = PyDict::new(py);
    let rejected = PyList::empty(py);
    let valid_event = validator.valid_event_class(py);
    for (part, decoded) in parts.iter().zip(decoded_at) {
        let (decoded, row) = decoded.expect("every message decoded by now");
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

/// A message as `ChunkRead::fill` found it.
enum Reading {
    /// The first time the batch holds these key and value bytes: their reading (None where
    /// json.rs cannot read them; the Python decoder then decides).
    First(Option<Read>),
    /// The same key and value bytes as the message at this index.
    Repeat(usize),
}

/// A chunk's `Reading`s, and what was read of them.
#[derive(Default)]
struct ChunkRead<'a> {
    readings: Vec<Reading>,
    read: Readings<'a>,
}

impl<'a> ChunkRead<'a> {
    /// Reads `chunk` (the batch's messages from index `start`) in place of what this held;
    /// `first_at`: where each distinct message of the batch was first seen. Needs no GIL.
    fn fill(
        &mut self,
        chunk: &'a [Message<'a>],
        start: usize,
        first_at: &mut Map<&'a Message<'a>, usize>,
    ) {
        self.readings.clear();
        self.read.clear();
        let mut firsts = Vec::with_capacity(chunk.len());
        for (offset, message) in chunk.iter().enumerate() {
            self.readings.push(match first_at.entry(message) {
                Entry::Occupied(first) => Reading::Repeat(*first.get()),
                Entry::Vacant(slot) => {
                    slot.insert(start + offset);
                    firsts.push(offset);
                    Reading::First(None)
                }
            });
        }
        let values: Vec<&[u8]> = firsts.iter().map(|&at| chunk[at].value).collect();
        for (at, digest) in firsts.into_iter().zip(payload_digests(&values)) {
            let message = &chunk[at];
            let place = (message.topic, message.partition, message.offset);
            self.readings[at] =
                Reading::First(self.read.read_digested(message.value, digest, place));
        }
    }
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
