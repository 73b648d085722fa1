// Fieldlink dashboard: plain JavaScript against the cloud's REST API (/api/v1) and WebSocket
// (/api/v1/ws). No build step, no external resources.
'use strict';

const TOKEN_KEY = 'fieldlink.token';
const LIVE_WINDOW_MS = 5 * 60 * 1000;
const SPARK_POINTS = 60;

const state = {
  token: localStorage.getItem(TOKEN_KEY) || '',
  gateways: new Map(),   // gateway id -> {online, last_seen, devices: [name]}
  health: new Map(),     // "gw/device" -> {state, since, reported_state, last_error, last_error_at}
  series: new Map(),     // "gw/device/metric" -> {id, gateway, device, metric, unit, writable, live: [[ms, v]]}
  selected: null,        // series key shown in the big chart
  range: 'live',
  history: null,         // {kind: 'raw'|'buckets', points}
  socket: null,
  commands: new Map(),   // command id -> view
  alerts: new Map(),     // alert id -> view
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};
const key = (g, d, m) => `${g}/${d}/${m}`;

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (options.body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) throw new Unauthorized('the token was refused');
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.message) || `HTTP ${r.status}`);
  return body;
}

function setStatus(text) { $('status').textContent = text; }

function formatValue(v) {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') {
    const a = Math.abs(v);
    const digits = a >= 1000 ? 1 : a >= 100 ? 2 : 3;
    return Number(v.toFixed(digits)).toString();
  }
  return v === null || v === undefined ? '—' : String(v);
}
const numeric = (v) => (typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'number' ? v : null);

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// ---------------------------------------------------------------- loading

async function loadAll() {
  const page = await api('/api/v1/gateways?limit=1000');
  for (const g of page.items) {
    const devices = await api(`/api/v1/gateways/${encodeURIComponent(g.gateway)}/devices?limit=1000`);
    state.gateways.set(g.gateway, { ...g, devices: devices.items.map((d) => d.device) });
    for (const h of devices.items) state.health.set(`${h.gateway}/${h.device}`, h);
    for (const d of devices.items.map((x) => x.device)) {
      const base = `/api/v1/gateways/${encodeURIComponent(g.gateway)}/devices/${encodeURIComponent(d)}`;
      const [series, latest] = await Promise.all([api(`${base}/series`), api(`${base}/latest`)]);
      for (const s of series) {
        const k = key(s.gateway, s.device, s.metric);
        const old = state.series.get(k);
        state.series.set(k, { ...s, live: old ? old.live : [], latest: old ? old.latest : null });
      }
      for (const l of latest) {
        const s = state.series.get(key(g.gateway, d, l.metric));
        if (s) pushReading(s, Date.parse(l.reading.time), l.reading.value, l.reading.quality);
      }
    }
  }
}

function pushReading(s, ms, value, quality) {
  if (!s.latest || ms >= s.latest.ms) s.latest = { ms, value, quality };
  const n = numeric(value);
  if (n === null) return;
  const live = s.live;
  if (live.length && live[live.length - 1][0] >= ms) return;
  live.push([ms, n]);
  const cutoff = Date.now() - LIVE_WINDOW_MS;
  while (live.length > 2 && live[0][0] < cutoff) live.shift();
}

