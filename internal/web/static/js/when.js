// Times for people: the browser's time zone, and countdowns. The API's
// times are milliseconds since the epoch.

// duration says how long ms is, coarsely: "45 s", "4 min", "2 h 5 min", "3 d 4 h".
export function duration(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.ceil(s / 60)} min`;
  const min = Math.floor(s / 60);
  if (min < 24 * 60) {
    const m = min % 60;
    return m ? `${Math.floor(min / 60)} h ${m} min` : `${min / 60} h`;
  }
  const hours = Math.floor(min / 60);
  const hh = hours % 24;
  return hh ? `${Math.floor(hours / 24)} d ${hh} h` : `${hours / 24} d`;
}

// countdown is where a meeting stands at now, relative to its times:
// "starts in 4 min", "running, ends in 12 min" or "ended".
export function countdown(m, now = Date.now()) {
  if (now < m.begin_at) return `starts in ${duration(m.begin_at - now)}`;
  if (now < m.end_at) return `running, ends in ${duration(m.end_at - now)}`;
  return "ended";
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

// span shows a meeting's times in local time: "5 Mar 2026, 14:00 – 14:30".
export function span(begin, end) {
  const a = new Date(begin), b = new Date(end);
  const sameDay = a.toDateString() === b.toDateString();
  return `${dateTime.format(a)} – ${sameDay ? timeOnly.format(b) : dateTime.format(b)}`;
}

export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

const pad = (n) => String(n).padStart(2, "0");

// toLocalInput formats ms for an <input type="datetime-local"> (minutes).
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// fromLocalInput reads an <input type="datetime-local"> value as local
// time; NaN when it is empty or malformed.
export function fromLocalInput(value) {
  const m = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/.exec(value || "");
  if (!m) return NaN;
  const [y, mo, d, hh, mi, ss = "0", ms = "0"] = m.slice(1);
  return new Date(+y, +mo - 1, +d, +hh, +mi, +ss, +ms.padEnd(3, "0")).getTime();
}

// nextFiveMinutes is now rounded up to the next 5 minutes of local time.
export function nextFiveMinutes(now = Date.now()) {
  const d = new Date(now);
  const exact = d.getSeconds() === 0 && d.getMilliseconds() === 0 && d.getMinutes() % 5 === 0;
  d.setSeconds(0, 0);
  if (!exact) d.setMinutes(d.getMinutes() + 5 - (d.getMinutes() % 5));
  return d.getTime();
}
