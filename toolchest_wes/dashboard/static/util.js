// Small helpers shared by the pages: escaping, formatting, polling.
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** Markup that html`` inserts as it is. */
class Safe {
  constructor(text) {
    this.__raw = String(text);
  }

  toString() {
    return this.__raw;
  }
}
export const raw = (text) => (text instanceof Safe ? text : new Safe(text));
const piece = (v) => (v instanceof Safe ? v.__raw : esc(v));

/** A tagged template whose interpolations are escaped, unless they are Safe (or arrays of). */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    out += (Array.isArray(v) ? v.map(piece).join("") : piece(v)) + strings[i + 1];
  });
  return new Safe(out);
}

export const stateBadge = (state) => raw(`<span class="state s-${esc(state)}">${esc(state)}</span>`);
// The tag the Python client adds to every submission so that a lost answer can be found again;
// it means nothing to a reader, so tables leave it out (the run page still shows every tag).
const INTERNAL_TAGS = new Set(["client_request_id"]);

export const tagList = (tags, { all = false } = {}) =>
  raw(
    Object.entries(tags || {})
      .filter(([k]) => all || !INTERNAL_TAGS.has(k))
      .map(([k, v]) => `<span class="tag">${esc(k)}:${esc(v)}</span>`)
      .join(""),
  );

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function duration(start, end) {
  if (!start) return "–";
  const s = Math.max(0, ((end ? new Date(end) : new Date()) - new Date(start)) / 1000);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = -1;
  do { v /= 1024; i += 1; } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Call `step` now and every `ms` until it returns false or `stop()` is called. */
export function every(ms, step) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let more = true;
    try {
      more = (await step()) !== false;
    } catch (error) {
      more = false;
      window.dispatchEvent(new CustomEvent("wes-error", { detail: error }));
    }
    if (more && !stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
