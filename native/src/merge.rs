//! The planner's per-event merge in Rust: `CallState.merge_items` (worker/core/call_state.py)
//! of one call's events in a batch, with the batch's per-event bookkeeping. The Python loop
//! (`call_state._merge_items`) stays as the reference; tests/unit/core/test_call_state.py
//! holds this one to it.

use pyo3::basic::CompareOp;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// Merges each `(record, ValidEvent, row)` of `items` into `events` (event_id -> ValidEvent),
/// in order: an event whose event_id is held with a digest at least as large is a duplicate
/// (its type appended to `duplicate`), any other replaces it (its item appended to
/// `new_rows`, its type to `written`). Every event's `occurred_at` goes to `times`. True if
/// `events` changed.
#[pyfunction]
#[pyo3(signature = (events, items, new_rows, written, duplicate, times, /))]
pub fn merge_items(
    events: &Bound<'_, PyDict>,
    items: &Bound<'_, PyList>,
    new_rows: &Bound<'_, PyList>,
    written: &Bound<'_, PyList>,
    duplicate: &Bound<'_, PyList>,
    times: &Bound<'_, PyList>,
) -> PyResult<bool> {
    let py = events.py();
    let mut changed = false;
    for item in items.iter() {
        let item = item.downcast_into::<PyTuple>()?;
        let ev = item.get_item(1)?;
        // The event's values, not its model (ValidEvent.values: the hot path builds none).
        let values = ev
            .getattr(pyo3::intern!(py, "values"))?
            .downcast_into::<PyDict>()?;
        let event_id = value(&values, pyo3::intern!(py, "event_id"))?;
        let event_type = value(&values, pyo3::intern!(py, "type"))?;
        let digest = ev.getattr(pyo3::intern!(py, "digest"))?;
        let held = match events.get_item(&event_id)? {
            Some(current) => current
                .getattr(pyo3::intern!(py, "digest"))?
                .rich_compare(&digest, CompareOp::Ge)?
                .is_truthy()?,
            None => false,
        };
        if held {
            duplicate.append(event_type)?;
        } else {
            events.set_item(&event_id, &ev)?;
            new_rows.append(&item)?;
            written.append(event_type)?;
            changed = true;
        }
        times.append(value(&values, pyo3::intern!(py, "occurred_at"))?)?;
    }
    Ok(changed)
}

/// An event's value (every model has the field: a KeyError if not).
fn value<'py>(
    values: &Bound<'py, PyDict>,
    name: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    values
        .get_item(name)?
        .ok_or_else(|| PyKeyError::new_err(name.clone().unbind()))
}
