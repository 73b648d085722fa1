//! The JSON form of a telemetry batch: points grouped by device and shared timestamps.
//!
//! ```json
//! {"gateway":"gw-01","boot_epoch":7,"seq":42,"historical":false,"groups":[
//!   {"device":"meter-01","t0":1700000000000,"dt":[1000,1000],
//!    "values":{"voltage_l1":[230.1,230.2,230.2],"breaker_open":[false,false,true]},
//!    "quality":{"voltage_l1":["good","uncertain","good"]}}]}
//! ```
//!
//! A group is one device's series that share their timestamps: `t0` is the first timestamp
//! and `dt` the differences between successive ones (omitted for a single timestamp), so a
//! group of `dt.len() + 1` timestamps holds that many values per metric. `quality` is present
//! only for series with a point that is not `good`. Metric order is kept.
//!
//! Decoding counts values as it reads them and stops at
//! [`MAX_POINTS_PER_BATCH`], so no array grows beyond the limit.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bounded::Bounded;
use super::number::CompactValue;
use crate::alias::{BirthRef, SeriesAliases};
use crate::limits::MAX_POINTS_PER_BATCH;
use crate::message::series::{self, Series};
use crate::message::TelemetryBatch;
use crate::{Ident, Point, Quality, Value};

/// Series of one device with identical timestamps, written as one group.
struct Group<'a> {
    points: &'a [Point],
    series: Vec<Series<'a>>,
}

fn same_timestamps(points: &[Point], a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(i, j)| points[*i].ts_ms == points[*j].ts_ms)
}

/// Merges consecutive series of the same device with the same timestamps.
fn groups(points: &[Point]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for s in series::group(points) {
        if let Some(g) = out.last_mut() {
            let first = &g.series[0];
            if first.device == s.device && same_timestamps(points, &first.points, &s.points) {
                g.series.push(s);
                continue;
            }
        }
        out.push(Group {
            points,
            series: vec![s],
        });
    }
    out
}

impl Serialize for TelemetryBatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TelemetryBatch", 5)?;
        st.serialize_field("gateway", &self.gateway)?;
        st.serialize_field("boot_epoch", &self.boot_epoch)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("historical", &self.historical)?;
        st.serialize_field("groups", &groups(&self.points))?;
        st.end()
    }
}

/// A batch written against a birth (JSON version 2): series of the birth with good quality
/// throughout, consecutive by alias and sharing their timestamps, as runs
/// `{"from":a,"t0":…,"dt":[…],"values":[…]}` whose `values` hold the run's series one after
/// the other; every other series by name in a group as in version 1. Entries keep series order.
pub(crate) struct AliasedBatch<'a> {
    pub batch: &'a TelemetryBatch,
    pub aliases: &'a SeriesAliases,
}

/// One entry of an aliased batch's `groups`.
enum Entry<'a> {
    Named(Group<'a>),
    Run {
        points: &'a [Point],
        first: u32,
        series: Vec<Series<'a>>,
    },
}

fn entries<'a>(points: &'a [Point], aliases: &SeriesAliases) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = Vec::new();
    for s in series::group(points) {
        let good = s.points.iter().all(|&i| points[i].quality.is_good());
        let alias = aliases.alias(s.device, s.metric).filter(|_| good);
        match (alias, out.last_mut()) {
            (Some(a), Some(Entry::Run { first, series, .. }))
                if u64::from(*first) + series.len() as u64 == u64::from(a)
                    && same_timestamps(points, &series[0].points, &s.points) =>
            {
                series.push(s)
            }
            (Some(a), _) => out.push(Entry::Run {
                points,
                first: a,
                series: vec![s],
            }),
            (None, Some(Entry::Named(g)))
                if g.series[0].device == s.device
                    && same_timestamps(points, &g.series[0].points, &s.points) =>
            {
                g.series.push(s)
            }
            (None, _) => out.push(Entry::Named(Group {
                points,
                series: vec![s],
            })),
        }
    }
    out
}

impl Serialize for AliasedBatch<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.batch;
        let mut st = s.serialize_struct("TelemetryBatch", 6)?;
        st.serialize_field("gateway", &b.gateway)?;
        st.serialize_field("boot_epoch", &b.boot_epoch)?;
        st.serialize_field("seq", &b.seq)?;
        st.serialize_field("historical", &b.historical)?;
        st.serialize_field(
            "birth",
            &BirthField {
                config_hash: self.aliases.config_hash(),
                check: self.aliases.check(),
            },
        )?;
        st.serialize_field("groups", &entries(&b.points, self.aliases))?;
        st.end()
    }
}

