//! One call's rows in Rust: `RowBuilder.rows` is `rows_of_distinct` of
//! worker/core/correlation.py, which stays the reference (a differential test holds the two
//! to the same rows, key order and value types).
//!
//! Exact by construction: the rows hold the events' own objects; what Rust decides from them
//! (which event is latest, durations, statuses, row ids) it reads only from exact types (str,
//! int, UTC datetimes of known event classes), and it answers None for anything else, so the
//! Python path runs. Decimal arithmetic is never done here: costs, rating, rounding and the
//! sum of item costs call the Python functions and Decimal's own `+`.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple, PyType};
use sha1::{Digest, Sha1};

use crate::{exact_str, utc_micros, Map, Set};

/// Why `rows` gave up: the Python path must answer, or Python raised (as it would there).
enum Bail {
    Fallback,
    Raised(PyErr),
}

impl From<PyErr> for Bail {
    fn from(err: PyErr) -> Self {
        Bail::Raised(err)
    }
}

type Out<T> = Result<T, Bail>;

/// A time of the rows: its object (or None) and its micros (for durations).
type Time<'py> = (Bound<'py, PyAny>, Option<i64>);

/// An event's kind, as correlation._index tells it by `type`.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Received,
    DialStarted,
    DialRinging,
    DialAnswered,
    DialEnded,
    CallEnded,
    Placed,
    OutAnswered,
    OutEnded,
    Cost,
    Amended,
    Deleted,
    Cdr,
}

const KINDS: [(&str, Kind); 13] = [
    ("incoming_call.received", Kind::Received),
    ("incoming_call.dial_started", Kind::DialStarted),
    ("incoming_call.dial_ringing", Kind::DialRinging),
    ("incoming_call.dial_answered", Kind::DialAnswered),
    ("incoming_call.dial_ended", Kind::DialEnded),
    ("incoming_call.ended", Kind::CallEnded),
    ("outbound_call.placed", Kind::Placed),
    ("outbound_call.answered", Kind::OutAnswered),
    ("outbound_call.ended", Kind::OutEnded),
    ("call.cost_reported", Kind::Cost),
    ("incoming_call.item_amended", Kind::Amended),
    ("incoming_call.item_deleted", Kind::Deleted),
    ("cdr.recorded", Kind::Cdr),
];

/// A field of an event's `__dict__`; a missing one leaves the call to Python.
macro_rules! field {
    ($ev:expr, $name:literal) => {
        $ev.get(pyo3::intern!($ev.values.py(), $name))?
    };
}

/// `ev.name if ev else None`.
macro_rules! field_or_none {
    ($py:expr, $ev:expr, $name:literal) => {
        match $ev {
            Some(ev) => field!(ev, $name),
            None => $py.None().into_bound($py),
        }
    };
}

/// An interned str (made once per process).
macro_rules! lit {
    ($py:expr, $text:literal) => {
        pyo3::intern!($py, $text).clone().into_any()
    };
}

/// A dict with these keys in this order.
macro_rules! row {
    ($py:expr, { $($key:literal : $value:expr),* $(,)? }) => {{
        let row = PyDict::new($py);
        $( row.set_item(pyo3::intern!($py, $key), $value)?; )*
        row
    }};
}

/// One event: its values and its time (micros, for comparisons; the object, for rows).
struct Event<'py> {
    values: Bound<'py, PyDict>,
    at: i64,
    at_obj: Bound<'py, PyAny>,
}

impl<'py> Event<'py> {
    fn get(&self, name: &Bound<'py, PyString>) -> Out<Bound<'py, PyAny>> {
        self.values.get_item(name)?.ok_or(Bail::Fallback)
    }

    /// A field that is an exact str, as Rust text (a key, a row id's part).
    fn text(&self, name: &Bound<'py, PyString>) -> Out<String> {
        let value = self.get(name)?;
        Ok(exact_str(&value).ok_or(Bail::Fallback)?.to_owned())
    }

    /// `order_key`: (occurred_at, sequence or -1, event_id).
    fn order_key(&self) -> Out<(i64, i64, String)> {
        let sequence = field!(self, "sequence");
        let sequence = if sequence.is_none() {
            -1
        } else {
            exact_int(&sequence)?
        };
        Ok((
            self.at,
            sequence,
            self.text(pyo3::intern!(self.values.py(), "event_id"))?,
        ))
    }
}

/// The dial events of one dial_id (ringing creates the dial but no rule reads it).
struct Dial<'py> {
    id: Bound<'py, PyAny>,
    key: String,
    started: Option<Event<'py>>,
    answered: Option<Event<'py>>,
    ended: Option<Event<'py>>,
}

/// The latest event of each kind (correlation._Latest).
#[derive(Default)]
struct Latest<'py> {
    received: Option<Event<'py>>,
    call_ended: Option<Event<'py>>,
    placed: Option<Event<'py>>,
    out_answered: Option<Event<'py>>,
    out_ended: Option<Event<'py>>,
    dials: Vec<Dial<'py>>,
    dial_places: Map<String, usize>,
    /// The dial of the latest dial_started: events are added in `order_key` order.
    latest_attempt: Option<usize>,
    costs: Map<String, Event<'py>>,
    cdrs: BTreeMap<String, Event<'py>>,
    amendments: Map<String, Vec<Event<'py>>>,
    deleted: Set<String>,
}