// ---------------------------------------------------------------- live updates

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // The token travels as a subprotocol, not in the URL (URLs end up in proxy and browser logs);
  // the server answers with 'fieldlink.v1' only.
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/ws`,
    ['fieldlink.v1', `fieldlink.bearer.${state.token}`]);
  state.socket = ws;
  ws.onopen = () => {
    for (const topic of ['telemetry', 'gateway_status', 'device_status', 'commands', 'alerts']) {
      ws.send(JSON.stringify({ type: 'subscribe', topic }));
    }
    setStatus('live');
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === 'telemetry') onTelemetry(m);
    else if (m.type === 'gateway_status') onGatewayStatus(m);
    else if (m.type === 'device_status') onDeviceStatus(m.device);
    else if (m.type === 'command') onCommand(m.command);
    else if (m.type === 'alert') { state.alerts.set(m.alert.alert_id, m.alert); renderAlerts(); }
    else if (m.type === 'lagged') setStatus(`live (skipped ${m.missed} updates)`);
  };
  ws.onclose = () => {
    if (state.socket !== ws) return;
    setStatus('connection lost; reconnecting…');
    setTimeout(() => { if (state.socket === ws) reload(); }, 2000);
  };
}

function onTelemetry(m) {
  const k = key(m.gateway, m.device, m.metric);
  const s = state.series.get(k);
  if (!s) { scheduleReload(); return; }
  pushReading(s, Date.parse(m.time), m.value, m.quality);
  renderRow(s);
  if (state.selected === k && state.range === 'live') drawChart();
}

function onGatewayStatus(m) {
  const g = state.gateways.get(m.gateway);
  if (!g) { scheduleReload(); return; }
  g.online = m.online;
  g.last_seen = m.at;
  renderGateways();
}

function onDeviceStatus(h) {
  const g = state.gateways.get(h.gateway);
  if (!g || !g.devices.includes(h.device)) { scheduleReload(); return; }
  state.health.set(`${h.gateway}/${h.device}`, h);
  for (const badge of document.querySelectorAll(`[data-device="${CSS.escape(`${h.gateway}/${h.device}`)}"] .badge`)) {
    fillDeviceBadge(badge, h);
  }
}

// A device's health badge: its state, with since when and the last error as a tooltip. The
// agent's own pseudo-device reports no health (the gateway's badge is its health).
const SELF_DEVICE = '_gateway';
function deviceBadge(gw, d) {
  if (d === SELF_DEVICE) return '';
  const badge = el('span', { class: 'badge' });
  fillDeviceBadge(badge, state.health.get(`${gw}/${d}`));
  return badge;
}

function fillDeviceBadge(badge, h) {
  const s = h ? h.state : 'unknown';
  badge.className = `badge ${s}`;
  badge.dataset.state = s;
  badge.textContent = s;
  const lines = [];
  if (h && h.since) lines.push(`since ${new Date(h.since).toLocaleString()}`);
  if (h && s === 'unknown' && h.reported_state) lines.push(`last reported ${h.reported_state}`);
  if (h && h.last_error) lines.push(`last error: ${h.last_error}${h.last_error_at ? ` (${new Date(h.last_error_at).toLocaleString()})` : ''}`);
  badge.title = lines.join('\n');
}

let reloadTimer = null;
function scheduleReload() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => { reloadTimer = null; loadAll().then(render).catch(fail); }, 1000);
}

// ---------------------------------------------------------------- rendering

function render() {
  renderGateways();
  renderAlerts();
  renderDevices();
  drawChart();
}

function renderGateways() {
  const box = $('gateways');
  box.replaceChildren(el('h2', {}, 'Gateways'));
  if (!state.gateways.size) box.append(el('p', { class: 'note' }, 'No gateway has reported yet.'));
  for (const [id, g] of state.gateways) {
    const seen = g.last_seen ? `last seen ${ago(Date.parse(g.last_seen))}` : 'never seen';
    box.append(el('div', { class: 'card gateway', 'data-gateway': id },
      el('h3', {}, id, el('span', { class: `badge ${g.online ? 'online' : 'offline'}` }, g.online ? 'online' : 'offline')),
      el('div', { class: 'seen' }, seen),
      el('ul', {}, ...g.devices.map((d) => el('li', { 'data-device': `${id}/${d}` }, d, ' ', deviceBadge(id, d))))));
  }
}

function renderDevices() {
  const box = $('devices');
  box.replaceChildren();
  for (const [gw, g] of state.gateways) {
    for (const d of g.devices) {
      const rows = [...state.series.values()].filter((s) => s.gateway === gw && s.device === d);
      const table = el('table', {}, ...rows.map(metricRow));
      const card = el('div', { class: 'card device', 'data-device': `${gw}/${d}` },
        el('h3', {}, `${d}`, el('span', { class: 'seen' }, ` · ${gw}`), deviceBadge(gw, d)), table);
      const writable = rows.filter((s) => s.writable);
      if (writable.length) card.append(writeForm(gw, d, writable));
      box.append(card);
    }
  }
}

function metricRow(s) {
  const k = key(s.gateway, s.device, s.metric);
  const canvas = el('canvas', { width: 120, height: 28 });
  const tr = el('tr', { class: 'metric', 'data-metric': k, onclick: () => select(k) },
    el('td', { class: 'name' }, s.metric),
    el('td', { class: 'value' }),
    el('td', { class: 'unit' }, s.unit || ''),
    el('td', { class: 'spark' }, canvas));
  s.row = tr;
  fillRow(s);
  return tr;
}

function renderRow(s) { if (s.row) fillRow(s); }

function fillRow(s) {
  const tr = s.row;
  tr.classList.toggle('selected', state.selected === key(s.gateway, s.device, s.metric));
  tr.classList.toggle('quality-bad', s.latest && s.latest.quality === 'bad');
  tr.classList.toggle('quality-uncertain', s.latest && s.latest.quality === 'uncertain');
  const cell = tr.querySelector('td.value');
  cell.textContent = s.latest ? formatValue(s.latest.value) : '—';
  cell.title = s.latest ? new Date(s.latest.ms).toLocaleString() : '';
  spark(tr.querySelector('canvas'), s.live.slice(-SPARK_POINTS));
}

function spark(canvas, pts) {
  const c = canvas.getContext('2d');
  c.clearRect(0, 0, canvas.width, canvas.height);
  if (pts.length < 2) return;
  const ys = pts.map((p) => p[1]);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const t0 = pts[0][0], tspan = pts[pts.length - 1][0] - t0 || 1;
  c.strokeStyle = '#1f6fb2'; c.lineWidth = 1.5; c.beginPath();
  pts.forEach(([t, v], i) => {
    const x = ((t - t0) / tspan) * (canvas.width - 2) + 1;
    const y = canvas.height - 2 - ((v - lo) / span) * (canvas.height - 4);
    if (i) c.lineTo(x, y); else c.moveTo(x, y);
  });
  c.stroke();
}

// ---------------------------------------------------------------- the big chart

function select(k) {
  state.selected = k;
  for (const s of state.series.values()) renderRow(s);
  showRange(state.range);
  backfillLive(state.series.get(k)).catch(fail);
}

// The live chart starts with what the store has from the last few minutes.
async function backfillLive(s) {
  const from = new Date(Date.now() - LIVE_WINDOW_MS).toISOString();
  const page = await api(`/api/v1/series/${s.series_id}/points?from=${encodeURIComponent(from)}&limit=1000`);
  const known = new Set(s.live.map((p) => p[0]));
  for (const r of page.items) {
    const ms = Date.parse(r.time), n = numeric(r.value);
    if (n !== null && !known.has(ms)) s.live.push([ms, n]);
  }
  s.live.sort((a, b) => a[0] - b[0]);
  renderRow(s);
  if (state.range === 'live') drawChart();
}

async function showRange(range) {
  state.range = range;
  for (const b of $('ranges').querySelectorAll('button')) b.classList.toggle('active', b.dataset.range === range);
  state.history = null;
  drawChart();
  const s = state.series.get(state.selected);
  if (!s || range === 'live') return;
  const seconds = Number(range);
  const to = new Date();
  const from = new Date(to.getTime() - seconds * 1000);
  const q = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  try {
    let history;
    if (seconds <= 3600) {
      // Short ranges: every raw reading, up to a few pages.
      const points = [];
      let url = `/api/v1/series/${s.series_id}/points?${q}&limit=1000`;
      for (let pages = 0; url && pages < 5; pages++) {
        const page = await api(url);
        for (const r of page.items) {
          const n = numeric(r.value);
          if (n !== null) points.push([Date.parse(r.time), n]);
        }
        url = page.next_from
          ? `/api/v1/series/${s.series_id}/points?from=${encodeURIComponent(page.next_from)}&to=${encodeURIComponent(to.toISOString())}&limit=1000`
          : null;
      }
      history = { kind: 'raw', points };
    } else {
      // Long ranges: about 300 buckets of average, minimum and maximum.
      const step = Math.max(60, Math.ceil(seconds / 300 / 60) * 60);
      const buckets = await api(`/api/v1/series/${s.series_id}/aggregates?${q}&interval=${step}s`);
      history = {
        kind: 'buckets', step,
        points: buckets.filter((b) => b.avg !== null).map((b) => [Date.parse(b.start), b.avg, b.min, b.max]),
      };
    }
    if (state.range === range && state.selected === key(s.gateway, s.device, s.metric)) {
      state.history = history;
      drawChart();
    }
  } catch (e) { fail(e); }
}

function drawChart() {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 900, h = canvas.clientHeight || 280;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const c = canvas.getContext('2d');
  c.setTransform(ratio, 0, 0, ratio, 0, 0);
  c.clearRect(0, 0, w, h);
  const s = state.series.get(state.selected);
  const note = $('chart-note');
  if (!s) {
    $('chart-title').textContent = 'Choose a metric';
    note.textContent = 'Click a row below to chart it.';
    return;
  }
  $('chart-title').textContent = `${s.device} · ${s.metric}${s.unit ? ` (${s.unit})` : ''}`;
  let pts, band = false;
  if (state.range === 'live') {
    pts = s.live;
    note.textContent = 'Live: readings as the cloud stores them.';
  } else if (!state.history) {
    note.textContent = 'Loading…';
    return;
  } else {
    pts = state.history.points;
    band = state.history.kind === 'buckets';
    note.textContent = band
      ? `Average with minimum and maximum per ${state.history.step / 60} min bucket.`
      : 'Every stored reading.';
  }
  if (pts.length < 1) { note.textContent = 'No readings in this range.'; return; }
  const left = 64, right = 12, top = 10, bottom = 26;
  const ys = band ? pts.flatMap((p) => [p[2], p[3]]) : pts.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const t1 = state.range === 'live' ? Date.now() : pts[pts.length - 1][0];
  const t0 = state.range === 'live' ? t1 - LIVE_WINDOW_MS : Date.now() - Number(state.range) * 1000;
  const X = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (w - left - right);
  const Y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  c.font = '12px system-ui, sans-serif'; c.fillStyle = '#5f6b78'; c.strokeStyle = '#e3e7eb'; c.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4, y = Y(v);
    c.beginPath(); c.moveTo(left, y); c.lineTo(w - right, y); c.stroke();
    c.fillText(formatValue(v), 4, y + 4);
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const d = new Date(t);
    const label = t1 - t0 > 86400000 ? d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: t1 - t0 < 3600000 ? '2-digit' : undefined });
    c.fillText(label, Math.min(X(t) - 20, w - right - 60), h - 8);
  }
  if (band) {
    c.fillStyle = 'rgba(31, 111, 178, 0.18)'; c.beginPath();
    pts.forEach((p, i) => { if (i) c.lineTo(X(p[0]), Y(p[3])); else c.moveTo(X(p[0]), Y(p[3])); });
    for (let i = pts.length - 1; i >= 0; i--) c.lineTo(X(pts[i][0]), Y(pts[i][2]));
    c.closePath(); c.fill();
  }
  c.strokeStyle = '#1f6fb2'; c.lineWidth = 2; c.beginPath();
  pts.forEach((p, i) => { if (i) c.lineTo(X(p[0]), Y(p[1])); else c.moveTo(X(p[0]), Y(p[1])); });
  c.stroke();
  if (pts.length === 1) { c.fillStyle = '#1f6fb2'; c.beginPath(); c.arc(X(pts[0][0]), Y(pts[0][1]), 3, 0, 7); c.fill(); }
}

// ---------------------------------------------------------------- alerts

async function loadAlerts() {
  const page = await api('/api/v1/alerts?limit=100');
  state.alerts.clear();
  for (const a of page.items) state.alerts.set(a.alert_id, a);
}

function renderAlerts() {
  const box = $('alerts');
  const all = [...state.alerts.values()].sort((a, b) => b.started_at.localeCompare(a.started_at));
  const open = all.filter((a) => a.status !== 'resolved');
  const resolved = all.filter((a) => a.status === 'resolved').slice(0, 5);
  box.replaceChildren(el('h2', {}, `Alerts (${open.length} open)`));
  const card = el('div', { class: 'card' });
  box.append(card);
  if (!open.length && !resolved.length) { card.append(el('p', { class: 'note' }, 'No alerts.')); return; }
  card.append(el('ul', {}, ...[...open, ...resolved].map((a) => {
    const li = el('li', { class: `alert sev-${a.severity} status-${a.status}`, 'data-alert': a.alert_id, 'data-rule': a.rule_id, 'data-status': a.status },
      el('div', { class: 'what' }, `${a.device} · ${a.metric}`),
      el('div', { class: 'meta' }, `${a.severity}, ${a.status}${a.last_value === null || a.last_value === undefined ? '' : `, last ${formatValue(a.last_value)}`} · since ${new Date(a.started_at).toLocaleTimeString()}`));
    if (a.status === 'active') li.append(el('button', { type: 'button', class: 'ack', onclick: () => alertAction(a, 'acknowledge') }, 'Acknowledge'));
    if (a.status === 'active' || a.status === 'acknowledged') li.append(el('button', { type: 'button', class: 'resolve', onclick: () => alertAction(a, 'resolve') }, 'Resolve'));
    return li;
  })));
}

async function alertAction(a, action) {
  try {
    const view = await api(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/${action}`, { method: 'POST' });
    state.alerts.set(view.alert_id, view);
    renderAlerts();
  } catch (e) {
    if (e instanceof Unauthorized) return fail(e);
    setStatus(`${action} refused: ${e.message}`);
  }
}