#[derive(Serialize)]
struct BirthField<'a> {
    config_hash: &'a str,
    check: u32,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Named(g) => g.serialize(s),
            Entry::Run {
                points,
                first,
                series,
            } => {
                let ts = &series[0].points;
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("from", first)?;
                m.serialize_entry("t0", &points[ts[0]].ts_ms)?;
                if ts.len() > 1 {
                    m.serialize_entry("dt", &Deltas(points, ts))?;
                }
                let values = series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|&i| CompactValue(&points[i].value)));
                m.serialize_entry("values", &Seq(values))?;
                m.end()
            }
        }
    }
}

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ts = &self.series[0].points;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("device", self.series[0].device)?;
        m.serialize_entry("t0", &self.points[ts[0]].ts_ms)?;
        if ts.len() > 1 {
            m.serialize_entry("dt", &Deltas(self.points, ts))?;
        }
        m.serialize_entry("values", &ValueColumns(self))?;
        if self
            .series
            .iter()
            .any(|s| s.points.iter().any(|&i| !self.points[i].quality.is_good()))
        {
            m.serialize_entry("quality", &Qualities(self))?;
        }
        m.end()
    }
}

struct Deltas<'a>(&'a [Point], &'a [usize]);

impl Serialize for Deltas<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ts = |i: &usize| self.0[*i].ts_ms;
        s.collect_seq(self.1.windows(2).map(|w| ts(&w[1]).wrapping_sub(ts(&w[0]))))
    }
}

struct ValueColumns<'a>(&'a Group<'a>);

impl Serialize for ValueColumns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut m = s.serialize_map(Some(g.series.len()))?;
        for series in &g.series {
            let values = series
                .points
                .iter()
                .map(|&i| CompactValue(&g.points[i].value));
            m.serialize_entry(series.metric, &Seq(values))?;
        }
        m.end()
    }
}

struct Qualities<'a>(&'a Group<'a>);

impl Serialize for Qualities<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut m = s.serialize_map(None)?;
        for series in &g.series {
            let q = |i: &usize| g.points[*i].quality;
            if series.points.iter().any(|i| !q(i).is_good()) {
                m.serialize_entry(series.metric, &Seq(series.points.iter().map(q)))?;
            }
        }
        m.end()
    }
}

/// Serializes an iterator as a sequence (cloned, because `Serialize` takes `&self`).
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// Maps an object key to its index in `.0`, or `None` for a key to ignore.
struct Field(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Field {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|f| *f == v))
    }
}

const BATCH_FIELDS: &[&str] = &[
    "gateway",
    "boot_epoch",
    "seq",
    "historical",
    "groups",
    "birth",
];
const GROUP_FIELDS: &[&str] = &["device", "t0", "dt", "values", "quality", "from"];

/// The birth an aliased batch (JSON version 2) names.
#[derive(Deserialize)]
struct BirthRefField {
    config_hash: String,
    check: u32,
}

/// Only the `birth` of a batch, everything else skipped.
#[derive(Deserialize)]
struct BirthOnly {
    #[serde(default)]
    birth: Option<BirthRefField>,
}

/// The birth a JSON telemetry payload was written against (version 2), or `None` for one that
/// names every series.
pub(crate) fn birth_ref(bytes: &[u8]) -> Result<Option<BirthRef>, serde_json::Error> {
    let only: BirthOnly = serde_json::from_slice(bytes)?;
    Ok(only.birth.map(|b| BirthRef {
        config_hash: b.config_hash,
        check: b.check,
    }))
}

/// Reads a telemetry batch; `aliases` resolves the runs of an aliased batch and must be the
/// table of the birth it names.
pub(crate) fn decode_batch(
    bytes: &[u8],
    aliases: Option<&SeriesAliases>,
) -> Result<TelemetryBatch, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let batch = BatchVisitor { aliases }.deserialize(&mut de)?;
    de.end()?;
    Ok(batch)
}

fn take_once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for TelemetryBatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BatchVisitor { aliases: None })
    }
}

struct BatchVisitor<'a> {
    aliases: Option<&'a SeriesAliases>,
}