impl<'py> Latest<'py> {
    /// The dial of the event's dial_id, made on its first event, by its place.
    fn dial(&mut self, ev: &Event<'py>) -> Out<usize> {
        let id = field!(ev, "dial_id");
        let key = exact_str(&id).ok_or(Bail::Fallback)?;
        let place = match self.dial_places.get(key) {
            Some(&place) => place,
            None => {
                let key = key.to_owned();
                self.dial_places.insert(key.clone(), self.dials.len());
                self.dials.push(Dial {
                    id,
                    key,
                    started: None,
                    answered: None,
                    ended: None,
                });
                self.dials.len() - 1
            }
        };
        Ok(place)
    }

    fn add(&mut self, kind: Kind, ev: Event<'py>) -> Out<()> {
        let py = ev.values.py();
        match kind {
            Kind::DialStarted => {
                let place = self.dial(&ev)?;
                self.dials[place].started = Some(ev);
                self.latest_attempt = Some(place);
            }
            Kind::DialEnded => {
                let place = self.dial(&ev)?;
                self.dials[place].ended = Some(ev);
            }
            Kind::DialRinging => {
                self.dial(&ev)?;
            }
            Kind::DialAnswered => {
                let place = self.dial(&ev)?;
                self.dials[place].answered = Some(ev);
            }
            Kind::Cost => {
                let leg = ev.text(pyo3::intern!(py, "leg_id"))?;
                self.costs.insert(leg, ev);
            }
            Kind::Received => self.received = Some(ev),
            Kind::CallEnded => self.call_ended = Some(ev),
            Kind::Placed => self.placed = Some(ev),
            Kind::OutEnded => self.out_ended = Some(ev),
            Kind::OutAnswered => self.out_answered = Some(ev),
            Kind::Cdr => {
                let cdr_id = ev.text(pyo3::intern!(py, "cdr_id"))?;
                self.cdrs.insert(cdr_id, ev);
            }
            Kind::Amended => {
                let dial_id = ev.text(pyo3::intern!(py, "dial_id"))?;
                self.amendments.entry(dial_id).or_default().push(ev);
            }
            Kind::Deleted => {
                let dial_id = ev.text(pyo3::intern!(py, "dial_id"))?;
                self.deleted.insert(dial_id);
            }
        }
        Ok(())
    }
}

/// An item as the dial events alone define it, with what the parent's rules read of it.
struct Computed<'py> {
    row: Bound<'py, PyDict>,
    is_answered: bool,
    answered_at: Option<i64>,
    started_at: Option<i64>,
    ended: bool,
}

/// The call's identity and rebuild-wide values.
struct Call<'py> {
    project: Bound<'py, PyAny>,
    project_text: String,
    call: Bound<'py, PyAny>,
    call_text: String,
    rates: Bound<'py, PyAny>,
}

/// Builds one call's rows (see the module comment).
#[pyclass(frozen, module = "ringlog_native")]
pub struct RowBuilder {
    /// Event class (by address) -> its kind, and the class, kept alive.
    kinds: Map<usize, (Kind, Py<PyType>)>,
    valid_event: Py<PyType>,
    rate: PyObject,
    round_cents: PyObject,
    zero: PyObject,
    namespace: Vec<u8>,
    timeout_message: Py<PyString>,
    item_end_status: Py<PyDict>,
    call_end_status: Py<PyDict>,
    cdr_direction: Py<PyDict>,
    /// `_NEVER` (datetime.max in UTC) in micros: an absent time in the answering order.
    never: i64,
    dumps: PyObject,
    utc: PyObject,
}

#[pymethods]
impl RowBuilder {
    /// `classes`: each event model class (contract and fast) -> its event type; a type this
    /// code does not know leaves its events to Python. The rest are correlation.py's and
    /// costing.py's own objects: `rate`, `round_cents`, `ZERO`, the id namespace's bytes,
    /// `TIMEOUT_MESSAGE`, `ITEM_END_STATUS`, `CALL_END_STATUS`, `CDR_DIRECTION`, `_NEVER`,
    /// `orjson.dumps`, `datetime.UTC`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        classes: &Bound<'_, PyDict>,
        valid_event: Py<PyType>,
        rate: PyObject,
        round_cents: PyObject,
        zero: PyObject,
        namespace: Vec<u8>,
        timeout_message: Py<PyString>,
        item_end_status: Py<PyDict>,
        call_end_status: Py<PyDict>,
        cdr_direction: Py<PyDict>,
        never: &Bound<'_, PyAny>,
        dumps: PyObject,
        utc: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let mut kinds = Map::default();
        for (class, event_type) in classes.iter() {
            let class = class.downcast_into::<PyType>()?;
            let event_type: String = event_type.extract()?;
            if let Some(&(_, kind)) = KINDS.iter().find(|(name, _)| *name == event_type) {
                kinds.insert(class.as_ptr() as usize, (kind, class.unbind()));
            }
        }
        let never = utc_micros(never, utc).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("never must be a UTC datetime")
        })?;
        Ok(Self {
            kinds,
            valid_event,
            rate,
            round_cents,
            zero,
            namespace,
            timeout_message,
            item_end_status,
            call_end_status,
            cdr_direction,
            never,
            dumps,
            utc: utc.clone().unbind(),
        })
    }

    /// `rows_of_distinct(distinct, rates, now=now, timeout=timeout)` as the tuple
    /// (incoming_call_log, incoming_call_log_item, call_log, cdr, open, last_event_at), or
    /// None where the Python code must answer.
    #[pyo3(signature = (distinct, rates, now=None, timeout=None))]
    fn rows<'py>(
        &self,
        py: Python<'py>,
        distinct: &Bound<'py, PyAny>,
        rates: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.build(py, distinct, rates, now, timeout) {
            Ok(rows) => Ok(Some(rows)),
            Err(Bail::Fallback) => Ok(None),
            Err(Bail::Raised(err)) => Err(err),
        }
    }
}