// ---------------------------------------------------------------- commands

function writeForm(gw, device, writable) {
  const select = el('select', { name: 'point' }, ...writable.map((s) => el('option', { value: s.metric }, s.metric)));
  const input = el('input', { name: 'value', required: true, size: 8, placeholder: 'value' });
  const status = el('span', { class: 'command-status', role: 'status' });
  const form = el('form', { class: 'write', 'data-device': `${gw}/${device}` },
    el('label', {}, 'Write ', select), ' ', input, ' ', el('button', { type: 'submit' }, 'Send'), ' ', status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    let value;
    if (text === 'true' || text === 'on') value = true;
    else if (text === 'false' || text === 'off') value = false;
    else if (text !== '' && !Number.isNaN(Number(text))) value = Number(text);
    else { status.textContent = 'enter a number, on or off'; return; }
    status.textContent = 'sending…';
    try {
      const cmd = await api(`/api/v1/gateways/${encodeURIComponent(gw)}/commands`, {
        method: 'POST',
        body: JSON.stringify({ kind: { command: 'write_point', device, point: select.value, value } }),
      });
      status.dataset.command = cmd.command_id;
      onCommand(cmd);
    } catch (e) {
      if (e instanceof Unauthorized) return fail(e);
      status.textContent = `refused: ${e.message}`;
    }
  });
  return form;
}

