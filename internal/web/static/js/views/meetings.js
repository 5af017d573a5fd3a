// The list of my meetings (created or invited) and the schedule form, which
// the meeting page reuses to edit.
import { api } from "../api.js";
import { h, replace, showError } from "../dom.js";
import { navigate } from "../app.js";
import { checkMaxParticipants, checkMeetingName, checkUsernames, DEFAULT_ROOM, MAX_DURATION_MINUTES, MAX_NAME_CHARS, MAX_ROOM, splitUsernames } from "../check.js";
import { countdown, fromLocalInput, nextFiveMinutes, span, timeZone, toLocalInput } from "../when.js";
import { alert, field, onSubmit, refuse } from "./ui.js";

const PAGE_SIZE = 20;
const TICK_MS = 1000; // countdowns
const REFRESH_MS = 30000; // phases, from the server

export function list(root) {
  const page = Math.max(1, parseInt(new URLSearchParams(location.search).get("page"), 10) || 1);
  const error = alert("meetings-error");
  const ul = h("ul", { id: "meetings", class: "meetings", "aria-label": "Your meetings" });
  const empty = h("div", { id: "meetings-empty", class: "empty", hidden: true },
    h("p", {}, "You have no meetings yet."),
    h("p", {}, h("a", { href: "/meetings/new" }, "Schedule one"), " or ask someone to invite you."));
  const pager = h("nav", { class: "pager", "aria-label": "Pages", hidden: true });
  root.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Your meetings"),
      h("a", { id: "new-meeting", href: "/meetings/new", class: "button primary" }, "Schedule a meeting")),
    error, ul, empty, pager);

  let meetings = [];
  let alive = true;
  const tick = () => {
    const now = Date.now();
    for (const m of meetings) {
      const el = ul.querySelector(`li[data-identity="${m.identity}"] .meeting-countdown`);
      if (el) el.textContent = countdown(m, now);
    }
  };
  const load = async () => {
    try {
      const data = await api.meetings({ page, size: PAGE_SIZE });
      if (!alive) return;
      showError(error, "");
      const fresh = data.list || [];
      const same = fresh.length === meetings.length && fresh.every((m, i) => m.identity === meetings[i].identity);
      meetings = fresh;
      if (same) updateItems(ul, meetings); // keeps focus where it is
      else replace(ul, meetings.map(item));
      empty.hidden = data.count > 0;
      ul.hidden = meetings.length === 0;
      renderPager(pager, page, Math.ceil(data.count / PAGE_SIZE));
      if (meetings.length === 0 && page > 1 && data.count > 0) navigate("/", { replace: true });
      tick();
    } catch (e) {
      if (alive) showError(error, e.message);
    }
  };
  load();
  const ticker = setInterval(tick, TICK_MS);
  const refresher = setInterval(load, REFRESH_MS);
  return () => { alive = false; clearInterval(ticker); clearInterval(refresher); };
}

function item(m) {
  return h("li", { class: "meeting", "data-identity": m.identity, "data-phase": m.phase },
    h("a", { class: "meeting-open", href: `/m/${m.identity}` }, h("span", { class: "meeting-name" }, m.name)),
    h("span", { class: "meeting-when" }, span(m.begin_at, m.end_at)),
    h("span", { class: "meeting-status" },
      h("span", { class: "meeting-phase" }, m.phase), " ",
      h("span", { class: "meeting-countdown" }, countdown(m))));
}

function updateItems(ul, meetings) {
  for (const m of meetings) {
    const li = ul.querySelector(`li[data-identity="${m.identity}"]`);
    if (!li) continue;
    li.dataset.phase = m.phase;
    li.querySelector(".meeting-name").textContent = m.name;
    li.querySelector(".meeting-when").textContent = span(m.begin_at, m.end_at);
    li.querySelector(".meeting-phase").textContent = m.phase;
  }
}

function renderPager(nav, page, pages) {
  nav.hidden = pages <= 1;
  if (pages <= 1) { nav.replaceChildren(); return; }
  const link = (p, label, rel) => (p < 1 || p > pages)
    ? h("span", { class: "button", "aria-disabled": "true" }, label)
    : h("a", { class: "button", href: p === 1 ? "/" : `/?page=${p}`, rel }, label);
  replace(nav,
    link(page - 1, "Previous", "prev"),
    h("span", { class: "pager-pos", "aria-current": "page" }, `Page ${page} of ${pages}`),
    link(page + 1, "Next", "next"));
}