impl RowBuilder {
    fn build<'py>(
        &self,
        py: Python<'py>,
        distinct: &Bound<'py, PyAny>,
        rates: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> Out<Bound<'py, PyTuple>> {
        let events = self.in_order(self.events(py, distinct)?)?;
        let (incoming, items, calls, cdrs) = (
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
        );
        let Some((first, _)) = events.first() else {
            let tables = [incoming, items, calls, cdrs];
            return Ok(result(py, tables, false, py.None().into_bound(py))?);
        };
        let call = Call {
            project_text: first.text(pyo3::intern!(py, "project_id"))?,
            project: field!(first, "project_id"),
            call_text: first.text(pyo3::intern!(py, "call_id"))?,
            call: field!(first, "call_id"),
            rates: rates.clone(),
        };
        let (created, updated) = first_and_last(&events);
        let (created_at, updated_at) = (created.at_obj.clone(), updated.at_obj.clone());
        let updated_micros = updated.at;
        let timed_out = match (now, timeout) {
            (Some(now), Some(timeout)) => now.sub(&updated_at)?.ge(timeout)?,
            _ => false,
        };
        let base_version = 2 * events.len() as u64;
        let mut latest = Latest::default();
        for (ev, kind) in events {
            latest.add(kind, ev)?;
        }

