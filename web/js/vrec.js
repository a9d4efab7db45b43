// Reading a recording (.vrec, docs/recording-format.md) in the browser:
// the header, then chunks of raw deflate (one stream, a sync flush per
// chunk; codec 1 starts a new stream), each a run of records
// (type, zigzag time delta, body). Bounded: a chunk's lengths above 64 MiB
// are refused as the C++ reader refuses them; the frame CRCs are not
// checked here (the server's reader checks them when it lists the
// recording; a damaged chunk ends the replay where it fails to inflate).
const MAX_CHUNK = 64 << 20;
const dec = new TextDecoder();

function u32(b, o) { return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0; }

// Inflates the raw deflate bytes `parts` (one stream), returning the output
// cut at each part's end (the sync flushes make each part whole).
async function inflate(parts) {
  const ds = new DecompressionStream('deflate-raw');
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  const out = [];
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.push(value);
    }
  })();
  for (const p of parts) await writer.write(p);
  await writer.close().catch(() => {});  // a stream cut at a sync flush has no final block
  await reading.catch(() => {});
  const total = out.reduce((n, a) => n + a.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const a of out) { all.set(a, at); at += a.length; }
  return all;
}

function varint(b, pos) {
  let v = 0, shift = 0;
  for (let i = 0; i < 10; i++) {
    if (pos.at >= b.length) throw new Error('a record is cut');
    const c = b[pos.at++];
    v += (c & 0x7f) * 2 ** shift;
    if (!(c & 0x80)) return v;
    shift += 7;
  }
  throw new Error('a varint is too long');
}

// The recording's bytes into {header, records: [{t (ms from start), type, data}]}.
export async function parse(bytes) {
  if (bytes.length < 20 || dec.decode(bytes.subarray(0, 8)) !== 'VIGILREC') throw new Error('not a Vigil recording');
  const n = u32(bytes, 12);
  if (n > 65536 || 20 + n > bytes.length) throw new Error('the recording header is damaged');
  const header = JSON.parse(dec.decode(bytes.subarray(20, 20 + n)));
  // The chunks, grouped by deflate stream.
  const streams = [];
  let at = 20 + n;
  while (at + 24 <= bytes.length) {
    if (dec.decode(bytes.subarray(at, at + 4)) !== 'VRCK') break;
    const codec = bytes[at + 4];
    const raw = u32(bytes, at + 8), stored = u32(bytes, at + 12);
    if (raw > MAX_CHUNK || stored > MAX_CHUNK || at + 24 + stored > bytes.length) break;
    if (codec === 1 || streams.length === 0) streams.push([]);
    streams[streams.length - 1].push({ payload: bytes.subarray(at + 24, at + 24 + stored), raw });
    at += 24 + stored;
  }
  const records = [];
  for (const chunks of streams) {
    const all = await inflate(chunks.map((c) => c.payload));
    let off = 0;
    for (const c of chunks) {
      const body = all.subarray(off, off + c.raw);
      off += c.raw;
      if (body.length < c.raw) break;  // cut
      let t = 0;  // ns from start_ns
      const pos = { at: 0 };
      while (pos.at < body.length) {
        const type = body[pos.at++];
        const z = varint(body, pos);
        t += (z % 2 === 0) ? z / 2 : -(z + 1) / 2;
        const len = varint(body, pos);
        const data = body.subarray(pos.at, pos.at + len);
        pos.at += len;
        records.push({ t: t / 1e6, type, data });
      }
    }
  }
  records.sort((a, b) => a.t - b.t);
  return { header, records };
}

export const OUTPUT = 1, RESIZE = 2, EVENT = 3;
export function text(data) { return dec.decode(data); }
// A resize record's body: {cols, rows}.
export function resizeOf(data) {
  const pos = { at: 0 };
  const cols = varint(data, pos);
  return { cols, rows: varint(data, pos) };
}