impl<'de> DeserializeSeed<'de> for BatchVisitor<'_> {
    type Value = TelemetryBatch;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TelemetryBatch, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchVisitor<'_> {
    type Value = TelemetryBatch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a telemetry batch object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TelemetryBatch, A::Error> {
        let mut gateway: Option<Ident> = None;
        let mut boot_epoch: Option<u64> = None;
        let mut seq: Option<u64> = None;
        let mut historical: Option<bool> = None;
        let mut points: Option<Vec<Point>> = None;
        let mut birth: Option<BirthRefField> = None;
        let mut aliased = false;
        while let Some(field) = map.next_key_seed(Field(BATCH_FIELDS))? {
            match field {
                Some(0) => take_once(&mut gateway, &mut map, "gateway")?,
                Some(1) => take_once(&mut boot_epoch, &mut map, "boot_epoch")?,
                Some(2) => take_once(&mut seq, &mut map, "seq")?,
                Some(3) => take_once(&mut historical, &mut map, "historical")?,
                Some(5) => take_once(&mut birth, &mut map, "birth")?,
                Some(_) => {
                    if points.is_some() {
                        return Err(de::Error::duplicate_field("groups"));
                    }
                    let mut out = Vec::new();
                    map.next_value_seed(GroupsSeed {
                        points: &mut out,
                        aliases: self.aliases,
                        aliased: &mut aliased,
                    })?;
                    points = Some(out);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // Runs were read with the table the caller holds; it must be the birth's they name.
        match (&birth, self.aliases) {
            (Some(b), Some(a)) if b.config_hash != a.config_hash() || b.check != a.check() => {
                return Err(de::Error::custom(format_args!(
                    "the batch names the birth with config hash {:?} and table check {}, \
                     not the one with config hash {:?} and table check {} it was read with",
                    b.config_hash,
                    b.check,
                    a.config_hash(),
                    a.check()
                )));
            }
            (None, _) if aliased => {
                return Err(de::Error::custom(
                    "groups name series by alias (`from`) but the batch names no `birth`",
                ));
            }
            _ => {}
        }
        Ok(TelemetryBatch {
            gateway: gateway.ok_or_else(|| de::Error::missing_field("gateway"))?,
            boot_epoch: boot_epoch.ok_or_else(|| de::Error::missing_field("boot_epoch"))?,
            seq: seq.ok_or_else(|| de::Error::missing_field("seq"))?,
            historical: historical.unwrap_or(false),
            points: points.ok_or_else(|| de::Error::missing_field("groups"))?,
        })
    }
}

/// Reads the `groups` array, appending each group's points; `aliased` is set when a group is
/// a run of aliases.
struct GroupsSeed<'p> {
    points: &'p mut Vec<Point>,
    aliases: Option<&'p SeriesAliases>,
    aliased: &'p mut bool,
}

impl<'de> DeserializeSeed<'de> for GroupsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for GroupsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of groups")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(run) = seq.next_element_seed(GroupSeed {
            points: self.points,
            aliases: self.aliases,
            index,
        })? {
            *self.aliased |= run;
            index += 1;
        }
        Ok(())
    }
}

/// One group; its value is true for a run of aliases.
struct GroupSeed<'p> {
    points: &'p mut Vec<Point>,
    aliases: Option<&'p SeriesAliases>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

/// A group's `values`: metric → column in a named group, one flat array in a run.
enum Values {
    Columns(Vec<(Ident, Vec<Value>)>),
    Flat(Vec<Value>),
}

