// The player: the session's terminal replayed with xterm.js, and beside it
// the timeline of its commands, files and connections in step; clicking an
// event seeks there; the process tree; exports.
//
// "Never on screen": a command is marked when its command line (the
// program's name and its arguments, joined by spaces) appears nowhere in
// the terminal's output with the escape sequences taken out, over the whole
// session. A command typed at a prompt is echoed by the terminal, so its
// text is on screen; one decoded from base64 and piped to sh, run from a
// script, or typed with echo off is not. The rule errs towards marking: a
// line redrawn by a shell's editor in pieces is marked too.
import { call } from './api.js';
import { register } from './views.js';
import { clear, el } from './dom.js';
import { sentence, timelineKind } from './text.js';
import { EVENT, OUTPUT, RESIZE, parse, resizeOf, text } from './vrec.js';

const WINDOW = 1 << 20;

async function fetchRecording(sid) {
  const parts = [];
  let offset = 0, size = Infinity, status = '';
  while (offset < size) {
    const r = await call('GET', `/v1/recordings/${encodeURIComponent(sid)}`, { query: { offset, length: WINDOW }, raw: true });
    size = Number(r.headers.get('X-Vigil-Recording-Bytes') || 0);
    status = r.headers.get('X-Vigil-Recording-Status') || '';
    const b = new Uint8Array(await r.arrayBuffer());
    if (b.length === 0) break;
    parts.push(b);
    offset += b.length;
  }
  const all = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return { bytes: all, status };
}

