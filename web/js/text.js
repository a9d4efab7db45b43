// Each audit event as one readable sentence (built as text, never markup).
const q = (s) => `\`${s}\``;

// The command line: the program's name and its arguments (the event's
// argv holds the arguments after argv[0], as in Teleport's events).
function argvText(e) {
  const args = Array.isArray(e.argv) ? e.argv : [];
  return [e.program || e.path || '?', ...args].join(' ');
}

export function sentence(e) {
  const user = e.user || '?';
  const node = e.server_hostname ? ` on ${e.server_hostname}` : '';
  switch (e.event) {
    case 'session.command':
      return `${user} ran ${q(argvText(e))}${e.login ? ` as ${e.login}` : ''}${node}` +
        (e.return_code && e.return_code !== 0 ? ` (failed: ${e.return_code})` : '');
    case 'session.network': {
      const dst = e.protocol === 'unix' ? (e.unix_path || '?') : `${e.dst_addr || '?'}:${e.dst_port ?? '?'}`;
      const proto = e.protocol === 'udp' ? 'UDP ' : e.protocol === 'unix' ? 'unix socket ' : '';
      if (e.operation === 3)  // the connect's result
        return `${e.program || '?'}'s connection to ${dst} ${e.result === 'connected' || !e.result ? 'succeeded' : `failed (${e.result})`}${node}`;
      const verb = e.operation === 2 ? 'accepted a connection from' : e.operation === 1 ? `sent ${proto}to` : `connected to ${proto}`;
      const blocked = e.action === 1 ? ' (blocked)' : '';
      return `${e.program || '?'} ${verb}${verb.endsWith(' ') ? '' : ' '}${dst}${blocked}${node}`;
    }
    case 'session.disk':
      return `${e.program || '?'} opened ${e.kernel_path || e.path || '?'}${node}`;
    case 'session.start':
      return `${user} started a session${e.login ? ` as ${e.login}` : ''}${node}`;
    case 'session.end':
      return `${user}'s session${node} ended`;
    case 'session.leftovers_end':
      return `the processes ${user}'s session left running${node} ended`;
    case 'session.recording.access':
      return `${user} played session ${e.sid || '?'}`;
    case 'user.login':
      return e.success ? `${user} logged in${e.web_session ? ' on the web' : ''} from ${e['addr.remote'] || '?'}`
        : `a login as ${user} failed from ${e['addr.remote'] || '?'}: ${e.error || ''}`;
    case 'access.denied':
      return `${user} was refused ${e.action || '?'}: ${e.error || ''}`;
    case 'exec':
      return `${user} ran ${q(e.command || '?')}${node}`;
    default:
      return `${e.event}${e.user ? ` by ${e.user}` : ''}`;
  }
}

// The events a session's timeline shows, and their kind.
export function timelineKind(e) {
  if (e.event === 'session.command') return 'command';
  if (e.event === 'session.disk') return 'file';
  if (e.event === 'session.network') return 'connection';
  return null;
}