struct ValuesSeed {
    budget: usize,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed {
    type Value = Values;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Values, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed {
    type Value = Values;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of metric name to array, or in a run an array")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Values, A::Error> {
        ColumnsSeed::<Value>::new(self.budget)
            .visit_map(map)
            .map(Values::Columns)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Values, A::Error> {
        Bounded::<Value>::new(self.budget, "values, over the limit of points per batch")
            .visit_seq(seq)
            .map(Values::Flat)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a group object with device, t0, dt and values")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        let g = self.index;
        let fail = |what: String| de::Error::custom(format_args!("groups[{g}]: {what}"));
        let budget = MAX_POINTS_PER_BATCH - self.points.len();
        let mut device: Option<Ident> = None;
        let mut t0: Option<i64> = None;
        let mut dt: Option<Vec<i64>> = None;
        let mut values: Option<Values> = None;
        let mut quality: Option<Vec<(Ident, Vec<Quality>)>> = None;
        let mut from: Option<u64> = None;
        while let Some(field) = map.next_key_seed(Field(GROUP_FIELDS))? {
            match field {
                Some(0) => take_once(&mut device, &mut map, "device")?,
                Some(1) => take_once(&mut t0, &mut map, "t0")?,
                Some(2) => {
                    if dt.is_some() {
                        return Err(de::Error::duplicate_field("dt"));
                    }
                    dt = Some(map.next_value_seed(Bounded::<i64>::new(
                        MAX_POINTS_PER_BATCH,
                        "intervals in `dt`",
                    ))?);
                }
                Some(3) => {
                    if values.is_some() {
                        return Err(de::Error::duplicate_field("values"));
                    }
                    values = Some(map.next_value_seed(ValuesSeed { budget })?);
                }
                Some(5) => take_once(&mut from, &mut map, "from")?,
                Some(_) => {
                    if quality.is_some() {
                        return Err(de::Error::duplicate_field("quality"));
                    }
                    quality = Some(map.next_value_seed(ColumnsSeed::<Quality>::new(budget))?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let t0 = t0.ok_or_else(|| fail("missing field `t0`".into()))?;
        let values = values.ok_or_else(|| fail("missing field `values`".into()))?;
        let dt = dt.unwrap_or_default();
        let mut ts = Vec::with_capacity(dt.len() + 1);
        ts.push(t0);
        for d in &dt {
            let next = ts[ts.len() - 1]
                .checked_add(*d)
                .ok_or_else(|| fail(format!("timestamp {} overflows", ts.len())))?;
            ts.push(next);
        }
        let values = match (values, from) {
            (Values::Flat(flat), Some(first)) => {
                if device.is_some() || quality.is_some() {
                    return Err(fail(
                        "a run of aliases (`from`) has neither `device` nor `quality`".into(),
                    ));
                }
                self.run(first, &ts, flat).map_err(fail)?;
                return Ok(true);
            }
            (Values::Columns(c), None) => c,
            (Values::Flat(_), None) => {
                return Err(fail(
                    "`values` is an array, which only a run of aliases (`from`) has".into(),
                ))
            }
            (Values::Columns(_), Some(_)) => {
                return Err(fail(
                    "a run of aliases (`from`) has its `values` as one array".into(),
                ))
            }
        };
        let device = device.ok_or_else(|| fail("missing field `device`".into()))?;
        if values.is_empty() {
            return Err(fail("`values` names no metric".into()));
        }
        for (metric, column) in &values {
            if column.len() != ts.len() {
                return Err(fail(format!(
                    "metric {metric:?} has {} values but t0 and dt give {} timestamps",
                    column.len(),
                    ts.len()
                )));
            }
        }
        let mut quality = quality.unwrap_or_default();
        let metrics: HashSet<&Ident> = values.iter().map(|(m, _)| m).collect();
        for (metric, column) in &quality {
            if !metrics.contains(metric) {
                return Err(fail(format!(
                    "quality names metric {metric:?}, which has no values"
                )));
            }
            if column.len() != ts.len() {
                return Err(fail(format!(
                    "quality of {metric:?} has {} entries but there are {} timestamps",
                    column.len(),
                    ts.len()
                )));
            }
        }
        drop(metrics);
        let mut quality: HashMap<Ident, Vec<Quality>> = quality.drain(..).collect();
        self.points.reserve(values.len() * ts.len());
        for (metric, column) in values {
            let q = quality.remove(&metric);
            for (i, value) in column.into_iter().enumerate() {
                self.points.push(Point {
                    device: device.clone(),
                    metric: metric.clone(),
                    ts_ms: ts[i],
                    value,
                    quality: q.as_ref().map_or(Quality::Good, |q| q[i]),
                });
            }
        }
        Ok(false)
    }
}

impl GroupSeed<'_> {
    /// The points of a run from alias `first`: `flat` holds its series one after the other,
    /// each with a value per timestamp.
    fn run(&mut self, first: u64, ts: &[i64], flat: Vec<Value>) -> Result<(), String> {
        let Some(table) = self.aliases else {
            return Err("a run of aliases (`from`) needs the batch's birth to be read".into());
        };
        if flat.is_empty() || !flat.len().is_multiple_of(ts.len()) {
            return Err(format!(
                "a run's {} values are not a whole number of series of {} timestamps",
                flat.len(),
                ts.len()
            ));
        }
        let n = flat.len() / ts.len();
        let mut names = Vec::with_capacity(n);
        for k in 0..n as u64 {
            let alias = first.saturating_add(k);
            let (d, m) = table.series(alias).ok_or_else(|| {
                format!("alias {alias} is beyond the birth's {} series", table.len())
            })?;
            names.push((d, m));
        }
        self.points.reserve(flat.len());
        for (i, value) in flat.into_iter().enumerate() {
            let (device, metric) = names[i / ts.len()];
            self.points.push(Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms: ts[i % ts.len()],
                value,
                quality: Quality::Good,
            });
        }
        Ok(())
    }
}

/// Reads an object of metric → array, at most `budget` elements in all arrays together.
struct ColumnsSeed<T> {
    budget: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T> ColumnsSeed<T> {
    fn new(budget: usize) -> Self {
        ColumnsSeed {
            budget,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ColumnsSeed<T> {
    type Value = Vec<(Ident, Vec<T>)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ColumnsSeed<T> {
    type Value = Vec<(Ident, Vec<T>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of metric name to array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(Ident, Vec<T>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut left = self.budget;
        while let Some(metric) = map.next_key::<Ident>()? {
            if !seen.insert(metric.clone()) {
                return Err(de::Error::custom(format_args!(
                    "metric {metric:?} appears twice"
                )));
            }
            let column = map.next_value_seed(Bounded::<T>::new(
                left,
                "entries, over the limit of points per batch",
            ))?;
            left -= column.len();
            out.push((metric, column));
        }
        Ok(out)
    }
}
