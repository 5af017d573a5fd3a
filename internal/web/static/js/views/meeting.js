// One meeting's page: details, a copyable link, edit and delete (creator
// only), members (invite and remove: creator only), and #join, which opens
// the pre-join and the call (js/call/, by W-call) in place of the details.
import { api } from "../api.js";
import { session } from "../session.js";
import { h, replace, showError } from "../dom.js";
import { navigate } from "../app.js";
import { checkUsernames, splitUsernames } from "../check.js";
import { countdown, span, timeZone } from "../when.js";
import { alert, busy, onSubmit, refuse } from "./ui.js";
import { meetingForm } from "./meetings.js";

const TICK_MS = 1000;
const REFRESH_MS = 30000;

export function page(root, identity) {
  const me = session.user;
  let meeting = null; // the REST meeting with its participants
  let alive = true;
  let inCall = null; // the pre-join/call's cleanup while it is shown
  let editing = false;

  const title = h("h1", { id: "meeting-title" }, "Meeting");
  const phase = h("span", { id: "meeting-phase", class: "phase" });
  const count = h("span", { id: "meeting-countdown", class: "countdown" });
  const when = h("p", { id: "meeting-when", class: "muted" });
  const linkInput = h("input", { id: "meeting-link", type: "text", readonly: true, value: location.href });
  const copyButton = h("button", { id: "copy-link", type: "button" }, "Copy link");
  const copied = h("span", { class: "copy-status", role: "status" });
  const error = alert("meeting-page-error");
  const join = h("button", { id: "join", type: "button", class: "primary big" }, "Join");
  const edit = h("button", { id: "edit-meeting", type: "button", hidden: true }, "Edit");
  const del = h("button", { id: "delete-meeting", type: "button", class: "danger", hidden: true }, "Delete");
  const editArea = h("div", { class: "edit-area", hidden: true });
  const members = h("ul", { id: "members", class: "members", "aria-label": "Participants" });
  const inviteInput = h("input", { id: "invite-username", name: "username", type: "text", autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true, placeholder: "username" });
  const inviteSubmit = h("button", { id: "invite-submit", type: "submit" }, "Invite");
  const invite = h("form", { id: "invite-form", class: "invite", novalidate: true, hidden: true },
    h("label", { for: "invite-username" }, "Invite by username"),
    h("div", { class: "inline" }, inviteInput, inviteSubmit));
  const confirmYes = h("button", { id: "confirm-yes", type: "button", class: "danger" }, "Delete");
  const confirmNo = h("button", { id: "confirm-no", type: "button" }, "Keep it");
  const confirmText = h("p", { id: "confirm-text" });
  const dialog = h("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
    h("h2", { id: "confirm-title" }, "Delete this meeting?"), confirmText,
    h("div", { class: "actions" }, confirmYes, confirmNo));

  const details = h("div", { class: "meeting-page" },
    h("p", { class: "back" }, h("a", { href: "/" }, "← Your meetings")),
    title,
    h("p", { class: "meeting-state" }, phase, " ", count),
    when,
    error,
    h("div", { class: "actions" }, join, edit, del),
    editArea,
    h("div", { class: "field link-field" },
      h("label", { for: "meeting-link" }, "Link to this meeting"),
      h("div", { class: "inline" }, linkInput, copyButton), copied),
    h("section", { class: "card", "aria-labelledby": "members-title" },
      h("h2", { id: "members-title" }, "Participants"),
      members, invite),
    dialog);
  const callArea = h("div", { class: "call-area", hidden: true });
  root.append(details, callArea);

  const isCreator = () => meeting && me && meeting.create_id === me.id;

  function show(m) {
    meeting = m;
    document.title = `${m.name} – Meeting`;
    title.textContent = m.name;
    phase.textContent = m.phase;
    phase.dataset.phase = m.phase;
    when.textContent = `${span(m.begin_at, m.end_at)} (${timeZone()})`;
    edit.hidden = del.hidden = invite.hidden = !isCreator();
    showMembers(m.participants || []);
    tick();
  }

  function showMembers(users) {
    const names = users.map((u) => u.username).join(" ");
    if (members.dataset.names === names && members.dataset.creator === String(isCreator())) return; // keep focus
    members.dataset.names = names;
    members.dataset.creator = String(isCreator());
    replace(members, users.map((u) => {
      const host = u.id === meeting.create_id;
      const remove = isCreator() && !host && h("button", {
        type: "button", class: "remove-member danger small", "aria-label": `Remove ${u.username}`,
        onclick: (e) => removeMember(u.username, e.currentTarget),
      }, "Remove");
      return h("li", { class: "member", "data-username": u.username },
        h("span", { class: "member-name" }, u.username),
        host && h("span", { class: "badge" }, "host"),
        me && u.id === me.id && h("span", { class: "badge" }, "you"),
        remove);
    }));
  }

  function tick() {
    if (meeting) count.textContent = countdown(meeting);
  }

  async function load() {
    try {
      const m = await api.meeting(identity);
      if (alive) show(m);
      return m;
    } catch (e) {
      if (alive) showError(error, e.message);
      return null;
    }
  }

  async function removeMember(username, button) {
    showError(error, "");
    try {
      await busy([button], () => api.removeMember(identity, username));
      const users = await api.members(identity);
      if (alive) showMembers(users);
      if (alive) inviteInput.focus();
    } catch (e) {
      showError(error, e.message);
    }
  }

  onSubmit(invite, {
    submit: inviteSubmit, error,
    run: async () => {
      const names = splitUsernames(inviteInput.value);
      refuse(names.length ? checkUsernames(names) : "Enter a username to invite.", inviteInput);
      const users = await api.addMembers(identity, names);
      inviteInput.value = "";
      if (alive) showMembers(users);
    },
  });

  let copiedTimer = 0;
  copyButton.addEventListener("click", async () => {
    clearTimeout(copiedTimer);
    linkInput.value = location.href;
    try {
      await navigator.clipboard.writeText(linkInput.value);
      copied.textContent = "Link copied.";
      copiedTimer = setTimeout(() => { copied.textContent = ""; }, 4000);
    } catch {
      linkInput.focus();
      linkInput.select();
      copied.textContent = "Press Ctrl+C (or ⌘C) to copy the selected link.";
    }
  });

  edit.addEventListener("click", () => {
    if (editing || !meeting) return;
    editing = true;
    showError(error, "");
    const close = () => {
      editing = false;
      editArea.hidden = true;
      editArea.replaceChildren();
      edit.hidden = !isCreator();
      edit.focus();
    };
    const form = meetingForm({
      meeting,
      title: "",
      submitLabel: "Save",
      onSave: async (change) => {
        if (Object.keys(change).length) {
          const saved = await api.editMeeting({ identity, ...change });
          if (alive) show({ ...saved, participants: meeting.participants });
        }
        close();
      },
      onCancel: close,
    });
    replace(editArea, h("h2", {}, "Edit meeting"), form);
    editArea.hidden = false;
    edit.hidden = true;
    form.elements.name.focus();
  });

  del.addEventListener("click", () => {
    showError(error, "");
    confirmText.textContent = `“${meeting?.name || "This meeting"}” and its participant list will be deleted for everyone.`;
    dialog.showModal();
    confirmNo.focus();
  });
  confirmNo.addEventListener("click", () => dialog.close());
  confirmYes.addEventListener("click", async () => {
    try {
      await busy([confirmYes, confirmNo], () => api.deleteMeeting(identity));
      dialog.close();
      navigate("/", { replace: true });
    } catch (e) {
      dialog.close();
      showError(error, e.message);
      del.focus();
    }
  });

  join.addEventListener("click", async () => {
    showError(error, "");
    try {
      await busy([join], async () => {
        const [m, call] = await Promise.all([api.meeting(identity), import("../call/prejoin.js")]);
        if (!alive) return;
        show(m);
        openCall(call.mountPrejoin, m);
      });
    } catch (e) {
      if (alive) showError(error, e.message);
    }
  });

  function openCall(mountPrejoin, m) {
    details.hidden = true;
    callArea.hidden = false;
    const ctx = {
      meeting: m,
      me: { id: me.id, username: me.username },
      relay: new URLSearchParams(location.search).get("relay") === "1",
      isHost: me.id === m.create_id,
      onExit: () => closeCall(),
    };
    inCall = mountPrejoin(callArea, ctx) || (() => {});
  }

  // closeCall ends the pre-join or the call (its cleanup, called once) and
  // shows the meeting page again.
  let closing = false;
  function closeCall() {
    if (closing) return; // the cleanup may call onExit itself
    closing = true;
    const done = inCall;
    inCall = null;
    try { done?.(); } catch (e) { console.warn("call cleanup", e); } finally { closing = false; }
    callArea.replaceChildren();
    callArea.hidden = true;
    if (!alive) return;
    details.hidden = false;
    load();
    join.focus();
  }

  load();
  const ticker = setInterval(tick, TICK_MS);
  const refresher = setInterval(() => { if (!inCall && !editing) load(); }, REFRESH_MS);
  return () => {
    alive = false;
    clearInterval(ticker);
    clearInterval(refresher);
    clearTimeout(copiedTimer);
    if (dialog.open) dialog.close();
    if (inCall) closeCall();
    document.title = "Meeting";
  };
}
