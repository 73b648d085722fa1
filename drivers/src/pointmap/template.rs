//! Device templates: a kind of device described once, used by name by many devices.
//!
//! A device naming a template gets the template's points first, then its own, and takes each of
//! `poll_interval_ms`, `timeout_ms` and `max_gap` from itself, else from the template, else the
//! default. Templates do not build on one another, so there is no order of application to get
//! wrong and no cycle to detect. A mistake inside a template is reported at the template's path
//! (`templates[meter].points[r{n}]`), once, however many devices use it.

use std::collections::HashMap;

use fieldlink_protocol::Ident;

use crate::pointmap::config::{DeviceConfig, PointConfig, TemplateConfig};
use crate::pointmap::validate::Errors;
use crate::pointmap::PointMapErrorKind as K;

/// One point entry of a device as validation sees it: what it says and where it was written.
pub(super) struct Entry<'a> {
    /// `devices[meter-1].points[voltage]` or `templates[meter].points[r{n}]`.
    pub path: String,
    pub point: &'a PointConfig,
}

/// A device's settings once its template is applied.
pub(super) struct Resolved<'a> {
    pub poll_interval_ms: u64,
    pub timeout_ms: u64,
    pub max_gap: u16,
    pub entries: Vec<Entry<'a>>,
}

/// The templates of a map by name.
pub(super) struct Templates<'a> {
    by_name: HashMap<&'a str, &'a TemplateConfig>,
}

/// Indexes the templates, reporting bad and duplicate names and zero durations.
pub(super) fn index<'a>(templates: &'a [TemplateConfig], errors: &mut Errors) -> Templates<'a> {
    let mut by_name = HashMap::new();
    for t in templates {
        let path = format!("templates[{}]", t.name);
        if let Err(e) = Ident::validate(&t.name) {
            errors.push(&path, K::BadName(e));
        }
        // The first definition stands; devices are checked against it.
        if by_name.contains_key(t.name.as_str()) {
            errors.push(&path, K::DuplicateTemplate);
        } else {
            by_name.insert(t.name.as_str(), t);
        }
        zero_durations(t.poll_interval_ms, t.timeout_ms, &path, errors);
    }
    Templates { by_name }
}

/// `poll_interval_ms` and `timeout_ms`, where given, must not be zero.
pub(super) fn zero_durations(
    poll_interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    path: &str,
    errors: &mut Errors,
) {
    if poll_interval_ms == Some(0) {
        errors.push(path, K::Zero("poll_interval_ms"));
    }
    if timeout_ms == Some(0) {
        errors.push(path, K::Zero("timeout_ms"));
    }
}

/// Applies the template `d` names, if any, to `d`.
pub(super) fn resolve<'a>(
    d: &'a DeviceConfig,
    templates: &Templates<'a>,
    path: &str,
    errors: &mut Errors,
) -> Resolved<'a> {
    zero_durations(d.poll_interval_ms, d.timeout_ms, path, errors);
    let template = d.template.as_deref().and_then(|name| {
        let found = templates.by_name.get(name).copied();
        if found.is_none() {
            let mut known: Vec<String> = templates.by_name.keys().map(|k| k.to_string()).collect();
            known.sort_unstable();
            errors.push(
                &format!("{path}.template"),
                K::UnknownTemplate {
                    name: name.to_owned(),
                    known,
                },
            );
        }
        found
    });
    let mut entries = Vec::new();
    if let Some(t) = template {
        entries.extend(t.points.iter().map(|point| Entry {
            path: format!("templates[{}].points[{}]", t.name, point.name),
            point,
        }));
    }
    entries.extend(d.points.iter().map(|point| Entry {
        path: format!("{path}.points[{}]", point.name),
        point,
    }));
    Resolved {
        poll_interval_ms: d
            .poll_interval_ms
            .or(template.and_then(|t| t.poll_interval_ms))
            .unwrap_or(DeviceConfig::DEFAULT_POLL_INTERVAL_MS),
        timeout_ms: d
            .timeout_ms
            .or(template.and_then(|t| t.timeout_ms))
            .unwrap_or(DeviceConfig::DEFAULT_TIMEOUT_MS),
        max_gap: d
            .max_gap
            .or(template.and_then(|t| t.max_gap))
            .unwrap_or(DeviceConfig::DEFAULT_MAX_GAP),
        entries,
    }
}