        let mut open = false;
        // An amendment creates its item (and so the parent); a deletion alone creates nothing.
        if latest.received.is_some()
            || latest.call_ended.is_some()
            || !latest.dials.is_empty()
            || !latest.amendments.is_empty()
        {
            let close = latest.call_ended.is_none() && timed_out;
            let last = (&updated_at, updated_micros);
            let (parent, rows) = self.incoming(py, &call, &latest, close, last)?;
            let version = base_version + u64::from(close);
            for row in std::iter::once(&parent).chain(&rows) {
                stamp(py, row, &created_at, &updated_at, version)?;
            }
            incoming.append(parent)?;
            for row in rows {
                items.append(row)?;
            }
            open = latest.call_ended.is_none() && !close;
        }
        if latest.placed.is_some() || latest.out_answered.is_some() || latest.out_ended.is_some() {
            let row = self.outbound(py, &call, &latest)?;
            stamp(py, &row, &created_at, &updated_at, base_version)?;
            calls.append(row)?;
            open = open || latest.out_ended.is_none();
        }
        for (cdr_id, cdr) in &latest.cdrs {
            let row = self.cdr(py, &call, cdr_id, cdr)?;
            row.set_item(pyo3::intern!(py, "version"), base_version)?;
            cdrs.append(row)?;
        }
        Ok(result(
            py,
            [incoming, items, calls, cdrs],
            open,
            updated_at,
        )?)
    }

    /// `events` sorted by `order_key` (correlation.event_order): the planner passes a call's
    /// events as its cache holds them, and sorting here saves a Python key per event.
    fn in_order<'py>(&self, events: Vec<(Event<'py>, Kind)>) -> Out<Vec<(Event<'py>, Kind)>> {
        let mut keyed = Vec::with_capacity(events.len());
        for (ev, kind) in events {
            keyed.push((ev.order_key()?, ev, kind));
        }
        // Stable, and event_ids are distinct: the order of Python's sorted().
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed.into_iter().map(|(_, ev, kind)| (ev, kind)).collect())
    }

    /// Each ValidEvent's model values, time and kind; Fallback for anything unexpected.
    fn events<'py>(
        &self,
        py: Python<'py>,
        distinct: &Bound<'py, PyAny>,
    ) -> Out<Vec<(Event<'py>, Kind)>> {
        let utc = self.utc.bind(py);
        let valid_event = self.valid_event.bind(py);
        let wrapped: Vec<Bound<'py, PyAny>> = if let Ok(list) = distinct.downcast_exact::<PyList>()
        {
            list.iter().collect()
        } else if let Ok(tuple) = distinct.downcast_exact::<PyTuple>() {
            tuple.iter().collect()
        } else {
            return Err(Bail::Fallback);
        };
        let mut out = Vec::with_capacity(wrapped.len());
        for ev in wrapped {
            if !ev.get_type().is(valid_event) {
                return Err(Bail::Fallback);
            }
            // The event's values and model class (ValidEvent), not its model: the hot path
            // builds none.
            let class = ev.getattr(pyo3::intern!(py, "model_class"))?;
            let (kind, _) = self
                .kinds
                .get(&(class.as_ptr() as usize))
                .ok_or(Bail::Fallback)?;
            let kind = *kind;
            let values = ev.getattr(pyo3::intern!(py, "values"))?;
            let values = values
                .downcast_into_exact::<PyDict>()
                .map_err(|_| Bail::Fallback)?;
            let event_type = values
                .get_item(pyo3::intern!(py, "type"))?
                .ok_or(Bail::Fallback)?;
            if exact_str(&event_type) != Some(type_name(kind)) {
                return Err(Bail::Fallback);
            }
            let at_obj = values
                .get_item(pyo3::intern!(py, "occurred_at"))?
                .ok_or(Bail::Fallback)?;
            let at = utc_micros(&at_obj, utc).ok_or(Bail::Fallback)?;
            out.push((Event { values, at, at_obj }, kind));
        }
        Ok(out)
    }

    /// The parent row and its item rows (correlation._incoming, without the stamps).
    fn incoming<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        latest: &Latest<'py>,
        close: bool,
        last: (&Bound<'py, PyAny>, i64),
    ) -> Out<(Bound<'py, PyDict>, Vec<Bound<'py, PyDict>>)> {
        let parent_id = self.row_id(
            py,
            &["incoming_call_log", &call.project_text, &call.call_text],
        );
        let mut computed = Vec::with_capacity(latest.dials.len());
        for dial in &latest.dials {
            let cost = latest.costs.get(&dial.key);
            computed.push(self.item(py, call, &parent_id, dial, cost)?);
        }
        let items = self.final_items(py, call, &parent_id, &computed, latest)?;
        let live: Vec<_> = items.iter().filter(|(_, deleted)| !deleted).collect();
        let outgoing = self.outgoing(py, live.iter().map(|(row, _)| row))?;
        let none = py.None().into_bound(py);
        let (status, status_message, ended_at) =
            self.parent_status(py, &computed, latest.call_ended.as_ref(), close, last)?;
        let answered_by = self.answered_by(&computed, &latest.dials);
        let latest_attempt = latest
            .latest_attempt
            .and_then(|place| latest.dials[place].started.as_ref());
        let received = latest.received.as_ref();
        let started_at = received.map(|ev| ev.at);
        let duration = int_or_none(py, seconds_between(started_at, ended_at.1))?;
        let routing = field_or_none!(py, received, "routing_phone_number");
        let incoming_cost = self
            .leg_cost(
                py,
                call,
                latest.costs.get(&call.call_text),
                pyo3::intern!(py, "inbound"),
                &routing,
                &duration,
            )?
            .0;
        let round_cents = self.round_cents.bind(py);
        let total = if incoming_cost.is_none() {
            none.clone()
        } else {
            round_cents.call1((incoming_cost.add(&outgoing)?,))?
        };
        let from_answering = |name| -> Out<Bound<'py, PyAny>> {
            match answered_by {
                Some(item) => Ok(item.row.get_item(name)?.ok_or(Bail::Fallback)?),
                None => Ok(py.None().into_bound(py)),
            }
        };
        let parent = row!(py, {
            "id": &parent_id,
            "project_id": &call.project,
            "incoming_call_policy_id": field_or_none!(py, received, "incoming_call_policy_id"),
            "caller_phone_number": field_or_none!(py, received, "caller_phone_number"),
            "routing_phone_number": routing,
            "call_provider_call_id": &call.call,
            "status": status,
            "status_message": status_message,
            "call_duration_in_seconds": duration,
            "call_cost_in_usd_cents": total,
            "incoming_call_cost_in_usd_cents": incoming_cost,
            "outgoing_call_cost_in_usd_cents": round_cents.call1((outgoing,))?,
            "started_at": match received { Some(ev) => ev.at_obj.clone(), None => none.clone() },
            "answered_at": from_answering(pyo3::intern!(py, "answered_at"))?,
            "ended_at": ended_at.0,
            "answered_by_user_id": from_answering(pyo3::intern!(py, "user_id"))?,
            "current_escalation_rule_order":
                field_or_none!(py, latest_attempt, "escalation_rule_order"),
            "repeat_count": field_or_none!(py, latest_attempt, "repeat_count"),
            "dial_attempts": live.len(),
        });
        Ok((parent, items.into_iter().map(|(row, _)| row).collect()))
    }

    /// The parent's status, status_message and end (the object, and micros for durations).
    fn parent_status<'py>(
        &self,
        py: Python<'py>,
        computed: &[Computed<'py>],
        ended: Option<&Event<'py>>,
        close: bool,
        last: (&Bound<'py, PyAny>, i64),
    ) -> Out<(Bound<'py, PyAny>, Bound<'py, PyAny>, Time<'py>)> {
        let any_answered = computed.iter().any(|item| item.is_answered);
        let none = py.None().into_bound(py);
        if let Some(ended) = ended {
            let status = if any_answered {
                lit!(py, "Completed")
            } else {
                self.status_of(py, &self.call_end_status, &field!(ended, "outcome"))?
            };
            let ended_at = (ended.at_obj.clone(), Some(ended.at));
            return Ok((status, field!(ended, "status_message"), ended_at));
        }
        if close {
            let status = if any_answered {
                lit!(py, "Completed")
            } else {
                lit!(py, "NoAnswer")
            };
            let message = self.timeout_message.bind(py).clone().into_any();
            return Ok((status, message, (last.0.clone(), Some(last.1))));
        }
        let status = if any_answered {
            lit!(py, "Connected")
        } else if computed.iter().any(|item| item.ended) {
            lit!(py, "Escalated")
        } else if !computed.is_empty() {
            lit!(py, "Ringing")
        } else {
            lit!(py, "Initiated")
        };
        Ok((status, none.clone(), (none, None)))
    }

    /// `sum(cost for the live items if cost, ZERO)`, with Decimal's own `+`.
    fn outgoing<'a, 'py: 'a>(
        &self,
        py: Python<'py>,
        live: impl Iterator<Item = &'a Bound<'py, PyDict>>,
    ) -> Out<Bound<'py, PyAny>> {
        let mut total = self.zero.bind(py).clone();
        for row in live {
            let cost = row
                .get_item(pyo3::intern!(py, "call_cost_in_usd_cents"))?
                .ok_or(Bail::Fallback)?;
            if cost.is_truthy()? {
                total = total.add(cost)?;
            }
        }
        Ok(total)
    }

    /// correlation._item: one dial's item row from its events and its leg's cost report.
    fn item<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        parent_id: &Bound<'py, PyString>,
        dial: &Dial<'py>,
        cost: Option<&Event<'py>>,
    ) -> Out<Computed<'py>> {
        let (started, answered, ended) = (
            dial.started.as_ref(),
            dial.answered.as_ref(),
            dial.ended.as_ref(),
        );
        let outcome = match ended {
            Some(ended) => Some(field!(ended, "outcome")),
            None => None,
        };
        let completed = match &outcome {
            Some(outcome) => exact_str(outcome).ok_or(Bail::Fallback)? == "completed",
            None => false,
        };
        let is_answered = answered.is_some() || completed;
        let at = |ev: Option<&Event<'py>>| ev.map(|ev| ev.at);
        let status = match &outcome {
            Some(_) if is_answered => lit!(py, "Completed"),
            Some(outcome) => self.status_of(py, &self.item_end_status, outcome)?,
            None if is_answered => lit!(py, "Connected"),
            None => lit!(py, "Ringing"),
        };
        let talk = billable(ended, cost)?;
        let talk = match talk {
            Some(talk) => talk,
            None if !is_answered => int_or_none(py, ended.map(|_| 0))?,
            None => int_or_none(py, seconds_between(at(answered), at(ended)))?,
        };
        let phone = field_or_none!(py, started, "user_phone_number");
        let (item_cost, source) =
            self.leg_cost(py, call, cost, pyo3::intern!(py, "outbound"), &phone, &talk)?;
        let id = self.item_id(py, call, &dial.key);
        let row = row!(py, {
            "id": id,
            "project_id": &call.project,
            "incoming_call_log_id": parent_id,
            "dial_id": &dial.id,
            "incoming_call_policy_escalation_rule_id":
                field_or_none!(py, started, "escalation_rule_id"),
            "user_id": field_or_none!(py, started, "user_id"),
            "user_phone_number": phone,
            "status": status,
            "status_message": field_or_none!(py, ended, "status_message"),
            "dial_duration_in_seconds": int_or_none(py, seconds_between(at(started), at(ended)))?,
            "talk_duration_in_seconds": talk,
            "call_cost_in_usd_cents": item_cost,
            "cost_source": source,
            "started_at": time_of(py, started),
            "answered_at": time_of(py, answered),
            "ended_at": time_of(py, ended),
            "is_answered": is_answered,
        });
        Ok(Computed {
            row,
            is_answered,
            answered_at: at(answered),
            started_at: at(started),
            ended: ended.is_some(),
        })
    }

    /// correlation._final_items: by dial_id, amendments applied, the deletion flag set.
    fn final_items<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        parent_id: &Bound<'py, PyString>,
        computed: &[Computed<'py>],
        latest: &Latest<'py>,
    ) -> Out<Vec<(Bound<'py, PyDict>, bool)>> {
        let mut by_id: BTreeMap<&str, Option<&Computed<'py>>> = BTreeMap::new();
        for (dial, item) in latest.dials.iter().zip(computed) {
            by_id.insert(&dial.key, Some(item));
        }
        for dial_id in latest.amendments.keys() {
            by_id.entry(dial_id).or_insert(None);
        }
        let mut items = Vec::with_capacity(by_id.len());
        for (dial_id, item) in by_id {
            let amendments = latest.amendments.get(dial_id);
            let row = match (item, amendments) {
                // No amendment: the computed row itself (Python's copy is never seen).
                (Some(item), None) => item.row.clone(),
                (Some(item), Some(amendments)) => self.amended(py, item.row.copy()?, amendments)?,
                (None, amendments) => {
                    let blank = self.blank_item(py, call, parent_id, dial_id)?;
                    self.amended(py, blank, amendments.map_or(&[][..], Vec::as_slice))?
                }
            };
            let deleted = latest.deleted.contains(dial_id);
            row.set_item(pyo3::intern!(py, "is_deleted"), u8::from(deleted))?;
            items.push((row, deleted));
        }
        Ok(items)
    }

    /// correlation._blank_item: an item that only amendments know.
    fn blank_item<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        parent_id: &Bound<'py, PyString>,
        dial_id: &str,
    ) -> Out<Bound<'py, PyDict>> {
        let none = py.None().into_bound(py);
        Ok(row!(py, {
            "id": self.item_id(py, call, dial_id),
            "project_id": &call.project,
            "incoming_call_log_id": parent_id,
            "dial_id": dial_id,
            "incoming_call_policy_escalation_rule_id": &none,
            "user_id": &none,
            "user_phone_number": &none,
            "status": &none,
            "status_message": &none,
            "dial_duration_in_seconds": &none,
            "talk_duration_in_seconds": &none,
            "call_cost_in_usd_cents": &none,
            "cost_source": &none,
            "started_at": &none,
            "answered_at": &none,
            "ended_at": &none,
            "is_answered": false,
        }))
    }

    /// correlation._amended: each field an amendment carries overrides its column, in order.
    fn amended<'py>(
        &self,
        py: Python<'py>,
        row: Bound<'py, PyDict>,
        amendments: &[Event<'py>],
    ) -> Out<Bound<'py, PyDict>> {
        let columns = [
            (pyo3::intern!(py, "status"), pyo3::intern!(py, "status")),
            (
                pyo3::intern!(py, "status_message"),
                pyo3::intern!(py, "status_message"),
            ),
            (
                pyo3::intern!(py, "is_answered"),
                pyo3::intern!(py, "is_answered"),
            ),
            (pyo3::intern!(py, "user_id"), pyo3::intern!(py, "user_id")),
            (
                pyo3::intern!(py, "user_phone_number"),
                pyo3::intern!(py, "user_phone_number"),
            ),
            (
                pyo3::intern!(py, "escalation_rule_id"),
                pyo3::intern!(py, "incoming_call_policy_escalation_rule_id"),
            ),
        ];
        for amendment in amendments {
            for (name, column) in columns {
                let value = amendment.get(name)?;
                if !value.is_none() {
                    row.set_item(column, value)?;
                }
            }
            let cost = field!(amendment, "call_cost_usd_cents");
            if !cost.is_none() {
                let cost = self.round_cents.bind(py).call1((cost,))?;
                row.set_item(pyo3::intern!(py, "call_cost_in_usd_cents"), cost)?;
                row.set_item(
                    pyo3::intern!(py, "cost_source"),
                    pyo3::intern!(py, "manual"),
                )?;
            }
        }
        Ok(row)
    }

    /// The answering item: the earliest answer, then start, then dial_id; the first of equals.
    fn answered_by<'a, 'py>(
        &self,
        computed: &'a [Computed<'py>],
        dials: &'a [Dial<'py>],
    ) -> Option<&'a Computed<'py>> {
        let key = |item: &Computed<'py>, dial: &'a Dial<'py>| {
            (
                item.answered_at.unwrap_or(self.never),
                item.started_at.unwrap_or(self.never),
                dial.key.as_str(),
            )
        };
        let mut best: Option<(&Computed<'py>, (i64, i64, &str))> = None;
        for (item, dial) in computed.iter().zip(dials) {
            if !item.is_answered {
                continue;
            }
            let candidate = key(item, dial);
            if best.as_ref().is_none_or(|(_, found)| candidate < *found) {
                best = Some((item, candidate));
            }
        }
        best.map(|(item, _)| item)
    }

    /// correlation._leg_cost: a cost report's rounded cost, else the rated one.
    fn leg_cost<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        cost: Option<&Event<'py>>,
        direction: &Bound<'py, PyString>,
        number: &Bound<'py, PyAny>,
        talk: &Bound<'py, PyAny>,
    ) -> Out<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        Ok(match cost {
            Some(cost) => (
                self.round_cents
                    .bind(py)
                    .call1((field!(cost, "cost_usd_cents"),))?,
                lit!(py, "provider"),
            ),
            None => (
                self.rate
                    .bind(py)
                    .call1((&call.rates, direction, number, talk))?,
                lit!(py, "rated"),
            ),
        })
    }

    /// correlation._outbound: the call_log row of an outbound call (without the stamps).
    fn outbound<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        latest: &Latest<'py>,
    ) -> Out<Bound<'py, PyDict>> {
        let (placed, answered, ended) = (
            latest.placed.as_ref(),
            latest.out_answered.as_ref(),
            latest.out_ended.as_ref(),
        );
        let cost = latest.costs.get(&call.call_text);
        let talk = match billable(ended, cost)? {
            Some(talk) => talk,
            None if answered.is_none() => int_or_none(py, Some(0))?,
            None => int_or_none(
                py,
                seconds_between(answered.map(|e| e.at), ended.map(|e| e.at)),
            )?,
        };
        let to_number = field_or_none!(py, placed, "to_number");
        let (call_cost, source) = self.leg_cost(
            py,
            call,
            cost,
            pyo3::intern!(py, "outbound"),
            &to_number,
            &talk,
        )?;
        let call_data = match placed {
            Some(placed) => self
                .dumps
                .bind(py)
                .call1((field!(placed, "call_data"),))?
                .call_method0(pyo3::intern!(py, "decode"))?,
            None => py.None().into_bound(py),
        };
        Ok(row!(py, {
            "id": self.row_id(py, &["call_log", &call.project_text, &call.call_text]),
            "project_id": &call.project,
            "call_provider_call_id": &call.call,
            "to_number": to_number,
            "from_number": field_or_none!(py, placed, "from_number"),
            "call_data": call_data,
            "status": field_or_none!(py, ended, "status"),
            "status_message": field_or_none!(py, ended, "status_message"),
            "call_duration_in_seconds": talk,
            "call_cost_in_usd_cents": call_cost,
            "cost_source": source,
            "user_id": field_or_none!(py, placed, "user_id"),
            "team_id": field_or_none!(py, placed, "team_id"),
            "incident_id": field_or_none!(py, placed, "incident_id"),
            "alert_id": field_or_none!(py, placed, "alert_id"),
            "monitor_id": field_or_none!(py, placed, "monitor_id"),
            "scheduled_maintenance_id": field_or_none!(py, placed, "scheduled_maintenance_id"),
            "status_page_id": field_or_none!(py, placed, "status_page_id"),
            "status_page_announcement_id":
                field_or_none!(py, placed, "status_page_announcement_id"),
            "on_call_duty_policy_id": field_or_none!(py, placed, "on_call_duty_policy_id"),
            "on_call_duty_policy_escalation_rule_id":
                field_or_none!(py, placed, "on_call_duty_policy_escalation_rule_id"),
            "on_call_duty_policy_schedule_id":
                field_or_none!(py, placed, "on_call_duty_policy_schedule_id"),
            "started_at": time_of(py, placed),
            "answered_at": time_of(py, answered),
            "ended_at": time_of(py, ended),
        }))
    }

    /// correlation._cdr: the record's fields, and its cost (the provider's, else rated by
    /// its direction).
    fn cdr<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        cdr_id: &str,
        cdr: &Event<'py>,
    ) -> Out<Bound<'py, PyDict>> {
        let none = py.None().into_bound(py);
        let provider_cost = field!(cdr, "cost");
        let (cost, source) = if !provider_cost.is_none() {
            let cost = self.round_cents.bind(py).call1((provider_cost,))?;
            (cost, lit!(py, "provider"))
        } else {
            let direction = field!(cdr, "direction");
            let direction = if direction.is_truthy()? {
                self.cdr_direction.bind(py).get_item(&direction)?
            } else {
                None
            };
            let cost = match direction.filter(|d| !d.is_none()) {
                Some(direction) => self.rate.bind(py).call1((
                    &call.rates,
                    direction,
                    field!(cdr, "callee"),
                    field!(cdr, "duration"),
                ))?,
                None => none.clone(),
            };
            let source = if cost.is_none() {
                none
            } else {
                lit!(py, "rated")
            };
            (cost, source)
        };
        Ok(row!(py, {
            "id": self.row_id(py, &["cdr", &call.project_text, cdr_id]),
            "project_id": &call.project,
            "session_id": &call.call,
            "cdr_id": field!(cdr, "cdr_id"),
            "caller": field!(cdr, "caller"),
            "caller_domain": field!(cdr, "caller_domain"),
            "caller_display_name": field!(cdr, "caller_display_name"),
            "callee": field!(cdr, "callee"),
            "callee_domain": field!(cdr, "callee_domain"),
            "callee_display_name": field!(cdr, "callee_display_name"),
            "started_at": field!(cdr, "started_at"),
            "rang_at": field!(cdr, "rang_at"),
            "answered_at": field!(cdr, "answered_at"),
            "ended_at": field!(cdr, "ended_at"),
            "sip_call_id": field!(cdr, "sip_call_id"),
            "direction": field!(cdr, "direction"),
            "end_reason": field!(cdr, "end_reason"),
            "reroute_reason": field!(cdr, "reroute_reason"),
            "status_code": field!(cdr, "status_code"),
            "destination": field!(cdr, "destination"),
            "outbound_caller_id": field!(cdr, "outbound_caller_id"),
            "did_cid": field!(cdr, "did_cid"),
            "trunk": field!(cdr, "trunk"),
            "duration": field!(cdr, "duration"),
            "cost": cost,
            "billed_account": field!(cdr, "billed_account"),
            "service_number": field!(cdr, "service_number"),
            "user_data": field!(cdr, "user_data"),
            "cost_source": source,
        }))
    }

    /// A status map's value for `key`; a key it lacks (Python: KeyError) is left to Python.
    fn status_of<'py>(
        &self,
        py: Python<'py>,
        map: &Py<PyDict>,
        key: &Bound<'py, PyAny>,
    ) -> Out<Bound<'py, PyAny>> {
        map.bind(py).get_item(key)?.ok_or(Bail::Fallback)
    }

    fn item_id<'py>(
        &self,
        py: Python<'py>,
        call: &Call<'py>,
        dial_id: &str,
    ) -> Bound<'py, PyString> {
        let parts = [
            "incoming_call_log_item",
            &call.project_text,
            &call.call_text,
            dial_id,
        ];
        self.row_id(py, &parts)
    }

    /// correlation.row_id: the uuid5 text of the namespace and the parts joined by "|".
    fn row_id<'py>(&self, py: Python<'py>, parts: &[&str]) -> Bound<'py, PyString> {
        let mut hasher = Sha1::new();
        hasher.update(&self.namespace);
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                hasher.update(b"|");
            }
            hasher.update(part.as_bytes());
        }
        PyString::new(py, &uuid5_text(&hasher.finalize()))
    }
}