function onCommand(cmd) {
  state.commands.set(cmd.command_id, cmd);
  const status = document.querySelector(`.command-status[data-command="${cmd.command_id}"]`);
  if (!status) return;
  const previous = status.dataset.status;
  // Updates can arrive out of order (REST answer after a WebSocket push); keep the furthest.
  const order = ['pending', 'sent', 'received', 'executed', 'failed', 'rejected', 'expired'];
  if (previous && order.indexOf(previous) > order.indexOf(cmd.status)) return;
  status.dataset.status = cmd.status;
  status.textContent = cmd.status + (cmd.error ? `: ${cmd.error}` : '');
}

// ---------------------------------------------------------------- session

function fail(e) {
  if (e instanceof Unauthorized) { logout('The token was refused; sign in again.'); return; }
  setStatus(`error: ${e.message}`);
}

function logout(message) {
  localStorage.removeItem(TOKEN_KEY);
  state.token = '';
  const ws = state.socket; state.socket = null; if (ws) ws.close();
  $('app').hidden = true; $('logout').hidden = true; $('login').hidden = false;
  $('login-error').textContent = message || '';
  setStatus('');
}

async function reload() {
  setStatus('loading…');
  state.gateways.clear();
  state.health.clear();
  await loadAll();
  await loadAlerts();
  $('login').hidden = true; $('app').hidden = false; $('logout').hidden = false;
  render();
  connect();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    $('login-error').textContent = '';
    reload().then(() => localStorage.setItem(TOKEN_KEY, state.token)).catch(fail);
  });
  $('logout').addEventListener('click', () => logout());
  for (const b of $('ranges').querySelectorAll('button')) b.addEventListener('click', () => showRange(b.dataset.range));
  setInterval(() => { if (state.range === 'live') drawChart(); renderGateways(); }, 5000);
  window.addEventListener('resize', drawChart);
  if (state.token) reload().catch(fail); else logout();
});
