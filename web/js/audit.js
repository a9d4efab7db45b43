// The audit log: newest first, filters, a sentence a row (click: the JSON),
// new events polled in, older pages with the continuation key.
import { call } from './api.js';
import { register } from './views.js';
import { clear, el } from './dom.js';
import { sentence } from './text.js';

const TYPES = ['', 'session.command', 'session.network', 'session.disk', 'session.start', 'session.end',
  'user.login', 'access.denied', 'session.recording.access'];
const POLL_MS = 3000;
let poller = null;

function rfc3339(local) { return local ? new Date(local).toISOString() : ''; }

register('audit', async (main) => {
  if (poller) clearInterval(poller);
  const f = {
    from: el('input', { type: 'datetime-local', name: 'from' }),
    to: el('input', { type: 'datetime-local', name: 'to' }),
    type: el('select', { name: 'type' }, TYPES.map((t) => el('option', { value: t }, t || 'any'))),
    user: el('input', { name: 'user', size: 10 }),
    login: el('input', { name: 'login', size: 10 }),
    sid: el('input', { name: 'sid', size: 20 }),
    node: el('input', { name: 'node', size: 10 }),
    text: el('input', { name: 'text', size: 18, placeholder: 'command line or path' }),
  };
  const form = el('form', { class: 'filters', 'aria-label': 'Filters' },
    el('label', {}, 'From', f.from), el('label', {}, 'To', f.to), el('label', {}, 'Type', f.type),
    el('label', {}, 'User', f.user), el('label', {}, 'Login', f.login), el('label', {}, 'Node', f.node),
    el('label', {}, 'Session', f.sid), el('label', {}, 'Text', f.text),
    el('button', { class: 'primary', type: 'submit' }, 'Search'));
  const status = el('p', { class: 'muted', role: 'status' });
  const body = el('tbody');
  const table = el('table', { 'aria-label': 'Audit events' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Time (UTC)'), el('th', {}, 'Event'), el('th', { class: 'hide-narrow' }, 'Type'))),
    body);
  const more = el('button', { type: 'button', hidden: true }, 'Older events');
  main.append(el('h1', {}, 'Audit log'), form, status, table, more);

  // /web/audit?sid=SID (a session's link): that session's events.
  const given = new URLSearchParams(location.search);
  for (const k of ['sid', 'user', 'login', 'type', 'node', 'text']) if (given.get(k)) f[k].value = given.get(k);
  const seen = new Set();
  let next = '';
  let newest = '';

  const query = (extra) => ({
    from: rfc3339(f.from.value), to: rfc3339(f.to.value), type: f.type.value, user: f.user.value.trim(),
    login: f.login.value.trim(), sid: f.sid.value.trim(), node: f.node.value.trim(), text: f.text.value, ...extra,
  });

  function row(e) {
    const tr = el('tr', { class: 'row', tabindex: 0, 'data-event': e.event, 'data-uid': e.uid || '' },
      el('td', { class: 'time' }, (e.time || '').replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
      el('td', {}, sentence(e)),
      el('td', { class: 'hide-narrow' }, el('span', { class: 'tag' }, e.event)));
    const toggle = () => {
      const open = tr.nextSibling && tr.nextSibling.classList.contains('detail');
      if (open) { tr.nextSibling.remove(); return; }
      const detail = el('tr', { class: 'detail' }, el('td', { colspan: 3 },
        el('pre', { class: 'json' }, JSON.stringify(e, null, 2)),
        e.sid ? el('a', { href: `/web/audit?sid=${encodeURIComponent(e.sid)}` }, 'All events of this session') : null));
      tr.after(detail);
    };
    tr.addEventListener('click', toggle);
    tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); } });
    return tr;
  }

  async function load(after) {
    const r = await call('GET', '/v1/events', { query: query({ order: 'desc', limit: 50, after }) });
    for (const e of r.events) {
      if (e.uid && seen.has(e.uid)) continue;
      if (e.uid) seen.add(e.uid);
      if (!newest || (e.time && e.time > newest)) newest = e.time;
      body.append(row(e));
    }
    next = r.next || '';
    more.hidden = !next;
    status.textContent = body.children.length ? '' : 'No events match.';
  }

  async function poll() {
    if (!document.body.contains(table)) { clearInterval(poller); return; }
    if (f.to.value) return;  // a closed range gets nothing new
    const r = await call('GET', '/v1/events', { query: query({ order: 'asc', limit: 200, from: newest || rfc3339(f.from.value) }) });
    for (const e of r.events) {
      if (e.uid && seen.has(e.uid)) continue;
      if (e.uid) seen.add(e.uid);
      if (!newest || e.time > newest) newest = e.time;
      body.prepend(row(e));
    }
    if (body.children.length) status.textContent = '';
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(body);
    seen.clear();
    newest = '';
    await load('');
  });
  more.addEventListener('click', () => load(next));
  await load('');
  poller = setInterval(() => poll().catch((e) => { status.textContent = e.message; }), POLL_MS);
});