/// The hash's hex digits with the version (5) and the RFC 4122 variant written over theirs.
fn uuid5_text(hash: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits: Vec<u8> = hash[..16]
        .iter()
        .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])
        .collect();
    let mut out = Vec::with_capacity(36);
    for (index, &digit) in digits.iter().enumerate() {
        if matches!(index, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(match index {
            12 => b'5',
            16 => HEX[usize::from(((hash[8] >> 4) & 0x3) | 0x8)],
            _ => digit,
        });
    }
    String::from_utf8(out).expect("hex digits and hyphens are ASCII")
}

/// The events with the earliest and the latest time: the first of equals, as Python's min
/// and max give. `events` is not empty.
fn first_and_last<'a, 'py>(events: &'a [(Event<'py>, Kind)]) -> (&'a Event<'py>, &'a Event<'py>) {
    let (mut first, mut last) = (&events[0].0, &events[0].0);
    for (ev, _) in &events[1..] {
        if ev.at < first.at {
            first = ev;
        }
        if ev.at > last.at {
            last = ev;
        }
    }
    (first, last)
}

/// The end event's billable_seconds, else the cost report's; None if neither says.
fn billable<'py>(
    ended: Option<&Event<'py>>,
    cost: Option<&Event<'py>>,
) -> Out<Option<Bound<'py, PyAny>>> {
    for ev in [ended, cost].into_iter().flatten() {
        let seconds = field!(ev, "billable_seconds");
        if !seconds.is_none() {
            return Ok(Some(seconds));
        }
    }
    Ok(None)
}

