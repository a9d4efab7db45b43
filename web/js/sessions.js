// The sessions: each recording with its user, login, node, start, duration,
// counts; lost events (from the session's session.end) in red; sessions
// still running marked live.
import { call } from './api.js';
import { register } from './views.js';
import { el } from './dom.js';

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

function lostTotal(end) {
  const l = end && end.lost_events;
  if (!l || typeof l !== 'object') return 0;
  return Object.values(l).reduce((a, b) => a + (Number(b) || 0), 0);
}

register('sessions', async (main, _args, me) => {
  const status = el('p', { class: 'muted', role: 'status' });
  const body = el('tbody');
  const more = el('button', { type: 'button', hidden: true }, 'Older sessions');
  main.append(el('h1', {}, 'Sessions'),
    el('p', { class: 'muted' }, me.sees_all_sessions ? 'Every recorded session.' : 'Your recorded sessions.'),
    status,
    el('table', { 'aria-label': 'Sessions' },
      el('thead', {}, el('tr', {}, ['Start (UTC)', 'User', 'Login', 'Node', 'Duration', 'Enhanced', 'Commands', 'Files',
        'Connections', 'Lost', 'Status', ''].map((h) => el('th', {}, h)))),
      body),
    more);
  let next = '';
  async function load(after) {
    const r = await call('GET', '/v1/recordings', { query: { limit: 50, after } });
    const ends = new Map();
    try {
      const e = await call('GET', '/v1/events', { query: { type: 'session.end', order: 'desc', limit: 1000 } });
      for (const ev of e.events) if (ev.sid) ends.set(ev.sid, ev);
    } catch (_) { /* the counts stay unknown */ }
    for (const s of r.recordings) {
      if (s.error) {
        body.append(el('tr', {}, el('td', { colspan: 12, class: 'error' }, `${s.sid}: ${s.error}`)));
        continue;
      }
      const end = ends.get(s.sid);
      const lost = lostTotal(end);
      const live = s.status === 'in progress';
      body.append(el('tr', { 'data-sid': s.sid },
        el('td', { class: 'time' }, el('a', { href: `/web/audit?sid=${encodeURIComponent(s.sid)}`, title: 'The session\'s events' },
          (s.start || '').replace('T', ' ').replace(/\.\d+Z$/, 'Z'))),
        el('td', {}, s.user), el('td', {}, s.login), el('td', {}, s.server_hostname || s.server_id),
        el('td', { class: 'num' }, duration(s.duration_ms || 0)),
        el('td', {}, s.enhanced ? 'yes' : 'no'),
        el('td', { class: 'num' }, s.events.command), el('td', { class: 'num' }, s.events.disk),
        el('td', { class: 'num' }, s.events.network),
        el('td', { class: `num${lost ? ' lost' : ''}` }, end ? String(lost) : '?'),
        el('td', { class: live ? 'live' : '' }, live ? '● live' : s.status),
        el('td', {}, el('a', { href: `/web/player/${encodeURIComponent(s.sid)}`, class: 'play' }, 'Play'))));
    }
    next = r.next || '';
    more.hidden = !next;
    status.textContent = body.children.length ? '' : 'No recorded sessions yet.';
  }
  more.addEventListener('click', () => load(next));
  await load('');
});