export function schedule(root) {
  const form = meetingForm({
    title: "Schedule a meeting",
    submitLabel: "Schedule",
    onSave: async (m) => {
      const created = await api.createMeeting(m);
      await navigate(`/m/${created.identity}`);
    },
    onCancel: () => navigate("/"),
  });
  root.append(form);
  form.elements.name.focus();
}

// meetingForm is the schedule form (ids of the contract's form#meeting-form);
// with meeting, it edits that meeting: prefilled, no participants field, and
// onSave gets only the fields that changed (times only when the person
// changed them, so the seconds of an API-made meeting survive a rename).
export function meetingForm({ meeting, title, submitLabel, onSave, onCancel }) {
  const begin = meeting ? meeting.begin_at : nextFiveMinutes();
  const minutes = meeting ? Math.max(1, Math.round((meeting.end_at - meeting.begin_at) / 60000)) : 30;
  const startValue = toLocalInput(begin);
  const maxValue = meeting?.max_participants || DEFAULT_ROOM;
  const submit = h("button", { id: "meeting-submit", type: "submit", class: "primary" }, submitLabel);
  const cancel = h("button", { id: "meeting-cancel", type: "button" }, "Cancel");
  const error = alert("meeting-error");
  const form = h("form", { id: "meeting-form", class: "card", novalidate: true },
    title && h("h1", {}, title),
    field("Name", { id: "meeting-name", name: "name", required: true, maxlength: MAX_NAME_CHARS, autocomplete: "off", value: meeting?.name || "" }),
    h("div", { class: "row" },
      field("Start", { id: "meeting-start", name: "start", type: "datetime-local", required: true, value: startValue }, `Your time zone: ${timeZone()}.`),
      field("Duration (minutes)", { id: "meeting-duration", name: "duration", type: "number", required: true, min: 1, max: MAX_DURATION_MINUTES, step: 1, inputmode: "numeric", value: String(minutes) })),
    !meeting && field("Participants", { id: "meeting-participants", name: "participants", autocomplete: "off", autocapitalize: "none", spellcheck: "false", placeholder: "alice, bob" },
      "Usernames, separated by commas or spaces. You can invite more later."),
    field("Max participants", { id: "meeting-max", name: "max", type: "number", required: true, min: 1, max: MAX_ROOM, step: 1, inputmode: "numeric", value: String(maxValue) },
      "Most people in the room at once; you can invite this many besides yourself."),
    error,
    h("div", { class: "actions" }, submit, cancel));
  cancel.addEventListener("click", () => onCancel());
  onSubmit(form, {
    submit, error,
    run: async () => {
      const els = form.elements;
      const name = els.name.value.trim();
      refuse(checkMeetingName(name), els.name);
      const beginAt = fromLocalInput(els.start.value);
      refuse(Number.isNaN(beginAt) ? "Enter the start date and time." : "", els.start);
      const dur = Number(els.duration.value);
      refuse(Number.isInteger(dur) && dur >= 1 && dur <= MAX_DURATION_MINUTES ? "" : `Duration must be a whole number of minutes from 1 to ${MAX_DURATION_MINUTES}.`, els.duration);
      const endAt = beginAt + dur * 60000;
      const timesChanged = !meeting || els.start.value !== startValue || dur !== minutes;
      refuse(timesChanged && endAt <= Date.now() ? "That meeting would already be over: choose a later start or a longer duration." : "", els.start);
      const max = Number(els.max.value);
      refuse(checkMaxParticipants(max), els.max);
      const m = {};
      if (!meeting || name !== meeting.name) m.name = name;
      if (timesChanged) { m.begin_at = beginAt; m.end_at = endAt; }
      if (!meeting || max !== maxValue) m.max_participants = max;
      if (!meeting) {
        const names = splitUsernames(els.participants.value);
        refuse(checkUsernames(names), els.participants);
        if (names.length) m.participants = names;
      }
      await onSave(m);
    },
  });
  return form;
}