/// correlation.seconds_between: whole seconds rounded up from the milliseconds; None if
/// unknown or negative.
fn seconds_between(start: Option<i64>, end: Option<i64>) -> Option<i64> {
    let millis = (end? - start?).div_euclid(1000);
    if millis < 0 {
        return None;
    }
    Some((millis + 999) / 1000)
}

/// The created_at, updated_at and version every row of a call but a CDR ends with.
fn stamp<'py>(
    py: Python<'py>,
    row: &Bound<'py, PyDict>,
    created_at: &Bound<'py, PyAny>,
    updated_at: &Bound<'py, PyAny>,
    version: u64,
) -> PyResult<()> {
    row.set_item(pyo3::intern!(py, "created_at"), created_at)?;
    row.set_item(pyo3::intern!(py, "updated_at"), updated_at)?;
    row.set_item(pyo3::intern!(py, "version"), version)
}

fn type_name(kind: Kind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, known)| *known == kind)
        .map(|(name, _)| *name)
        .expect("every kind has its type")
}

/// An exact int that fits i64 (a sequence), else Fallback.
fn exact_int(value: &Bound<'_, PyAny>) -> Out<i64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return Err(Bail::Fallback);
    }
    value.extract::<i64>().map_err(|_| Bail::Fallback)
}

/// The event's time object, or None without the event.
fn time_of<'py>(py: Python<'py>, ev: Option<&Event<'py>>) -> Bound<'py, PyAny> {
    match ev {
        Some(ev) => ev.at_obj.clone(),
        None => py.None().into_bound(py),
    }
}

fn int_or_none<'py>(py: Python<'py>, value: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    Ok(value.into_pyobject(py)?)
}

/// The CallRows fields in order: the four tables, open, last_event_at.
fn result<'py>(
    py: Python<'py>,
    tables: [Bound<'py, PyList>; 4],
    open: bool,
    last_event_at: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let [incoming, items, calls, cdrs] = tables.map(Bound::into_any);
    let open = PyBool::new(py, open).to_owned().into_any();
    PyTuple::new(py, [incoming, items, calls, cdrs, open, last_event_at])
}