// The visible text of the output: escape sequences and control bytes out.
function screenText(output) {
  return output
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

export function commandLine(e) {
  return [e.program || e.path || '', ...(Array.isArray(e.argv) ? e.argv : [])].join(' ');
}

function download(name, type, content) {
  const a = el('a', { href: URL.createObjectURL(new Blob([content], { type })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

register('player', async (main, [sid]) => {
  const status = el('p', { class: 'muted', role: 'status' }, 'Loading the recording…');
  main.append(el('h1', {}, 'Session ', el('code', {}, sid || '')), status);
  const { bytes, status: recStatus } = await fetchRecording(sid);
  const { header, records } = await parse(bytes);
  const outputs = records.filter((r) => r.type === OUTPUT).map((r) => ({ t: r.t, s: text(r.data) }));
  const events = records.filter((r) => r.type === EVENT).map((r) => {
    try { return { t: r.t, e: JSON.parse(text(r.data)) }; } catch (_) { return null; }
  }).filter(Boolean);
  const duration = records.length ? records[records.length - 1].t : 0;
  const screen = screenText(outputs.map((o) => o.s).join(''));
  status.textContent = `${header.user} as ${header.login}, ${new Date(header.start_ns / 1e6).toISOString()}` +
    (recStatus === 'in_progress' ? ' — live, up to what has arrived' : '');

  // The terminal.
  const term = new window.Terminal({ cols: header.cols || 80, rows: header.rows || 24, convertEol: false, disableStdin: true });
  const termBox = el('div', { class: 'terminal', 'aria-label': 'Terminal replay' });
  const play = el('button', { type: 'button', class: 'primary' }, 'Play');
  const seek = el('input', { type: 'range', min: 0, max: Math.ceil(duration), value: 0, step: 1, 'aria-label': 'Position' });
  const clock = el('span', { class: 'mono' }, '0.0 s');
  const speed = el('select', { 'aria-label': 'Speed' }, ['0.5', '1', '2', '4', '8'].map((s) => el('option', { value: s, selected: s === '1' }, `${s}×`)));
  const skip = el('input', { type: 'checkbox', checked: true });
  const exportCast = el('button', { type: 'button' }, 'Export asciicast');
  const exportJson = el('button', { type: 'button' }, 'Export JSON');
  const timeline = el('ol', { class: 'timeline', 'aria-label': 'Timeline' });
  const tree = el('div', { class: 'tree' });

  // The timeline of commands, files and connections.
  const items = [];
  for (const { t, e } of events) {
    const kind = timelineKind(e);
    if (!kind) continue;
    const offscreen = kind === 'command' && !screen.includes(commandLine(e));
    const li = el('li', { tabindex: 0, 'data-kind': kind, 'data-t': t.toFixed(0), 'data-offscreen': offscreen ? 'true' : null },
      el('span', { class: 'mono muted' }, `${(t / 1000).toFixed(1)} s `),
      el('span', { class: 'tag' }, kind), ' ', sentence(e),
      offscreen ? [' ', el('span', { class: 'tag offscreen', title: 'its command line never appeared on the terminal' }, 'never on screen')] : null);
    li.addEventListener('click', () => seekTo(t));
    li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') seekTo(t); });
    timeline.append(li);
    items.push({ t, li });
  }

  // The process tree (pid/ppid of the commands).
  const procs = new Map();
  for (const { e } of events) if (e.event === 'session.command' && e.pid) procs.set(e.pid, e);
  const children = new Map();
  for (const e of procs.values()) {
    const parent = procs.has(e.ppid) ? e.ppid : 0;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(e);
  }
  const branch = (pid, depth) => depth > 64 ? null : el('ul', {}, (children.get(pid) || []).map((e) =>
    el('li', {}, el('span', { class: 'mono' }, `${e.pid} `), commandLine(e), children.has(e.pid) && e.pid !== pid ? branch(e.pid, depth + 1) : null)));
  tree.append(branch(0, 0));

  main.append(
    el('div', { class: 'player' },
      el('section', {}, termBox,
        el('div', { class: 'controls' }, play, seek, clock, el('label', {}, 'Speed ', speed),
          el('label', {}, skip, ' Skip idle'), exportCast, exportJson)),
      el('section', {}, el('h2', {}, 'Timeline'), timeline, el('h2', {}, 'Processes'), tree)));
  term.open(termBox);

  // Replay: position (ms of the recording), the next output to write.
  let pos = 0, next = 0, timer = null, playing = false;
  function render() {
    seek.value = String(Math.floor(pos));
    clock.textContent = `${(pos / 1000).toFixed(1)} s`;
    for (const { t, li } of items) {
      li.classList.toggle('past', t <= pos);
    }
  }
  function seekTo(t) {
    term.reset();
    next = 0;
    pos = Math.max(0, Math.min(t, duration));
    let chunk = '';
    while (next < outputs.length && outputs[next].t <= pos) chunk += outputs[next++].s;
    term.write(chunk);
    const current = items.filter((i) => i.t <= pos).pop();
    for (const { li } of items) li.classList.remove('current');
    if (current) current.li.classList.add('current');
    render();
  }
  function step() {
    if (!playing) return;
    if (next >= outputs.length) { pos = duration; render(); stop(); return; }
    const o = outputs[next];
    term.write(o.s);
    pos = o.t;
    next++;
    render();
    if (next >= outputs.length) { stop(); return; }
    let wait = (outputs[next].t - pos) / Number(speed.value);
    if (skip.checked) wait = Math.min(wait, 1000);
    timer = setTimeout(step, Math.max(0, wait));
  }
  function stop() { playing = false; play.textContent = 'Play'; clearTimeout(timer); }
  play.addEventListener('click', () => {
    if (playing) { stop(); return; }
    if (next >= outputs.length) seekTo(0);
    playing = true;
    play.textContent = 'Pause';
    step();
  });
  seek.addEventListener('input', () => { stop(); seekTo(Number(seek.value)); });
  exportCast.addEventListener('click', () => {
    const lines = [JSON.stringify({ version: 2, width: header.cols || 80, height: header.rows || 24, timestamp: Math.floor(header.start_ns / 1e9) })];
    for (const r of records) {
      if (r.type === OUTPUT) lines.push(JSON.stringify([r.t / 1000, 'o', text(r.data)]));
      else if (r.type === RESIZE) {
        const { cols, rows } = resizeOf(r.data);
        lines.push(JSON.stringify([r.t / 1000, 'r', `${cols}x${rows}`]));
      }
    }
    download(`${sid}.cast`, 'application/x-asciicast', lines.join('\n') + '\n');
  });
  exportJson.addEventListener('click', () => download(`${sid}.json`, 'application/json', events.map(({ e }) => JSON.stringify(e)).join('\n') + '\n'));
  seekTo(0);
});
